//! `GET /metrics`: the Prometheus exposition has every documented series, and the
//! counters move with real traffic.

mod common;

use common::{http_get, TestServer};

/// The value of one series, by its full name with labels.
fn value(metrics: &str, series: &str) -> f64 {
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no {series} in\n{metrics}"))
        .parse()
        .unwrap()
}

async fn scrape(server: &TestServer) -> String {
    let (status, body) = http_get(server.http_addr, "/metrics").await;
    assert_eq!(status, 200);
    body
}

#[tokio::test]
async fn every_series_is_exposed() {
    let server = TestServer::start().await;
    let metrics = scrape(&server).await;
    for frontend in ["line", "irc", "web", "line_tls", "irc_tls", "web_tls"] {
        value(
            &metrics,
            &format!("confab_connections{{frontend=\"{frontend}\"}}"),
        );
    }
    for reason in [
        "flood",
        "send_queue",
        "ping_timeout",
        "idle",
        "registration_timeout",
        "partial_line",
        "killed",
        "quit",
    ] {
        value(
            &metrics,
            &format!("confab_disconnects_total{{reason=\"{reason}\"}}"),
        );
    }
    for series in [
        "confab_messages_received_total",
        "confab_messages_delivered_total",
        "confab_history_batches_total",
        "confab_history_write_errors_total",
        "confab_history_unsaved_messages",
        "confab_history_lost_messages_total",
        "confab_history_commit_seconds_count",
        "confab_history_commit_seconds_sum",
        "confab_history_commit_seconds_bucket{le=\"+Inf\"}",
        "confab_connections_refused_total{reason=\"per_ip_count\"}",
    ] {
        value(&metrics, series);
    }
    assert!(metrics.contains("# TYPE confab_history_commit_seconds histogram\n"));
    server.stop().await;
}

#[tokio::test]
async fn counters_move_with_traffic() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::with_data(dir.path()).await;
    let mut alice = server.user("alice").await;
    let mut bob = server.user("bob").await;
    let mut carol = server.user("carol").await;
    alice.expect("* carol joined lobby").await;
    bob.expect("* carol joined lobby").await;

    let before = scrape(&server).await;
    assert_eq!(value(&before, "confab_connections{frontend=\"line\"}"), 3.0);
    assert_eq!(value(&before, "confab_users"), 3.0);
    assert_eq!(value(&before, "confab_messages_received_total"), 0.0);

    alice.send("hello both").await;
    // Once a recipient has it, it was committed to history and routed to both.
    assert_eq!(bob.line().await, "[lobby] alice: hello both");
    assert_eq!(carol.line().await, "[lobby] alice: hello both");
    carol.send("/quit").await;
    alice.expect("* carol quit (Quit)").await;

    let after = scrape(&server).await;
    assert_eq!(value(&after, "confab_messages_received_total"), 1.0);
    assert_eq!(value(&after, "confab_messages_delivered_total"), 2.0);
    assert!(value(&after, "confab_history_batches_total") >= 1.0);
    assert!(value(&after, "confab_history_messages_written_total") >= 1.0);
    assert!(value(&after, "confab_history_commit_seconds_count") >= 1.0);
    assert_eq!(value(&after, "confab_history_write_errors_total"), 0.0);
    assert_eq!(
        value(&after, "confab_disconnects_total{reason=\"quit\"}"),
        1.0
    );
    assert_eq!(
        value(
            &after,
            "confab_connections_accepted_total{frontend=\"line\"}"
        ),
        3.0
    );
    // The scrapes themselves are web connections.
    assert!(
        value(
            &after,
            "confab_connections_accepted_total{frontend=\"web\"}"
        ) >= 2.0
    );
    server.stop().await;
}
