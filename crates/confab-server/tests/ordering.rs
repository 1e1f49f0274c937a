//! Replies keep the order of the commands that caused them, also when an answer comes
//! later from another thread (history from the store thread, a login or registration
//! from the password hasher): a command sent right after one of those, in the same
//! write, is answered after it.

mod common;

use std::time::Duration;

use common::{Client, TestServer};
use confab_server::Limits;

/// A server keeping its history (and accounts) in `dir`.
async fn server(dir: &std::path::Path) -> TestServer {
    TestServer::with_data_and_limits(
        dir,
        Limits {
            login_grace: Duration::from_secs(30),
            ..Limits::default()
        },
    )
    .await
}

/// Connects a raw IRC client with `caps` and registers `nick`, reading to the end of
/// the welcome.
async fn irc_user(server: &TestServer, nick: &str, caps: &str) -> Client {
    let mut irc = Client::connect(server.irc_addr).await;
    if !caps.is_empty() {
        irc.send(&format!("CAP REQ :{caps}\r")).await;
        irc.expect(":confab.local CAP * ACK").await;
    }
    irc.send(&format!("CAP END\r\nNICK {nick}\r\nUSER u 0 * :U\r"))
        .await;
    irc.expect(&format!(":confab.local 376 {nick} ")).await;
    irc
}

/// Has `alice` say `count` things in the lobby and waits until they are all in
/// history.
async fn fill_lobby(alice: &mut Client, count: usize) {
    for i in 0..count {
        alice.send(&format!("line {i}")).await;
    }
    alice.send("/history lobby 500").await;
    alice
        .expect(&format!("* History of lobby ({count} messages):"))
        .await;
    alice.expect("* End of history").await;
}

#[tokio::test]
async fn irc_chathistory_then_ping_gets_the_batch_before_the_pong() {
    let data = tempfile::tempdir().unwrap();
    let server = server(data.path()).await;
    let mut alice = server.user("alice").await;
    fill_lobby(&mut alice, 20).await;
    let mut irc = irc_user(&server, "ircy", "batch server-time message-tags").await;
    irc.send("JOIN #lobby\r").await;
    irc.expect(":confab.local 366 ircy #lobby").await;
    for round in 0..5 {
        irc.send(&format!(
            "CHATHISTORY LATEST #lobby * 50\r\nPING :t{round}\r"
        ))
        .await;
        let start = irc.line().await;
        assert!(
            start.starts_with(":confab.local BATCH +") && start.ends_with(" chathistory #lobby\r"),
            "round {round}: {start}"
        );
        for i in 0..20 {
            let line = irc.line().await;
            assert!(line.ends_with(&format!(" :line {i}\r")), "{line}");
        }
        assert!(irc.line().await.starts_with(":confab.local BATCH -"));
        assert_eq!(
            irc.line().await,
            format!(":confab.local PONG confab.local t{round}\r")
        );
    }
    server.stop().await;
}

#[tokio::test]
async fn line_history_then_ping_gets_the_history_before_the_pong() {
    let data = tempfile::tempdir().unwrap();
    let server = server(data.path()).await;
    let mut alice = server.user("alice").await;
    fill_lobby(&mut alice, 10).await;
    for _ in 0..5 {
        alice.send("/history lobby 50\n/ping").await;
        assert_eq!(alice.line().await, "* History of lobby (10 messages):");
        for i in 0..10 {
            let line = alice.line().await;
            assert!(
                line.ends_with(&format!("] [lobby] alice: line {i}")),
                "{line}"
            );
        }
        assert_eq!(alice.line().await, "* End of history");
        assert_eq!(alice.line().await, "* pong");
    }
    server.stop().await;
}

#[tokio::test]
async fn line_register_and_login_then_ping_get_their_answers_first() {
    let data = tempfile::tempdir().unwrap();
    let server = server(data.path()).await;
    let mut alice = server.user("alice").await;
    alice.send("/register correct horse\n/ping").await;
    assert_eq!(alice.line().await, "* You are logged in as alice");
    assert_eq!(alice.line().await, "* pong");
    alice.send("/quit").await;
    alice.rest().await;

    let mut owner = server.user("temp").await;
    owner.send("/login alice correct horse\n/ping").await;
    assert_eq!(owner.line().await, "* temp is now known as alice");
    assert_eq!(owner.line().await, "* You are logged in as alice");
    assert_eq!(owner.line().await, "* pong");
    owner.send("/quit").await;
    owner.rest().await;

    // A login before registering: the registration and the default room's join come
    // before the pong.
    let mut owner = server.connect().await;
    owner.send("/login alice correct horse\n/ping").await;
    let mut before_pong = Vec::new();
    loop {
        let line = owner.line().await;
        if line == "* pong" {
            break;
        }
        assert!(!line.starts_with("! "), "{line}");
        before_pong.push(line);
    }
    assert!(
        before_pong.contains(&"* Your user detail saved as : alice".to_string())
            && before_pong.contains(&"* You are logged in as alice".to_string())
            && before_pong
                .iter()
                .any(|l| l.starts_with("* Members of lobby")),
        "{before_pong:?}"
    );
    // A failed login answers in order too.
    owner.send("/login alice wrong\n/ping").await;
    assert!(owner.line().await.starts_with("! "));
    assert_eq!(owner.line().await, "* pong");
    server.stop().await;
}

#[tokio::test]
async fn irc_register_and_sasl_then_ping_get_their_answers_first() {
    let data = tempfile::tempdir().unwrap();
    let server = server(data.path()).await;
    let mut irc = irc_user(&server, "ircuser", "").await;
    irc.send("REGISTER * * hunter22\r\nPING :after\r").await;
    assert!(irc.line().await.starts_with(":confab.local 900 ircuser "));
    assert_eq!(
        irc.line().await,
        ":confab.local REGISTER SUCCESS ircuser :Account created\r"
    );
    assert_eq!(irc.line().await, ":confab.local PONG confab.local after\r");
    irc.send("QUIT\r").await;
    irc.rest().await;

    // SASL before registration: the outcome comes before the PONG.
    let mut irc = Client::connect(server.irc_addr).await;
    irc.send("CAP REQ :sasl\r\nAUTHENTICATE PLAIN\r").await;
    irc.expect(":confab.local CAP * ACK").await;
    assert_eq!(irc.line().await, "AUTHENTICATE +\r");
    let plain = base64_plain("ircuser", "hunter22");
    irc.send(&format!("AUTHENTICATE {plain}\r\nPING :sasl\r"))
        .await;
    assert!(irc.line().await.contains(" 900 * "));
    assert!(irc.line().await.contains(" 903 * "));
    assert_eq!(irc.line().await, ":confab.local PONG confab.local sasl\r");
    server.stop().await;
}

/// `AUTHENTICATE` PLAIN credentials.
fn base64_plain(name: &str, password: &str) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let bytes = format!("{name}\0{name}\0{password}").into_bytes();
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &b)| n | u32::from(b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// labeled-response: CHATHISTORY is answered on the store thread, yet its answer is
/// the labeled response (a `labeled-response` batch around the `chathistory` batch),
/// never an `ACK` followed by an unlabeled batch; a labeled PING after it still comes
/// after.
#[tokio::test]
async fn a_labeled_chathistory_is_answered_under_its_label() {
    let data = tempfile::tempdir().unwrap();
    let server = server(data.path()).await;
    let mut alice = server.user("alice").await;
    fill_lobby(&mut alice, 2).await;
    let mut irc = irc_user(
        &server,
        "ircy",
        "batch labeled-response message-tags draft/chathistory",
    )
    .await;
    irc.send("JOIN #lobby\r").await;
    irc.expect(":confab.local 366 ircy #lobby").await;
    irc.send("@label=h1 CHATHISTORY LATEST #lobby * 10\r\n@label=p1 PING :t\r")
        .await;
    let outer = irc.line().await;
    let outer_id = outer
        .strip_prefix("@label=h1 :confab.local BATCH +")
        .and_then(|r| r.strip_suffix(" labeled-response\r"))
        .unwrap_or_else(|| panic!("{outer}"))
        .to_string();
    let inner = irc.line().await;
    let inner_id = inner
        .strip_prefix(&format!("@batch={outer_id} :confab.local BATCH +"))
        .and_then(|r| r.strip_suffix(" chathistory #lobby\r"))
        .unwrap_or_else(|| panic!("{inner}"))
        .to_string();
    for i in 0..2 {
        let line = irc.line().await;
        assert!(line.contains(&format!("batch={inner_id}")), "{line}");
        assert!(line.ends_with(&format!(" :line {i}\r")), "{line}");
    }
    assert_eq!(
        irc.line().await,
        format!("@batch={outer_id} :confab.local BATCH -{inner_id}\r")
    );
    assert_eq!(
        irc.line().await,
        format!(":confab.local BATCH -{outer_id}\r")
    );
    assert_eq!(
        irc.line().await,
        "@label=p1 :confab.local PONG confab.local t\r"
    );
    // An error is one line, labeled.
    irc.send("@label=h2 CHATHISTORY LATEST #elsewhere * 10\r")
        .await;
    let fail = irc.line().await;
    assert!(
        fail.starts_with("@label=h2 :confab.local FAIL CHATHISTORY INVALID_TARGET"),
        "{fail}"
    );
    server.stop().await;
}
