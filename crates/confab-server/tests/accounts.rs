//! Accounts through the line protocol: registering a name, logging in, protection of
//! registered names, the failed-login throttle and offline delivery.

mod common;

use std::time::Duration;

use common::TestServer;
use confab_server::Limits;

async fn server(dir: &std::path::Path) -> TestServer {
    TestServer::with_data_and_limits(
        dir,
        Limits {
            login_grace: Duration::from_millis(300),
            ..Limits::default()
        },
    )
    .await
}

#[tokio::test]
async fn a_registered_name_is_protected_and_its_owner_logs_in() {
    let data = tempfile::tempdir().unwrap();
    let server = server(data.path()).await;
    let mut alice = server.user("alice").await;
    alice.send("/register correct horse").await;
    assert_eq!(alice.line().await, "* You are logged in as alice");
    alice.send("/register again").await;
    assert_eq!(alice.line().await, "! The name alice is already registered");
    alice.send("/quit").await;
    alice.rest().await;

    // Someone else takes the name: told to log in, then renamed after the grace period.
    let mut mallory = server.connect().await;
    mallory.send("#alice").await;
    assert_eq!(mallory.line().await, "* Your user detail saved as : alice");
    let warning = mallory.line().await;
    assert!(
        warning.starts_with("* The name alice is registered: log in with /login alice PASSWORD"),
        "{warning}"
    );
    mallory.expect("* Members of lobby").await;
    let renamed = mallory.expect("* alice is now known as Guest").await;
    let guest = renamed.rsplit(' ').next().unwrap().to_string();
    assert_eq!(
        mallory.line().await,
        "! The name alice is registered; log in with /login alice PASSWORD or pick another"
    );
    mallory.send("/nick alice").await;
    assert!(mallory
        .line()
        .await
        .starts_with("! The name alice is registered"));

    // The owner logs in before registering a name: the name is theirs.
    let mut owner = server.connect().await;
    owner.send("/login ALICE correct horse").await;
    owner.expect("* Your user detail saved as : alice").await;
    owner.expect("* Members of lobby").await;
    mallory.expect("* alice joined lobby").await;
    assert!(guest.starts_with("Guest"));
    server.stop().await;
}

#[tokio::test]
async fn logging_in_takes_the_name_back_from_an_impostor() {
    let data = tempfile::tempdir().unwrap();
    let server = server(data.path()).await;
    let mut alice = server.user("alice").await;
    alice.send("/register pw").await;
    alice.expect("* You are logged in as alice").await;
    drop(alice);

    let mut impostor = server.user("alice").await;
    let mut owner = server.user("temp").await;
    owner.send("/login alice pw").await;
    owner.expect("* temp is now known as alice").await;
    assert_eq!(owner.line().await, "* You are logged in as alice");
    let renamed = impostor.expect("* alice is now known as Guest").await;
    assert!(renamed.contains("Guest"));
    server.stop().await;
}

#[tokio::test]
async fn wrong_passwords_fail_and_are_throttled() {
    let data = tempfile::tempdir().unwrap();
    let server = server(data.path()).await;
    let mut alice = server.user("alice").await;
    alice.send("/register right").await;
    alice.expect("* You are logged in as alice").await;
    let mut guesser = server.user("guesser").await;
    for _ in 0..5 {
        guesser.send("/login alice wrong").await;
        assert_eq!(guesser.line().await, "! Wrong name or password");
    }
    guesser.send("/login alice right").await;
    let throttled = guesser.line().await;
    assert!(
        throttled.starts_with("! Too many failed logins; try again in "),
        "{throttled}"
    );
    guesser.send("/login nobody x").await;
    let line = guesser.line().await;
    assert!(
        line.starts_with("! Too many failed logins"),
        "the address is throttled too: {line}"
    );
    server.stop().await;
}

#[tokio::test]
async fn direct_messages_to_an_offline_user_wait_for_their_login() {
    let data = tempfile::tempdir().unwrap();
    let server = server(data.path()).await;
    let mut alice = server.user("alice").await;
    alice.send("/register pw").await;
    alice.expect("* You are logged in as alice").await;
    alice.send("/quit").await;
    alice.rest().await;

    let mut bob = server.user("bob").await;
    bob.send("@alice:while you were out").await;
    assert_eq!(
        bob.line().await,
        "* alice is offline; your message was stored and will be delivered when they log in"
    );
    bob.send("@nobody:hello?").await;
    assert_eq!(bob.line().await, "! No such user: nobody is not online");
    server.stop().await;

    // Across a restart too.
    let server = TestServer::with_data(data.path()).await;
    let mut alice = server.connect().await;
    alice.send("/login alice pw").await;
    alice.expect("* You are logged in as alice").await;
    // The stored message and the join of the lobby come in either order.
    let (mut dm, mut joined) = (false, false);
    while !(dm && joined) {
        let line = alice.line().await;
        if line.starts_with("[dm]") {
            assert_eq!(line, "[dm] bob: while you were out");
            assert!(!dm, "delivered once");
            dm = true;
        }
        joined |= line.starts_with("* Members of lobby");
    }
    alice.expect_quiet().await;
    let mut again = server.user("watcher").await;
    again.expect_quiet().await;
    server.stop().await;
}

#[tokio::test]
async fn accounts_need_a_data_directory() {
    let server = TestServer::start().await;
    let mut alice = server.user("alice").await;
    alice.send("/register pw").await;
    assert_eq!(
        alice.line().await,
        "! Accounts need a server with a data directory"
    );
    server.stop().await;
}

/// Base64 of SASL PLAIN credentials, written out so that the test does not share the
/// server's encoder.
fn plain(account: &str, password: &str) -> String {
    const TABLE: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let bytes = format!("{account}\0{account}\0{password}").into_bytes();
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(TABLE[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[tokio::test]
async fn irc_register_sasl_nickserv_and_offline_delivery() {
    let data = tempfile::tempdir().unwrap();
    let server = server(data.path()).await;
    let mut irc = common::Client::connect(server.irc_addr).await;
    irc.send("CAP LS 302\r").await;
    let ls = irc.line().await;
    assert!(
        ls.contains("sasl=PLAIN") && ls.contains("draft/account-registration"),
        "{ls}"
    );
    irc.send("CAP END\r\nNICK ircuser\r\nUSER u 0 * :U\r").await;
    irc.expect(":confab.local 376 ircuser ").await;
    irc.send("REGISTER * * hunter22\r").await;
    // The mask is the user's full prefix, user name included, although the session
    // lets go of what USER gave once registered (the core keeps it).
    assert_eq!(
        irc.expect(":confab.local 900 ircuser ").await,
        ":confab.local 900 ircuser ircuser!~u@127.0.0.1 ircuser :You are now logged in as ircuser\r"
    );
    assert_eq!(
        irc.line().await,
        ":confab.local REGISTER SUCCESS ircuser :Account created\r"
    );
    irc.send("REGISTER * * again\r").await;
    assert!(irc
        .line()
        .await
        .starts_with(":confab.local FAIL REGISTER ACCOUNT_EXISTS ircuser"));
    irc.send("QUIT\r").await;
    irc.rest().await;

    // A line user leaves a message for the offline IRC user.
    let mut bob = server.user("bob").await;
    bob.send("@ircuser:see you later").await;
    bob.expect("* ircuser is offline").await;

    // SASL PLAIN with a wrong password, then the right one; the stored message
    // arrives with its original time.
    let mut irc = common::Client::connect(server.irc_addr).await;
    irc.send("CAP LS 302\r\nCAP REQ :sasl server-time\r").await;
    irc.expect(":confab.local CAP * ACK").await;
    irc.send("AUTHENTICATE PLAIN\r").await;
    assert_eq!(irc.line().await, "AUTHENTICATE +\r");
    irc.send(&format!("AUTHENTICATE {}\r", plain("ircuser", "wrong")))
        .await;
    assert!(irc.line().await.contains(" 904 * :Wrong name or password"));
    irc.send("AUTHENTICATE PLAIN\r").await;
    irc.expect("AUTHENTICATE +").await;
    irc.send(&format!("AUTHENTICATE {}\r", plain("ircuser", "hunter22")))
        .await;
    assert!(irc.line().await.contains(" 900 * "));
    assert!(irc
        .line()
        .await
        .contains(" 903 * :SASL authentication successful"));
    irc.send("CAP END\r\nNICK ircuser\r\nUSER u 0 * :U\r").await;
    irc.expect(":confab.local 376 ircuser ").await;
    let stored = irc.expect("@time=").await;
    assert!(
        stored.ends_with(":bob!bob@127.0.0.1 PRIVMSG ircuser :see you later\r"),
        "{stored}"
    );
    irc.send("QUIT\r").await;
    irc.rest().await;

    // NickServ IDENTIFY takes the name back from an impostor.
    let mut impostor = server.user("ircuser").await;
    let mut irc = common::Client::connect(server.irc_addr).await;
    irc.send("NICK other\r\nUSER u 0 * :U\r").await;
    irc.expect(":confab.local 376 other ").await;
    irc.send("PRIVMSG NickServ :IDENTIFY ircuser hunter22\r")
        .await;
    assert_eq!(irc.line().await, ":other!~u@127.0.0.1 NICK ircuser\r");
    assert!(irc.line().await.contains(" 900 ircuser "));
    impostor.expect("* ircuser is now known as Guest").await;
    server.stop().await;
}

/// Connects a raw IRC client and registers `nick`, reading to the end of the welcome.
async fn irc_user(server: &TestServer, nick: &str, caps: &str) -> common::Client {
    let mut irc = common::Client::connect(server.irc_addr).await;
    if !caps.is_empty() {
        irc.send(&format!("CAP REQ :{caps}\r")).await;
        irc.expect(":confab.local CAP * ACK").await;
    }
    irc.send(&format!("NICK {nick}\r\nUSER u 0 * :U\r")).await;
    irc.expect(&format!(":confab.local 376 {nick} ")).await;
    irc
}

#[tokio::test]
async fn rooms_with_a_registered_owner_keep_topic_modes_and_operators() {
    let data = tempfile::tempdir().unwrap();
    let first = server(data.path()).await;
    let mut alice = irc_user(&first, "alice", "").await;
    alice.send("REGISTER * * pw\r").await;
    alice.expect(":confab.local REGISTER SUCCESS").await;
    alice.send("JOIN #club\r").await;
    alice
        .expect(":confab.local 353 alice = #club :@alice")
        .await;
    alice
        .send("TOPIC #club :members only\r\nMODE #club +k sesame\r")
        .await;
    alice
        .expect(":alice!~u@127.0.0.1 MODE #club +k sesame")
        .await;
    // A room created by someone not logged in is not kept.
    let mut bob = irc_user(&first, "bob", "").await;
    bob.send("JOIN #transient\r\nTOPIC #transient :gone tomorrow\r")
        .await;
    bob.expect(":bob!~u@127.0.0.1 TOPIC #transient").await;
    first.stop().await;

    let server = server(data.path()).await;
    let mut bob = irc_user(&server, "bob", "").await;
    bob.send("JOIN #club\r").await;
    assert!(
        bob.line().await.contains(" 475 bob #club "),
        "the key was kept"
    );
    bob.send("JOIN #club sesame\r").await;
    bob.expect(":bob!~u@127.0.0.1 JOIN #club").await;
    assert_eq!(
        bob.line().await,
        ":confab.local 332 bob #club :members only\r"
    );
    bob.expect(":confab.local 353 bob = #club :bob").await;
    bob.send("JOIN #transient\r").await;
    bob.expect(":confab.local 353 bob = #transient :@bob").await;
    bob.send("TOPIC #transient\r").await;
    bob.expect(":confab.local 331 bob #transient ").await;

    // The owner logs in and is operator again.
    let mut alice = irc_user(&server, "alice", "").await;
    alice.send("PRIVMSG NickServ :IDENTIFY pw\r").await;
    alice.expect(":confab.local 900 alice ").await;
    alice.send("JOIN #club sesame\r").await;
    alice
        .expect(":confab.local 353 alice = #club :@alice bob")
        .await;
    server.stop().await;
}

#[tokio::test]
async fn an_impostor_cannot_read_the_owners_direct_messages() {
    let data = tempfile::tempdir().unwrap();
    let server = TestServer::with_data(data.path()).await;
    let mut alice = server.user("alice").await;
    alice.send("/register pw").await;
    alice.expect("* You are logged in as alice").await;
    let mut bob = server.user("bob").await;
    bob.send("@alice:our secret").await;
    alice.expect("[dm] bob: our secret").await;
    alice.send("/quit").await;
    alice.rest().await;

    let mut impostor = server.connect().await;
    impostor.send("#alice").await;
    impostor.expect("* Members of lobby").await;
    impostor.send("/history @bob").await;
    assert_eq!(
        impostor.expect("! ").await,
        "! Log in as alice to read its direct messages"
    );
    server.stop().await;
}

#[tokio::test]
async fn irc_logins_are_throttled_like_everyone_else_s() {
    let data = tempfile::tempdir().unwrap();
    let server = server(data.path()).await;
    let mut alice = server.user("alice").await;
    alice.send("/register right").await;
    alice.expect("* You are logged in as alice").await;
    let mut irc = common::Client::connect(server.irc_addr).await;
    irc.send("CAP LS 302\r\nCAP REQ :sasl\r").await;
    irc.expect(":confab.local CAP * ACK").await;
    for _ in 0..5 {
        irc.send("AUTHENTICATE PLAIN\r").await;
        irc.expect("AUTHENTICATE +").await;
        irc.send(&format!("AUTHENTICATE {}\r", plain("alice", "wrong")))
            .await;
        let line = irc.line().await;
        assert!(line.contains(" 904 * :Wrong name or password"), "{line}");
    }
    // The right password is refused too now: the account is throttled.
    irc.send("AUTHENTICATE PLAIN\r").await;
    irc.expect("AUTHENTICATE +").await;
    irc.send(&format!("AUTHENTICATE {}\r", plain("alice", "right")))
        .await;
    let line = irc.line().await;
    assert!(
        line.contains(" 904 * :Too many failed logins; try again in "),
        "{line}"
    );
    server.stop().await;
}

#[tokio::test]
async fn an_irc_impostor_is_renamed_when_the_login_grace_runs_out() {
    let data = tempfile::tempdir().unwrap();
    let server = server(data.path()).await;
    let mut alice = server.user("alice").await;
    alice.send("/register right").await;
    alice.expect("* You are logged in as alice").await;
    alice.send("/quit").await;
    alice.rest().await;

    let mut irc = common::Client::connect(server.irc_addr).await;
    irc.send("NICK alice\r\nUSER a 0 * :A\r").await;
    irc.expect(":confab.local 001 alice ").await;
    // Told to log in, then, after the grace period (300 ms here), renamed.
    let renamed = irc.expect(":alice!").await;
    assert!(renamed.contains(" NICK Guest"), "{renamed}");
    let mut bob = server.user("bob").await;
    bob.send("@alice:are you there?").await;
    bob.expect("* alice is offline").await;
    server.stop().await;
}
