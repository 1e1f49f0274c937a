# The summary table of bench/compare.sh: reads its "NAME KEY RESULT k=v..." lines and
# prints, per workload, each server's median over the rounds (with the range when there
# were several) and how confab compares with the better peer and with the relay.
#
# Variable: order (the servers, space-separated, in column order). A range is shown
# wherever a server has more than one figure for a row.

function median(list,    n, v, i, j, t) {
    n = split(list, v, " ")
    for (i = 2; i <= n; i++)
        for (j = i; j > 1 && v[j - 1] + 0 > v[j] + 0; j--) {
            t = v[j]; v[j] = v[j - 1]; v[j - 1] = t
        }
    if (n % 2) return v[(n + 1) / 2]
    return (v[n / 2] + v[n / 2 + 1]) / 2
}

function extreme(list, want_max,    n, v, i, m) {
    n = split(list, v, " ")
    m = v[1]
    for (i = 2; i <= n; i++)
        if ((want_max && v[i] + 0 > m + 0) || (!want_max && v[i] + 0 < m + 0)) m = v[i]
    return m
}

function show(x) {
    if (x >= 1e6) return sprintf("%.2f M", x / 1e6)
    if (x >= 1e4) return sprintf("%.0f", x)
    if (x >= 100) return sprintf("%.0f", x)
    return sprintf("%.3g", x)
}

# How many times better a is than b: higher is better unless lower_better.
function times(a, b, lower_better) {
    if (a == "" || b == "" || a + 0 == 0 || b + 0 == 0) return ""
    return sprintf("%.2f", lower_better ? b / a : a / b)
}

# Adds one run's figure for the current line's server.
function add(row, value) {
    if (value == "") return
    values[row, name] = values[row, name] (values[row, name] == "" ? "" : " ") value
    if (!(row in seen)) { seen[row] = 1; rows[++nrows] = row }
}

{
    name = $1; key = $2
    delete f
    for (i = 4; i <= NF; i++) {
        eq = index($i, "=")
        if (eq) f[substr($i, 1, eq - 1)] = substr($i, eq + 1)
    }
    if ("failed" in f || f["lost"] + 0 > 0) {
        failures[key, name]++
        if (!(key in seen)) { seen[key] = 1; rows[++nrows] = key }
        next
    }
    if (key == "idle") {
        add("idle " f["clients"] ", KiB/conn", f["kib_per_conn"])
    } else if (key ~ /^paced/) {
        add(key " p99 us", f["p99_us"])
        add(key " server ns/delivery", f["server_ns_per_delivery"])
    } else if (key ~ /^connect/) {
        add(key " registrations/s", f["registrations_per_sec"])
    } else {
        add(key " deliveries/s", f["deliveries_per_sec"])
        add(key " server ns/delivery", f["server_ns_per_delivery"])
    }
}

END {
    n = split(order, servers, " ")
    header = "| workload |"; rule = "|---|"
    for (s = 1; s <= n; s++) { header = header " " servers[s] " |"; rule = rule "---:|" }
    print header " confab ÷ better peer | confab ÷ relay |"
    print rule "---:|---:|"
    for (r = 1; r <= nrows; r++) {
        row = rows[r]
        lower = (row ~ /(us|KiB\/conn|ns\/delivery)$/)
        line = "| " row " |"
        delete med
        for (s = 1; s <= n; s++) {
            name = servers[s]
            cell = ""
            if ((row, name) in values) {
                list = values[row, name]
                med[name] = median(list)
                cell = show(med[name])
                if (split(list, tmp, " ") > 1)
                    cell = cell " [" show(extreme(list, 0)) "–" show(extreme(list, 1)) "]"
            }
            k = row; sub(/ .*/, "", k)
            if ((k, name) in failures) cell = cell (cell == "" ? "" : " ") "(" failures[k, name] " failed)"
            line = line " " cell " |"
        }
        # The better peer, and the ratios for each confab front-end measured.
        peer = ""
        for (s = 1; s <= n; s++) {
            name = servers[s]
            if ((name == "ngircd" || name == "inspircd") && (name in med))
                if (peer == "" || (lower ? med[name] < peer : med[name] > peer)) peer = med[name]
        }
        vs_peer = ""; vs_relay = ""
        for (s = 1; s <= n; s++) {
            name = servers[s]
            if (name !~ /^confab/ || !(name in med)) continue
            label = name; sub(/^confab-/, "", label)
            t = times(med[name], peer, lower)
            if (t != "") vs_peer = vs_peer (vs_peer == "" ? "" : ", ") label " " t
            t = times(med[name], med["relay"], lower)
            if (t != "") vs_relay = vs_relay (vs_relay == "" ? "" : ", ") label " " t
        }
        print line " " vs_peer " | " vs_relay " |"
    }
}
