//! IRCv3 tag and capability rules over raw sockets: client-only tags and who receives
//! them, TAGMSG, echo-message with labels, 417 for oversized lines, UTF8ONLY,
//! away-notify on join and bot mode. Each case is one line from one user and the exact
//! lines every user then receives; a ping round trip after each case proves that nobody
//! received anything else.

mod common;

use common::{Client, TestServer};

/// One raw IRC connection.
struct Irc {
    nick: &'static str,
    client: Client,
}

impl Irc {
    /// Connects as `nick` with the capabilities `caps` (space-separated, may be empty)
    /// and reads up to the end of the welcome.
    async fn connect(server: &TestServer, nick: &'static str, caps: &str) -> Irc {
        let mut irc = Irc {
            nick,
            client: Client::connect(server.irc_addr).await,
        };
        if !caps.is_empty() {
            irc.send(&format!("CAP REQ :{caps}")).await;
            irc.expect(&format!(":confab.local CAP * ACK :{caps}"))
                .await;
            irc.send("CAP END").await;
        }
        irc.send(&format!("NICK {nick}")).await;
        irc.send(&format!("USER {nick} 0 * :{nick} real")).await;
        irc.expect(&format!(":confab.local 376 {nick} *")).await;
        irc
    }

    async fn send(&mut self, line: &str) {
        self.send_bytes(line.as_bytes()).await;
    }

    async fn send_bytes(&mut self, line: &[u8]) {
        let mut bytes = line.to_vec();
        bytes.extend_from_slice(b"\r\n");
        self.client.send_bytes(&bytes).await;
    }

    /// The next line, without CR LF.
    async fn line(&mut self) -> String {
        let line = self.client.line().await;
        line.strip_suffix('\r').unwrap_or(&line).to_string()
    }

    /// Reads until a line matches `pattern` (see [`matches`]).
    async fn expect(&mut self, pattern: &str) -> String {
        loop {
            let line = self.line().await;
            if matches(pattern, &line) {
                return line;
            }
        }
    }

    /// Proves that nothing else was sent before: the next line is the PONG.
    async fn sync(&mut self) {
        self.send("PING :sync").await;
        let line = self.line().await;
        assert_eq!(
            line, ":confab.local PONG confab.local sync",
            "{}: unexpected line",
            self.nick
        );
    }
}

/// Glob match: `*` stands for any run of characters (message ids and times vary).
fn matches(pattern: &str, line: &str) -> bool {
    let (p, s) = (pattern.as_bytes(), line.as_bytes());
    let (mut pi, mut si) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while si < s.len() {
        if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, si));
            pi += 1;
        } else if pi < p.len() && p[pi] == s[si] {
            pi += 1;
            si += 1;
        } else if let Some((sp, ss)) = star {
            pi = sp + 1;
            si = ss + 1;
            star = Some((sp, ss + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}

// The users, by index into the list `connect_all` returns.
const ALICE: usize = 0; // message-tags, echo-message, labeled-response; op of #t
const BOB: usize = 1; // message-tags, away-notify
const CAROL: usize = 2; // no capabilities
const DAVE: usize = 3; // echo-message only
const ERIN: usize = 4; // message-tags; not in #t
const ROBO: usize = 5; // message-tags; becomes a bot

const A: &str = "alice!~alice@127.0.0.1";
const B: &str = "bob!~bob@127.0.0.1";
const C: &str = "carol!~carol@127.0.0.1";
const D: &str = "dave!~dave@127.0.0.1";
const E: &str = "erin!~erin@127.0.0.1";
const R: &str = "robo!~robo@127.0.0.1";

const UTF8_FAIL: &str =
    "INVALID_UTF8 :Message rejected, your IRC software MUST use UTF-8 encoding on this network";

/// One line sent by one user, and what each user then receives, in order. Users not
/// listed receive nothing.
struct Case {
    what: &'static str,
    from: usize,
    line: Vec<u8>,
    expect: Vec<(usize, Vec<String>)>,
}

fn case(what: &'static str, from: usize, line: impl Into<Vec<u8>>) -> Case {
    Case {
        what,
        from,
        line: line.into(),
        expect: Vec::new(),
    }
}

impl Case {
    fn to(mut self, user: usize, lines: &[&str]) -> Case {
        self.expect
            .push((user, lines.iter().map(|l| l.to_string()).collect()));
        self
    }
}

fn cases() -> Vec<Case> {
    let long_ok = "x".repeat(4094 - "+big=".len());
    let long_bad = "x".repeat(4095 - "+big=".len());
    vec![
        // echo-message and labeled-response, with client-only tags.
        case(
            "labeled PRIVMSG to a channel",
            ALICE,
            "@label=l1;+example=v\\:x PRIVMSG #t :hi",
        )
        .to(
            ALICE,
            &[&format!(
                "@label=l1;time=*;msgid=*;+example=v\\:x :{A} PRIVMSG #t :hi"
            )],
        )
        .to(
            BOB,
            &[&format!(
                "@time=*;msgid=*;+example=v\\:x :{A} PRIVMSG #t :hi"
            )],
        )
        .to(CAROL, &[&format!(":{A} PRIVMSG #t :hi")])
        .to(DAVE, &[&format!(":{A} PRIVMSG #t :hi")]),
        case(
            "labeled NOTICE to a user; tags without + are not relayed",
            ALICE,
            "@label=l2;unknown=1;+example=1 NOTICE bob :psst",
        )
        .to(
            ALICE,
            &[&format!(
                "@label=l2;time=*;msgid=*;+example=1 :{A} NOTICE bob :psst"
            )],
        )
        .to(
            BOB,
            &[&format!("@time=*;msgid=*;+example=1 :{A} NOTICE bob :psst")],
        ),
        case(
            "a message to yourself is echoed once, labeled",
            ALICE,
            "@label=l3;+example=2 PRIVMSG alice :me",
        )
        .to(
            ALICE,
            &[&format!(
                "@label=l3;time=*;msgid=*;+example=2 :{A} PRIVMSG alice :me"
            )],
        ),
        case(
            "labeled TAGMSG to a channel: only message-tags clients see it",
            ALICE,
            "@label=l4;+typing=active TAGMSG #t",
        )
        .to(
            ALICE,
            &[&format!(
                "@label=l4;time=*;msgid=*;+typing=active :{A} TAGMSG #t"
            )],
        )
        .to(
            BOB,
            &[&format!("@time=*;msgid=*;+typing=active :{A} TAGMSG #t")],
        ),
        case(
            "TAGMSG to a user; no echo without echo-message",
            BOB,
            "@+draft/react=x TAGMSG alice",
        )
        .to(
            ALICE,
            &[&format!("@time=*;msgid=*;+draft/react=x :{B} TAGMSG alice")],
        ),
        case(
            "TAGMSG to yourself, unlabeled",
            BOB,
            "@+example=3 TAGMSG bob",
        )
        .to(
            BOB,
            &[&format!("@time=*;msgid=*;+example=3 :{B} TAGMSG bob")],
        ),
        case(
            "a client without message-tags cannot send client tags",
            CAROL,
            "@+example=4 PRIVMSG #t :plain",
        )
        .to(ALICE, &[&format!("@time=*;msgid=* :{C} PRIVMSG #t :plain")])
        .to(BOB, &[&format!("@time=*;msgid=* :{C} PRIVMSG #t :plain")])
        .to(DAVE, &[&format!(":{C} PRIVMSG #t :plain")]),
        case(
            "echo without message-tags carries no tags",
            DAVE,
            "@+example=5 PRIVMSG #t :echoed",
        )
        .to(
            ALICE,
            &[&format!("@time=*;msgid=* :{D} PRIVMSG #t :echoed")],
        )
        .to(BOB, &[&format!("@time=*;msgid=* :{D} PRIVMSG #t :echoed")])
        .to(CAROL, &[&format!(":{D} PRIVMSG #t :echoed")])
        .to(DAVE, &[&format!(":{D} PRIVMSG #t :echoed")]),
        case(
            "TAGMSG from a client without message-tags reaches only tag readers",
            DAVE,
            "TAGMSG #t",
        )
        .to(ALICE, &[&format!("@time=*;msgid=* :{D} TAGMSG #t")])
        .to(BOB, &[&format!("@time=*;msgid=* :{D} TAGMSG #t")]),
        case(
            "4094 bytes of client tag data are relayed",
            ALICE,
            format!("@+big={long_ok} PRIVMSG #t :ok"),
        )
        .to(
            ALICE,
            &[&format!(
                "@time=*;msgid=*;+big={long_ok} :{A} PRIVMSG #t :ok"
            )],
        )
        .to(
            BOB,
            &[&format!(
                "@time=*;msgid=*;+big={long_ok} :{A} PRIVMSG #t :ok"
            )],
        )
        .to(CAROL, &[&format!(":{A} PRIVMSG #t :ok")])
        .to(DAVE, &[&format!(":{A} PRIVMSG #t :ok")]),
        // Oversized lines: 417 and nothing else, the connection stays.
        case(
            "4095 bytes of client tag data",
            ALICE,
            format!("@+big={long_bad} TAGMSG #t"),
        )
        .to(ALICE, &[":confab.local 417 alice :Input line was too long"]),
        case(
            "over 512 bytes besides small tags",
            ALICE,
            format!("@+a=1 PRIVMSG #t :{}", "y".repeat(600)),
        )
        .to(ALICE, &[":confab.local 417 alice :Input line was too long"]),
        case(
            "over 512 bytes without tags",
            ALICE,
            format!("PRIVMSG #t :{}", "y".repeat(600)),
        )
        .to(ALICE, &[":confab.local 417 alice :Input line was too long"]),
        case(
            "over the whole tag allowance",
            ALICE,
            format!("@+a={} PRIVMSG #t :x", "z".repeat(8300)),
        )
        .to(ALICE, &[":confab.local 417 alice :Input line was too long"]),
        case(
            "over both allowances together",
            ALICE,
            format!("@+a={} PRIVMSG #t :x", "z".repeat(9000)),
        )
        .to(ALICE, &[":confab.local 417 alice :Input line was too long"]),
        // TAGMSG obeys the rules of PRIVMSG.
        case("TAGMSG from outside a +n channel", ERIN, "@+x=1 TAGMSG #t")
            .to(ERIN, &[":confab.local 404 erin #t :Cannot send to channel"]),
        case("TAGMSG to nobody", ERIN, "@+x=1 TAGMSG ghost").to(
            ERIN,
            &[":confab.local 401 erin ghost :No such nick/channel"],
        ),
        case(
            "TAGMSG to more than 4 targets",
            ERIN,
            "@+x=1 TAGMSG a,b,c,d,e",
        )
        .to(
            ERIN,
            &[
                ":confab.local 401 erin a :No such nick/channel",
                ":confab.local 401 erin b :No such nick/channel",
                ":confab.local 401 erin c :No such nick/channel",
                ":confab.local 401 erin d :No such nick/channel",
                ":confab.local 407 erin e :Too many recipients; at most 4",
            ],
        ),
        case("TAGMSG without a target", ERIN, "TAGMSG").to(
            ERIN,
            &[":confab.local 411 erin :No recipient given (TAGMSG)"],
        ),
        case("moderate #t", ALICE, "MODE #t +m")
            .to(ALICE, &[&format!("@time=* :{A} MODE #t +m")])
            .to(BOB, &[&format!("@time=* :{A} MODE #t +m")])
            .to(CAROL, &[&format!(":{A} MODE #t +m")])
            .to(DAVE, &[&format!(":{A} MODE #t +m")]),
        case("TAGMSG in a moderated channel", BOB, "@+x=1 TAGMSG #t")
            .to(BOB, &[":confab.local 404 bob #t :Cannot send to channel"]),
        case("unmoderate and ban bob", ALICE, "MODE #t -m+b bob!*@*")
            .to(ALICE, &[&format!("@time=* :{A} MODE #t -m+b bob!*@*")])
            .to(BOB, &[&format!("@time=* :{A} MODE #t -m+b bob!*@*")])
            .to(CAROL, &[&format!(":{A} MODE #t -m+b bob!*@*")])
            .to(DAVE, &[&format!(":{A} MODE #t -m+b bob!*@*")]),
        case("TAGMSG from a banned member", BOB, "@+x=1 TAGMSG #t")
            .to(BOB, &[":confab.local 404 bob #t :Cannot send to channel"]),
        case("unban bob", ALICE, "MODE #t -b bob!*@*")
            .to(ALICE, &[&format!("@time=* :{A} MODE #t -b bob!*@*")])
            .to(BOB, &[&format!("@time=* :{A} MODE #t -b bob!*@*")])
            .to(CAROL, &[&format!(":{A} MODE #t -b bob!*@*")])
            .to(DAVE, &[&format!(":{A} MODE #t -b bob!*@*")]),
        // UTF8ONLY.
        case(
            "a PRIVMSG that is not UTF-8",
            CAROL,
            &b"PRIVMSG #t :caf\xe9"[..],
        )
        .to(CAROL, &[&format!(":confab.local FAIL PRIVMSG {UTF8_FAIL}")]),
        case(
            "a labeled TAGMSG that is not UTF-8",
            ALICE,
            &b"@label=l5;+x=\xff TAGMSG #t"[..],
        )
        .to(
            ALICE,
            &[&format!("@label=l5 :confab.local FAIL TAGMSG {UTF8_FAIL}")],
        ),
        case("an unreadable command", CAROL, &b"\xff\xfe"[..])
            .to(CAROL, &[&format!(":confab.local FAIL * {UTF8_FAIL}")]),
        // away-notify: a joiner who is away.
        case("erin goes away", ERIN, "AWAY :gone").to(
            ERIN,
            &[":confab.local 306 erin :You have been marked as being away"],
        ),
        case("erin joins #t", ERIN, "JOIN #t")
            .to(ALICE, &[&format!("@time=* :{E} JOIN #t")])
            .to(
                BOB,
                &[
                    &format!("@time=* :{E} JOIN #t"),
                    &format!("@time=* :{E} AWAY :gone"),
                ],
            )
            .to(CAROL, &[&format!(":{E} JOIN #t")])
            .to(DAVE, &[&format!(":{E} JOIN #t")])
            .to(
                ERIN,
                &[
                    &format!("@time=* :{E} JOIN #t"),
                    ":confab.local 353 erin = #t :@alice bob carol dave erin",
                    ":confab.local 366 erin #t :End of /NAMES list.",
                ],
            ),
        // Bot mode.
        case("robo becomes a bot", ROBO, "MODE robo +B").to(ROBO, &[":robo MODE robo +B"]),
        case("robo's modes", ROBO, "MODE robo").to(ROBO, &[":confab.local 221 robo :+B"]),
        case("robo joins #t", ROBO, "JOIN #t")
            .to(ALICE, &[&format!("@time=*;bot :{R} JOIN #t")])
            .to(BOB, &[&format!("@time=*;bot :{R} JOIN #t")])
            .to(CAROL, &[&format!(":{R} JOIN #t")])
            .to(DAVE, &[&format!(":{R} JOIN #t")])
            .to(ERIN, &[&format!("@time=*;bot :{R} JOIN #t")])
            .to(
                ROBO,
                &[
                    &format!("@time=*;bot :{R} JOIN #t"),
                    ":confab.local 353 robo = #t :@alice bob carol dave erin robo",
                    ":confab.local 366 robo #t :End of /NAMES list.",
                ],
            ),
        case(
            "a bot's message carries the bot tag",
            ROBO,
            "@+example=6 PRIVMSG #t :beep",
        )
        .to(
            ALICE,
            &[&format!(
                "@time=*;msgid=*;bot;+example=6 :{R} PRIVMSG #t :beep"
            )],
        )
        .to(
            BOB,
            &[&format!(
                "@time=*;msgid=*;bot;+example=6 :{R} PRIVMSG #t :beep"
            )],
        )
        .to(CAROL, &[&format!(":{R} PRIVMSG #t :beep")])
        .to(DAVE, &[&format!(":{R} PRIVMSG #t :beep")])
        .to(
            ERIN,
            &[&format!(
                "@time=*;msgid=*;bot;+example=6 :{R} PRIVMSG #t :beep"
            )],
        ),
        case("WHOIS of a bot", CAROL, "WHOIS robo").to(
            CAROL,
            &[
                ":confab.local 311 carol robo ~robo 127.0.0.1 * :robo real",
                ":confab.local 319 carol robo :#t",
                ":confab.local 312 carol robo confab.local :confab",
                ":confab.local 335 carol robo :is a bot",
                ":confab.local 317 carol robo * :seconds idle, signon time",
                ":confab.local 318 carol robo :End of /WHOIS list.",
            ],
        ),
        case("WHO of a bot", CAROL, "WHO robo").to(
            CAROL,
            &[
                ":confab.local 352 carol * ~robo 127.0.0.1 confab.local robo HB :0 robo real",
                ":confab.local 315 carol robo :End of /WHO list.",
            ],
        ),
        case("robo is a bot no more", ROBO, "MODE robo -B").to(ROBO, &[":robo MODE robo -B"]),
        case("no bot tag after -B", ROBO, "PRIVMSG #t :human")
            .to(ALICE, &[&format!("@time=*;msgid=* :{R} PRIVMSG #t :human")])
            .to(BOB, &[&format!("@time=*;msgid=* :{R} PRIVMSG #t :human")])
            .to(CAROL, &[&format!(":{R} PRIVMSG #t :human")])
            .to(DAVE, &[&format!(":{R} PRIVMSG #t :human")])
            .to(ERIN, &[&format!("@time=*;msgid=* :{R} PRIVMSG #t :human")]),
    ]
}

#[tokio::test]
async fn tag_and_capability_rules() {
    let server = TestServer::start().await;
    let mut users = vec![
        Irc::connect(
            &server,
            "alice",
            "message-tags echo-message labeled-response",
        )
        .await,
        Irc::connect(&server, "bob", "message-tags away-notify").await,
        Irc::connect(&server, "carol", "").await,
        Irc::connect(&server, "dave", "echo-message").await,
        Irc::connect(&server, "erin", "message-tags").await,
        Irc::connect(&server, "robo", "message-tags").await,
    ];
    // alice, bob, carol and dave join #t in turn; each join is seen by those before.
    for joiner in ALICE..=DAVE {
        users[joiner].send("JOIN #t").await;
        let nick = users[joiner].nick;
        users[joiner]
            .expect(&format!(":confab.local 366 {nick} #t *"))
            .await;
        for earlier in &mut users[ALICE..joiner] {
            earlier.expect(&format!("*{nick}!* JOIN #t")).await;
        }
    }
    for user in &mut users {
        user.sync().await;
    }

    for case in cases() {
        users[case.from].send_bytes(&case.line).await;
        for (user, lines) in &case.expect {
            for pattern in lines {
                let line = users[*user].line().await;
                assert!(
                    matches(pattern, &line),
                    "{}: {} expected {pattern:?}, got {line:?}",
                    case.what,
                    users[*user].nick
                );
            }
        }
        // The sender first: once it has its PONG, everything its line caused is in
        // every outbox, so anyone's next line being their PONG means nothing else came.
        users[case.from].sync().await;
        for (i, user) in users.iter_mut().enumerate() {
            if i != case.from {
                user.sync().await;
            }
        }
    }
    server.stop().await;
}

/// A USER whose real name is not UTF-8 still registers, with the bad bytes replaced;
/// other commands that are not UTF-8 are refused before registration too.
#[tokio::test]
async fn registration_is_never_left_waiting_on_bad_utf8() {
    let server = TestServer::start().await;
    let mut raw = Irc {
        nick: "u8",
        client: Client::connect(server.irc_addr).await,
    };
    raw.send_bytes(b"NICK \xffu8").await;
    assert_eq!(
        raw.line().await,
        format!(":confab.local FAIL NICK {UTF8_FAIL}")
    );
    raw.send("NICK u8").await;
    raw.send_bytes(b"USER u\xe98 0 * :Ren\xe9 Real").await;
    let welcome = raw.line().await;
    assert!(
        matches(
            ":confab.local 001 u8 :Welcome to the * u8!~u8@127.0.0.1",
            &welcome
        ),
        "{welcome}"
    );
    raw.expect(":confab.local 376 u8 *").await;
    raw.send("WHOIS u8").await;
    assert_eq!(
        raw.line().await,
        ":confab.local 311 u8 u8 ~u8 127.0.0.1 * :Ren\u{fffd} Real"
    );
    raw.expect(":confab.local 318 u8 u8 *").await;
    raw.sync().await;
    server.stop().await;
}

/// BOT=B is announced, and 004 lists user mode B.
#[tokio::test]
async fn bot_mode_is_announced() {
    let server = TestServer::start().await;
    let mut raw = Irc {
        nick: "b",
        client: Client::connect(server.irc_addr).await,
    };
    raw.send("NICK b").await;
    raw.send("USER b 0 * :B").await;
    let myinfo = raw.expect(":confab.local 004 b *").await;
    assert_eq!(myinfo.split(' ').nth(5), Some("Bio"), "{myinfo}");
    raw.expect(":confab.local 005 b AWAYLEN=390 BOT=B *").await;
    raw.expect(":confab.local 376 b *").await;
    raw.sync().await;
    server.stop().await;
}

/// The line protocol shows no TAGMSG and no client tags: a line user in the channel sees
/// the tagged PRIVMSG as any other, and nothing for the TAGMSG.
#[tokio::test]
async fn line_users_see_messages_without_tags_and_no_tagmsg() {
    let server = TestServer::start().await;
    let mut line = server.user("liner").await;
    let mut irc = Irc::connect(&server, "tagger", "message-tags").await;
    irc.send("JOIN #lobby").await;
    irc.expect(":confab.local 366 tagger #lobby *").await;
    line.expect("* tagger joined lobby").await;
    irc.send("@+typing=active TAGMSG #lobby").await;
    irc.send("@+example=1 PRIVMSG #lobby :hello").await;
    irc.send("@+typing=done TAGMSG liner").await;
    irc.sync().await;
    assert_eq!(line.line().await, "[lobby] tagger: hello");
    line.expect_quiet().await;
    server.stop().await;
}

/// With history on, a TAGMSG is delivered at once (nothing stores it, so it must not
/// wait to be durable) and is not in CHATHISTORY; the PRIVMSG after it is.
#[tokio::test]
async fn tagmsg_is_delivered_but_not_kept_with_history_on() {
    let data = tempfile::tempdir().unwrap();
    let server = TestServer::with_data(data.path()).await;
    let mut alice = Irc::connect(&server, "alice", "message-tags").await;
    let mut bob = Irc::connect(&server, "bob", "message-tags batch draft/chathistory").await;
    for user in [&mut alice, &mut bob] {
        user.send("JOIN #h").await;
        let nick = user.nick;
        user.expect(&format!(":confab.local 366 {nick} #h *")).await;
    }
    alice.expect("*bob!* JOIN #h").await;
    alice.send("@+typing=active TAGMSG #h").await;
    assert!(matches(
        &format!("@time=*;msgid=*;+typing=active :{A} TAGMSG #h"),
        &bob.line().await
    ));
    alice.send("@+example=1 PRIVMSG #h :kept").await;
    let live = bob.line().await;
    assert!(
        matches(
            &format!("@time=*;msgid=*;+example=1 :{A} PRIVMSG #h :kept"),
            &live
        ),
        "{live}"
    );
    bob.send("CHATHISTORY LATEST #h * 10").await;
    let start = bob.line().await;
    let id = start
        .strip_prefix(":confab.local BATCH +")
        .and_then(|r| r.strip_suffix(" chathistory #h"))
        .unwrap_or_else(|| panic!("{start}"))
        .to_string();
    let line = bob.line().await;
    assert!(
        matches(
            &format!("@time=*;msgid=*;batch={id} :{A} PRIVMSG #h :kept"),
            &line
        ),
        "{line}"
    );
    assert_eq!(bob.line().await, format!(":confab.local BATCH -{id}"));
    bob.sync().await;
    server.stop().await;
}
