//! The default room (`--default-room`, `lobby`) is everyone's: whoever happens to
//! create it is not its operator, and server operators (IRC OPER) run it.

mod common;

use common::{Client, TestServer};
use confab_server::{IrcConfig, Limits};

/// Registers `nick` over IRC on a raw socket and reads to the end of the welcome.
async fn irc_user(server: &TestServer, nick: &str) -> Client {
    let mut irc = Client::connect(server.irc_addr).await;
    irc.send(&format!("NICK {nick}\r\nUSER {nick} 0 * :{nick}\r"))
        .await;
    irc.expect(&format!(":confab.local 376 {nick} ")).await;
    irc
}

/// The next line that is not a PING or a notice, without its CR.
async fn reply(irc: &mut Client) -> String {
    loop {
        let line = irc.line().await;
        let line = line.trim_end_matches('\r');
        if !line.starts_with("PING") {
            return line.to_string();
        }
    }
}

#[tokio::test]
async fn the_first_line_user_in_the_lobby_is_not_its_operator() {
    let irc = IrcConfig {
        opers: vec![("admin".into(), "hunter2".into())],
        ..IrcConfig::default()
    };
    let server = TestServer::with_config(Limits::default(), irc).await;
    // A netcat user is the first in: the room is made for them.
    let mut liner = server.user("liner").await;

    // An IRC user sees no operator among the members, and is none either.
    let mut ircy = irc_user(&server, "ircy").await;
    ircy.send("JOIN #lobby\r").await;
    let names = ircy.expect(":confab.local 353 ircy ").await;
    assert!(
        names.trim_end().ends_with(" #lobby :ircy liner"),
        "no @ in {names:?}"
    );
    ircy.expect(":confab.local 366 ircy #lobby ").await;
    liner.expect("* ircy joined lobby").await;

    // Nobody there may set the topic, kick or change the modes.
    for (command, code) in [
        ("TOPIC #lobby :mine now", "482"),
        ("KICK #lobby liner", "482"),
        ("MODE #lobby +o ircy", "482"),
        ("MODE #lobby +k sesame", "482"),
        ("MODE #lobby +i", "482"),
    ] {
        ircy.send(&format!("{command}\r")).await;
        let answer = reply(&mut ircy).await;
        assert!(
            answer.starts_with(&format!(":confab.local {code} ircy #lobby ")),
            "{command}: {answer}"
        );
    }
    liner.expect_quiet().await;

    // A server operator runs the room: joining makes them its operator, and the topic
    // and kicks are theirs.
    let mut admin = irc_user(&server, "admin").await;
    admin.send("OPER admin hunter2\r").await;
    admin.expect(":confab.local 381 admin ").await;
    admin.send("JOIN #lobby\r").await;
    let names = admin.expect(":confab.local 353 admin ").await;
    assert!(
        names.trim_end().ends_with(" #lobby :@admin ircy liner"),
        "{names:?}"
    );
    admin.expect(":confab.local 366 admin #lobby ").await;
    liner.expect("* admin joined lobby").await;
    admin.send("TOPIC #lobby :Be kind\r").await;
    assert_eq!(
        reply(&mut admin).await,
        ":admin!~admin@127.0.0.1 TOPIC #lobby :Be kind"
    );
    liner.expect("* admin set the topic of lobby").await;
    admin.send("KICK #lobby ircy :spam\r").await;
    assert_eq!(
        reply(&mut admin).await,
        ":admin!~admin@127.0.0.1 KICK #lobby ircy :spam"
    );
    server.stop().await;
}

#[tokio::test]
async fn other_rooms_keep_their_creator_as_operator() {
    let server = TestServer::start().await;
    let mut ircy = irc_user(&server, "ircy").await;
    ircy.send("JOIN #den\r").await;
    let names = ircy.expect(":confab.local 353 ircy ").await;
    assert!(names.trim_end().ends_with(" #den :@ircy"), "{names:?}");
    ircy.send("TOPIC #den :ours\r").await;
    ircy.expect(":ircy!~ircy@127.0.0.1 TOPIC #den :ours").await;
    server.stop().await;
}
