//! Table tests of the line protocol's parser and encoder.

use std::sync::Arc;

use super::*;
use confab_core::{Name, RoomName, Source};

#[test]
fn parses_what_users_type() {
    let cases: &[(&str, Input)] = &[
        ("", Input::Empty),
        ("   ", Input::Empty),
        ("#alice", Input::Register("alice")),
        ("# alice ", Input::Register("alice")),
        (
            "@bob:hi there",
            Input::Direct {
                to: "bob",
                text: "hi there",
            },
        ),
        (
            "@bob: hi",
            Input::Direct {
                to: "bob",
                text: "hi",
            },
        ),
        ("@bob hi", Input::Usage("@user:message")),
        (
            "/msg bob hi there",
            Input::Direct {
                to: "bob",
                text: "hi there",
            },
        ),
        ("/msg bob", Input::Usage("/msg USER MESSAGE")),
        ("hello world", Input::Say("hello world")),
        ("//slash", Input::Say("/slash")),
        ("/me waves", Input::Action("waves")),
        ("/me", Input::Usage("/me ACTION")),
        (
            "/join rust",
            Input::Join {
                room: "rust",
                key: None,
            },
        ),
        (
            "/JOIN #rust",
            Input::Join {
                room: "rust",
                key: None,
            },
        ),
        (
            "/join #vault sesame",
            Input::Join {
                room: "vault",
                key: Some("sesame"),
            },
        ),
        ("/join a b c", Input::Usage("/join ROOM [KEY]")),
        ("/join", Input::Usage("/join ROOM [KEY]")),
        (
            "/part",
            Input::Part {
                room: None,
                reason: None,
            },
        ),
        (
            "/part rust see you",
            Input::Part {
                room: Some("rust"),
                reason: Some("see you"),
            },
        ),
        ("/rooms", Input::Rooms),
        ("/who", Input::Who(None)),
        ("/who #rust", Input::Who(Some("rust"))),
        ("/nick bob", Input::Nick("bob")),
        ("/nick", Input::Usage("/nick NEW")),
        ("/help", Input::Help),
        ("/ping", Input::Ping),
        (
            "/history",
            Input::History {
                target: None,
                count: None,
            },
        ),
        (
            "/history 10",
            Input::History {
                target: None,
                count: Some(10),
            },
        ),
        (
            "/history #rust 5",
            Input::History {
                target: Some("rust"),
                count: Some(5),
            },
        ),
        (
            "/history @bob",
            Input::History {
                target: Some("@bob"),
                count: None,
            },
        ),
        ("/history a b", Input::Usage("/history [ROOM|@USER] [N]")),
        ("/quit", Input::Quit(None)),
        ("/quit gone fishing", Input::Quit(Some("gone fishing"))),
        ("q", Input::Quit(None)),
        ("quit", Input::Quit(None)),
        ("exit", Input::Quit(None)),
        ("bye bye", Input::Quit(None)),
        (" bye bye ", Input::Quit(None)),
        ("quitting", Input::Say("quitting")),
        ("/frobnicate", Input::Unknown("frobnicate")),
    ];
    for (line, expected) in cases {
        assert_eq!(&parse_input(line), expected, "parsing {line:?}");
    }
}

fn source(name: &str) -> Arc<Source> {
    Arc::new(Source {
        name: Name::parse(name).unwrap(),
        user: name.into(),
        host: "127.0.0.1".into(),
        realname: name.into(),
        account: None,
        session: 0,
        bot: false,
    })
}

fn message(to: Target, kind: MessageKind, text: &str) -> Event {
    Event::Message(Message {
        id: 1,
        time_ms: 0,
        from: source("alice"),
        to,
        kind,
        text: text.into(),
        tags: None,
    })
}

#[test]
fn encodes_events_as_lines_that_parse_back() {
    let lobby = || Target::Room(RoomName::parse("lobby").unwrap());
    let bob = || Target::User(Name::parse("bob").unwrap());
    let cases = [
        (
            message(lobby(), MessageKind::Normal, "hi: there"),
            "[lobby] alice: hi: there\n",
            ServerLine::Room {
                room: "lobby",
                from: "alice",
                kind: MessageKind::Normal,
                text: "hi: there",
            },
        ),
        (
            message(lobby(), MessageKind::Action, "waves"),
            "[lobby] * alice waves\n",
            ServerLine::Room {
                room: "lobby",
                from: "alice",
                kind: MessageKind::Action,
                text: "waves",
            },
        ),
        (
            message(bob(), MessageKind::Normal, "psst"),
            "[dm] alice: psst\n",
            ServerLine::Direct {
                from: "alice",
                kind: MessageKind::Normal,
                text: "psst",
            },
        ),
        (
            message(bob(), MessageKind::Notice, "note"),
            "[dm] -alice- note\n",
            ServerLine::Direct {
                from: "alice",
                kind: MessageKind::Notice,
                text: "note",
            },
        ),
        (
            Event::Registered {
                name: Name::parse("alice").unwrap(),
            },
            "* Your user detail saved as : alice\n",
            ServerLine::Info("Your user detail saved as : alice"),
        ),
        (
            Event::Error(ChatError::NotRegistered),
            "! Register first by sending #yourname\n",
            ServerLine::Error("Register first by sending #yourname"),
        ),
    ];
    for (event, line, parsed) in cases {
        let bytes = encode_event(&event);
        assert_eq!(std::str::from_utf8(&bytes).unwrap(), line);
        assert_eq!(parse_server_line(line.trim_end()), parsed);
    }
}

#[test]
fn control_characters_in_text_are_neutralised() {
    let event = message(
        Target::Room(RoomName::parse("lobby").unwrap()),
        MessageKind::Normal,
        "\x1b[31mred\ttab",
    );
    assert_eq!(
        &encode_event(&event)[..],
        "[lobby] alice: \u{fffd}[31mred\ttab\n".as_bytes()
    );
}

#[test]
fn only_errors_start_with_bang() {
    let events = [
        Event::Joined {
            room: RoomName::parse("x").unwrap(),
            who: source("alice"),
            history_until: 0,
            away: None,
        },
        Event::Quit {
            who: source("alice"),
            reason: "! gotcha".into(),
        },
        message(
            Target::Room(RoomName::parse("x").unwrap()),
            MessageKind::Normal,
            "! fake error",
        ),
    ];
    for event in events {
        assert!(!encode_event(&event).starts_with(b"!"), "{event:?}");
    }
}

mod properties {
    use proptest::prelude::*;

    use super::super::*;
    use crate::framing::{Frame, LineDecoder};

    proptest! {
        /// The server batches lines that `is_message` accepts; a command slipping
        /// through would run before the messages sent ahead of it.
        #[test]
        fn is_message_agrees_with_the_parser(line in "[#/@ a-z:]{0,3}[^\n]{0,12}") {
            let parsed = parse_input(&line);
            let command = !matches!(
                parsed,
                Input::Say(_) | Input::Direct { .. } | Input::Empty | Input::Quit(_) | Input::Usage(_)
            );
            if matches!(parsed, Input::Say(_) | Input::Direct { .. }) {
                prop_assert!(is_message(line.as_bytes()), "{line:?} is a message");
            }
            if command {
                prop_assert!(!is_message(line.as_bytes()), "{line:?} is {parsed:?}");
            }
        }

        #[test]
        fn parsing_input_never_panics(line in "\\PC{0,200}") {
            let _ = parse_input(&line);
            let _ = parse_server_line(&line);
        }

        #[test]
        fn decoded_lines_respect_the_limit_however_bytes_are_split(
            data in proptest::collection::vec(any::<u8>(), 0..2000),
            split in 1usize..50,
        ) {
            let mut decoder = LineDecoder::new(32);
            let mut lines = 0;
            for chunk in data.chunks(split) {
                decoder.feed(chunk, |frame| {
                    if let Frame::Line(line) = frame {
                        assert!(line.len() <= 32);
                        lines += 1;
                    }
                });
            }
            prop_assert!(lines <= data.iter().filter(|&&b| b == b'\n').count());
            prop_assert!(decoder.pending() <= 33);
        }
    }
}
