//! History through the line protocol: kept across restarts, shown on join, readable
//! only by members, and direct conversations only by their two parties.

mod common;

use common::{Client, TestServer};

/// Reads a `/history` answer: the header's count and the lines up to its end.
async fn read_history(client: &mut Client) -> Vec<String> {
    let header = client.expect("* History of ").await;
    let mut lines = Vec::new();
    loop {
        let line = client.line().await;
        if line == "* End of history" {
            break;
        }
        lines.push(line);
    }
    assert!(
        header.ends_with(&format!("({} messages):", lines.len())),
        "{header}"
    );
    lines
}

/// The part of a history line after its timestamp.
fn body(line: &str) -> &str {
    line.split_once("] ").map(|(_, rest)| rest).unwrap_or(line)
}

#[tokio::test]
async fn history_is_kept_across_restarts_and_shown_on_join() {
    let data = tempfile::tempdir().unwrap();
    let server = TestServer::with_data(data.path()).await;
    let mut alice = server.user("alice").await;
    let mut bob = server.user("bob").await;
    alice.expect("* bob joined lobby").await;
    alice.send("first").await;
    alice.send("/me waves").await;
    bob.send("@alice:a secret").await;
    assert_eq!(bob.line().await, "[lobby] alice: first");
    assert_eq!(bob.line().await, "[lobby] * alice waves");
    assert_eq!(alice.line().await, "[dm] bob: a secret");
    server.stop().await;

    let server = TestServer::with_data(data.path()).await;
    let mut carol = server.connect().await;
    carol.send("#carol").await;
    carol.expect("* Members of lobby").await;
    assert_eq!(carol.line().await, "* Recent messages in lobby:");
    assert_eq!(body(&carol.line().await), "[lobby] alice: first");
    assert_eq!(body(&carol.line().await), "[lobby] * alice waves");
    carol.send("/history").await;
    let lines = read_history(&mut carol).await;
    assert_eq!(lines.len(), 2);
    assert!(lines[0].starts_with("* [20"), "{}", lines[0]);
    carol.send("/history lobby 1").await;
    assert_eq!(read_history(&mut carol).await.len(), 1);

    // The direct conversation was alice's and bob's alone, and neither was logged in:
    // it ended with their connections, so nobody reads it, not even whoever is called
    // alice now (tests/privacy.rs has the rest).
    carol.send("/history @bob").await;
    assert_eq!(read_history(&mut carol).await, Vec::<String>::new());
    let mut alice = server.user("alice").await;
    alice.send("/history @BOB").await;
    assert_eq!(read_history(&mut alice).await, Vec::<String>::new());
    server.stop().await;
}

#[tokio::test]
async fn only_members_read_a_rooms_history() {
    let data = tempfile::tempdir().unwrap();
    let server = TestServer::with_data(data.path()).await;
    let mut alice = server.user("alice").await;
    alice.send("/join secret").await;
    alice.expect("* Members of secret").await;
    alice.send("for members only").await;
    let mut eve = server.user("eve").await;
    eve.send("/history secret").await;
    assert_eq!(eve.line().await, "! You are not in room secret");
    alice.send("/history secret").await;
    let lines = read_history(&mut alice).await;
    assert_eq!(
        lines.iter().map(|l| body(l)).collect::<Vec<_>>(),
        ["[secret] alice: for members only"]
    );
    server.stop().await;
}

#[tokio::test]
async fn without_a_data_directory_there_is_no_history() {
    let server = TestServer::start().await;
    let mut alice = server.user("alice").await;
    alice.send("/history").await;
    assert_eq!(alice.line().await, "! This server keeps no history");
    server.stop().await;
}

#[tokio::test]
async fn irc_chathistory_returns_a_batch_with_tags() {
    let data = tempfile::tempdir().unwrap();
    let server = TestServer::with_data(data.path()).await;
    let mut alice = server.user("alice").await;
    for i in 0..5 {
        alice.send(&format!("line {i}")).await;
    }
    alice.send("/history").await;
    assert_eq!(
        read_history(&mut alice).await.len(),
        5,
        "all five are durable"
    );

    let mut irc = Client::connect(server.irc_addr).await;
    irc.send("CAP LS 302\r").await;
    let ls = irc.line().await;
    assert!(ls.contains("draft/chathistory"), "{ls}");
    irc.send("CAP REQ :draft/chathistory batch server-time message-tags\r\nCAP END\r\nNICK ircy\r\nUSER i 0 * :I\r").await;
    let isupport = irc.expect(":confab.local 005 ircy ").await;
    let isupport = format!("{isupport}{}", irc.line().await);
    assert!(isupport.contains("CHATHISTORY=100"), "{isupport}");
    irc.send("JOIN #lobby\r").await;
    irc.expect(":confab.local 366 ircy #lobby").await;
    alice.send("@ircy:private").await;
    // Delivered live only once durable, so the history below has it.
    irc.expect("@time=").await;

    irc.send("CHATHISTORY LATEST #lobby * 3\r").await;
    let start = irc.line().await;
    let batch = start
        .strip_prefix(":confab.local BATCH +")
        .and_then(|r| r.strip_suffix(" chathistory #lobby\r"))
        .unwrap_or_else(|| panic!("{start}"))
        .to_string();
    let mut texts = Vec::new();
    let mut first_id = String::new();
    for _ in 0..3 {
        let line = irc.line().await;
        assert!(line.starts_with("@time=20"), "{line}");
        assert!(line.contains(&format!("batch={batch}")), "{line}");
        if first_id.is_empty() {
            first_id = line
                .split("msgid=")
                .nth(1)
                .unwrap()
                .split([';', ' '])
                .next()
                .unwrap()
                .to_string();
        }
        texts.push(line.rsplit_once(" :").unwrap().1.trim_end().to_string());
    }
    assert_eq!(texts, ["line 2", "line 3", "line 4"]);
    assert_eq!(irc.line().await, format!(":confab.local BATCH -{batch}\r"));

    irc.send(&format!("CHATHISTORY BEFORE #lobby msgid={first_id} 10\r"))
        .await;
    irc.expect(":confab.local BATCH +").await;
    assert!(irc.line().await.ends_with(":line 0\r"));
    assert!(irc.line().await.ends_with(":line 1\r"));
    irc.expect(":confab.local BATCH -").await;

    irc.send("CHATHISTORY LATEST alice * 10\r").await;
    irc.expect(":confab.local BATCH +").await;
    let dm = irc.line().await;
    assert!(dm.contains(" PRIVMSG ircy :private"), "{dm}");
    irc.expect(":confab.local BATCH -").await;

    irc.send("CHATHISTORY TARGETS timestamp=2000-01-01T00:00:00.000Z timestamp=2100-01-01T00:00:00.000Z 10\r").await;
    irc.expect(":confab.local BATCH +").await;
    let mut targets = Vec::new();
    loop {
        let line = irc.line().await;
        if line.starts_with(":confab.local BATCH -") {
            break;
        }
        targets.push(line.split(' ').nth(4).unwrap().to_string());
    }
    targets.sort();
    assert_eq!(
        targets,
        ["#lobby", "alice"],
        "rooms and direct conversations"
    );

    irc.send("CHATHISTORY LATEST #elsewhere * 10\r").await;
    assert!(irc
        .line()
        .await
        .starts_with(":confab.local FAIL CHATHISTORY INVALID_TARGET LATEST #elsewhere"));
    irc.send("CHATHISTORY BEFORE #lobby nonsense 10\r").await;
    assert!(irc
        .line()
        .await
        .starts_with(":confab.local FAIL CHATHISTORY INVALID_PARAMS BEFORE"));
    server.stop().await;
}
