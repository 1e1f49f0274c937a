//! Every workload, run small against a real confab server (line protocol and IRC), a fake
//! IRC server and the raw relay: everything expected must arrive exactly once.

mod common;

use common::{workload, FakeIrc, TestServer};
use confab_bench::{measure, Relay, Report};

/// Runs `args` and checks that the run was clean and complete.
async fn check(args: &str) -> Report {
    let report = measure(workload(args))
        .await
        .unwrap_or_else(|e| panic!("{args}: {e:#}"));
    println!("{}", report.render());
    assert!(report.expected > 0, "{args}: nothing was expected");
    assert_eq!(
        report.received,
        report.expected,
        "{args}: {}",
        report.result_line()
    );
    assert_eq!(report.lost, 0, "{args}");
    assert!(report.clean(), "{args}: {}", report.result_line());
    report
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn line_protocol_workloads_against_confab() {
    let server = TestServer::start().await;
    let addr = server.addr;
    let common = format!("--addr {addr} --duration 30 --threads 2");

    let fanout = check(&format!(
        "fanout {common} --clients 5 --senders 2 --messages 20 --batch 7"
    ))
    .await;
    assert_eq!(
        fanout.expected,
        2 * 20 * 4,
        "a sender does not get its own messages"
    );
    assert!(fanout.rate > 0.0 && fanout.p50_us > 0.0 && fanout.max_us >= fanout.p99_us);
    assert!(fanout.result_line().starts_with("RESULT workload=fanout protocol=line clients=5 senders=2 messages=20 expected=160 received=160 lost=0"));

    check(&format!(
        "fanout {common} --clients 3 --senders 1 --messages 10 --rate 200 --size 100 --room paced"
    ))
    .await;

    // The server runs in this process, so this process's CPU time is the server's.
    let pid = std::process::id();
    let dm = check(&format!("dm {common} --pairs 3 --messages 20 --pid {pid}")).await;
    assert_eq!(dm.expected, 6 * 20);
    if cfg!(target_os = "linux") {
        let line = dm.result_line();
        let per_delivery: f64 = line
            .split(' ')
            .find_map(|kv| kv.strip_prefix("server_ns_per_delivery="))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no server CPU in {line}"));
        assert!(per_delivery > 0.0, "{line}");
        assert!(line.contains(" server_busy_pct="), "{line}");
    }

    let connect = check(&format!("connect {common} --clients 20 --concurrency 4")).await;
    assert_eq!(connect.rate_name, "registrations_per_sec");

    // Likewise its memory.
    let idle = check(&format!("idle {common} --clients 10 --pid {pid}")).await;
    if cfg!(target_os = "linux") {
        assert!(
            idle.result_line().contains("kib_per_conn="),
            "{}",
            idle.result_line()
        );
    }
    check(&format!("idle {common} --clients 10")).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn irc_workloads_against_confab() {
    let server = TestServer::start().await;
    let common = format!(
        "--protocol irc --addr {} --duration 30 --threads 2",
        server.irc_addr
    );

    check(&format!(
        "fanout {common} --clients 5 --senders 2 --messages 20"
    ))
    .await;
    check(&format!("dm {common} --pairs 3 --messages 20")).await;
    check(&format!("connect {common} --clients 20 --concurrency 4")).await;
    check(&format!("idle {common} --clients 10")).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn irc_workloads_against_a_fake_irc_server() {
    let irc = FakeIrc::start().await;
    let common = format!(
        "--protocol irc --addr {} --duration 30 --threads 2",
        irc.addr
    );

    check(&format!(
        "fanout {common} --clients 5 --senders 2 --messages 20"
    ))
    .await;
    check(&format!("dm {common} --pairs 3 --messages 20")).await;
    check(&format!("connect {common} --clients 20 --concurrency 4")).await;
    check(&format!("idle {common} --clients 10")).await;
    assert!(
        *irc.pongs.lock().unwrap() >= 5 + 6 + 20 + 10,
        "every client answered the server's PING"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_lines_through_the_relay() {
    let relay = Relay::bind("127.0.0.1:0".parse().unwrap(), 1 << 20)
        .await
        .unwrap();
    let addr = relay.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(relay.run(async {
        let _ = stopped.await;
    }));
    let common = format!("--protocol raw --addr {addr} --duration 30");

    check(&format!(
        "fanout {common} --clients 5 --senders 2 --messages 20"
    ))
    .await;
    check(&format!("connect {common} --clients 20")).await;
    check(&format!("idle {common} --clients 10")).await;
    let dm = measure(workload(&format!("dm {common} --pairs 2"))).await;
    assert!(dm.unwrap_err().to_string().contains("raw"));

    let _ = stop.send(());
    task.await.unwrap();
}

#[tokio::test]
async fn targets_outside_loopback_are_refused() {
    for args in [
        "fanout --addr 10.1.2.3:12345",
        "dm --protocol irc --addr 192.168.0.1:6667",
        "connect --addr 8.8.8.8:53",
        "idle --addr [2001:db8::1]:6667",
    ] {
        let error = measure(workload(args)).await.expect_err(args).to_string();
        assert!(error.contains("only targets loopback"), "{args}: {error}");
    }
    let relay = Relay::bind("0.0.0.0:0".parse().unwrap(), 1024).await;
    assert!(
        relay.is_err(),
        "the relay refuses to listen beyond loopback"
    );
}

#[tokio::test]
async fn a_run_without_a_server_fails_within_its_bound() {
    // Nothing listens on this port (bound and released), so every connect fails fast.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let started = std::time::Instant::now();
    let result = measure(workload(&format!(
        "fanout --addr 127.0.0.1:{port} --clients 3 --senders 1 --duration 5"
    )))
    .await;
    let error = format!("{:#}", result.expect_err("no server"));
    assert!(error.contains("connecting to"), "{error}");
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
}
