//! Messages longer than an IRC line reach IRC clients as several lines of at most 512
//! bytes (tags aside), cut at spaces or else at UTF-8 character boundaries, in order,
//! each part with the message's time, the first also with its msgid; line and web
//! users get the message whole.

mod common;

use common::{Client, TestServer, PATIENCE};
use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Connects a raw IRC client with `caps`, registers `nick` and joins `#lobby`.
async fn irc_in_lobby(server: &TestServer, nick: &str, caps: &str) -> Client {
    let mut irc = Client::connect(server.irc_addr).await;
    if !caps.is_empty() {
        irc.send(&format!("CAP REQ :{caps}\r")).await;
        irc.expect(":confab.local CAP * ACK").await;
    }
    irc.send(&format!(
        "CAP END\r\nNICK {nick}\r\nUSER u 0 * :U\r\nJOIN #lobby\r"
    ))
    .await;
    irc.expect(&format!(":confab.local 366 {nick} #lobby"))
        .await;
    irc
}

/// Connects a WebSocket client and registers `name`, reading up to its member list.
async fn web_in_lobby(server: &TestServer, name: &str) -> Ws {
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{}/ws", server.http_addr))
        .await
        .expect("WebSocket handshake");
    let register = json!({"type": "register", "name": name}).to_string();
    ws.send(Message::text(register)).await.unwrap();
    web_expect(&mut ws, "members").await;
    ws
}

/// Reads events until one of type `kind`.
async fn web_expect(ws: &mut Ws, kind: &str) -> Value {
    loop {
        let frame = tokio::time::timeout(PATIENCE, ws.next())
            .await
            .expect("timed out waiting for an event");
        if let Some(Ok(Message::Text(text))) = frame {
            let event: Value = serde_json::from_str(&text).unwrap();
            if event["type"] == kind {
                return event;
            }
        }
    }
}

/// `count` words of eight `w`s and a digit: ten bytes a word with the space after it.
fn words(count: usize) -> Vec<String> {
    (0..count).map(|i| format!("wwwwwwww{}", i % 10)).collect()
}

/// A tag section without its `msgid`, as the second and later parts of a split
/// message have it.
fn without_msgid(tags: &str) -> String {
    let kept: Vec<&str> = tags
        .trim_start_matches('@')
        .split(';')
        .filter(|tag| !tag.starts_with("msgid="))
        .collect();
    format!("@{}", kept.join(";"))
}

/// Reads `parts.len()` lines and checks each is `head` + its part (+ `tail`), and at
/// most 512 bytes with CR LF, tags aside.
async fn expect_parts(irc: &mut Client, head: &str, parts: &[String], tail: &str) {
    for part in parts {
        let line = irc.line().await;
        assert_eq!(line, format!("{head}{part}{tail}\r"));
        let untagged = match line.strip_prefix('@') {
            Some(tagged) => tagged.split_once(' ').unwrap().1,
            None => &line,
        };
        // The line has its CR; with the LF it is one byte longer.
        assert!(untagged.len() < 512, "{} bytes", untagged.len() + 1);
    }
}

#[tokio::test]
async fn a_long_message_from_a_line_user_is_split_for_irc_and_whole_for_the_rest() {
    let server = TestServer::start().await;
    let mut irc = irc_in_lobby(&server, "ircy", "").await;
    let mut alice = server.user("alice").await;
    let mut bob = server.user("bob").await;
    let mut web = web_in_lobby(&server, "webby").await;
    alice.expect("* webby joined lobby").await;
    irc.expect(":webby!").await;

    // At spaces: `:alice!alice@127.0.0.1 PRIVMSG #lobby :` and CR LF leave 471 bytes,
    // which hold 47 words and the 46 spaces between them; the space at a break is
    // not sent.
    let words = words(300);
    let text = words.join(" ");
    alice.send(&text).await;
    let parts: Vec<String> = words.chunks(47).map(|c| c.join(" ")).collect();
    assert_eq!(parts.len(), 7);
    expect_parts(
        &mut irc,
        ":alice!alice@127.0.0.1 PRIVMSG #lobby :",
        &parts,
        "",
    )
    .await;
    assert_eq!(
        bob.expect("[lobby] alice: ").await,
        format!("[lobby] alice: {text}")
    );
    assert_eq!(web_expect(&mut web, "message").await["text"], text);

    // Without spaces, at character boundaries: 471 bytes hold 235 two-byte `é`s.
    let text = "é".repeat(1500);
    alice.send(&text).await;
    let mut parts: Vec<String> = vec!["é".repeat(235); 6];
    parts.push("é".repeat(90));
    expect_parts(
        &mut irc,
        ":alice!alice@127.0.0.1 PRIVMSG #lobby :",
        &parts,
        "",
    )
    .await;
    assert_eq!(
        bob.expect("[lobby] alice: ").await,
        format!("[lobby] alice: {text}")
    );
    assert_eq!(web_expect(&mut web, "message").await["text"], text);

    // An ACTION stays one in every part: the framing leaves 462 bytes, 46 words.
    let words = self::words(100);
    alice.send(&format!("/me {}", words.join(" "))).await;
    let parts: Vec<String> = words.chunks(46).map(|c| c.join(" ")).collect();
    expect_parts(
        &mut irc,
        ":alice!alice@127.0.0.1 PRIVMSG #lobby :\x01ACTION ",
        &parts,
        "\x01",
    )
    .await;
    bob.expect(&format!("[lobby] * alice {}", words.join(" ")))
        .await;
    server.stop().await;
}

#[tokio::test]
async fn a_long_message_from_the_web_is_split_with_tags_on_every_part() {
    let server = TestServer::start().await;
    let mut tagged = irc_in_lobby(&server, "tagged", "message-tags server-time").await;
    let mut timed = irc_in_lobby(&server, "timed", "server-time").await;
    let mut web = web_in_lobby(&server, "webby").await;
    for irc in [&mut tagged, &mut timed] {
        while !irc
            .line()
            .await
            .contains(":webby!webby@127.0.0.1 JOIN #lobby")
        {}
    }

    let words = words(120);
    let text = words.join(" ");
    let message = json!({"type": "message", "room": "lobby", "text": text}).to_string();
    web.send(Message::text(message)).await.unwrap();
    let echo = web_expect(&mut web, "message").await;
    assert_eq!(echo["text"], text, "the web sender's echo is whole");
    // `:webby!webby@127.0.0.1 PRIVMSG #lobby :` and CR LF leave 471 bytes: 47 words.
    let parts: Vec<String> = words.chunks(47).map(|c| c.join(" ")).collect();
    let first = tagged.line().await;
    let tags = first.split_once(' ').unwrap().0;
    assert!(tags.contains(&format!("msgid={}", echo["id"])), "{tags}");
    assert!(tags.contains("time=20"), "{tags}");
    let head = format!("{tags} :webby!webby@127.0.0.1 PRIVMSG #lobby :");
    assert_eq!(first, format!("{head}{}\r", parts[0]));
    // The later parts have the same time, and no msgid: it names the first line.
    let later = without_msgid(tags);
    assert!(later.starts_with("@time=20"), "{later}");
    let head = format!("{later} :webby!webby@127.0.0.1 PRIVMSG #lobby :");
    expect_parts(&mut tagged, &head, &parts[1..], "").await;

    let first = timed.line().await;
    let tags = first.split_once(' ').unwrap().0;
    assert!(
        tags.starts_with("@time=20") && !tags.contains("msgid"),
        "{tags}"
    );
    let head = format!("{tags} :webby!webby@127.0.0.1 PRIVMSG #lobby :");
    assert_eq!(first, format!("{head}{}\r", parts[0]));
    expect_parts(&mut timed, &head, &parts[1..], "").await;
    server.stop().await;
}

#[tokio::test]
async fn an_irc_message_that_outgrows_a_line_with_its_prefix_is_split_and_so_is_its_echo() {
    let server = TestServer::start().await;
    let mut sender = irc_in_lobby(&server, "sender", "echo-message message-tags").await;
    let mut other = irc_in_lobby(&server, "other", "").await;
    let mut bob = server.user("bob").await;
    while !sender.line().await.contains(":bob!bob@127.0.0.1 JOIN") {}
    other.expect(":bob!").await;

    // 488 bytes of text fit in the client's line, not in the relayed one, which has
    // `:sender!~u@127.0.0.1 ` in front: 473 bytes are left for the text, and the
    // last space within them ends the first part.
    let text = format!("{} {}", "x".repeat(400), "€".repeat(29));
    assert_eq!(text.len(), 488);
    sender.send(&format!("PRIVMSG #lobby :{text}\r")).await;
    let parts = ["x".repeat(400), "€".repeat(29)];
    let head = ":sender!~u@127.0.0.1 PRIVMSG #lobby :";
    expect_parts(&mut other, head, &parts, "").await;
    // The echo, too, and each of its parts has the message's time.
    let first = sender.line().await;
    let tags = first.split_once(' ').unwrap().0;
    assert!(tags.contains("msgid=") && tags.contains("time="), "{first}");
    assert_eq!(first, format!("{tags} {head}{}\r", parts[0]));
    let head = format!("{} {head}", without_msgid(tags));
    expect_parts(&mut sender, &head, &parts[1..], "").await;
    assert_eq!(
        bob.expect("[lobby] sender: ").await,
        format!("[lobby] sender: {text}")
    );
    server.stop().await;
}

#[tokio::test]
async fn long_messages_sent_in_one_burst_are_split_one_after_the_other() {
    let server = TestServer::start().await;
    let mut tagged = irc_in_lobby(&server, "tagged", "message-tags").await;
    let mut plain = irc_in_lobby(&server, "plain", "").await;
    let mut alice = server.user("alice").await;
    while !tagged.line().await.contains(":alice!alice@127.0.0.1 JOIN") {}
    plain.expect(":alice!").await;

    // Two long messages and a short one in one write go to the core together.
    let (one, two) = (words(60), words(50));
    alice
        .send(&format!("{}\n{}\nshort", one.join(" "), two.join(" ")))
        .await;
    let head = ":alice!alice@127.0.0.1 PRIVMSG #lobby :";
    let mut parts: Vec<String> = one.chunks(47).map(|c| c.join(" ")).collect();
    parts.extend(two.chunks(47).map(|c| c.join(" ")));
    parts.push("short".into());
    expect_parts(&mut plain, head, &parts, "").await;
    // Every part of a message has its time; the first part of each its own msgid.
    let mut tags = Vec::new();
    for part in &parts {
        let line = tagged.line().await;
        let (tag, rest) = line.split_once(' ').unwrap();
        assert_eq!(rest, format!("{head}{part}\r"));
        tags.push(tag.to_string());
    }
    for first in [0, 2, 4] {
        assert!(tags[first].contains(";msgid="), "{tags:?}");
    }
    assert_eq!(tags[1], without_msgid(&tags[0]));
    assert_eq!(tags[3], without_msgid(&tags[2]));
    assert!(tags[0] != tags[2] && tags[2] != tags[4], "{tags:?}");
    server.stop().await;
}

#[tokio::test]
async fn chathistory_replays_a_long_message_in_parts_with_its_tags() {
    let data = tempfile::tempdir().unwrap();
    let server = TestServer::with_data(data.path()).await;
    let mut alice = server.user("alice").await;
    let words = words(100);
    alice.send(&words.join(" ")).await;
    alice.send(&format!("/me {}", "é".repeat(300))).await;
    alice.send("/history").await;
    alice.expect("* End of history").await;

    let mut irc = irc_in_lobby(&server, "ircy", "batch message-tags server-time").await;
    irc.send("CHATHISTORY LATEST #lobby * 10\r").await;
    let start = irc.line().await;
    let batch = start
        .strip_prefix(":confab.local BATCH +")
        .and_then(|r| r.strip_suffix(" chathistory #lobby\r"))
        .unwrap_or_else(|| panic!("{start}"))
        .to_string();
    let head = ":alice!alice@127.0.0.1 PRIVMSG #lobby :";
    let mut expected: Vec<String> = words
        .chunks(47)
        .map(|c| format!("{head}{}\r", c.join(" ")))
        .collect();
    // The ACTION's framing leaves 462 bytes: 231 two-byte characters.
    for part in ["é".repeat(231), "é".repeat(69)] {
        expected.push(format!("{head}\x01ACTION {part}\x01\r"));
    }
    let mut tags = Vec::new();
    for want in &expected {
        let line = irc.line().await;
        let (tag, rest) = line.split_once(' ').unwrap();
        assert_eq!(rest, want);
        assert!(tag.contains(&format!("batch={batch}")), "{tag}");
        assert!(rest.len() < 512, "{} bytes", rest.len() + 1);
        tags.push(tag.to_string());
    }
    assert!(tags[0].contains(";msgid=") && tags[3].contains(";msgid="));
    assert!(tags[0] != tags[3], "{tags:?}");
    assert_eq!(tags[1], without_msgid(&tags[0]));
    assert_eq!(tags[2], tags[1]);
    assert_eq!(tags[4], without_msgid(&tags[3]));
    assert_eq!(irc.line().await, format!(":confab.local BATCH -{batch}\r"));
    server.stop().await;
}
