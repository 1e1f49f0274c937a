//! IRC front-end tests driven by a real IRC client library written by others (the `irc`
//! crate), plus raw sockets where a library cannot misbehave on purpose (commands
//! before registration, overlong lines).

mod common;

use std::time::Duration;

use common::{Client as LineClient, TestServer, PATIENCE};
use confab_server::{IrcConfig, Limits};
use futures::StreamExt;
use irc::client::prelude::{Capability, Client, Command, Config, Message, Response};
use irc::client::ClientStream;
use irc::proto::{ChannelMode, Mode};

/// One IRC user: the library's client, and what its stream received.
///
/// The library sends queued commands only while its stream is polled, so each user's
/// stream runs in a task of its own that forwards every message here.
struct Irc {
    client: Client,
    messages: tokio::sync::mpsc::Receiver<Message>,
}

impl Irc {
    fn new(client: Client, mut stream: ClientStream) -> Irc {
        let (tx, messages) = tokio::sync::mpsc::channel(10_000);
        tokio::spawn(async move {
            while let Some(Ok(message)) = stream.next().await {
                if tx.send(message).await.is_err() {
                    break;
                }
            }
        });
        Irc { client, messages }
    }
}

impl Irc {
    /// Connects as `nick`, asking for `caps`, and waits for the end of the welcome.
    async fn connect(server: &TestServer, nick: &str, caps: &[Capability]) -> Irc {
        let config = Config {
            nickname: Some(nick.to_string()),
            alt_nicks: vec![format!("{nick}_")],
            username: Some(nick.to_string()),
            realname: Some(format!("{nick} real")),
            server: Some("127.0.0.1".to_string()),
            port: Some(server.irc_addr.port()),
            ..Config::default()
        };
        let mut client = Client::from_config(config).await.expect("connect");
        if !caps.is_empty() {
            client.send_cap_req(caps).expect("CAP REQ");
        }
        client.identify().expect("identify");
        let stream = client.stream().expect("stream");
        let mut irc = Irc::new(client, stream);
        irc.numeric(Response::RPL_ENDOFMOTD).await;
        irc
    }

    fn raw(&self, command: &str, args: &[&str]) {
        self.client
            .send(Command::Raw(
                command.to_string(),
                args.iter().map(|a| a.to_string()).collect(),
            ))
            .expect("send");
    }

    fn say(&self, target: &str, text: &str) {
        self.client.send_privmsg(target, text).expect("send");
    }

    /// The next message the server sends.
    async fn next(&mut self) -> Message {
        let m = self.next_inner().await;
        if std::env::var("IRC_DEBUG").is_ok() {
            eprintln!("<< {}", m.to_string().trim_end());
        }
        m
    }

    async fn next_inner(&mut self) -> Message {
        tokio::time::timeout(PATIENCE, self.messages.recv())
            .await
            .expect("timed out waiting for a message")
            .expect("stream ended")
    }

    /// Reads until a message satisfies `wanted`.
    async fn expect(&mut self, what: &str, wanted: impl Fn(&Message) -> bool) -> Message {
        loop {
            let message = self.next().await;
            if wanted(&message) {
                return message;
            }
            if let Command::Response(response, _) = &message.command {
                let code = *response as u16;
                assert!(
                    !(400..600).contains(&code),
                    "unexpected error {message} while waiting for {what}"
                );
            }
        }
    }

    /// Reads until numeric `code` arrives and returns its parameters.
    async fn numeric(&mut self, code: Response) -> Vec<String> {
        loop {
            let message = self.next().await;
            if let Command::Response(response, args) = message.command {
                if response == code {
                    return args;
                }
            }
        }
    }

    async fn privmsg(&mut self) -> (String, String, String) {
        let message = self
            .expect("a PRIVMSG", |m| matches!(m.command, Command::PRIVMSG(..)))
            .await;
        let from = message.source_nickname().unwrap_or_default().to_string();
        let Command::PRIVMSG(target, text) = message.command else {
            unreachable!()
        };
        (from, target, text)
    }

    /// Proves the server has answered everything sent before: a PING round trip.
    async fn sync(&mut self) {
        self.raw("PING", &["sync-token"]);
        self.expect("PONG", |m| {
            matches!(&m.command, Command::PONG(_, Some(t)) if t == "sync-token")
                || matches!(&m.command, Command::PONG(t, None) if t == "sync-token")
        })
        .await;
    }
}

fn is_join(m: &Message, nick: &str, chan: &str) -> bool {
    matches!(&m.command, Command::JOIN(c, ..) if c == chan) && m.source_nickname() == Some(nick)
}

#[tokio::test]
async fn registration_sends_a_truthful_welcome() {
    let server = TestServer::start().await;
    let config = Config {
        nickname: Some("alice".into()),
        server: Some("127.0.0.1".into()),
        port: Some(server.irc_addr.port()),
        ..Config::default()
    };
    let mut client = Client::from_config(config).await.unwrap();
    client.identify().unwrap();
    let stream = client.stream().unwrap();
    let mut irc = Irc::new(client, stream);
    let welcome = irc.numeric(Response::RPL_WELCOME).await;
    assert_eq!(welcome[0], "alice");
    assert!(welcome[1].contains("alice!"), "{welcome:?}");
    irc.numeric(Response::RPL_YOURHOST).await;
    irc.numeric(Response::RPL_CREATED).await;
    let myinfo = irc.numeric(Response::RPL_MYINFO).await;
    assert_eq!(myinfo[1], "confab.local");
    let mut isupport = irc.numeric(Response::RPL_ISUPPORT).await;
    isupport.extend(irc.numeric(Response::RPL_ISUPPORT).await);
    for token in [
        "CASEMAPPING=ascii",
        "CHANTYPES=#",
        "PREFIX=(ov)@+",
        "NICKLEN=32",
        "CHANMODES=b,k,l,imnst",
        "NETWORK=confab",
    ] {
        assert!(
            isupport.iter().any(|t| t == token),
            "{token} missing from {isupport:?}"
        );
    }
    irc.numeric(Response::RPL_LUSERCLIENT).await;
    irc.numeric(Response::RPL_MOTDSTART).await;
    irc.numeric(Response::RPL_ENDOFMOTD).await;
    server.stop().await;
}

#[tokio::test]
async fn a_taken_nick_gets_433_and_the_client_picks_another() {
    let server = TestServer::start().await;
    let _alice = Irc::connect(&server, "alice", &[]).await;
    let _line = server.user("bob").await;
    let config = Config {
        nickname: Some("ALICE".into()),
        alt_nicks: vec!["Bob".into(), "carol".into()],
        server: Some("127.0.0.1".into()),
        port: Some(server.irc_addr.port()),
        ..Config::default()
    };
    let mut client = Client::from_config(config).await.unwrap();
    client.identify().unwrap();
    let stream = client.stream().unwrap();
    let mut irc = Irc::new(client, stream);
    let first = irc.numeric(Response::ERR_NICKNAMEINUSE).await;
    assert_eq!(first[1], "ALICE");
    let second = irc.numeric(Response::ERR_NICKNAMEINUSE).await;
    assert_eq!(second[1], "Bob", "names are shared with line users");
    let welcome = irc.numeric(Response::RPL_WELCOME).await;
    assert_eq!(welcome[0], "carol");
    server.stop().await;
}

#[tokio::test]
async fn channel_chat_names_and_presence_between_irc_clients() {
    let server = TestServer::start().await;
    let mut alice = Irc::connect(&server, "alice", &[Capability::MultiPrefix]).await;
    let mut bob = Irc::connect(&server, "bob", &[]).await;
    alice.client.send_join("#rust").unwrap();
    alice
        .expect("own JOIN", |m| is_join(m, "alice", "#rust"))
        .await;
    let names = alice.numeric(Response::RPL_NAMREPLY).await;
    assert_eq!(names[3], "@alice", "the first member is operator");
    alice.numeric(Response::RPL_ENDOFNAMES).await;

    bob.client.send_join("#rust").unwrap();
    alice
        .expect("bob's JOIN", |m| is_join(m, "bob", "#rust"))
        .await;
    let names = bob.numeric(Response::RPL_NAMREPLY).await;
    assert_eq!(names[3], "@alice bob");

    alice.say("#rust", "hello bob");
    assert_eq!(
        bob.privmsg().await,
        ("alice".into(), "#rust".into(), "hello bob".into())
    );
    bob.say("alice", "hi alice");
    assert_eq!(
        alice.privmsg().await,
        ("bob".into(), "alice".into(), "hi alice".into())
    );
    bob.client.send_notice("#rust", "a notice").unwrap();
    let notice = alice
        .expect("NOTICE", |m| matches!(m.command, Command::NOTICE(..)))
        .await;
    assert!(
        matches!(notice.command, Command::NOTICE(ref t, ref x) if t == "#rust" && x == "a notice")
    );
    bob.client.send_action("#rust", "waves").unwrap();
    assert_eq!(alice.privmsg().await.2, "\u{1}ACTION waves\u{1}");

    bob.raw("NICK", &["robert"]);
    let nick = alice
        .expect("NICK", |m| matches!(m.command, Command::NICK(_)))
        .await;
    assert_eq!(nick.source_nickname(), Some("bob"));
    assert!(matches!(nick.command, Command::NICK(ref n) if n == "robert"));

    bob.client.send_part("#rust").unwrap();
    let part = alice
        .expect("PART", |m| matches!(m.command, Command::PART(..)))
        .await;
    assert_eq!(part.source_nickname(), Some("robert"));
    bob.client.send_join("#rust").unwrap();
    alice
        .expect("rejoin", |m| is_join(m, "robert", "#rust"))
        .await;
    bob.client.send_quit("so long").unwrap();
    let quit = alice
        .expect("QUIT", |m| matches!(m.command, Command::QUIT(_)))
        .await;
    assert!(matches!(quit.command, Command::QUIT(Some(ref r)) if r == "Quit: so long"));

    // JOIN 0 leaves every channel.
    alice.client.send_join("#second").unwrap();
    alice
        .expect("JOIN #second", |m| is_join(m, "alice", "#second"))
        .await;
    alice.raw("JOIN", &["0"]);
    for _ in 0..2 {
        alice
            .expect("PART", |m| matches!(m.command, Command::PART(..)))
            .await;
    }
    server.stop().await;
}

#[tokio::test]
async fn irc_and_line_users_share_one_namespace() {
    let server = TestServer::start().await;
    let mut line = server.user("liner").await;
    let mut ircy = Irc::connect(&server, "ircy", &[]).await;
    ircy.client.send_join("#lobby").unwrap();
    let names = ircy.numeric(Response::RPL_NAMREPLY).await;
    assert_eq!(names[3], "ircy liner", "the line user is in #lobby");
    assert_eq!(line.line().await, "* ircy joined lobby");

    ircy.say("#lobby", "hello from IRC");
    assert_eq!(line.line().await, "[lobby] ircy: hello from IRC");
    line.send("hello from the line").await;
    assert_eq!(
        ircy.privmsg().await,
        (
            "liner".into(),
            "#lobby".into(),
            "hello from the line".into()
        )
    );

    ircy.say("liner", "a private word");
    assert_eq!(line.line().await, "[dm] ircy: a private word");
    line.send("@ircy:a private answer").await;
    assert_eq!(
        ircy.privmsg().await,
        ("liner".into(), "ircy".into(), "a private answer".into())
    );
    ircy.client.send_action("#lobby", "nods").unwrap();
    assert_eq!(line.line().await, "[lobby] * ircy nods");
    line.send("/me nods back").await;
    assert_eq!(ircy.privmsg().await.2, "\u{1}ACTION nods back\u{1}");

    line.send("/who").await;
    assert_eq!(line.line().await, "* Members of lobby (2): ircy, liner");
    ircy.raw("WHO", &["#lobby"]);
    let who = ircy.numeric(Response::RPL_WHOREPLY).await;
    assert_eq!(who[5], "ircy");

    line.send("/nick lina").await;
    let nick = ircy
        .expect("NICK", |m| matches!(m.command, Command::NICK(_)))
        .await;
    assert!(matches!(nick.command, Command::NICK(ref n) if n == "lina"));
    ircy.raw("NICK", &["ircster"]);
    line.expect("* ircy is now known as ircster").await;
    ircy.client.send_part("#lobby").unwrap();
    assert_eq!(line.line().await, "* ircster left lobby");
    ircy.client.send_join("#lobby").unwrap();
    assert_eq!(line.line().await, "* ircster joined lobby");
    line.send("bye bye").await;
    let quit = ircy
        .expect("QUIT", |m| matches!(m.command, Command::QUIT(_)))
        .await;
    assert_eq!(quit.source_nickname(), Some("lina"));
    ircy.client.send_quit("done").unwrap();
    server.stop().await;
}

fn mode_line(irc: &Irc, chan: &str, modes: &[&str]) {
    let mut args = vec![chan];
    args.extend_from_slice(modes);
    irc.raw("MODE", &args);
}

#[tokio::test]
async fn channel_modes_are_enforced_with_their_numerics() {
    let server = TestServer::start().await;
    let mut op = Irc::connect(&server, "op", &[]).await;
    let mut user = Irc::connect(&server, "user", &[]).await;
    op.client.send_join("#club").unwrap();
    op.numeric(Response::RPL_ENDOFNAMES).await;

    mode_line(&op, "#club", &[]);
    let modes = op.numeric(Response::RPL_CHANNELMODEIS).await;
    assert_eq!(modes[2], "+nt");

    // +n: outsiders cannot talk in.
    user.say("#club", "knock knock");
    assert_eq!(
        user.numeric(Response::ERR_CANNOTSENDTOCHAN).await[1],
        "#club"
    );

    // +k
    mode_line(&op, "#club", &["+k", "sesame"]);
    op.expect("MODE +k", |m| m.to_string().contains("MODE #club +k"))
        .await;
    user.client.send_join("#club").unwrap();
    assert_eq!(user.numeric(Response::ERR_BADCHANNELKEY).await[1], "#club");
    // A line user opens the keyed room with `/join ROOM KEY`.
    let mut liner = server.user("liner").await;
    liner.send("/join club").await;
    assert_eq!(liner.expect("! ").await, "! Room club needs the right key");
    liner.send("/join club sesame").await;
    liner.expect("* Members of club").await;
    liner.send("/part").await;
    liner.expect("* liner left club").await;
    user.client.send_join_with_keys("#club", "sesame").unwrap();
    user.expect("JOIN with key", |m| is_join(m, "user", "#club"))
        .await;
    user.client.send_part("#club").unwrap();
    user.expect("PART", |m| matches!(m.command, Command::PART(..)))
        .await;
    mode_line(&op, "#club", &["-k", "sesame"]);

    // +i and INVITE.
    mode_line(&op, "#club", &["+i"]);
    op.sync().await;
    user.client.send_join("#club").unwrap();
    assert_eq!(user.numeric(Response::ERR_INVITEONLYCHAN).await[1], "#club");
    op.client.send_invite("user", "#club").unwrap();
    assert_eq!(
        op.numeric(Response::RPL_INVITING).await[1..],
        ["user", "#club"]
    );
    let invite = user
        .expect("INVITE", |m| matches!(m.command, Command::INVITE(..)))
        .await;
    assert_eq!(invite.source_nickname(), Some("op"));
    user.client.send_join("#club").unwrap();
    user.expect("JOIN after INVITE", |m| is_join(m, "user", "#club"))
        .await;
    mode_line(&op, "#club", &["-i"]);

    // Operator-only actions.
    mode_line(&user, "#club", &["+m"]);
    assert_eq!(
        user.numeric(Response::ERR_CHANOPRIVSNEEDED).await[1],
        "#club"
    );
    user.client.send_topic("#club", "mine now").unwrap();
    assert_eq!(
        user.numeric(Response::ERR_CHANOPRIVSNEEDED).await[1],
        "#club"
    );
    user.client.send_kick("#club", "op", "coup").unwrap();
    assert_eq!(
        user.numeric(Response::ERR_CHANOPRIVSNEEDED).await[1],
        "#club"
    );

    // +m and +v.
    mode_line(&op, "#club", &["+m"]);
    user.expect("MODE +m", |m| m.to_string().contains("MODE #club +m"))
        .await;
    user.say("#club", "can I talk?");
    assert_eq!(
        user.numeric(Response::ERR_CANNOTSENDTOCHAN).await[1],
        "#club"
    );
    mode_line(&op, "#club", &["+v", "user"]);
    let voiced = user
        .expect("MODE +v", |m| m.to_string().contains("MODE #club +v"))
        .await;
    assert!(
        matches!(&voiced.command, Command::ChannelMODE(c, modes) if c == "#club" && modes == &[Mode::Plus(ChannelMode::Voice, Some("user".into()))])
    );
    user.say("#club", "now I can");
    assert_eq!(op.privmsg().await.2, "now I can");
    mode_line(&op, "#club", &["-m"]);

    // +o on a non-member, unknown modes.
    mode_line(&op, "#club", &["+o", "nobody"]);
    assert_eq!(op.numeric(Response::ERR_NOSUCHNICK).await[1], "nobody");
    mode_line(&op, "#club", &["+z"]);
    assert_eq!(op.numeric(Response::ERR_UNKNOWNMODE).await[1], "z");

    // +b keeps banned users out and quiet, and is listed.
    // Voice would let a banned member speak, as on other servers; drop it first.
    mode_line(&op, "#club", &["-v+b", "user", "user!*@*"]);
    user.expect("MODE -v+b", |m| {
        m.to_string().contains("MODE #club -v+b user user!*@*")
    })
    .await;
    user.say("#club", "am I banned?");
    assert_eq!(
        user.numeric(Response::ERR_CANNOTSENDTOCHAN).await[1],
        "#club"
    );
    mode_line(&user, "#club", &["+b"]);
    assert_eq!(user.numeric(Response::RPL_BANLIST).await[2], "user!*@*");
    user.numeric(Response::RPL_ENDOFBANLIST).await;
    user.client.send_part("#club").unwrap();
    user.expect("PART", |m| matches!(m.command, Command::PART(..)))
        .await;
    user.client.send_join("#club").unwrap();
    assert_eq!(user.numeric(Response::ERR_BANNEDFROMCHAN).await[1], "#club");
    mode_line(&op, "#club", &["-b", "user!*@*"]);

    // +l
    mode_line(&op, "#club", &["+l", "1"]);
    op.sync().await;
    user.client.send_join("#club").unwrap();
    assert_eq!(user.numeric(Response::ERR_CHANNELISFULL).await[1], "#club");
    mode_line(&op, "#club", &["-l"]);

    // +s hides the channel from outsiders' LIST.
    mode_line(&op, "#club", &["+s"]);
    op.sync().await;
    user.raw("LIST", &[]);
    let mut listed = Vec::new();
    loop {
        let m = user.next().await;
        match m.command {
            Command::Response(Response::RPL_LIST, args) => listed.push(args[1].clone()),
            Command::Response(Response::RPL_LISTEND, _) => break,
            _ => {}
        }
    }
    assert!(!listed.contains(&"#club".to_string()), "{listed:?}");
    server.stop().await;
}

#[tokio::test]
async fn kick_and_topic() {
    let server = TestServer::start().await;
    let mut op = Irc::connect(&server, "op", &[]).await;
    let mut user = Irc::connect(&server, "user", &[]).await;
    op.client.send_join("#room").unwrap();
    op.numeric(Response::RPL_ENDOFNAMES).await;
    user.client.send_join("#room").unwrap();
    user.numeric(Response::RPL_ENDOFNAMES).await;

    op.client.send_topic("#room", "").unwrap();
    op.client.send_topic("#room", "the topic").unwrap();
    let topic = user
        .expect("TOPIC", |m| matches!(m.command, Command::TOPIC(..)))
        .await;
    assert!(
        matches!(topic.command, Command::TOPIC(ref c, Some(ref t)) if c == "#room" && t == "the topic")
    );
    user.client.send_topic("#room", "").unwrap();
    let (topic_reply, who_time) = (
        user.numeric(Response::RPL_TOPIC).await,
        user.numeric(Response::RPL_TOPICWHOTIME).await,
    );
    assert_eq!(topic_reply[2], "the topic");
    assert!(who_time[2].starts_with("op!"));

    op.client.send_kick("#room", "nobody", "x").unwrap();
    assert_eq!(
        op.numeric(Response::ERR_USERNOTINCHANNEL).await[1],
        "nobody"
    );
    op.client.send_kick("#room", "user", "behave").unwrap();
    let kick = user
        .expect("KICK", |m| matches!(m.command, Command::KICK(..)))
        .await;
    assert!(
        matches!(kick.command, Command::KICK(ref c, ref n, Some(ref r)) if c == "#room" && n == "user" && r == "behave")
    );
    user.say("#room", "still here?");
    assert_eq!(
        user.numeric(Response::ERR_CANNOTSENDTOCHAN).await[1],
        "#room"
    );
    user.client.send_part("#room").unwrap();
    assert_eq!(user.numeric(Response::ERR_NOTONCHANNEL).await[1], "#room");
    server.stop().await;
}

#[tokio::test]
async fn queries_whois_whowas_ison_userhost_who_list() {
    let server = TestServer::start().await;
    let mut alice = Irc::connect(&server, "alice", &[]).await;
    let mut bob = Irc::connect(&server, "bob", &[]).await;
    bob.client.send_join("#room").unwrap();
    bob.numeric(Response::RPL_ENDOFNAMES).await;
    bob.client.send_topic("#room", "about rooms").unwrap();
    bob.expect("TOPIC", |m| matches!(m.command, Command::TOPIC(..)))
        .await;

    alice.raw("WHOIS", &["BOB"]);
    let user = alice.numeric(Response::RPL_WHOISUSER).await;
    assert_eq!(&user[1..4], ["bob", "~bob", "127.0.0.1"]);
    assert_eq!(user[5], "bob real");
    assert_eq!(
        alice.numeric(Response::RPL_WHOISCHANNELS).await[2],
        "@#room"
    );
    alice.numeric(Response::RPL_ENDOFWHOIS).await;
    alice.raw("WHOIS", &["nobody"]);
    assert_eq!(alice.numeric(Response::ERR_NOSUCHNICK).await[1], "nobody");
    alice.numeric(Response::RPL_ENDOFWHOIS).await;

    alice.raw("ISON", &["bob", "nobody", "ALICE"]);
    assert_eq!(alice.numeric(Response::RPL_ISON).await[1], "bob alice");
    alice.raw("USERHOST", &["bob"]);
    assert_eq!(
        alice.numeric(Response::RPL_USERHOST).await[1],
        "bob=+~bob@127.0.0.1"
    );
    alice.raw("WHO", &["bob"]);
    let who = alice.numeric(Response::RPL_WHOREPLY).await;
    assert_eq!(&who[2..6], ["~bob", "127.0.0.1", "confab.local", "bob"]);
    alice.numeric(Response::RPL_ENDOFWHO).await;

    alice.raw("LIST", &[]);
    alice.numeric(Response::RPL_LISTSTART).await;
    let entry = alice.numeric(Response::RPL_LIST).await;
    assert_eq!(&entry[1..], ["#room", "1", "about rooms"]);
    alice.numeric(Response::RPL_LISTEND).await;

    alice.raw("NAMES", &["#room"]);
    assert_eq!(alice.numeric(Response::RPL_NAMREPLY).await[3], "@bob");
    alice.numeric(Response::RPL_ENDOFNAMES).await;

    bob.client.send_quit("bye").unwrap();
    alice.raw("WHOWAS", &["bob"]);
    let was = alice.numeric(Response::RPL_WHOWASUSER).await;
    assert_eq!(&was[1..3], ["bob", "~bob"]);
    alice.numeric(Response::RPL_ENDOFWHOWAS).await;
    alice.raw("WHOWAS", &["never"]);
    assert_eq!(alice.numeric(Response::ERR_WASNOSUCHNICK).await[1], "never");
    server.stop().await;
}

#[tokio::test]
async fn away_replies_and_away_notify() {
    let server = TestServer::start().await;
    let mut alice = Irc::connect(&server, "alice", &[Capability::AwayNotify]).await;
    let mut bob = Irc::connect(&server, "bob", &[]).await;
    alice.client.send_join("#room").unwrap();
    alice.numeric(Response::RPL_ENDOFNAMES).await;
    bob.client.send_join("#room").unwrap();
    bob.numeric(Response::RPL_ENDOFNAMES).await;

    bob.raw("AWAY", &["gone fishing"]);
    bob.numeric(Response::RPL_NOWAWAY).await;
    let away = alice
        .expect("AWAY", |m| matches!(m.command, Command::AWAY(_)))
        .await;
    assert!(matches!(away.command, Command::AWAY(Some(ref t)) if t == "gone fishing"));
    alice.say("bob", "are you there?");
    assert_eq!(alice.numeric(Response::RPL_AWAY).await[2], "gone fishing");
    bob.raw("AWAY", &[]);
    bob.numeric(Response::RPL_UNAWAY).await;
    let back = alice
        .expect("AWAY", |m| matches!(m.command, Command::AWAY(_)))
        .await;
    assert!(matches!(back.command, Command::AWAY(None)));
    server.stop().await;
}

#[tokio::test]
async fn oper_and_kill() {
    let irc = IrcConfig {
        opers: vec![("admin".into(), "hunter2".into())],
        ..IrcConfig::default()
    };
    let server = TestServer::with_config(Limits::default(), irc).await;
    let mut admin = Irc::connect(&server, "admin", &[]).await;
    let mut victim = Irc::connect(&server, "victim", &[]).await;
    let mut line = server.user("watcher").await;
    victim.client.send_join("#lobby").unwrap();
    victim.numeric(Response::RPL_ENDOFNAMES).await;
    line.expect("* victim joined lobby").await;

    victim.raw("KILL", &["admin", "no"]);
    victim.numeric(Response::ERR_NOPRIVILEGES).await;
    admin.client.send_oper("admin", "wrong").unwrap();
    admin.numeric(Response::ERR_PASSWDMISMATCH).await;
    admin.client.send_oper("admin", "hunter2").unwrap();
    admin.numeric(Response::RPL_YOUREOPER).await;
    admin.raw("KILL", &["victim", "spamming"]);
    let error = victim
        .expect("ERROR", |m| matches!(m.command, Command::ERROR(_)))
        .await;
    assert!(
        matches!(error.command, Command::ERROR(ref t) if t.contains("Killed (admin (spamming))")),
        "{error}"
    );
    assert_eq!(
        line.line().await,
        "* victim quit (Killed (admin (spamming)))"
    );
    server.stop().await;
}

#[tokio::test]
async fn capabilities_tags_and_echo() {
    let server = TestServer::start().await;
    let mut alice = Irc::connect(
        &server,
        "alice",
        &[
            Capability::ServerTime,
            Capability::EchoMessage,
            Capability::Custom("message-tags"),
        ],
    )
    .await;
    let mut bob = Irc::connect(
        &server,
        "bob",
        &[Capability::ExtendedJoin, Capability::UserhostInNames],
    )
    .await;
    alice.client.send_join("#tags").unwrap();
    alice.numeric(Response::RPL_ENDOFNAMES).await;
    bob.client.send_join("#tags").unwrap();
    let join = bob
        .expect("extended JOIN", |m| is_join(m, "bob", "#tags"))
        .await;
    assert!(
        matches!(join.command, Command::JOIN(_, Some(ref account), Some(ref real)) if account == "*" && real == "bob real"),
        "{join}"
    );
    let names = bob.numeric(Response::RPL_NAMREPLY).await;
    assert_eq!(names[3], "@alice!~alice@127.0.0.1 bob!~bob@127.0.0.1");

    alice.say("#tags", "tagged");
    let echo = alice
        .expect("echo", |m| matches!(m.command, Command::PRIVMSG(..)))
        .await;
    let tags = echo.tags.clone().unwrap_or_default();
    assert!(
        tags.iter()
            .any(|t| t.0 == "time" && t.1.as_deref().is_some_and(|v| v.ends_with('Z'))),
        "{echo}"
    );
    assert!(tags.iter().any(|t| t.0 == "msgid"), "{echo}");
    let plain = bob
        .expect("PRIVMSG", |m| matches!(m.command, Command::PRIVMSG(..)))
        .await;
    assert!(plain.tags.is_none(), "no tags without the caps: {plain}");

    alice.raw("CAP", &["REQ", "no-such-cap"]);
    let nak = alice
        .expect("NAK", |m| matches!(&m.command, Command::CAP(..)))
        .await;
    assert!(nak.to_string().contains("NAK"), "{nak}");
    alice.raw("CAP", &["LIST"]);
    let list = alice
        .expect("LIST", |m| matches!(&m.command, Command::CAP(..)))
        .await;
    assert!(list.to_string().contains("echo-message"), "{list}");
    server.stop().await;
}

#[tokio::test]
async fn error_numerics_for_bad_commands() {
    let server = TestServer::start().await;
    let mut alice = Irc::connect(&server, "alice", &[]).await;
    alice.say("nobody", "hello?");
    assert_eq!(alice.numeric(Response::ERR_NOSUCHNICK).await[1], "nobody");
    alice.say("#nowhere", "hello?");
    assert_eq!(
        alice.numeric(Response::ERR_NOSUCHCHANNEL).await[1],
        "#nowhere"
    );
    alice.raw("JOIN", &["nochan"]);
    assert_eq!(
        alice.numeric(Response::ERR_NOSUCHCHANNEL).await[1],
        "nochan"
    );
    alice.raw("JOIN", &["#bad!name"]);
    assert_eq!(
        alice.numeric(Response::ERR_NOSUCHCHANNEL).await[1],
        "#bad!name"
    );
    alice.raw("PART", &["#nowhere"]);
    assert_eq!(
        alice.numeric(Response::ERR_NOSUCHCHANNEL).await[1],
        "#nowhere"
    );
    alice.raw("PRIVMSG", &[]);
    alice.numeric(Response::ERR_NORECIPIENT).await;
    alice.raw("PRIVMSG", &["bob"]);
    alice.numeric(Response::ERR_NOTEXTTOSEND).await;
    alice.raw("PRIVMSG", &["a,b,c,d,e", "hi"]);
    assert_eq!(alice.numeric(Response::ERR_TOOMANYTARGETS).await[1], "e");
    alice.raw("KICK", &["#x"]);
    assert_eq!(alice.numeric(Response::ERR_NEEDMOREPARAMS).await[1], "KICK");
    alice.raw("FROBNICATE", &[]);
    assert_eq!(
        alice.numeric(Response::ERR_UNKNOWNCOMMAND).await[1],
        "FROBNICATE"
    );
    alice.raw("USER", &["a", "0", "*", "again"]);
    alice.numeric(Response::ERR_ALREADYREGISTRED).await;
    alice.raw("MODE", &["someoneelse"]);
    assert_eq!(
        alice.numeric(Response::ERR_NOSUCHNICK).await[1],
        "someoneelse"
    );
    alice.raw("MODE", &["alice", "+i"]);
    alice
        .expect("MODE +i", |m| m.to_string().contains("MODE alice +i"))
        .await;
    alice.raw("MODE", &["alice"]);
    assert_eq!(alice.numeric(Response::RPL_UMODEIS).await[1], "+i");
    alice.raw("OPER", &["x", "y"]);
    alice.numeric(Response::ERR_NOOPERHOST).await;
    // NOTICE never produces error replies.
    alice.client.send_notice("nobody", "x").unwrap();
    alice.sync().await;
    server.stop().await;
}

#[tokio::test]
async fn server_information_commands() {
    let server = TestServer::start().await;
    let mut alice = Irc::connect(&server, "alice", &[]).await;
    alice.raw("VERSION", &[]);
    assert!(alice.numeric(Response::RPL_VERSION).await[1].starts_with("confab-"));
    alice.numeric(Response::RPL_ISUPPORT).await;
    alice.raw("TIME", &[]);
    assert!(alice.numeric(Response::RPL_TIME).await[2].ends_with('Z'));
    alice.raw("MOTD", &[]);
    alice.numeric(Response::RPL_ENDOFMOTD).await;
    alice.raw("LUSERS", &[]);
    assert!(alice.numeric(Response::RPL_LUSERCLIENT).await[1].contains("1 users"));
    alice.sync().await;
    server.stop().await;
}

#[tokio::test]
async fn raw_socket_rules_before_registration_and_long_lines() {
    let server = TestServer::start().await;
    let mut raw = LineClient::connect(server.irc_addr).await;
    raw.send("JOIN #lobby\r").await;
    assert!(raw.line().await.contains(" 451 * :You have not registered"));
    raw.send("PING :early\r").await;
    assert_eq!(raw.line().await, ":confab.local PONG confab.local early\r");
    raw.send("NICK bad!nick\r").await;
    assert!(raw
        .line()
        .await
        .contains(" 432 * bad!nick :Erroneous nickname"));
    raw.send("NICK raw\r\nUSER raw 0 * :Raw Socket\r").await;
    raw.expect(":confab.local 001 raw ").await;
    raw.expect(":confab.local 376 raw ").await;
    let long = format!("PRIVMSG raw :{}\r", "x".repeat(600));
    raw.send(&long).await;
    assert!(raw
        .line()
        .await
        .contains(" 417 raw :Input line was too long"));
    raw.send_bytes(b"PRIVMSG raw :\xff\xfe\r\n").await;
    assert!(raw
        .line()
        .await
        .starts_with(":confab.local FAIL PRIVMSG INVALID_UTF8 :"));
    raw.send("QUIT :bye\r").await;
    assert_eq!(
        raw.rest().await,
        ["ERROR :Closing Link: 127.0.0.1 (Quit: bye)\r"]
    );
    server.stop().await;
}

/// PRIVMSGs read together are delivered as one batch; the replies to each must still be
/// rendered for the command that caused them, not for whatever came next.
#[tokio::test]
async fn a_burst_of_privmsgs_keeps_each_reply_with_its_command() {
    let server = TestServer::start().await;
    let mut bob = server.user("bob").await;
    let mut raw = LineClient::connect(server.irc_addr).await;
    raw.send("NICK raw\r\nUSER raw 0 * :Raw Socket\r\nJOIN #lobby\r")
        .await;
    raw.expect(":confab.local 366 raw #lobby ").await;
    bob.expect("* raw joined lobby").await;
    raw.send(concat!(
        "PRIVMSG #lobby :one\r\n",
        "PRIVMSG #lobby :two\r\n",
        "PRIVMSG ghost :x\r\n",
        "PRIVMSG ghost :y\r\n",
        "WHOIS ghost\r\n",
        "NOTICE ghost :never answered\r\n",
        "PRIVMSG #lobby :three\r\n",
        "PING :done\r",
    ))
    .await;
    for text in ["one", "two", "three"] {
        assert_eq!(bob.line().await, format!("[lobby] raw: {text}"));
    }
    let mut replies = Vec::new();
    loop {
        let line = raw.line().await;
        if line.contains(" PONG ") {
            break;
        }
        replies.push(line.split(' ').nth(1).unwrap_or_default().to_string());
    }
    assert_eq!(
        replies,
        ["401", "401", "401", "318"],
        "two PRIVMSG errors, then WHOIS"
    );
    bob.expect_quiet().await;
    server.stop().await;
}

#[tokio::test]
async fn silent_clients_are_pinged_then_dropped() {
    let server = TestServer::with_limits(Limits {
        ping_interval: Duration::from_millis(300),
        ..Limits::default()
    })
    .await;
    let mut raw = LineClient::connect(server.irc_addr).await;
    raw.send("NICK quiet\r\nUSER q 0 * :Q\r").await;
    raw.expect(":confab.local 376 quiet ").await;
    assert_eq!(raw.line().await, "PING :quiet\r");
    assert_eq!(
        raw.rest().await,
        ["ERROR :Closing Link: 127.0.0.1 (Ping timeout)\r"]
    );
    server.stop().await;
}

#[tokio::test]
async fn labeled_responses_carry_the_label() {
    let server = TestServer::start().await;
    let mut raw = LineClient::connect(server.irc_addr).await;
    raw.send(
        "CAP LS 302\r\nCAP REQ :labeled-response batch\r\nCAP END\r\nNICK lab\r\nUSER lab 0 * :L\r",
    )
    .await;
    raw.expect(":confab.local CAP * ACK :labeled-response batch")
        .await;
    raw.expect(":confab.local 376 lab ").await;

    raw.send("@label=one PING :token\r").await;
    assert_eq!(
        raw.line().await,
        "@label=one :confab.local PONG confab.local token\r"
    );
    raw.send("@label=two PONG :nothing\r").await;
    assert_eq!(raw.line().await, "@label=two :confab.local ACK\r");
    raw.send("@label=three WHOIS lab\r").await;
    let start = raw.line().await;
    let id = start
        .strip_prefix("@label=three :confab.local BATCH +")
        .and_then(|rest| rest.strip_suffix(" labeled-response\r"))
        .unwrap_or_else(|| panic!("{start}"))
        .to_string();
    let mut inside = Vec::new();
    loop {
        let line = raw.line().await;
        if line == format!(":confab.local BATCH -{id}\r") {
            break;
        }
        assert!(line.starts_with(&format!("@batch={id} ")), "{line}");
        inside.push(line);
    }
    assert!(inside[0].contains(" 311 lab lab "), "{inside:?}");
    assert!(
        inside.last().unwrap().contains(" 318 lab lab "),
        "{inside:?}"
    );
    // Without a label nothing changes.
    raw.send("PING :plain\r").await;
    assert_eq!(raw.line().await, ":confab.local PONG confab.local plain\r");
    server.stop().await;
}

/// Reads until numeric `end`, returning every numeric on the way.
async fn numerics_until(irc: &mut Irc, end: Response) -> Vec<Response> {
    let mut seen = Vec::new();
    loop {
        if let Command::Response(response, _) = irc.next().await.command {
            seen.push(response);
            if response == end {
                return seen;
            }
        }
    }
}

#[tokio::test]
async fn open_modes_let_members_set_topics_and_invite_and_outsiders_talk_in() {
    let server = TestServer::start().await;
    let mut op = Irc::connect(&server, "op", &[]).await;
    let mut member = Irc::connect(&server, "member", &[]).await;
    let mut outsider = Irc::connect(&server, "outsider", &[]).await;
    op.client.send_join("#open").unwrap();
    op.numeric(Response::RPL_ENDOFNAMES).await;
    member.client.send_join("#open").unwrap();
    member.numeric(Response::RPL_ENDOFNAMES).await;
    let mode_seen = |change: &'static str| {
        move |m: &Message| m.to_string().contains(&format!("MODE #open {change}"))
    };

    // -t: any member sets the topic.
    mode_line(&op, "#open", &["-t"]);
    member.expect("MODE -t", mode_seen("-t")).await;
    member
        .client
        .send_topic("#open", "set by a member")
        .unwrap();
    let topic = op
        .expect("TOPIC", |m| matches!(m.command, Command::TOPIC(..)))
        .await;
    assert_eq!(topic.source_nickname(), Some("member"));
    assert!(
        matches!(topic.command, Command::TOPIC(ref c, Some(ref t)) if c == "#open" && t == "set by a member")
    );

    // -i: any member invites.
    member.client.send_invite("outsider", "#open").unwrap();
    assert_eq!(
        member.numeric(Response::RPL_INVITING).await[1..],
        ["outsider", "#open"]
    );
    let invite = outsider
        .expect("INVITE", |m| matches!(m.command, Command::INVITE(..)))
        .await;
    assert_eq!(invite.source_nickname(), Some("member"));

    // +i: only operators invite.
    mode_line(&op, "#open", &["+i"]);
    member.expect("MODE +i", mode_seen("+i")).await;
    member.client.send_invite("outsider", "#open").unwrap();
    assert_eq!(
        member.numeric(Response::ERR_CHANOPRIVSNEEDED).await[1],
        "#open"
    );
    mode_line(&op, "#open", &["-i"]);
    member.expect("MODE -i", mode_seen("-i")).await;

    // -n: someone outside the room talks in; members hear it.
    mode_line(&op, "#open", &["-n"]);
    member.expect("MODE -n", mode_seen("-n")).await;
    outsider.say("#open", "hello from outside");
    assert_eq!(
        member.privmsg().await,
        (
            "outsider".to_string(),
            "#open".to_string(),
            "hello from outside".to_string()
        )
    );

    // +s: outsiders see the room neither in WHOIS nor in NAMES; members do.
    mode_line(&op, "#open", &["+s"]);
    member.expect("MODE +s", mode_seen("+s")).await;
    outsider.raw("WHOIS", &["member"]);
    let whois = numerics_until(&mut outsider, Response::RPL_ENDOFWHOIS).await;
    assert!(!whois.contains(&Response::RPL_WHOISCHANNELS), "{whois:?}");
    outsider.raw("NAMES", &["#open"]);
    let names = numerics_until(&mut outsider, Response::RPL_ENDOFNAMES).await;
    assert!(!names.contains(&Response::RPL_NAMREPLY), "{names:?}");
    op.raw("WHOIS", &["member"]);
    assert!(op.numeric(Response::RPL_WHOISCHANNELS).await[2].contains("#open"));
    op.raw("NAMES", &["#open"]);
    let names = op.numeric(Response::RPL_NAMREPLY).await;
    assert!(names[3].contains("member"), "{names:?}");
    server.stop().await;
}
