//! Abuse limits over real sockets: flood control (slowed, then cut with a reason the
//! client and the others see), per-address connection count and rate, the partial-line
//! timeout, and the core's bounds on rooms per user and members per room, on the line
//! protocol and IRC. The WebSocket's flood control is tested in web.rs.
//!
//! Timing-sensitive cases use short limits and assert only what holds however the
//! scheduler runs: a flood far beyond the budget is cut, a trickle is cut. The exact
//! arithmetic of the token bucket is unit-tested with an explicit clock in
//! `src/flood.rs`.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::{http_get, Client, TestServer, PATIENCE};
use confab_server::Limits;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// An IRC client on a raw socket, registered as `nick`, with its welcome lines.
async fn irc_user(server: &TestServer, nick: &str) -> (Client, Vec<String>) {
    let mut client = Client::connect(server.irc_addr).await;
    client.send(&format!("NICK {nick}")).await;
    client.send(&format!("USER {nick} 0 * :{nick}")).await;
    let mut welcome = Vec::new();
    loop {
        let line = client.line().await.trim_end().to_string();
        let end = line.contains(" 376 ") || line.contains(" 422 ");
        welcome.push(line);
        if end {
            return (client, welcome);
        }
    }
}

/// The next IRC line without its `\r`.
async fn irc_line(client: &mut Client) -> String {
    client.line().await.trim_end().to_string()
}

#[tokio::test]
async fn a_flooding_client_is_slowed_then_cut_while_others_chat() {
    let server = TestServer::with_limits(Limits {
        flood_burst: 10,
        flood_rate: 20,
        flood_grace: Duration::from_secs(2),
        ..Limits::default()
    })
    .await;
    let mut listener = server.user("listener").await;
    let mut bob = server.user("bob").await;
    let mut flooder = server.user("flooder").await;
    listener.expect("* flooder joined lobby").await;
    bob.expect("* flooder joined lobby").await;

    // Far more than the burst plus the rate over the grace period, all at once.
    let sent = 2000;
    let flood: String = (0..sent).map(|i| format!("flood {i}\n")).collect();
    flooder.send_bytes(flood.as_bytes()).await;

    // The flood arrives in order and slowly; meanwhile bob still gets through.
    let mut relayed = 0;
    let mut bob_seen = false;
    loop {
        let line = listener.line().await;
        if let Some(n) = line.strip_prefix("[lobby] flooder: flood ") {
            assert_eq!(n, relayed.to_string());
            relayed += 1;
            if relayed == 1 {
                bob.send("still here").await;
            }
        } else if line == "[lobby] bob: still here" {
            bob_seen = true;
        } else if line == "* flooder quit (Excess Flood)" {
            break;
        } else {
            panic!("unexpected {line:?}");
        }
    }
    assert!(bob_seen, "bob's message went through during the flood");
    assert!(
        (10..sent / 4).contains(&relayed),
        "{relayed} of {sent} flood lines relayed: the burst, then slowed"
    );
    let last = flooder.rest_raw().await;
    assert_eq!(
        last.last().map(String::as_str),
        Some("! Disconnected: excess flood")
    );
    let (_, metrics) = http_get(server.http_addr, "/metrics").await;
    assert!(
        metrics.contains("confab_disconnects_total{reason=\"flood\"} 1\n"),
        "{metrics}"
    );
    server.stop().await;
}

#[tokio::test]
async fn an_irc_flood_ends_with_excess_flood() {
    let server = TestServer::with_limits(Limits {
        flood_burst: 5,
        flood_rate: 20,
        flood_grace: Duration::from_millis(500),
        ..Limits::default()
    })
    .await;
    let mut listener = server.user("listener").await;
    let (mut irc, _) = irc_user(&server, "ircflood").await;
    irc.send("JOIN #lobby").await;
    listener.expect("* ircflood joined lobby").await;
    let flood: String = (0..2000)
        .map(|i| format!("PRIVMSG #lobby :flood {i}\r\n"))
        .collect();
    irc.send_bytes(flood.as_bytes()).await;
    listener.expect("* ircflood quit (Excess Flood)").await;
    let rest = irc.rest_raw().await;
    assert_eq!(
        rest.last().map(|l| l.trim_end()),
        Some("ERROR :Closing Link: 127.0.0.1 (Excess Flood)")
    );
    server.stop().await;
}

#[tokio::test]
async fn a_short_burst_is_slowed_but_nothing_is_lost() {
    let server = TestServer::with_limits(Limits {
        flood_burst: 5,
        flood_rate: 50,
        ..Limits::default()
    })
    .await;
    let mut listener = server.user("listener").await;
    let mut paster = server.user("paster").await;
    listener.expect("* paster joined lobby").await;
    // Six times the burst: a paste, over budget for half a second at most.
    let paste: String = (0..30).map(|i| format!("line {i}\n")).collect();
    paster.send_bytes(paste.as_bytes()).await;
    for i in 0..30 {
        assert_eq!(listener.line().await, format!("[lobby] paster: line {i}"));
    }
    paster.expect_quiet().await;
    server.stop().await;
}

/// Connects to `addr` until the server admits the connection (a slot freed by a
/// closed connection comes back once the server has finished with it), returning the
/// client and its first line.
async fn connect_when_admitted(addr: SocketAddr) -> (Client, String) {
    tokio::time::timeout(PATIENCE, async {
        loop {
            let mut client = Client::connect(addr).await;
            let first = client.line().await;
            if !first.starts_with("! Too many connections") {
                return (client, first);
            }
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("admitted in time")
}

/// Everything a refused HTTP connection is sent, without sending it anything.
async fn http_refusal(addr: SocketAddr) -> String {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut bytes = Vec::new();
    tokio::time::timeout(PATIENCE, stream.read_to_end(&mut bytes))
        .await
        .expect("closed in time")
        .unwrap();
    String::from_utf8_lossy(&bytes).into_owned()
}

#[tokio::test]
async fn connections_per_address_are_capped_across_front_ends() {
    let server = TestServer::with_limits(Limits {
        max_connections_per_ip: 2,
        ..Limits::default()
    })
    .await;
    let first = server.connect().await;
    let (mut irc, _) = irc_user(&server, "carol").await;
    irc.send("PING held").await;
    let pong = irc_line(&mut irc).await;
    assert!(pong.ends_with("held"), "{pong}");

    let mut refused = Client::connect(server.addr).await;
    assert_eq!(
        refused.line().await,
        "! Too many connections from your address"
    );
    assert_eq!(refused.next_line().await, None);
    let mut refused = Client::connect(server.irc_addr).await;
    assert_eq!(
        irc_line(&mut refused).await,
        "ERROR :Too many connections from your address"
    );
    let http = http_refusal(server.http_addr).await;
    assert!(http.starts_with("HTTP/1.1 429 "), "{http}");

    // A connection that ends gives its place back.
    drop(first);
    let (_again, greeting) = connect_when_admitted(server.addr).await;
    assert!(greeting.starts_with("* Welcome"), "{greeting}");
    server.stop().await;
}

/// A TCP connection to `addr` from the loopback address `from` (any of 127.0.0.0/8).
async fn connect_from(from: &str, addr: SocketAddr) -> tokio::net::TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket
        .bind(SocketAddr::new(from.parse().unwrap(), 0))
        .unwrap();
    socket.connect(addr).await.expect("connect")
}

#[tokio::test]
async fn new_connections_per_address_are_rate_limited() {
    let server = TestServer::with_limits(Limits {
        connection_rate_per_ip: 3,
        ..Limits::default()
    })
    .await;
    for _ in 0..3 {
        drop(server.connect().await);
    }
    let mut refused = Client::connect(server.addr).await;
    assert_eq!(
        refused.line().await,
        "! Too many connections from your address; try again later"
    );
    let mut refused = Client::connect(server.irc_addr).await;
    assert_eq!(
        irc_line(&mut refused).await,
        "ERROR :Too many connections from your address; try again later"
    );
    // Another address has its own budget.
    let mut other = connect_from("127.0.0.2", server.http_addr).await;
    other
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut metrics = String::new();
    tokio::time::timeout(PATIENCE, other.read_to_string(&mut metrics))
        .await
        .expect("answered in time")
        .unwrap();
    assert!(metrics.starts_with("HTTP/1.1 200 "), "{metrics}");
    assert!(
        metrics.contains("confab_connections_refused_total{reason=\"per_ip_rate\"} 2\n"),
        "{metrics}"
    );
    server.stop().await;
}

#[tokio::test]
async fn a_line_that_never_ends_is_cut_even_while_it_grows() {
    let server = TestServer::with_limits(Limits {
        partial_line_timeout: Duration::from_millis(300),
        ..Limits::default()
    })
    .await;
    let mut alice = server.user("alice").await;
    let mut slow = server.user("slow").await;
    alice.expect("* slow joined lobby").await;
    // A byte every 100 ms, never a newline: the trickle is the behaviour under test.
    // Writes after the server has closed may fail; that is fine.
    for _ in 0..3 {
        let _ = slow.writer.write_all(b"x").await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let lines = slow.rest_raw().await;
    assert_eq!(
        lines.last().map(String::as_str),
        Some("! Disconnected: a line was left unfinished for too long")
    );
    alice.expect("* slow quit (Partial line timeout)").await;
    server.stop().await;
}

#[tokio::test]
async fn rooms_per_user_are_capped_on_every_front_end() {
    let server = TestServer::with_limits(Limits {
        max_rooms_per_user: 2,
        ..Limits::default()
    })
    .await;
    // A line user starts in lobby: one more room fits.
    let mut alice = server.user("alice").await;
    alice.send("/join second").await;
    alice.expect("* Members of second").await;
    alice.send("/join third").await;
    assert_eq!(
        alice.line().await,
        "! You cannot join third: you are in 2 rooms, the most allowed; leave one first"
    );

    let (mut carol, welcome) = irc_user(&server, "carol").await;
    let isupport = welcome.join("\n");
    assert!(isupport.contains(" CHANLIMIT=#:2 "), "{isupport}");
    assert!(isupport.contains(" MAXCHANNELS=2 "), "{isupport}");
    for chan in ["#one", "#two"] {
        carol.send(&format!("JOIN {chan}")).await;
        carol
            .expect(&format!(":confab.local 366 carol {chan} "))
            .await;
    }
    carol.send("JOIN #three").await;
    assert_eq!(
        irc_line(&mut carol).await,
        ":confab.local 405 carol #three :You have joined too many channels"
    );
    server.stop().await;
}

#[tokio::test]
async fn members_per_room_are_capped_on_every_front_end() {
    let server = TestServer::with_limits(Limits {
        max_members_per_room: 2,
        ..Limits::default()
    })
    .await;
    let _alice = server.user("alice").await;
    let _bob = server.user("bob").await;
    let mut carol = server.connect().await;
    carol.send("#carol").await;
    carol.expect("* Your user detail saved as : carol").await;
    assert_eq!(
        carol.line().await,
        "! Room lobby is full: it has 2 members, the most the server allows"
    );

    let (mut dave, _) = irc_user(&server, "dave").await;
    dave.send("JOIN #lobby").await;
    assert_eq!(
        irc_line(&mut dave).await,
        ":confab.local 471 dave #lobby :Cannot join channel (channel is full)"
    );
    server.stop().await;
}
