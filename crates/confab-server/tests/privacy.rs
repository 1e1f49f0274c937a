//! Nothing follows a name to its next holder: direct-message history and invitations
//! belong to the person (their account, or their connection while it lasts), tried
//! on the line protocol and IRC as the user who must *not* see them. The web
//! protocol's side is in `web.rs`, the page's in `tests/browser`.

mod common;

use common::{Client, TestServer};

/// Reads a `/history` answer: the lines between its header and its end, checking the
/// header's count.
async fn read_history(client: &mut Client) -> Vec<String> {
    let header = client.expect("* History of ").await;
    let mut lines = Vec::new();
    loop {
        let line = client.line().await;
        if line == "* End of history" {
            break;
        }
        lines.push(
            line.split_once("] ")
                .map_or(line.clone(), |(_, l)| l.to_string()),
        );
    }
    assert!(
        header.ends_with(&format!("({} messages):", lines.len())),
        "{header}"
    );
    lines
}

/// An IRC client registered as `nick` with the history capabilities.
async fn irc(server: &TestServer, nick: &str) -> Client {
    let mut irc = Client::connect(server.irc_addr).await;
    irc.send(&format!(
        "CAP REQ :draft/chathistory batch server-time message-tags\r\nCAP END\r\nNICK {nick}\r\nUSER u 0 * :U\r"
    ))
    .await;
    irc.expect(&format!(":confab.local 376 {nick} ")).await;
    irc
}

/// An IRC client registered as `nick` with no capabilities, so its lines carry no tags.
async fn irc_plain(server: &TestServer, nick: &str) -> Client {
    let mut irc = Client::connect(server.irc_addr).await;
    irc.send(&format!("NICK {nick}\r\nUSER u 0 * :U\r")).await;
    irc.expect(&format!(":confab.local 376 {nick} ")).await;
    irc
}

/// The PRIVMSG texts of one `chathistory` (or targets) batch, asked with `request`.
async fn chathistory(irc: &mut Client, request: &str) -> Vec<String> {
    irc.send(&format!("{request}\r")).await;
    irc.expect(":confab.local BATCH +").await;
    let mut lines = Vec::new();
    loop {
        let line = irc.line().await;
        if line.starts_with(":confab.local BATCH -") {
            return lines;
        }
        lines.push(line.trim_end().to_string());
    }
}

const ALL_TIME: &str =
    "CHATHISTORY TARGETS timestamp=2000-01-01T00:00:00.000Z timestamp=2100-01-01T00:00:00.000Z 50";

#[tokio::test]
async fn a_released_name_brings_none_of_its_direct_messages_to_its_next_holder() {
    let data = tempfile::tempdir().unwrap();
    let server = TestServer::with_data(data.path()).await;
    let mut ann = server.user("ann").await;
    let mut ben = server.user("ben").await;
    ann.send("@ben:my bank pin is 1234").await;
    ben.expect("[dm] ann: my bank pin is 1234").await;
    ben.send("@ann:noted").await;
    ann.expect("[dm] ben: noted").await;

    // While they are connected, each reads their conversation back.
    ben.send("/history @ann").await;
    assert_eq!(
        read_history(&mut ben).await,
        ["[dm] ann: my bank pin is 1234", "[dm] ben: noted"]
    );
    ben.send("/quit").await;
    ben.rest().await;

    // Someone else takes the name, on each front-end in turn: nothing of it shows.
    let mut next = server.user("ben").await;
    next.send("/history @ann").await;
    assert_eq!(read_history(&mut next).await, Vec::<String>::new());
    next.send("/quit").await;
    next.rest().await;

    let mut next = irc(&server, "ben").await;
    assert_eq!(
        chathistory(&mut next, "CHATHISTORY LATEST ann * 50").await,
        Vec::<String>::new()
    );
    assert_eq!(
        chathistory(&mut next, ALL_TIME).await,
        Vec::<String>::new(),
        "no conversation with ann is listed"
    );
    // Ann was in that conversation: she still reads it back by the name ben used.
    ann.send("/history @ben").await;
    assert_eq!(
        read_history(&mut ann).await,
        ["[dm] ann: my bank pin is 1234", "[dm] ben: noted"]
    );
    server.stop().await;
}

#[tokio::test]
async fn a_registered_user_keeps_their_conversation_with_a_guest_who_left() {
    let data = tempfile::tempdir().unwrap();
    let server = TestServer::with_data(data.path()).await;
    let mut alice = server.user("alice").await;
    alice.send("/register pw").await;
    alice.expect("* You are logged in as alice").await;
    let mut guest = server.user("guest").await;
    guest.send("@alice:hello from a guest").await;
    alice.expect("[dm] guest: hello from a guest").await;
    alice.send("@guest:hello guest").await;
    guest.expect("[dm] alice: hello guest").await;
    guest.send("/quit").await;
    guest.rest().await;
    alice.send("/quit").await;
    alice.rest().await;

    // Alice comes back on IRC: the conversation is listed and read under the guest's
    // name...
    let mut alice = Client::connect(server.irc_addr).await;
    alice
        .send("CAP REQ :draft/chathistory batch server-time message-tags\r\nCAP END\r\nNICK alice\r\nUSER u 0 * :U\r")
        .await;
    alice.expect(":confab.local 376 alice ").await;
    alice.send("PRIVMSG NickServ :IDENTIFY alice pw\r").await;
    alice.expect(":confab.local 900 alice ").await;
    let targets = chathistory(&mut alice, ALL_TIME).await;
    assert!(
        targets.iter().any(|t| t.contains(" TARGETS guest ")),
        "{targets:?}"
    );
    let texts = chathistory(&mut alice, "CHATHISTORY LATEST guest * 50").await;
    assert_eq!(texts.len(), 2, "{texts:?}");
    assert!(
        texts[0].ends_with(" PRIVMSG alice :hello from a guest"),
        "{texts:?}"
    );

    // ...while a new guest of that name reads none of it.
    let mut next = server.user("guest").await;
    next.send("/history @alice").await;
    assert_eq!(read_history(&mut next).await, Vec::<String>::new());
    next.send("/quit").await;
    next.rest().await;
    let mut next = irc(&server, "guest").await;
    assert_eq!(chathistory(&mut next, ALL_TIME).await, Vec::<String>::new());
    server.stop().await;
}

#[tokio::test]
async fn a_registered_holder_finds_their_direct_messages_after_logging_in_anywhere() {
    let data = tempfile::tempdir().unwrap();
    let server = TestServer::with_data(data.path()).await;
    let mut ben = server.user("ben").await;
    ben.send("/register pw").await;
    ben.expect("* You are logged in as ben").await;
    let mut ann = server.user("ann").await;
    ann.send("@ben:for ben's account").await;
    ben.expect("[dm] ann: for ben's account").await;
    ben.send("@ann:thanks").await;
    ann.expect("[dm] ben: thanks").await;
    ben.send("/quit").await;
    ben.rest().await;

    // An impostor holding the name meanwhile reads nothing of it, on either front-end.
    let mut impostor = server.connect().await;
    impostor.send("#ben").await;
    impostor.expect("* Members of lobby").await;
    impostor.send("/history @ann").await;
    assert_eq!(
        impostor.expect("! ").await,
        "! Log in as ben to read its direct messages"
    );
    impostor.send("/quit").await;
    impostor.rest().await;
    let mut impostor = irc(&server, "ben").await;
    impostor.send("CHATHISTORY LATEST ann * 50\r").await;
    impostor
        .expect(":confab.local FAIL CHATHISTORY INVALID_TARGET LATEST ann")
        .await;
    assert_eq!(
        chathistory(&mut impostor, ALL_TIME).await,
        Vec::<String>::new()
    );
    impostor.send("QUIT\r").await;
    impostor.rest().await;

    // The owner, logged in over IRC, has all of it.
    let mut owner = Client::connect(server.irc_addr).await;
    owner
        .send("CAP REQ :draft/chathistory batch server-time message-tags\r\nCAP END\r\nNICK ben\r\nUSER u 0 * :U\r")
        .await;
    owner.expect(":confab.local 376 ben ").await;
    owner.send("PRIVMSG NickServ :IDENTIFY ben pw\r").await;
    owner.expect(":confab.local 900 ben ").await;
    let texts = chathistory(&mut owner, "CHATHISTORY LATEST ann * 50").await;
    assert_eq!(texts.len(), 2, "{texts:?}");
    assert!(
        texts[0].ends_with(" PRIVMSG ben :for ben's account"),
        "{texts:?}"
    );
    assert!(texts[1].ends_with(" PRIVMSG ann :thanks"), "{texts:?}");
    let targets = chathistory(&mut owner, ALL_TIME).await;
    assert!(
        targets.iter().any(|t| t.contains(" TARGETS ann ")),
        "{targets:?}"
    );
    owner.send("QUIT\r").await;
    owner.rest().await;

    // And over the line protocol, logging in before taking the name.
    let mut owner = server.connect().await;
    owner.send("/login ben pw").await;
    owner.expect("* Members of lobby").await;
    owner.send("/history @ANN").await;
    assert_eq!(
        read_history(&mut owner).await,
        ["[dm] ann: for ben's account", "[dm] ben: thanks"]
    );
    server.stop().await;
}

#[tokio::test]
async fn an_invitation_ends_with_the_invited_connection() {
    let server = TestServer::start().await;
    let mut ann = irc_plain(&server, "ann").await;
    ann.send("JOIN #club\r").await;
    ann.expect(":confab.local 366 ann #club").await;
    ann.send("MODE #club +i\r").await;
    ann.expect(":ann!~u@127.0.0.1 MODE #club +i").await;
    let mut ben = server.user("ben").await;
    ann.send("INVITE ben #club\r").await;
    ann.expect(":confab.local 341 ann ben ").await;
    ben.expect("* ann invites you to club").await;
    ben.send("/quit").await;
    ben.rest().await;

    // The next ben was not invited: the room stays closed to him, on either front-end.
    let mut next = server.user("ben").await;
    next.send("/join club").await;
    let refused = next.line().await;
    assert!(
        refused.starts_with("! ") && refused.contains("invite"),
        "{refused}"
    );
    next.send("/quit").await;
    next.rest().await;
    let mut next = irc_plain(&server, "ben").await;
    next.send("JOIN #club\r").await;
    next.expect(":confab.local 473 ben #club").await;

    // An invitation still works for the one it was given to.
    let mut cat = server.user("cat").await;
    ann.send("INVITE cat #club\r").await;
    cat.expect("* ann invites you to club").await;
    cat.send("/join club").await;
    cat.expect("* Members of club").await;
    server.stop().await;
}
