//! UDP reliable mode end to end: real sockets on 127.0.0.1, peers driven in process
//! through their pipe-mode API, and a lossy relay between them where the test says so.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{loopback_udp, udp_args, Peer, WAIT};
use confab_peer::relay::{Relay, RelayConfig};
use confab_peer::{bind_udp, Link};
use confab_wire::peer::frame::MAGIC;
use tokio::net::UdpSocket;

/// Two peers through a relay with the given behaviour, both in reliable mode.
async fn through_relay(config: RelayConfig, extra: &[&str]) -> (Peer, Peer, Relay) {
    let (sa, sb) = (loopback_udp(), loopback_udp());
    let relay = Relay::start(sa.local_addr().unwrap(), sb.local_addr().unwrap(), config)
        .await
        .unwrap();
    let mut flags = vec!["--reliable"];
    flags.extend_from_slice(extra);
    let a = Peer::spawn(udp_args(&sa, relay.addr_for_a(), &flags), Link::Udp(sa));
    let b = Peer::spawn(udp_args(&sb, relay.addr_for_b(), &flags), Link::Udp(sb));
    (a, b, relay)
}

/// Two peers talking directly.
fn direct(extra_a: &[&str], extra_b: &[&str]) -> (Peer, Peer) {
    let (sa, sb) = (loopback_udp(), loopback_udp());
    let (addr_a, addr_b) = (sa.local_addr().unwrap(), sb.local_addr().unwrap());
    let a = Peer::spawn(udp_args(&sa, addr_b, extra_a), Link::Udp(sa));
    let b = Peer::spawn(udp_args(&sb, addr_a, extra_b), Link::Udp(sb));
    (a, b)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_messages_each_way_arrive_once_and_in_order_through_a_lossy_relay() {
    let (mut a, mut b, relay) = through_relay(RelayConfig::lossy(0.3, 0.1, 0.1, 7), &[]).await;
    let lines = |who: &str| {
        (0..1000)
            .map(|i| format!("{who} says {i}"))
            .collect::<Vec<_>>()
    };
    let (from_a, from_b) = (lines("a"), lines("b"));
    let feed = |peer: &mut Peer, lines: &[String]| {
        let mut input = peer.input.take().unwrap();
        let text = lines.join("\n") + "\n";
        tokio::spawn(async move {
            tokio::io::AsyncWriteExt::write_all(&mut input, text.as_bytes())
                .await
                .unwrap();
            input
        })
    };
    let (feed_a, feed_b) = (feed(&mut a, &from_a), feed(&mut b, &from_b));
    let (got_b, got_a) = tokio::join!(b.lines(1000), a.lines(1000));
    assert_eq!(got_b, from_a, "b got a's messages exactly once, in order");
    assert_eq!(got_a, from_b, "a got b's messages exactly once, in order");
    // Both inputs end only now, so that neither leaves while the other still sends.
    drop(feed_a.await.unwrap());
    drop(feed_b.await.unwrap());
    let (ra, rb) = tokio::join!(a.finish(), b.finish());
    let (ra, rb) = (ra.unwrap(), rb.unwrap());
    assert_eq!((ra.undelivered, rb.undelivered), (0, 0));
    assert_eq!(
        (ra.sent, ra.received, rb.sent, rb.received),
        (1000, 1000, 1000, 1000)
    );
    assert!(
        ra.stats.retransmissions > 0 && rb.stats.duplicates > 0,
        "{ra:?} {rb:?}"
    );
    let dropped = relay
        .stats()
        .dropped
        .load(std::sync::atomic::Ordering::Relaxed);
    assert!(dropped > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_64_kib_message_arrives_whole_through_a_lossy_relay() {
    let (mut a, mut b, _relay) = through_relay(RelayConfig::lossy(0.3, 0.1, 0.1, 11), &[]).await;
    let big: String = (0..64 * 1024)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect();
    a.send(&big).await;
    a.send("and a short one").await;
    assert_eq!(b.line().await, big);
    assert_eq!(b.line().await, "and a short one");
    a.close_input();
    let ra = a.finish().await.unwrap();
    assert_eq!(ra.undelivered, 0);
    b.finish().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_friend_shows_offline_when_killed_and_online_when_back() {
    let (sa, sb) = (loopback_udp(), loopback_udp());
    let (a_addr, b_addr) = (sa.local_addr().unwrap(), sb.local_addr().unwrap());
    let mut a = Peer::spawn(udp_args(&sa, b_addr, &[]), Link::Udp(sa));
    let b = Peer::spawn(udp_args(&sb, a_addr, &[]), Link::Udp(sb));
    a.notice("connected", WAIT).await;

    b.task.abort();
    let _ = b.task.await;
    let killed = Instant::now();
    a.notice("the friend is offline", Duration::from_secs(10))
        .await;
    let took = killed.elapsed();
    assert!(took < Duration::from_secs(5), "offline after {took:?}");

    let sb = bind_udp(b_addr).expect("the friend's port is free again");
    let mut b = Peer::spawn(udp_args(&sb, a_addr, &[]), Link::Udp(sb));
    a.notice("the friend is online", Duration::from_secs(10))
        .await;
    a.send("welcome back").await;
    assert_eq!(b.line().await, "welcome back");
    a.close_input();
    assert_eq!(a.finish().await.unwrap().undelivered, 0);
    b.finish().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_secret_is_a_clear_error_and_shows_no_text() {
    let (mut a, mut b) = direct(&["--secret", "open sesame"], &["--secret", "open barley"]);
    a.send("for your eyes only").await;
    b.send("mine too").await;
    assert!(
        a.rest().await.is_empty() && b.rest().await.is_empty(),
        "no text is shown"
    );
    let (ra, rb) = tokio::join!(a.finish(), b.finish());
    for result in [ra, rb] {
        let error = result.expect_err("a wrong secret must end the chat");
        assert_eq!(error.to_string(), "the friend's secret does not match");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tampered_datagrams_are_dropped_counted_and_repaired() {
    let count = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut config = RelayConfig::clean();
    config.tamper = Some(Arc::new(move |datagram: &mut Vec<u8>| {
        let n = count.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        // Alter one byte of the sealed body of every fourth packet.
        if datagram.starts_with(&MAGIC) && n % 4 == 0 {
            let last = datagram.len() - 1;
            datagram[last] ^= 0x40;
        }
    }));
    let (mut a, mut b, _relay) = through_relay(config, &["--secret", "swordfish"]).await;
    let want: Vec<String> = (0..100).map(|i| format!("sealed {i}")).collect();
    for line in &want {
        a.send(line).await;
    }
    assert_eq!(b.lines(100).await, want);
    a.close_input();
    let (ra, rb) = tokio::join!(a.finish(), b.finish());
    let (ra, rb) = (ra.unwrap(), rb.unwrap());
    assert_eq!(ra.undelivered, 0);
    assert!(
        ra.stats.forged + rb.stats.forged > 0,
        "{:?} {:?}",
        ra.stats,
        rb.stats
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strangers_are_ignored_and_counted() {
    let (sa, sb) = (loopback_udp(), loopback_udp());
    let (addr_a, addr_b) = (sa.local_addr().unwrap(), sb.local_addr().unwrap());
    let mut a = Peer::spawn(udp_args(&sa, addr_b, &[]), Link::Udp(sa));
    let mut b = Peer::spawn(udp_args(&sb, addr_a, &[]), Link::Udp(sb));
    a.notice("connected", WAIT).await;

    let stranger = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let mut forged_packet = MAGIC.to_vec();
    forged_packet.extend([1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    forged_packet.extend(b"\0\0\0\0\0\0\0\0\0\0");
    let hello = b"\x01confab-peer/1 hello 00".to_vec();
    for datagram in [
        b"i am your friend, honest".to_vec(),
        b"quit".to_vec(),
        forged_packet,
        hello,
    ] {
        stranger.send_to(&datagram, addr_a).await.unwrap();
    }
    b.send("the real friend").await;
    assert_eq!(a.line().await, "the real friend");
    a.close_input();
    assert!(
        a.rest().await.is_empty(),
        "nothing from the stranger was shown"
    );
    let ra = a.finish().await.unwrap();
    assert_eq!(ra.stats.strangers, 4);
    assert_eq!(ra.received, 1);
    b.finish().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_left_undelivered_fail_the_exit_status() {
    // A friend address where nobody listens.
    let nobody = loopback_udp().local_addr().unwrap();
    let sa = loopback_udp();
    let mut a = Peer::spawn(
        udp_args(&sa, nobody, &["--reliable", "--linger", "1"]),
        Link::Udp(sa),
    );
    a.send("hello?").await;
    a.send("anyone?").await;
    a.close_input();
    a.notice("2 messages were not delivered", WAIT).await;
    let report = a.finish().await.unwrap();
    assert_eq!(report.undelivered, 2);
    assert_eq!(report.exit_code(), std::process::ExitCode::FAILURE);
}
