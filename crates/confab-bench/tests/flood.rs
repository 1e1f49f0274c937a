//! `confab bench flood` run small against a confab server with flood control on: the
//! report has both phases' figures, the flooders are slowed and cut with a reason, and
//! none of the paced traffic is lost.

mod common;

use std::time::Duration;

use common::{workload, TestServer};
use confab_bench::measure;
use confab_server::Limits;

/// A field of a RESULT line, as a number.
fn field(line: &str, key: &str) -> f64 {
    let prefix = format!("{key}=");
    line.split(' ')
        .find_map(|word| word.strip_prefix(prefix.as_str()))
        .unwrap_or_else(|| panic!("no {key} in {line}"))
        .parse()
        .unwrap_or_else(|e| panic!("{key} in {line}: {e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flooders_are_slowed_and_cut_while_paced_traffic_arrives_whole() {
    // Flood control as a default server has it, but faster, so that the paced senders
    // (20 messages/s) stay within budget, and with a short grace, so that the flooders
    // are cut within the test.
    let server = TestServer::start_with(Limits {
        max_connections_per_ip: 0,
        connection_rate_per_ip: 0,
        flood_burst: 20,
        flood_rate: 50,
        flood_grace: Duration::from_millis(700),
        shutdown_grace: Duration::from_millis(500),
        ..Limits::default()
    })
    .await;
    for (protocol, addr, cut) in [
        ("line", server.addr, "! Disconnected: excess flood"),
        ("irc", server.irc_addr, "(Excess Flood)"),
    ] {
        let args = format!(
            "flood --protocol {protocol} --addr {addr} --duration 40 --threads 2 \
             --clients 6 --senders 3 --messages 40 --rate 20 --flooders 2 --warmup 0.3"
        );
        let report = measure(workload(&args))
            .await
            .unwrap_or_else(|e| panic!("{args}: {e:#}"));
        let rendered = report.render();
        println!("{rendered}");
        let line = report.result_line();

        // Two phases, each 3 senders x 40 messages to 5 other clients; nothing lost.
        assert_eq!(report.expected, 2 * 3 * 40 * 5, "{line}");
        assert_eq!(report.received, report.expected, "{line}");
        assert!(report.clean(), "{line}");
        assert!(
            line.starts_with(&format!(
                "RESULT workload=flood protocol={protocol} clients=6 senders=3 messages=40 \
                 expected=1200 received=1200 lost=0 duplicates=0 disconnects=0 errors=0 "
            )),
            "{line}"
        );
        let (quiet, loud) = (field(&line, "quiet_p99_us"), field(&line, "flood_p99_us"));
        assert!(quiet > 0.0 && loud > 0.0, "{line}");
        let ratio = field(&line, "ratio");
        assert!((ratio - loud / quiet).abs() < 0.01, "{line}");
        assert_eq!(field(&line, "flooders"), 2.0, "{line}");

        // The flooders were cut for flooding, said so, and came back.
        let cuts = field(&line, "flooder_disconnects");
        assert!(cuts >= 2.0, "{line}");
        assert!(field(&line, "flooder_connections") > cuts, "{line}");
        assert!(
            rendered.contains(cut),
            "the reason line is reported: {rendered}"
        );
        // The server read a small part of what they wrote, and passed all of that on.
        let written = field(&line, "flood_lines_written");
        let delivered = field(&line, "flood_lines_delivered");
        assert!(delivered > 0.0, "{line}");
        assert!(delivered / 6.0 < written / 4.0, "{line}");
    }
    server.stop().await;
}
