//! Tests of the web JSON codec: events as documented, requests, history pages.

use std::sync::Arc;

use confab_core::{Message, RoomName, RoomSummary, Source};

use super::*;

fn name(s: &str) -> Name {
    Name::parse(s).unwrap()
}

fn source(s: &str) -> Arc<Source> {
    Arc::new(Source {
        name: name(s),
        user: s.into(),
        host: "127.0.0.1".into(),
        realname: s.into(),
        account: None,
        session: 0,
        bot: false,
    })
}

fn room(s: &str) -> RoomName {
    RoomName::parse(s).unwrap()
}

fn check_event(event: Event, expected: &str) {
    let bytes = encode_event(&event);
    assert_eq!(std::str::from_utf8(&bytes).unwrap(), expected, "{event:?}");
}

#[test]
fn events_encode_as_documented() {
    check_event(
        Event::Registered {
            name: name("alice"),
        },
        r#"{"type":"registered","name":"alice"}"#,
    );
    check_event(
        Event::Error(ChatError::NameInUse("Bob".into())),
        r#"{"type":"error","code":"name_in_use","text":"The name Bob is taken; try another"}"#,
    );
    check_event(
        Event::Message(Message {
            id: 7,
            time_ms: 1_700_000_000_000,
            from: source("alice"),
            to: Target::Room(room("lobby")),
            kind: MessageKind::Normal,
            text: "<img src=x onerror=alert(1)> \"quoted\"".into(),
            tags: None,
        }),
        r#"{"type":"message","id":7,"time":1700000000000,"from":"alice","room":"lobby","kind":"normal","text":"<img src=x onerror=alert(1)> \"quoted\""}"#,
    );
    check_event(
        Event::Message(Message {
            id: 8,
            time_ms: 5,
            from: source("alice"),
            to: Target::User(name("bob")),
            kind: MessageKind::Action,
            text: "waves".into(),
            tags: None,
        }),
        r#"{"type":"message","id":8,"time":5,"from":"alice","to":"bob","kind":"action","text":"waves"}"#,
    );
    check_event(
        Event::Joined {
            room: room("rust"),
            who: source("bob"),
            history_until: 0,
            away: None,
        },
        r#"{"type":"joined","room":"rust","name":"bob"}"#,
    );
    check_event(
        Event::Parted {
            room: room("rust"),
            who: source("bob"),
            reason: None,
        },
        r#"{"type":"parted","room":"rust","name":"bob","reason":null}"#,
    );
    check_event(
        Event::Quit {
            who: source("bob"),
            reason: "Quit".into(),
        },
        r#"{"type":"quit","name":"bob","reason":"Quit"}"#,
    );
    check_event(
        Event::NickChanged {
            old: source("bob"),
            new: name("rob"),
        },
        r#"{"type":"nick","old":"bob","new":"rob"}"#,
    );
    check_event(
        Event::Members {
            room: room("lobby"),
            members: vec![
                MemberInfo {
                    who: source("alice"),
                    op: true,
                    voice: false,
                    away: false,
                    oper: false,
                },
                MemberInfo {
                    who: source("bob"),
                    op: false,
                    voice: false,
                    away: true,
                    oper: false,
                },
            ],
        },
        r#"{"type":"members","room":"lobby","members":[{"name":"alice","op":true,"voice":false,"away":false},{"name":"bob","op":false,"voice":false,"away":true}]}"#,
    );
    check_event(
        Event::Rooms {
            rooms: vec![RoomSummary {
                name: room("lobby"),
                members: 2,
                topic: None,
            }],
        },
        r#"{"type":"rooms","rooms":[{"name":"lobby","members":2,"topic":null}]}"#,
    );
    check_event(
        Event::Killed {
            by: source("op"),
            reason: "flooding".into(),
        },
        r#"{"type":"killed","by":"op","reason":"flooding"}"#,
    );
}

#[test]
fn error_codes_are_snake_case_variant_names() {
    for (error, code) in [
        (ChatError::NotRegistered, "not_registered"),
        (ChatError::NameInUse("x".into()), "name_in_use"),
        (
            ChatError::InvalidName {
                name: "a b".into(),
                reason: confab_core::NameError::Empty,
            },
            "invalid_name",
        ),
        (ChatError::NoSuchUser("x".into()), "no_such_user"),
    ] {
        assert_eq!(chat_error_code(&error), code);
    }
}

#[test]
fn requests_parse_and_bad_ones_say_why() {
    let ok = [
        (
            r#"{"type":"register","name":"alice"}"#,
            Request::Register {
                name: "alice".into(),
            },
        ),
        (
            r#"{"type":"message","room":"lobby","text":"hi","future":1}"#,
            Request::Message {
                room: Some("lobby".into()),
                to: None,
                text: "hi".into(),
                kind: Kind::Normal,
            },
        ),
        (
            r#"{"type":"message","to":"bob","text":"waves","kind":"action"}"#,
            Request::Message {
                room: None,
                to: Some("bob".into()),
                text: "waves".into(),
                kind: Kind::Action,
            },
        ),
        (
            r#"{"type":"part","room":"rust"}"#,
            Request::Part {
                room: "rust".into(),
                reason: None,
            },
        ),
        (r#"{"type":"ping"}"#, Request::Ping),
        (
            r#"{"type":"login","name":"alice","password":"pw"}"#,
            Request::Login {
                name: "alice".into(),
                password: Secret("pw".into()),
            },
        ),
        (
            r#"{"type":"register_account","password":"pw"}"#,
            Request::RegisterAccount {
                password: Secret("pw".into()),
            },
        ),
        (
            r#"{"type":"history","room":"lobby"}"#,
            Request::History {
                room: Some("lobby".into()),
                with: None,
                before: None,
                limit: None,
            },
        ),
        (
            r#"{"type":"history","with":"bob","before":42,"limit":10}"#,
            Request::History {
                room: None,
                with: Some("bob".into()),
                before: Some(42),
                limit: Some(10),
            },
        ),
        (r#"{"type":"quit"}"#, Request::Quit { reason: None }),
    ];
    for (text, expected) in ok {
        assert_eq!(parse_request(text), Ok(expected), "{text}");
    }
    for (text, code) in [
        ("{", "invalid_json"),
        ("not json", "invalid_json"),
        ("", "invalid_json"),
        ("[1]", "invalid_request"),
        (r#"{"type":"dance"}"#, "invalid_request"),
        (r#"{"type":"join"}"#, "invalid_request"),
        (r#"{"name":"alice"}"#, "invalid_request"),
        (r#"{"type":"join","room":7}"#, "invalid_request"),
        (r#"{"type":"login","name":"alice"}"#, "invalid_request"),
        (
            r#"{"type":"history","room":"x","limit":-1}"#,
            "invalid_request",
        ),
    ] {
        assert_eq!(parse_request(text).unwrap_err().code, code, "{text}");
    }
}

#[test]
fn passwords_never_show_in_debug_output() {
    let request = parse_request(r#"{"type":"login","name":"a","password":"hunter2"}"#);
    assert!(!format!("{request:?}").contains("hunter2"));
}

/// A stored message of alice's in #lobby, as the server reads it from its store.
fn stored(id: u64, text: &str) -> HistoryMessage<'_> {
    HistoryMessage {
        id,
        time: 1000 + id,
        from: "alice",
        room: Some("lobby"),
        to: None,
        kind: MessageKind::Normal.into(),
        text,
    }
}

#[test]
fn history_pages_are_messages_oldest_first_within_a_byte_budget() {
    let lobby = Conversation::Room("lobby".into());
    let page = history_page(
        &lobby,
        None,
        &[stored(1, "a"), stored(2, "b")],
        false,
        10_000,
    );
    assert_eq!(
        std::str::from_utf8(&page).unwrap(),
        r#"{"type":"history","room":"lobby","messages":[{"id":1,"time":1001,"from":"alice","room":"lobby","kind":"normal","text":"a"},{"id":2,"time":1002,"from":"alice","room":"lobby","kind":"normal","text":"b"}],"more":false}"#
    );
    // Past the budget the oldest go, and the page says there is more.
    let long = "x".repeat(1000);
    let messages: Vec<_> = (1..=10).map(|i| stored(i, &long)).collect();
    let page: serde_json::Value =
        serde_json::from_slice(&history_page(&lobby, Some(11), &messages, false, 3500)).unwrap();
    let ids: Vec<u64> = page["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_u64().unwrap())
        .collect();
    assert_eq!(ids, [8, 9, 10]);
    assert_eq!((&page["more"], &page["before"]), (&true.into(), &11.into()));
    // The newest message always goes, however small the budget.
    let page: serde_json::Value =
        serde_json::from_slice(&history_page(&lobby, None, &messages, false, 1)).unwrap();
    assert_eq!(page["messages"].as_array().unwrap().len(), 1);
    let dm = history_error("not_in_room", "no", &Conversation::With("bob".into()));
    assert_eq!(
        &dm[..],
        br#"{"type":"error","code":"not_in_room","text":"no","with":"bob"}"#
    );
}

#[test]
fn greeting_and_closing_are_json() {
    let limits = Limits {
        max_message: 4096,
        max_frame: 16384,
        burst: 20,
        per_second: 5,
    };
    let hello: serde_json::Value = serde_json::from_slice(&hello("lobby", limits, true)).unwrap();
    assert_eq!(hello["type"], "hello");
    assert_eq!(
        (&hello["history"], &hello["accounts"]),
        (&true.into(), &true.into())
    );
    assert_eq!(hello["default_room"], "lobby");
    assert_eq!(hello["limits"]["max_frame"], 16384);
    assert_eq!(
        &closing("shutdown", "Server is shutting down")[..],
        br#"{"type":"closing","code":"shutdown","text":"Server is shutting down"}"#
    );
    assert_eq!(room_arg("#rust"), "rust");
}

/// Random input for the request parser, in the normal test suite (the fuzz target
/// `web_request` goes further): arbitrary text, and JSON-shaped text built from the
/// request's own field names and values, nested, so that the parser's typed paths are
/// reached, not only its first syntax error.
#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::super::parse_request;

    fn json() -> impl Strategy<Value = String> {
        let leaf = prop_oneof![
            Just("null".to_string()),
            any::<bool>().prop_map(|b| b.to_string()),
            any::<i64>().prop_map(|n| n.to_string()),
            "[a-z#@ ]{0,12}".prop_map(|s| format!("{s:?}")),
            prop::sample::select(vec![
                "\"register\"",
                "\"send\"",
                "\"join\"",
                "\"history\"",
                "\"mode\"",
                "\"login\"",
                "\"dm\"",
                "\"type\"",
                "\"to\"",
                "\"text\"",
            ])
            .prop_map(str::to_string),
        ];
        leaf.prop_recursive(6, 64, 8, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6)
                    .prop_map(|items| format!("[{}]", items.join(","))),
                prop::collection::vec(
                    (
                        prop::sample::select(vec![
                            "type", "name", "room", "to", "text", "with", "limit", "before",
                            "changes", "password", "key", "kind",
                        ]),
                        inner
                    ),
                    0..6
                )
                .prop_map(|fields| {
                    let fields: Vec<String> =
                        fields.iter().map(|(k, v)| format!("{k:?}:{v}")).collect();
                    format!("{{{}}}", fields.join(","))
                }),
            ]
        })
    }

    proptest! {
        #[test]
        fn any_text_is_a_request_or_a_clear_error(text in any::<String>()) {
            if let Err(bad) = parse_request(&text) {
                prop_assert!(!bad.code.is_empty() && !bad.text.is_empty());
            }
        }

        #[test]
        fn json_shaped_text_is_a_request_or_a_clear_error(text in json()) {
            if let Err(bad) = parse_request(&text) {
                prop_assert!(!bad.code.is_empty() && !bad.text.is_empty());
            }
        }
    }
}
