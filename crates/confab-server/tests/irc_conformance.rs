//! IRC conformance as a table: for each rule of RFC 2812 and the modern IRC client
//! protocol documents, the commands that set the scene, the command under test and the
//! exact lines its sender must get back, in order. Every row runs against a fresh
//! server over raw sockets; a PING round trip marks the end of each reply, so nothing
//! waits on a timer. Rules that need more than one connection's lifetime (WHOWAS,
//! LUSERS, registration) are small tests after the table.

mod common;

use common::{Client as Raw, TestServer};

/// The server name every numeric comes from.
const S: &str = ":confab.local";

/// One IRC connection over a raw socket.
struct User {
    raw: Raw,
    syncs: u32,
}

impl User {
    /// Connects without registering.
    async fn unregistered(server: &TestServer) -> User {
        User {
            raw: Raw::connect(server.irc_addr).await,
            syncs: 0,
        }
    }

    /// Connects and registers `nick` (user name `nick`, real name `the nick`),
    /// returning the user and the lines of its welcome.
    async fn register(server: &TestServer, nick: &str) -> (User, Vec<String>) {
        let mut user = User::unregistered(server).await;
        user.send(&format!("NICK {nick}")).await;
        user.send(&format!("USER {nick} 0 * :the {nick}")).await;
        let welcome = user.sync().await;
        assert!(
            welcome.iter().any(|l| l.contains(" 001 ")),
            "{nick} registered: {welcome:?}"
        );
        (user, welcome)
    }

    async fn send(&mut self, line: &str) {
        self.raw.send(&format!("{line}\r")).await;
    }

    /// Everything the server sent until the answer to a fresh PING, which proves the
    /// server has answered every line sent before it.
    async fn sync(&mut self) -> Vec<String> {
        self.syncs += 1;
        let token = format!("sync{}", self.syncs);
        self.send(&format!("PING {token}")).await;
        let pong = format!("{S} PONG confab.local {token}");
        let mut lines = Vec::new();
        loop {
            let line = self.raw.line().await;
            let line = line.trim_end_matches('\r').to_string();
            if line == pong {
                return lines;
            }
            lines.push(line);
        }
    }

    /// Sends `line` and returns what came back for it.
    async fn ask(&mut self, line: &str) -> Vec<String> {
        self.send(line).await;
        self.sync().await
    }
}

/// A line matches a pattern equal to it, or one ending in `*` that it starts with
/// (for times and versions).
fn matches(pattern: &str, line: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(start) => line.starts_with(start),
        None => pattern == line,
    }
}

fn assert_lines(rule: &str, step: &str, expected: &[&str], got: &[String]) {
    let ok = expected.len() == got.len() && expected.iter().zip(got).all(|(p, l)| matches(p, l));
    assert!(
        ok,
        "{rule}: after {step:?}\n expected: {expected:#?}\n got: {got:#?}"
    );
}

/// One step of a row: user `who` (0 = ann, 1 = ben, 2 = cat) sends `line`; with
/// `expect`, exactly those lines must come back to that user.
struct Step {
    who: usize,
    line: &'static str,
    expect: Option<&'static [&'static str]>,
}

/// A step that sets the scene; its replies are not checked.
const fn set(who: usize, line: &'static str) -> Step {
    Step {
        who,
        line,
        expect: None,
    }
}

/// A step whose replies are checked.
const fn check(who: usize, line: &'static str, expect: &'static [&'static str]) -> Step {
    Step {
        who,
        line,
        expect: Some(expect),
    }
}

struct Row {
    rule: &'static str,
    steps: &'static [Step],
}

const NICKS: [&str; 3] = ["ann", "ben", "cat"];

/// What ann sees of `MODE #c` on a fresh `+nt` channel: the modes are unchanged.
const MODES_NT: &[&str] = &[
    ":confab.local 324 ann #c :+nt",
    ":confab.local 329 ann #c *",
];

const ROWS: &[Row] = &[
    // MODE +k: a key that could not be given to JOIN is refused, and not set.
    Row {
        rule: "MODE +k with an empty key is ERR_INVALIDMODEPARAM and sets nothing",
        steps: &[
            set(0, "JOIN #c"),
            check(
                0,
                "MODE #c +k :",
                &[":confab.local 696 ann #c k * :Key is not well-formed"],
            ),
            check(0, "MODE #c", MODES_NT),
        ],
    },
    Row {
        rule: "MODE +k with a key containing a space is ERR_INVALIDMODEPARAM",
        steps: &[
            set(0, "JOIN #c"),
            check(
                0,
                "MODE #c +k :a b",
                &[":confab.local 696 ann #c k * :Key is not well-formed"],
            ),
            check(0, "MODE #c", MODES_NT),
        ],
    },
    Row {
        rule: "MODE +k with a key of only a space is ERR_INVALIDMODEPARAM",
        steps: &[
            set(0, "JOIN #c"),
            check(
                0,
                "MODE #c +k : ",
                &[":confab.local 696 ann #c k * :Key is not well-formed"],
            ),
            check(0, "MODE #c", MODES_NT),
        ],
    },
    Row {
        rule: "MODE +k with a good key sets it",
        steps: &[
            set(0, "JOIN #c"),
            check(0, "MODE #c +k pw", &[":ann!~ann@127.0.0.1 MODE #c +k pw"]),
        ],
    },
    // MODE +l: only a number above zero is a limit.
    Row {
        rule: "MODE +l 0 is ERR_INVALIDMODEPARAM",
        steps: &[
            set(0, "JOIN #c"),
            check(
                0,
                "MODE #c +l 0",
                &[":confab.local 696 ann #c l 0 :Invalid limit: a number above 0"],
            ),
            check(0, "MODE #c", MODES_NT),
        ],
    },
    Row {
        rule: "MODE +l with a negative value is ERR_INVALIDMODEPARAM",
        steps: &[
            set(0, "JOIN #c"),
            check(
                0,
                "MODE #c +l -5",
                &[":confab.local 696 ann #c l -5 :Invalid limit: a number above 0"],
            ),
            check(0, "MODE #c", MODES_NT),
        ],
    },
    Row {
        rule: "MODE +l with a non-numeric value is ERR_INVALIDMODEPARAM",
        steps: &[
            set(0, "JOIN #c"),
            check(
                0,
                "MODE #c +l ten",
                &[":confab.local 696 ann #c l ten :Invalid limit: a number above 0"],
            ),
            check(0, "MODE #c", MODES_NT),
        ],
    },
    Row {
        rule: "MODE +l with an empty value is ERR_INVALIDMODEPARAM",
        steps: &[
            set(0, "JOIN #c"),
            check(
                0,
                "MODE #c +l :",
                &[":confab.local 696 ann #c l * :Invalid limit: a number above 0"],
            ),
            check(0, "MODE #c", MODES_NT),
        ],
    },
    Row {
        rule: "MODE with a good and a bad change applies the good one",
        steps: &[
            set(0, "JOIN #c"),
            check(
                0,
                "MODE #c +ml 0",
                &[
                    ":confab.local 696 ann #c l 0 :Invalid limit: a number above 0",
                    ":ann!~ann@127.0.0.1 MODE #c +m",
                ],
            ),
        ],
    },
    // INFO.
    Row {
        rule: "INFO is RPL_INFO lines then RPL_ENDOFINFO",
        steps: &[check(
            0,
            "INFO",
            &[
                ":confab.local 371 ann :confab-*",
                ":confab.local 371 ann :*",
                ":confab.local 371 ann :Running since *",
                ":confab.local 374 ann :End of INFO list",
            ],
        )],
    },
    Row {
        rule: "INFO, VERSION, TIME and MOTD of another server are ERR_NOSUCHSERVER",
        steps: &[
            check(
                0,
                "INFO other.example",
                &[":confab.local 402 ann other.example :No such server"],
            ),
            check(
                0,
                "VERSION other.example",
                &[":confab.local 402 ann other.example :No such server"],
            ),
            check(
                0,
                "TIME other.example",
                &[":confab.local 402 ann other.example :No such server"],
            ),
            check(
                0,
                "MOTD other.example",
                &[":confab.local 402 ann other.example :No such server"],
            ),
            check(
                0,
                "TIME *.local",
                &[":confab.local 391 ann confab.local :*"],
            ),
            check(
                0,
                "INFO ben",
                &[
                    ":confab.local 371 ann :confab-*",
                    ":confab.local 371 ann :*",
                    ":confab.local 371 ann :Running since *",
                    ":confab.local 374 ann :End of INFO list",
                ],
            ),
        ],
    },
    // Channels that do not exist are 403; channels you are not in are 442.
    Row {
        rule: "KICK on a channel that does not exist is ERR_NOSUCHCHANNEL",
        steps: &[check(
            0,
            "KICK #nope ben",
            &[":confab.local 403 ann #nope :No such channel"],
        )],
    },
    Row {
        rule: "KICK on a channel you are not in is ERR_NOTONCHANNEL",
        steps: &[
            set(1, "JOIN #c"),
            check(
                0,
                "KICK #c ben",
                &[":confab.local 442 ann #c :You're not on that channel"],
            ),
        ],
    },
    Row {
        rule: "TOPIC set on a channel that does not exist is ERR_NOSUCHCHANNEL",
        steps: &[check(
            0,
            "TOPIC #nope :hello",
            &[":confab.local 403 ann #nope :No such channel"],
        )],
    },
    Row {
        rule: "TOPIC asked of a channel that does not exist is ERR_NOSUCHCHANNEL",
        steps: &[check(
            0,
            "TOPIC #nope",
            &[":confab.local 403 ann #nope :No such channel"],
        )],
    },
    Row {
        rule: "TOPIC set on a channel you are not in is ERR_NOTONCHANNEL",
        steps: &[
            set(1, "JOIN #c"),
            check(
                0,
                "TOPIC #c :hello",
                &[":confab.local 442 ann #c :You're not on that channel"],
            ),
        ],
    },
    Row {
        rule: "PART of a channel that does not exist is ERR_NOSUCHCHANNEL",
        steps: &[check(
            0,
            "PART #nope",
            &[":confab.local 403 ann #nope :No such channel"],
        )],
    },
    Row {
        rule: "PART of a channel you are not in is ERR_NOTONCHANNEL",
        steps: &[
            set(1, "JOIN #c"),
            check(
                0,
                "PART #c",
                &[":confab.local 442 ann #c :You're not on that channel"],
            ),
        ],
    },
    Row {
        rule: "a secret channel you are not in does not exist for you",
        steps: &[
            set(1, "JOIN #c"),
            set(1, "MODE #c +s"),
            check(
                0,
                "TOPIC #c :hello",
                &[":confab.local 403 ann #c :No such channel"],
            ),
        ],
    },
    // NAMES.
    Row {
        rule: "NAMES of a public channel has the = symbol",
        steps: &[
            set(0, "JOIN #c"),
            check(
                0,
                "NAMES #c",
                &[
                    ":confab.local 353 ann = #c :@ann",
                    ":confab.local 366 ann #c :End of /NAMES list.",
                ],
            ),
        ],
    },
    Row {
        rule: "NAMES of a secret channel has the @ symbol",
        steps: &[
            set(0, "JOIN #c"),
            set(0, "MODE #c +s"),
            check(
                0,
                "NAMES #c",
                &[
                    ":confab.local 353 ann @ #c :@ann",
                    ":confab.local 366 ann #c :End of /NAMES list.",
                ],
            ),
        ],
    },
    Row {
        rule: "NAMES from outside a channel leaves out its invisible members",
        steps: &[
            set(1, "MODE ben +i"),
            set(1, "JOIN #c"),
            set(2, "JOIN #c"),
            check(
                0,
                "NAMES #c",
                &[
                    ":confab.local 353 ann = #c :cat",
                    ":confab.local 366 ann #c :End of /NAMES list.",
                ],
            ),
        ],
    },
    // Single commands with their own error numerics.
    Row {
        rule: "PING without a token is ERR_NOORIGIN",
        steps: &[check(
            0,
            "PING",
            &[":confab.local 409 ann :No origin specified"],
        )],
    },
    Row {
        rule: "INVITE of someone already in the channel is ERR_USERONCHANNEL",
        steps: &[
            set(0, "JOIN #c"),
            set(1, "JOIN #c"),
            check(
                0,
                "INVITE ben #c",
                &[":confab.local 443 ann ben #c :is already on channel"],
            ),
        ],
    },
    Row {
        rule: "INVITE to a channel you are not in is ERR_NOTONCHANNEL",
        steps: &[
            set(1, "JOIN #c"),
            check(
                0,
                "INVITE cat #c",
                &[":confab.local 442 ann #c :You're not on that channel"],
            ),
        ],
    },
    Row {
        rule: "INVITE of a nick nobody has is ERR_NOSUCHNICK",
        steps: &[
            set(0, "JOIN #c"),
            check(
                0,
                "INVITE nobody #c",
                &[":confab.local 401 ann nobody :No such nick/channel"],
            ),
        ],
    },
    Row {
        rule: "WALLOPS from a non-operator is ERR_NOPRIVILEGES",
        steps: &[check(
            0,
            "WALLOPS :hello all",
            &[":confab.local 481 ann :Permission Denied- You're not an IRC operator"],
        )],
    },
    // WHO with a mask.
    Row {
        rule: "WHO * lists visible users who share no channel with the asker",
        steps: &[check(
            0,
            "WHO *",
            &[
                ":confab.local 352 ann * ~ann 127.0.0.1 confab.local ann H :0 the ann",
                ":confab.local 352 ann * ~ben 127.0.0.1 confab.local ben H :0 the ben",
                ":confab.local 352 ann * ~cat 127.0.0.1 confab.local cat H :0 the cat",
                ":confab.local 315 ann * :End of /WHO list.",
            ],
        )],
    },
    Row {
        rule: "WHO with a nick mask lists the users whose nick matches",
        steps: &[check(
            0,
            "WHO b?n*",
            &[
                ":confab.local 352 ann * ~ben 127.0.0.1 confab.local ben H :0 the ben",
                ":confab.local 315 ann b?n* :End of /WHO list.",
            ],
        )],
    },
    Row {
        rule: "WHO matches user names",
        steps: &[check(
            0,
            "WHO ~c*",
            &[
                ":confab.local 352 ann * ~cat 127.0.0.1 confab.local cat H :0 the cat",
                ":confab.local 315 ann ~c* :End of /WHO list.",
            ],
        )],
    },
    Row {
        rule: "WHO matches real names",
        steps: &[check(
            0,
            "WHO the?ben",
            &[
                ":confab.local 352 ann * ~ben 127.0.0.1 confab.local ben H :0 the ben",
                ":confab.local 315 ann the?ben :End of /WHO list.",
            ],
        )],
    },
    Row {
        rule: "WHO matches hosts",
        steps: &[check(
            0,
            "WHO 127.0.0.*",
            &[
                ":confab.local 352 ann * ~ann 127.0.0.1 confab.local ann H :0 the ann",
                ":confab.local 352 ann * ~ben 127.0.0.1 confab.local ben H :0 the ben",
                ":confab.local 352 ann * ~cat 127.0.0.1 confab.local cat H :0 the cat",
                ":confab.local 315 ann 127.0.0.* :End of /WHO list.",
            ],
        )],
    },
    Row {
        rule: "WHO * leaves out invisible users who share no channel with the asker",
        steps: &[
            set(2, "MODE cat +i"),
            set(1, "AWAY :out"),
            check(
                0,
                "WHO *",
                &[
                    ":confab.local 352 ann * ~ann 127.0.0.1 confab.local ann H :0 the ann",
                    ":confab.local 352 ann * ~ben 127.0.0.1 confab.local ben G :0 the ben",
                    ":confab.local 315 ann * :End of /WHO list.",
                ],
            ),
        ],
    },
    Row {
        rule: "WHO * lists invisible users who share a channel with the asker",
        steps: &[
            set(2, "MODE cat +i"),
            set(0, "JOIN #c"),
            set(2, "JOIN #c"),
            check(
                0,
                "WHO c*",
                &[
                    ":confab.local 352 ann * ~cat 127.0.0.1 confab.local cat H :0 the cat",
                    ":confab.local 315 ann c* :End of /WHO list.",
                ],
            ),
        ],
    },
    Row {
        rule: "WHO mask lists an invisible asker to itself",
        steps: &[
            set(0, "MODE ann +i"),
            check(
                0,
                "WHO a*",
                &[
                    ":confab.local 352 ann * ~ann 127.0.0.1 confab.local ann H :0 the ann",
                    ":confab.local 315 ann a* :End of /WHO list.",
                ],
            ),
        ],
    },
    Row {
        rule: "WHO of an exact nick lists that user, invisible or not",
        steps: &[
            set(2, "MODE cat +i"),
            check(
                0,
                "WHO cat",
                &[
                    ":confab.local 352 ann * ~cat 127.0.0.1 confab.local cat H :0 the cat",
                    ":confab.local 315 ann cat :End of /WHO list.",
                ],
            ),
        ],
    },
    Row {
        rule: "WHO of a channel from outside leaves out its invisible members",
        steps: &[
            set(1, "MODE ben +i"),
            set(1, "JOIN #c"),
            set(2, "JOIN #c"),
            check(
                0,
                "WHO #c",
                &[
                    ":confab.local 352 ann #c ~cat 127.0.0.1 confab.local cat H :0 the cat",
                    ":confab.local 315 ann #c :End of /WHO list.",
                ],
            ),
        ],
    },
    // WHOX.
    Row {
        rule: "WHOX answers 354 with the token and the fields in the spec's order",
        steps: &[
            set(0, "JOIN #c"),
            set(1, "JOIN #c"),
            check(
                0,
                "WHO #c %tnuhar,42",
                &[
                    ":confab.local 354 ann 42 ~ann 127.0.0.1 ann 0 :the ann",
                    ":confab.local 354 ann 42 ~ben 127.0.0.1 ben 0 :the ben",
                    ":confab.local 315 ann #c :End of /WHO list.",
                ],
            ),
        ],
    },
    Row {
        rule: "WHOX orders fields as the spec does, whatever order they were asked in",
        steps: &[
            set(0, "JOIN #c"),
            check(
                0,
                "WHO #c %fnsc",
                &[
                    ":confab.local 354 ann #c confab.local ann H@",
                    ":confab.local 315 ann #c :End of /WHO list.",
                ],
            ),
        ],
    },
    Row {
        rule: "WHOX works with a mask",
        steps: &[check(
            0,
            "WHO b* %cnt,7",
            &[
                ":confab.local 354 ann 7 * ben",
                ":confab.local 315 ann b* :End of /WHO list.",
            ],
        )],
    },
    // Parameters, registration and other numerics.
    Row {
        rule: "commands without their parameters are ERR_NEEDMOREPARAMS naming the command",
        steps: &[
            check(
                0,
                "JOIN",
                &[":confab.local 461 ann JOIN :Not enough parameters"],
            ),
            check(
                0,
                "PART",
                &[":confab.local 461 ann PART :Not enough parameters"],
            ),
            check(
                0,
                "KICK #c",
                &[":confab.local 461 ann KICK :Not enough parameters"],
            ),
            check(
                0,
                "INVITE ben",
                &[":confab.local 461 ann INVITE :Not enough parameters"],
            ),
            check(
                0,
                "TOPIC",
                &[":confab.local 461 ann TOPIC :Not enough parameters"],
            ),
            check(
                0,
                "MODE",
                &[":confab.local 461 ann MODE :Not enough parameters"],
            ),
            check(
                0,
                "WHOIS",
                &[":confab.local 461 ann WHOIS :Not enough parameters"],
            ),
            check(
                0,
                "WHOWAS",
                &[":confab.local 461 ann WHOWAS :Not enough parameters"],
            ),
            check(
                0,
                "ISON",
                &[":confab.local 461 ann ISON :Not enough parameters"],
            ),
            check(
                0,
                "USERHOST",
                &[":confab.local 461 ann USERHOST :Not enough parameters"],
            ),
            check(
                0,
                "OPER ann",
                &[":confab.local 461 ann OPER :Not enough parameters"],
            ),
            check(
                0,
                "KILL ben",
                &[":confab.local 461 ann KILL :Not enough parameters"],
            ),
            check(
                0,
                "WALLOPS",
                &[":confab.local 461 ann WALLOPS :Not enough parameters"],
            ),
        ],
    },
    Row {
        rule: "an unknown command is ERR_UNKNOWNCOMMAND",
        steps: &[check(
            0,
            "FROBNICATE x",
            &[":confab.local 421 ann FROBNICATE :Unknown command"],
        )],
    },
    Row {
        rule: "USER or PASS after registration is ERR_ALREADYREGISTERED",
        steps: &[
            check(
                0,
                "USER a 0 * :again",
                &[":confab.local 462 ann :You may not reregister"],
            ),
            check(
                0,
                "PASS secret",
                &[":confab.local 462 ann :You may not reregister"],
            ),
        ],
    },
    Row {
        rule: "NICK errors: none given 431, erroneous 432, in use 433",
        steps: &[
            check(0, "NICK", &[":confab.local 431 ann :No nickname given"]),
            check(
                0,
                "NICK ben",
                &[":confab.local 433 ann ben :Nickname is already in use"],
            ),
            check(0, "NICK bad!nick", &[":confab.local 432 ann bad!nick :*"]),
            check(0, "NICK Ann", &[":ann!~ann@127.0.0.1 NICK Ann"]),
        ],
    },
    Row {
        rule: "PRIVMSG errors: 411, 412, 401, 404",
        steps: &[
            check(
                0,
                "PRIVMSG",
                &[":confab.local 411 ann :No recipient given (PRIVMSG)"],
            ),
            check(
                0,
                "PRIVMSG ben",
                &[":confab.local 412 ann :No text to send"],
            ),
            check(
                0,
                "PRIVMSG nobody :hi",
                &[":confab.local 401 ann nobody :No such nick/channel"],
            ),
            set(1, "JOIN #c"),
            check(
                0,
                "PRIVMSG #c :hi",
                &[":confab.local 404 ann #c :Cannot send to channel"],
            ),
            check(0, "NOTICE nobody :hi", &[]),
        ],
    },
    Row {
        rule: "JOIN refusals: 471 full, 473 invite-only, 474 banned, 475 bad key",
        steps: &[
            set(1, "JOIN #c"),
            set(1, "MODE #c +l 1"),
            check(
                0,
                "JOIN #c",
                &[":confab.local 471 ann #c :Cannot join channel (+l)"],
            ),
            set(1, "MODE #c -l+i"),
            check(
                0,
                "JOIN #c",
                &[":confab.local 473 ann #c :Cannot join channel (+i)"],
            ),
            set(1, "MODE #c -i+b ann!*@*"),
            check(
                0,
                "JOIN #c",
                &[":confab.local 474 ann #c :Cannot join channel (+b)"],
            ),
            set(1, "MODE #c -b+k ann!*@* pw"),
            check(
                0,
                "JOIN #c nope",
                &[":confab.local 475 ann #c :Cannot join channel (+k)"],
            ),
        ],
    },
    Row {
        rule: "channel operator commands from a non-operator are ERR_CHANOPRIVSNEEDED",
        steps: &[
            set(1, "JOIN #c"),
            set(0, "JOIN #c"),
            check(
                0,
                "TOPIC #c :mine",
                &[":confab.local 482 ann #c :You're not channel operator"],
            ),
            check(
                0,
                "KICK #c ben",
                &[":confab.local 482 ann #c :You're not channel operator"],
            ),
            check(
                0,
                "MODE #c +m",
                &[":confab.local 482 ann #c :You're not channel operator"],
            ),
        ],
    },
    Row {
        rule: "KICK of someone not in the channel is ERR_USERNOTINCHANNEL",
        steps: &[
            set(0, "JOIN #c"),
            check(
                0,
                "KICK #c cat",
                &[":confab.local 441 ann cat #c :They aren't on that channel"],
            ),
        ],
    },
    Row {
        rule: "AWAY sets 306 and clears 305",
        steps: &[
            check(
                0,
                "AWAY :lunch",
                &[":confab.local 306 ann :You have been marked as being away"],
            ),
            check(
                0,
                "AWAY",
                &[":confab.local 305 ann :You are no longer marked as being away"],
            ),
        ],
    },
    Row {
        rule: "ISON and USERHOST list who is online",
        steps: &[
            set(1, "AWAY :out"),
            check(
                0,
                "ISON ben nobody cat",
                &[":confab.local 303 ann :ben cat"],
            ),
            check(
                0,
                "USERHOST ben cat nobody",
                &[":confab.local 302 ann :ben=-~ben@127.0.0.1 cat=+~cat@127.0.0.1"],
            ),
        ],
    },
    Row {
        rule: "MOTD is 375, 372 lines and 376",
        steps: &[check(
            0,
            "MOTD",
            &[
                ":confab.local 375 ann :- confab.local Message of the day - ",
                ":confab.local 372 ann :- *",
                ":confab.local 376 ann :End of /MOTD command.",
            ],
        )],
    },
    Row {
        rule: "user MODE: 221, 501 unknown flag, 502 for others",
        steps: &[
            check(0, "MODE ann", &[":confab.local 221 ann :+"]),
            check(
                0,
                "MODE ann +z",
                &[":confab.local 501 ann :Unknown MODE flag"],
            ),
            check(
                0,
                "MODE ben +i",
                &[":confab.local 502 ann :Can't change mode for other users"],
            ),
        ],
    },
    Row {
        rule: "KILL and OPER without rights",
        steps: &[
            check(
                0,
                "KILL ben :bye",
                &[":confab.local 481 ann :Permission Denied- You're not an IRC operator"],
            ),
            check(
                0,
                "OPER ann pw",
                &[":confab.local 491 ann :No O-lines for your host"],
            ),
        ],
    },
    Row {
        rule: "WHOIS of a nick nobody has is 401 then 318",
        steps: &[check(
            0,
            "WHOIS nobody",
            &[
                ":confab.local 401 ann nobody :No such nick/channel",
                ":confab.local 318 ann nobody :End of /WHOIS list.",
            ],
        )],
    },
];

#[tokio::test]
async fn conformance_table() {
    for row in ROWS {
        let server = TestServer::start().await;
        let mut users = Vec::new();
        for nick in NICKS {
            users.push(User::register(&server, nick).await.0);
        }
        for step in row.steps {
            let got = users[step.who].ask(step.line).await;
            // Whatever the step caused for the others reaches them before their next
            // PING is answered; reading it now keeps later checks to their own replies.
            for (i, user) in users.iter_mut().enumerate() {
                if i != step.who {
                    user.sync().await;
                }
            }
            if let Some(expected) = step.expect {
                assert_lines(row.rule, step.line, expected, &got);
            }
        }
        // Closed connections let the server stop without waiting out its grace.
        drop(users);
        server.stop().await;
    }
}

/// `USER` with an empty real name is refused (461) and the client stays unregistered
/// until it sends a proper one.
#[tokio::test]
async fn user_with_an_empty_realname_is_refused() {
    let server = TestServer::start().await;
    let mut dee = User::unregistered(&server).await;
    dee.send("NICK dee").await;
    let got = dee.ask("USER dee 0 * :").await;
    assert_lines(
        "USER with an empty realname is ERR_NEEDMOREPARAMS",
        "USER dee 0 * :",
        &[":confab.local 461 dee USER :Not enough parameters"],
        &got,
    );
    let got = dee.ask("JOIN #c").await;
    assert_lines(
        "still unregistered",
        "JOIN #c",
        &[":confab.local 451 dee :You have not registered"],
        &got,
    );
    let got = dee.ask("USER dee 0 * :Dee").await;
    assert!(got[0].starts_with(":confab.local 001 dee "), "{got:?}");
    server.stop().await;
}

/// Before registration, a NICK already in use is refused at once.
#[tokio::test]
async fn nick_in_use_is_refused_before_user() {
    let server = TestServer::start().await;
    let (_ann, _) = User::register(&server, "ann").await;
    let mut late = User::unregistered(&server).await;
    let got = late.ask("NICK ann").await;
    assert_lines(
        "NICK in use before registration is ERR_NICKNAMEINUSE",
        "NICK ann",
        &[":confab.local 433 * ann :Nickname is already in use"],
        &got,
    );
    server.stop().await;
}

/// The LUSERS lines ann gets on a single server: `visible` and `invisible` users,
/// `unknown` connections still registering, `rooms` channels and at most `max` users
/// at once so far.
fn lusers_lines(
    visible: usize,
    invisible: usize,
    unknown: usize,
    rooms: usize,
    max: usize,
) -> Vec<String> {
    let users = visible + invisible;
    vec![
        format!("{S} 251 ann :There are {visible} users and {invisible} invisible on 1 servers"),
        format!("{S} 252 ann 0 :operator(s) online"),
        format!("{S} 253 ann {unknown} :unknown connection(s)"),
        format!("{S} 254 ann {rooms} :channels formed"),
        format!("{S} 255 ann :I have {users} clients and 0 servers"),
        format!("{S} 265 ann {users} {max} :Current local users {users}, max {max}"),
        format!("{S} 266 ann {users} {max} :Current global users {users}, max {max}"),
    ]
}

/// LUSERS counts agree with each other and with who is connected: unregistered
/// connections (253), visible and invisible users (251), this server's clients (255,
/// 265) and all users (266).
#[tokio::test]
async fn lusers_counts_agree_with_who_is_connected() {
    let server = TestServer::start().await;
    let (mut ann, _) = User::register(&server, "ann").await;
    let (mut ben, _) = User::register(&server, "ben").await;
    ben.ask("MODE ben +i").await;
    // A connection that has not registered: PING is allowed before registration, so
    // its PONG proves the server holds the connection.
    let mut pending = User::unregistered(&server).await;
    pending.sync().await;
    let expected = lusers_lines(1, 1, 1, 0, 2);
    let expected: Vec<&str> = expected.iter().map(String::as_str).collect();
    assert_lines("LUSERS", "LUSERS", &expected, &ann.ask("LUSERS").await);

    pending.send("NICK cat").await;
    let welcome = pending.ask("USER cat 0 * :the cat").await;
    // Its own welcome counts it as registered.
    assert!(
        welcome
            .iter()
            .any(|l| l == &format!("{S} 253 cat 0 :unknown connection(s)")),
        "{welcome:?}"
    );
    ann.ask("JOIN #c").await;
    let expected = lusers_lines(2, 1, 0, 1, 3);
    let expected: Vec<&str> = expected.iter().map(String::as_str).collect();
    assert_lines("LUSERS", "LUSERS", &expected, &ann.ask("LUSERS").await);

    // Once cat has gone, the highest counts stay where they were. Cat shares #c with
    // ann, so ann's QUIT line shows the server has let cat go.
    pending.ask("JOIN #c").await;
    ann.sync().await;
    pending.send("QUIT").await;
    while !ann.sync().await.iter().any(|l| l.starts_with(":cat!")) {}
    let expected = lusers_lines(1, 1, 0, 1, 3);
    let expected: Vec<&str> = expected.iter().map(String::as_str).collect();
    assert_lines("LUSERS", "LUSERS", &expected, &ann.ask("LUSERS").await);
    server.stop().await;
}

/// WHOWAS: newest first, each entry 314 then 312, a positive count caps the entries,
/// zero or a negative count gives them all, 369 always last, 406 for a nick never seen.
#[tokio::test]
async fn whowas_follows_the_count() {
    let server = TestServer::start().await;
    let (mut ann, _) = User::register(&server, "ann").await;
    ann.ask("JOIN #c").await;
    for realname in ["first ben", "second ben"] {
        let mut ben = User::unregistered(&server).await;
        ben.send("NICK ben").await;
        ben.ask(&format!("USER ben 0 * :{realname}")).await;
        ben.ask("JOIN #c").await;
        ben.send("QUIT :bye").await;
        // Ann sees the QUIT once the server has let ben go.
        loop {
            let lines = ann.sync().await;
            if lines
                .iter()
                .any(|l| l.starts_with(":ben!~ben@127.0.0.1 QUIT"))
            {
                break;
            }
        }
    }
    let entry = |realname: &str| {
        [
            format!("{S} 314 ann ben ~ben 127.0.0.1 * :{realname}"),
            format!("{S} 312 ann ben confab.local :confab"),
        ]
    };
    let end = format!("{S} 369 ann ben :End of WHOWAS");
    let newest = entry("second ben");
    let oldest = entry("first ben");
    let all: Vec<&str> = newest
        .iter()
        .chain(&oldest)
        .chain([&end])
        .map(String::as_str)
        .collect();
    let one: Vec<&str> = newest.iter().chain([&end]).map(String::as_str).collect();
    for (command, expected) in [
        ("WHOWAS ben", &all),
        ("WHOWAS ben 1", &one),
        ("WHOWAS ben 2", &all),
        ("WHOWAS ben 0", &all),
        ("WHOWAS ben -1", &all),
    ] {
        assert_lines("WHOWAS", command, expected, &ann.ask(command).await);
    }
    assert_lines(
        "WHOWAS of a nick never seen",
        "WHOWAS nobody",
        &[
            ":confab.local 406 ann nobody :There was no such nickname",
            ":confab.local 369 ann nobody :End of WHOWAS",
        ],
        &ann.ask("WHOWAS nobody").await,
    );
    server.stop().await;
}

/// ISUPPORT advertises WHOX, since WHO answers it.
#[tokio::test]
async fn isupport_advertises_whox() {
    let server = TestServer::start().await;
    let (_ann, welcome) = User::register(&server, "ann").await;
    assert!(
        welcome
            .iter()
            .any(|l| l.contains(" 005 ") && l.split(' ').any(|t| t == "WHOX")),
        "{welcome:?}"
    );
    server.stop().await;
}

/// With operators configured and no MOTD: an operator's WALLOPS is accepted (it goes
/// to users with `+w`, which confab does not have), `WHO mask o` lists operators only,
/// LUSERS counts them (252), and MOTD is ERR_NOMOTD.
#[tokio::test]
async fn operators_and_a_missing_motd() {
    let irc = confab_server::IrcConfig {
        motd: Vec::new(),
        opers: vec![("boss".into(), "pw".into())],
        ..confab_server::IrcConfig::default()
    };
    let server = TestServer::with_config(confab_server::Limits::default(), irc).await;
    let (mut ann, welcome) = User::register(&server, "ann").await;
    assert!(
        welcome.contains(&format!("{S} 422 ann :MOTD File is missing")),
        "{welcome:?}"
    );
    let (_ben, _) = User::register(&server, "ben").await;
    assert_lines(
        "OPER",
        "OPER boss pw",
        &[
            ":confab.local 381 ann :You are now an IRC operator",
            ":ann MODE ann +o",
        ],
        &ann.ask("OPER boss pw").await,
    );
    assert_lines("WALLOPS", "WALLOPS :hi", &[], &ann.ask("WALLOPS :hi").await);
    assert_lines(
        "WHO o",
        "WHO * o",
        &[
            ":confab.local 352 ann * ~ann 127.0.0.1 confab.local ann H* :0 the ann",
            ":confab.local 315 ann * :End of /WHO list.",
        ],
        &ann.ask("WHO * o").await,
    );
    let lusers = ann.ask("LUSERS").await;
    assert!(
        lusers.contains(&format!("{S} 252 ann 1 :operator(s) online")),
        "{lusers:?}"
    );
    assert_lines(
        "MOTD",
        "MOTD",
        &[":confab.local 422 ann :MOTD File is missing"],
        &ann.ask("MOTD").await,
    );
    server.stop().await;
}
