//! The little the generator asks of the operating system: a server's resident memory
//! (Linux only) and enough file descriptors for the connections it holds.

use std::io;

/// The resident memory of process `pid` in KiB, from /proc/PID/status.
#[cfg(target_os = "linux")]
pub fn rss_kib(pid: u32) -> io::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                "no VmRSS line in /proc/PID/status",
            )
        })
}

/// The CPU time process `pid` has used, in nanoseconds: the sum over its threads of
/// the run time the scheduler accounts in /proc/PID/task/TID/schedstat. That is exact
/// to the nanosecond, where /proc/PID/stat counts 10 ms ticks, too coarse for runs
/// that last a few tens of milliseconds. Threads that ended are not counted, which
/// suits servers whose threads live as long as they do.
#[cfg(target_os = "linux")]
pub fn cpu_ns(pid: u32) -> io::Result<u64> {
    let mut total = 0u64;
    for task in std::fs::read_dir(format!("/proc/{pid}/task"))? {
        let path = task?.path().join("schedstat");
        // A thread may end between the listing and the read.
        let Ok(stat) = std::fs::read_to_string(&path) else {
            continue;
        };
        let ns: u64 = stat
            .split_whitespace()
            .next()
            .and_then(|field| field.parse().ok())
            .ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("no run time in {}", path.display()),
                )
            })?;
        total += ns;
    }
    Ok(total)
}

/// CPU time is read from /proc, which only Linux has.
#[cfg(not(target_os = "linux"))]
pub fn cpu_ns(_pid: u32) -> io::Result<u64> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "reading another process's CPU time is only supported on Linux",
    ))
}

/// Resident memory is read from /proc, which only Linux has.
#[cfg(not(target_os = "linux"))]
pub fn rss_kib(_pid: u32) -> io::Result<u64> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "reading another process's memory is only supported on Linux",
    ))
}

/// Raises this process's soft limit on open files to at least `wanted` where the hard
/// limit allows, and returns the limit now in force (`None` where there is no such
/// limit to speak of).
#[cfg(unix)]
// rlim_t is u64 on most systems but not all, hence casts that are no-ops here.
#[allow(clippy::unnecessary_cast)]
pub fn raise_fd_limit(wanted: u64) -> Option<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit only writes the struct we pass, which lives on our stack.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return None;
    }
    let wanted = wanted as libc::rlim_t;
    if limit.rlim_cur < wanted && limit.rlim_cur != libc::RLIM_INFINITY {
        let raised = libc::rlimit {
            rlim_cur: wanted.min(limit.rlim_max),
            rlim_max: limit.rlim_max,
        };
        // SAFETY: setrlimit only reads the struct we pass.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            limit.rlim_cur = raised.rlim_cur;
        }
    }
    Some(limit.rlim_cur as u64)
}

/// Windows has no per-process descriptor limit of this kind.
#[cfg(not(unix))]
pub fn raise_fd_limit(_wanted: u64) -> Option<u64> {
    None
}

/// File descriptors the generator needs besides its connections: standard streams,
/// the event loops' own, and slack.
const SPARE_FDS: u64 = 64;

/// Makes room for `connections` sockets, or says why that is impossible.
pub fn ensure_fds(connections: u64) -> anyhow::Result<()> {
    let wanted = connections + SPARE_FDS;
    match raise_fd_limit(wanted) {
        Some(limit) if limit < wanted => anyhow::bail!(
            "{connections} connections need about {wanted} open files, but the limit is {limit}; \
             raise it (ulimit -n) or use fewer clients"
        ),
        _ => Ok(()),
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    #[test]
    fn reads_our_own_resident_memory() {
        let kib = super::rss_kib(std::process::id()).unwrap();
        assert!(kib > 100, "{kib} KiB");
    }

    #[test]
    fn our_own_cpu_time_grows_as_we_work() {
        let before = super::cpu_ns(std::process::id()).unwrap();
        // Work until the scheduler has charged us a millisecond more; a reading that
        // never grows fails at the bound.
        let started = std::time::Instant::now();
        let mut spins = 0u64;
        loop {
            for _ in 0..100_000 {
                spins = std::hint::black_box(spins + 1);
            }
            let now = super::cpu_ns(std::process::id()).unwrap();
            if now >= before + 1_000_000 {
                break;
            }
            assert!(
                started.elapsed() < std::time::Duration::from_secs(10),
                "CPU time stuck at {now} ns (from {before})"
            );
        }
    }
}
