//! Unit tests of the core through its public API, with mailboxes that just record.

use std::sync::Arc;

use crate::test_support::Inbox;
use crate::*;

struct Chat {
    core: Core<Inbox>,
    inboxes: Vec<Inbox>,
}

impl Chat {
    /// A chat with `names.len()` registered clients, ids 0.., all in `lobby`.
    fn with(names: &[&str]) -> Chat {
        let mut chat = Chat {
            core: Core::new(),
            inboxes: Vec::new(),
        };
        for (id, name) in names.iter().enumerate() {
            let inbox = Inbox::default();
            chat.core.connect(id as u64, inbox.clone(), "127.0.0.1");
            chat.inboxes.push(inbox);
            chat.run(
                id,
                Command::Register {
                    name: name.to_string(),
                },
            );
            chat.run(
                id,
                Command::Join {
                    room: "lobby".into(),
                    key: None,
                },
            );
        }
        for inbox in &chat.inboxes {
            inbox.take();
        }
        chat
    }

    fn run(&mut self, id: usize, command: Command) {
        self.core.handle(id as u64, command, 1000);
    }

    fn take(&self, id: usize) -> Vec<Event> {
        self.inboxes[id].take()
    }
}

fn say(room: &str, text: &str) -> Command {
    Command::Send {
        to: Recipient::Room(room.into()),
        kind: MessageKind::Normal,
        text: text.into(),
        tags: None,
    }
}

fn dm(user: &str, text: &str) -> Command {
    Command::Send {
        to: Recipient::User(user.into()),
        kind: MessageKind::Normal,
        text: text.into(),
        tags: None,
    }
}

fn error(events: &[Event]) -> &ChatError {
    match events {
        [Event::Error(e)] => e,
        other => panic!("expected one error, got {other:?}"),
    }
}

#[test]
fn names_are_unique_ignoring_case() {
    let mut chat = Chat::with(&["alice"]);
    let inbox = Inbox::default();
    chat.core.connect(9, inbox.clone(), "h");
    chat.core.handle(
        9,
        Command::Register {
            name: "ALICE".into(),
        },
        0,
    );
    assert_eq!(error(&inbox.take()), &ChatError::NameInUse("ALICE".into()));
    chat.core.handle(
        9,
        Command::Register {
            name: "bad name".into(),
        },
        0,
    );
    assert!(matches!(
        error(&inbox.take()),
        ChatError::InvalidName { .. }
    ));
    chat.core
        .handle(9, Command::Register { name: "bob".into() }, 0);
    assert!(matches!(&inbox.take()[..], [Event::Registered { name }] if name.as_str() == "bob"));
}

#[test]
fn nothing_but_registration_before_registering() {
    let mut chat = Chat::with(&[]);
    let inbox = Inbox::default();
    chat.core.connect(1, inbox.clone(), "h");
    for command in [
        say("lobby", "hi"),
        Command::Rooms,
        Command::Join {
            room: "x".into(),
            key: None,
        },
    ] {
        chat.core.handle(1, command, 0);
        assert_eq!(error(&inbox.take()), &ChatError::NotRegistered);
    }
}

#[test]
fn room_messages_reach_every_other_member_once() {
    let mut chat = Chat::with(&["alice", "bob", "carol"]);
    chat.run(0, say("lobby", "hello"));
    assert!(chat.take(0).is_empty(), "no echo without echo-message");
    for id in [1, 2] {
        match &chat.take(id)[..] {
            [Event::Message(m)] => {
                assert_eq!(m.from.name.as_str(), "alice");
                assert_eq!(&*m.text, "hello");
                assert_eq!(m.to, Target::Room(RoomName::parse("lobby").unwrap()));
            }
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn echo_message_sends_the_sender_a_copy() {
    let mut chat = Chat::with(&["alice", "bob"]);
    chat.core.set_echo(0, true);
    chat.run(0, dm("bob", "psst"));
    assert_eq!(chat.take(0).len(), 1);
    assert_eq!(chat.take(1).len(), 1);
}

#[test]
fn direct_messages_go_to_one_user_and_fail_for_unknown_ones() {
    let mut chat = Chat::with(&["alice", "bob", "carol"]);
    chat.run(0, dm("BOB", "psst"));
    assert!(chat.take(2).is_empty());
    match &chat.take(1)[..] {
        [Event::Message(m)] => {
            assert_eq!(m.from.name.as_str(), "alice");
            assert_eq!(m.to, Target::User(Name::parse("bob").unwrap()));
        }
        other => panic!("{other:?}"),
    }
    chat.run(0, dm("dave", "hello?"));
    assert_eq!(error(&chat.take(0)), &ChatError::NoSuchUser("dave".into()));
    chat.run(0, dm("bob", ""));
    assert_eq!(error(&chat.take(0)), &ChatError::EmptyMessage);
    chat.run(0, dm("bob", "a\0b"));
    assert_eq!(error(&chat.take(0)), &ChatError::ControlCharacter);
}

#[test]
fn joins_parts_quits_and_nick_changes_are_seen_by_members() {
    let mut chat = Chat::with(&["alice", "bob"]);
    chat.run(
        0,
        Command::Join {
            room: "rust".into(),
            key: None,
        },
    );
    let events = chat.take(0);
    assert!(
        matches!(&events[0], Event::Joined { room, who, .. } if room.as_str() == "rust" && who.name.as_str() == "alice")
    );
    assert!(
        matches!(&events[1], Event::Members { members, .. } if members.len() == 1 && members[0].op)
    );
    assert!(chat.take(1).is_empty(), "bob is not in rust");

    chat.run(
        1,
        Command::Join {
            room: "Rust".into(),
            key: None,
        },
    );
    assert!(matches!(&chat.take(0)[..], [Event::Joined { who, .. }] if who.name.as_str() == "bob"));
    chat.take(1);

    chat.run(
        1,
        Command::Nick {
            name: "robert".into(),
        },
    );
    assert!(
        matches!(&chat.take(0)[..], [Event::NickChanged { old, new }] if old.name.as_str() == "bob" && new.as_str() == "robert")
    );
    assert_eq!(chat.take(1).len(), 1, "the renamed user is told too");

    chat.run(
        1,
        Command::Part {
            room: "rust".into(),
            reason: Some("bye".into()),
        },
    );
    assert!(matches!(&chat.take(0)[..], [Event::Parted { reason: Some(r), .. }] if &**r == "bye"));
    chat.take(1);

    chat.core.disconnect(1, "gone");
    match &chat.take(0)[..] {
        [Event::Quit { who, reason }] => {
            assert_eq!(who.name.as_str(), "robert");
            assert_eq!(&**reason, "gone");
        }
        other => panic!("one quit, even when sharing two rooms: {other:?}"),
    }
    // The name is free again.
    let inbox = Inbox::default();
    chat.core.connect(7, inbox.clone(), "h");
    chat.core.handle(
        7,
        Command::Register {
            name: "robert".into(),
        },
        0,
    );
    assert!(matches!(&inbox.take()[..], [Event::Registered { .. }]));
}

#[test]
fn errors_for_rooms() {
    let mut chat = Chat::with(&["alice"]);
    chat.run(0, say("nowhere", "x"));
    assert_eq!(
        error(&chat.take(0)),
        &ChatError::NoSuchRoom("nowhere".into())
    );
    chat.run(
        0,
        Command::Part {
            room: "nowhere".into(),
            reason: None,
        },
    );
    // A room that does not exist is not one you could be in (IRC's 403, not 442).
    assert_eq!(
        error(&chat.take(0)),
        &ChatError::NoSuchRoom("nowhere".into())
    );
    chat.run(
        0,
        Command::Join {
            room: "bad room".into(),
            key: None,
        },
    );
    assert!(matches!(
        error(&chat.take(0)),
        ChatError::InvalidRoom { .. }
    ));
    chat.run(
        0,
        Command::Who {
            room: "nowhere".into(),
        },
    );
    assert_eq!(
        error(&chat.take(0)),
        &ChatError::NoSuchRoom("nowhere".into())
    );
}

#[test]
fn empty_rooms_disappear_and_rooms_are_listed() {
    let mut chat = Chat::with(&["alice", "bob"]);
    chat.run(
        0,
        Command::Join {
            room: "rust".into(),
            key: None,
        },
    );
    chat.take(0);
    chat.run(1, Command::Rooms);
    match &chat.take(1)[..] {
        [Event::Rooms { rooms }] => {
            let listed: Vec<_> = rooms.iter().map(|r| (r.name.as_str(), r.members)).collect();
            assert_eq!(listed, [("lobby", 2), ("rust", 1)]);
        }
        other => panic!("{other:?}"),
    }
    chat.run(
        0,
        Command::Part {
            room: "rust".into(),
            reason: None,
        },
    );
    chat.run(1, Command::Rooms);
    assert!(matches!(&chat.take(1)[..], [Event::Rooms { rooms }] if rooms.len() == 1));
}

#[test]
fn events_round_trip_through_serde() {
    let mut chat = Chat::with(&["alice", "bob"]);
    chat.run(0, say("lobby", "hi"));
    for event in chat.take(1) {
        let json = serde_json::to_string(&event).unwrap();
        let back: Event = serde_json::from_str(&json).unwrap();
        assert_eq!(back, event);
    }
}

#[test]
fn one_envelope_is_shared_by_every_recipient() {
    let mut chat = Chat::with(&["alice", "bob", "carol"]);
    chat.run(0, say("lobby", "shared"));
    let b = chat.inboxes[1].0.borrow()[0].clone();
    let c = chat.inboxes[2].0.borrow()[0].clone();
    assert!(Arc::ptr_eq(&b, &c));
    let mut encodings = 0;
    for envelope in [&b, &c] {
        envelope.encoded(0, |_| {
            encodings += 1;
            bytes::Bytes::from_static(b"x")
        });
    }
    assert_eq!(encodings, 1);
}

fn mode(add: bool, mode: char, arg: Option<&str>) -> ModeChange {
    ModeChange {
        add,
        mode,
        arg: arg.map(str::to_string),
    }
}

fn set_modes(chat: &mut Chat, id: usize, room: &str, changes: Vec<ModeChange>) {
    chat.run(
        id,
        Command::Mode {
            room: room.into(),
            changes,
        },
    );
}

#[test]
fn the_first_member_is_operator_and_only_operators_change_modes() {
    let mut chat = Chat::with(&["alice", "bob"]);
    set_modes(&mut chat, 1, "lobby", vec![mode(true, 'm', None)]);
    assert_eq!(
        error(&chat.take(1)),
        &ChatError::OperatorNeeded("lobby".into())
    );
    set_modes(
        &mut chat,
        0,
        "lobby",
        vec![mode(true, 'm', None), mode(true, 'v', Some("bob"))],
    );
    match &chat.take(1)[..] {
        [Event::ModeChanged { changes, by, .. }] => {
            assert_eq!(by.name.as_str(), "alice");
            assert_eq!(
                changes,
                &[mode(true, 'm', None), mode(true, 'v', Some("bob"))]
            );
        }
        other => panic!("{other:?}"),
    }
    chat.take(0);
    // Moderated: bob has voice and may talk; carol may not.
    let inbox = Inbox::default();
    chat.core.connect(2, inbox.clone(), "h");
    chat.inboxes.push(inbox);
    chat.run(
        2,
        Command::Register {
            name: "carol".into(),
        },
    );
    chat.run(
        2,
        Command::Join {
            room: "lobby".into(),
            key: None,
        },
    );
    chat.take(2);
    chat.take(0);
    chat.take(1);
    chat.run(2, say("lobby", "hi"));
    assert_eq!(error(&chat.take(2)), &ChatError::CannotSend("lobby".into()));
    chat.run(1, say("lobby", "hi"));
    assert_eq!(chat.take(0).len(), 1);
}

#[test]
fn keys_limits_invites_and_bans_guard_joining() {
    let mut chat = Chat::with(&["alice", "bob"]);
    chat.run(
        0,
        Command::Join {
            room: "vault".into(),
            key: None,
        },
    );
    chat.take(0);
    set_modes(&mut chat, 0, "vault", vec![mode(true, 'k', Some("sesame"))]);
    chat.run(
        1,
        Command::Join {
            room: "vault".into(),
            key: None,
        },
    );
    assert_eq!(error(&chat.take(1)), &ChatError::BadKey("vault".into()));
    set_modes(
        &mut chat,
        0,
        "vault",
        vec![mode(false, 'k', None), mode(true, 'i', None)],
    );
    chat.run(
        1,
        Command::Join {
            room: "vault".into(),
            key: None,
        },
    );
    assert_eq!(error(&chat.take(1)), &ChatError::InviteOnly("vault".into()));
    chat.run(
        0,
        Command::Invite {
            name: "bob".into(),
            room: "vault".into(),
        },
    );
    assert!(
        matches!(&chat.take(1)[..], [Event::Invited { by, .. }] if by.name.as_str() == "alice")
    );
    chat.run(
        1,
        Command::Join {
            room: "vault".into(),
            key: None,
        },
    );
    assert!(matches!(&chat.take(1)[0], Event::Joined { .. }));
    chat.run(
        1,
        Command::Part {
            room: "vault".into(),
            reason: None,
        },
    );
    chat.run(
        1,
        Command::Join {
            room: "vault".into(),
            key: None,
        },
    );
    assert_eq!(
        chat.take(1).last().unwrap(),
        &Event::Error(ChatError::InviteOnly("vault".into())),
        "invitations are used up"
    );
    set_modes(
        &mut chat,
        0,
        "vault",
        vec![mode(false, 'i', None), mode(true, 'b', Some("bob"))],
    );
    chat.take(0);
    chat.run(
        1,
        Command::Join {
            room: "vault".into(),
            key: None,
        },
    );
    assert_eq!(error(&chat.take(1)), &ChatError::Banned("vault".into()));
    set_modes(&mut chat, 1, "vault", vec![mode(true, 'b', None)]);
    match &chat.take(1)[..] {
        [Event::BanList { bans, .. }] => assert_eq!(&*bans[0].mask, "bob!*@*"),
        other => panic!("{other:?}"),
    }
    set_modes(
        &mut chat,
        0,
        "vault",
        vec![
            mode(false, 'b', Some("bob!*@*")),
            mode(true, 'l', Some("1")),
        ],
    );
    chat.run(
        1,
        Command::Join {
            room: "vault".into(),
            key: None,
        },
    );
    assert_eq!(error(&chat.take(1)), &ChatError::RoomFull("vault".into()));
}

#[test]
fn kicks_topics_away_whois_whowas_and_kill() {
    let mut chat = Chat::with(&["alice", "bob"]);
    chat.run(
        1,
        Command::Kick {
            room: "lobby".into(),
            name: "alice".into(),
            reason: None,
        },
    );
    assert_eq!(
        error(&chat.take(1)),
        &ChatError::OperatorNeeded("lobby".into())
    );
    chat.run(
        1,
        Command::Topic {
            room: "lobby".into(),
            text: Some("x".into()),
        },
    );
    assert_eq!(
        error(&chat.take(1)),
        &ChatError::OperatorNeeded("lobby".into())
    );
    chat.run(
        0,
        Command::Topic {
            room: "lobby".into(),
            text: Some("Welcome".into()),
        },
    );
    assert!(
        matches!(&chat.take(1)[..], [Event::TopicChanged { text, .. }] if &**text == "Welcome")
    );
    chat.take(0);

    chat.run(
        1,
        Command::Away {
            message: Some("lunch".into()),
        },
    );
    assert_eq!(chat.take(1), [Event::AwayStatus { away: true }]);
    assert!(
        matches!(&chat.take(0)[..], [Event::AwayChanged { message: Some(m), .. }] if &**m == "lunch")
    );
    chat.run(0, dm("bob", "there?"));
    assert!(
        matches!(&chat.take(0)[..], [Event::RecipientAway { message, .. }] if &**message == "lunch")
    );
    chat.take(1);

    chat.run(0, Command::Whois { name: "BOB".into() });
    match &chat.take(0)[..] {
        [Event::UserInfo(info)] => {
            assert_eq!(info.who.name.as_str(), "bob");
            assert_eq!(
                info.rooms,
                [(String::new(), RoomName::parse("lobby").unwrap())]
            );
            assert_eq!(info.away.as_deref(), Some("lunch"));
        }
        other => panic!("{other:?}"),
    }

    chat.run(
        0,
        Command::Kick {
            room: "lobby".into(),
            name: "bob".into(),
            reason: Some("bye".into()),
        },
    );
    assert!(
        matches!(&chat.take(1)[..], [Event::Kicked { target, reason, .. }] if target.as_str() == "bob" && &**reason == "bye")
    );
    chat.run(1, say("lobby", "still here?"));
    assert_eq!(error(&chat.take(1)), &ChatError::CannotSend("lobby".into()));

    chat.run(
        1,
        Command::Kill {
            name: "alice".into(),
            reason: "no".into(),
        },
    );
    assert_eq!(error(&chat.take(1)), &ChatError::NoPrivileges);
    chat.core.set_oper(0, true);
    chat.take(0);
    chat.run(
        0,
        Command::Kill {
            name: "bob".into(),
            reason: "spam".into(),
        },
    );
    assert!(matches!(&chat.take(1)[..], [Event::Killed { reason, .. }] if &**reason == "spam"));
    chat.core.disconnect(1, "Killed");
    chat.run(0, Command::WhoWas { name: "bob".into() });
    assert!(
        matches!(&chat.take(0)[..], [Event::WasUser { entries }] if entries[0].name.as_str() == "bob")
    );
    chat.run(
        0,
        Command::WhoWas {
            name: "nobody".into(),
        },
    );
    assert_eq!(
        error(&chat.take(0)),
        &ChatError::WasNoSuchUser("nobody".into())
    );
}

#[test]
fn secret_rooms_are_hidden_from_outsiders() {
    let mut chat = Chat::with(&["alice", "bob"]);
    chat.run(
        0,
        Command::Join {
            room: "hidden".into(),
            key: None,
        },
    );
    set_modes(&mut chat, 0, "hidden", vec![mode(true, 's', None)]);
    chat.take(0);
    chat.run(1, Command::Rooms);
    assert!(matches!(&chat.take(1)[..], [Event::Rooms { rooms }] if rooms.len() == 1));
    chat.run(
        1,
        Command::Who {
            room: "hidden".into(),
        },
    );
    assert_eq!(
        error(&chat.take(1)),
        &ChatError::NoSuchRoom("hidden".into())
    );
}

fn join(room: &str) -> Command {
    Command::Join {
        room: room.into(),
        key: None,
    }
}

#[test]
fn rooms_per_user_and_members_per_room_are_bounded() {
    let mut chat = Chat::with(&["alice", "bob", "carol"]);
    chat.core.set_limits(CoreLimits {
        max_rooms_per_user: 2,
        max_members_per_room: 2,
    });
    // Alice is in lobby; one more room fits, a third does not, and no room is left
    // behind by the refusal.
    chat.run(0, join("side"));
    chat.take(0);
    chat.run(0, join("third"));
    assert_eq!(
        error(&chat.take(0)),
        &ChatError::TooManyRooms {
            room: "third".into(),
            limit: 2
        }
    );
    assert_eq!(chat.core.room_count(), 2);
    // Joining a room one is already in is not a new room.
    chat.run(0, join("side"));
    assert!(matches!(&chat.take(0)[..], [Event::Members { .. }]));
    // Leaving one makes room for another.
    chat.run(
        0,
        Command::Part {
            room: "side".into(),
            reason: None,
        },
    );
    chat.take(0);
    chat.run(0, join("third"));
    assert!(chat
        .take(0)
        .iter()
        .any(|e| matches!(e, Event::Joined { .. })));

    // lobby already holds three (joined before the limit); nobody more may join it,
    // and a room with two members is full.
    chat.run(1, join("third"));
    chat.take(1);
    chat.run(2, join("third"));
    assert_eq!(
        error(&chat.take(2)),
        &ChatError::TooManyMembers {
            room: "third".into(),
            limit: 2
        }
    );
}

#[test]
fn messages_and_deliveries_are_counted() {
    let mut chat = Chat::with(&["alice", "bob", "carol"]);
    chat.run(0, say("lobby", "hi"));
    chat.run(0, dm("bob", "psst"));
    chat.run(0, dm("nobody", "lost"));
    let stats = chat.core.stats();
    assert_eq!((stats.messages, stats.deliveries), (2, 3));
}

#[test]
fn member_lists_stay_sorted_through_joins_renames_and_parts() {
    let mut chat = Chat::with(&["mike", "Alice", "zed", "bob", "Carol"]);
    let members = |chat: &mut Chat| -> Vec<String> {
        chat.take(0);
        chat.run(
            0,
            Command::Who {
                room: "lobby".into(),
            },
        );
        match &chat.take(0)[..] {
            [Event::Members { members, .. }] => {
                members.iter().map(|m| m.who.name.to_string()).collect()
            }
            other => panic!("{other:?}"),
        }
    };
    assert_eq!(members(&mut chat), ["Alice", "bob", "Carol", "mike", "zed"]);
    chat.run(
        4,
        Command::Nick {
            name: "aaron".into(),
        },
    );
    chat.run(
        2,
        Command::Part {
            room: "lobby".into(),
            reason: None,
        },
    );
    chat.run(
        1,
        Command::Nick {
            name: "ALICE".into(),
        },
    );
    assert_eq!(members(&mut chat), ["aaron", "ALICE", "bob", "mike"]);
    chat.core.disconnect(3, "gone");
    chat.run(
        2,
        Command::Join {
            room: "lobby".into(),
            key: None,
        },
    );
    assert_eq!(members(&mut chat), ["aaron", "ALICE", "mike", "zed"]);
}

fn say_many(to: Recipient, texts: &[&str]) -> Command {
    Command::SendMany {
        to,
        kind: MessageKind::Normal,
        texts: texts.iter().map(|t| t.to_string()).collect(),
    }
}

fn texts(events: &[Event]) -> Vec<String> {
    events
        .iter()
        .map(|e| match e {
            Event::Message(m) => m.text.to_string(),
            Event::Error(e) => format!("error: {e}"),
            other => format!("{other:?}"),
        })
        .collect()
}

#[test]
fn a_burst_to_a_room_reaches_each_member_as_one_batch_in_order() {
    let mut chat = Chat::with(&["alice", "bob", "carol"]);
    chat.run(
        0,
        say_many(Recipient::Room("LOBBY".into()), &["1", "2", "3"]),
    );
    for member in [1, 2] {
        assert_eq!(chat.inboxes[member].batches(), 1);
        assert_eq!(texts(&chat.take(member)), ["1", "2", "3"]);
    }
    assert!(chat.take(0).is_empty(), "no echo without echo-message");
    assert_eq!(chat.inboxes[0].batches(), 0);
    chat.run(0, say("lobby", "4"));
    match &chat.take(1)[..] {
        [Event::Message(m)] => assert_eq!(&*m.text, "4"),
        other => panic!("{other:?}"),
    }
    assert_eq!(chat.core.stats().messages, 4);
    assert_eq!(chat.core.stats().deliveries, 8);
}

#[test]
fn batched_messages_get_increasing_ids_and_echo_when_asked() {
    let mut chat = Chat::with(&["alice", "bob"]);
    chat.core.set_echo(0, true);
    chat.run(0, say_many(Recipient::User("bob".into()), &["a", "b"]));
    let ids: Vec<u64> = chat
        .take(1)
        .iter()
        .map(|e| match e {
            Event::Message(m) => m.id,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(ids.len(), 2);
    assert!(ids[0] < ids[1]);
    assert_eq!(texts(&chat.take(0)), ["a", "b"], "the echo");
}

#[test]
fn a_burst_with_a_bad_message_goes_one_by_one_with_its_error_in_place() {
    let mut chat = Chat::with(&["alice", "bob"]);
    chat.run(
        0,
        say_many(Recipient::Room("lobby".into()), &["1", "", "3"]),
    );
    assert_eq!(texts(&chat.take(1)), ["1", "3"]);
    assert_eq!(texts(&chat.take(0)), ["error: Messages cannot be empty"]);
    assert_eq!(chat.inboxes[1].batches(), 0);
    chat.run(0, say_many(Recipient::User("nobody".into()), &["x", "y"]));
    assert_eq!(
        chat.take(0).len(),
        2,
        "one error per message, as one by one"
    );
    chat.run(
        0,
        say_many(Recipient::Room("elsewhere".into()), &["x", "y"]),
    );
    assert_eq!(chat.take(0).len(), 2);
}

#[test]
fn a_burst_into_a_room_one_may_not_speak_in_is_refused_message_by_message() {
    let mut chat = Chat::with(&["alice", "bob"]);
    chat.run(
        0,
        Command::Mode {
            room: "lobby".into(),
            changes: vec![ModeChange {
                add: true,
                mode: 'm',
                arg: None,
            }],
        },
    );
    chat.take(0);
    chat.take(1);
    chat.run(1, say_many(Recipient::Room("lobby".into()), &["x", "y"]));
    assert!(chat.take(0).is_empty());
    assert!(matches!(
        &chat.take(1)[..],
        [
            Event::Error(ChatError::CannotSend(_)),
            Event::Error(ChatError::CannotSend(_))
        ]
    ));
}

/// A journal that takes `room` more messages, then refuses.
struct Limited {
    room: std::sync::atomic::AtomicUsize,
}

impl Journal for Limited {
    fn record(&self, _message: &Message, _recipient: Option<&Source>) -> bool {
        use std::sync::atomic::Ordering::Relaxed;
        self.room
            .fetch_update(Relaxed, Relaxed, |left| left.checked_sub(1))
            .is_ok()
    }
    fn record_offline(&self, _message: &Message, _recipient: &str) -> bool {
        false
    }
}

#[test]
fn a_full_journal_refuses_the_rest_of_a_burst_and_delivers_what_it_kept() {
    let mut chat = Chat::with(&["alice", "bob"]);
    let journal = Limited { room: 2.into() };
    let mut core = Core::with_journal(Box::new(journal), 0);
    for (id, name) in ["alice", "bob"].iter().enumerate() {
        core.connect(id as u64, chat.inboxes[id].clone(), "h");
        core.handle(
            id as u64,
            Command::Register {
                name: name.to_string(),
            },
            1,
        );
        let join = Command::Join {
            room: "r".into(),
            key: None,
        };
        core.handle(id as u64, join, 1);
    }
    chat.core = core;
    chat.take(0);
    chat.take(1);
    chat.run(
        0,
        say_many(Recipient::Room("r".into()), &["1", "2", "3", "4"]),
    );
    assert_eq!(texts(&chat.take(1)), ["1", "2"]);
    assert!(matches!(
        &chat.take(0)[..],
        [Event::Error(ChatError::Busy), Event::Error(ChatError::Busy)]
    ));
}

/// A chat like [`Chat::with`] whose `lobby` is the server's default room.
fn with_default_lobby(names: &[&str]) -> Chat {
    let mut chat = Chat {
        core: Core::new(),
        inboxes: Vec::new(),
    };
    chat.core.set_default_room("lobby");
    for name in names {
        add_user(&mut chat, name, "lobby");
    }
    for inbox in &chat.inboxes {
        inbox.take();
    }
    chat
}

/// Connects, registers and joins `name` to `room`; returns its id, its inbox emptied.
fn add_user(chat: &mut Chat, name: &str, room: &str) -> usize {
    let id = chat.inboxes.len();
    let inbox = Inbox::default();
    chat.core.connect(id as u64, inbox.clone(), "127.0.0.1");
    chat.inboxes.push(inbox);
    let name = name.to_string();
    chat.run(id, Command::Register { name });
    let (room, key) = (room.to_string(), None);
    chat.run(id, Command::Join { room, key });
    chat.take(id);
    id
}

/// Who holds operator status in `room`, by name, as a member list shows it.
fn ops_in(chat: &mut Chat, id: usize, room: &str) -> Vec<String> {
    chat.run(id, Command::Who { room: room.into() });
    match &chat.take(id)[..] {
        [Event::Members { members, .. }] => members
            .iter()
            .filter(|m| m.op)
            .map(|m| m.who.name.to_string())
            .collect(),
        other => panic!("{other:?}"),
    }
}

#[test]
fn the_first_member_of_the_default_room_is_not_its_operator() {
    let mut chat = with_default_lobby(&["alice", "bob"]);
    assert!(ops_in(&mut chat, 1, "lobby").is_empty());
    let needed = ChatError::OperatorNeeded("lobby".into());
    // Alice, first in, can do none of what an operator does there.
    let attempts = [
        Command::Topic {
            room: "lobby".into(),
            text: Some("mine now".into()),
        },
        Command::Kick {
            room: "lobby".into(),
            name: "bob".into(),
            reason: None,
        },
        Command::Mode {
            room: "lobby".into(),
            changes: vec![mode(true, 'o', Some("alice"))],
        },
        Command::Mode {
            room: "lobby".into(),
            changes: vec![mode(true, 'i', None)],
        },
        Command::Mode {
            room: "lobby".into(),
            changes: vec![mode(true, 'k', Some("secret"))],
        },
    ];
    for attempt in attempts {
        chat.run(0, attempt.clone());
        assert_eq!(error(&chat.take(0)), &needed, "{attempt:?}");
        assert!(chat.take(1).is_empty(), "bob saw something of {attempt:?}");
    }
    // Another room keeps "the creator is operator".
    chat.run(
        0,
        Command::Join {
            room: "den".into(),
            key: None,
        },
    );
    chat.take(0);
    assert_eq!(ops_in(&mut chat, 0, "den"), ["alice"]);
    // Nor does the default room, emptied and made again, get an operator.
    chat.run(
        0,
        Command::Part {
            room: "lobby".into(),
            reason: None,
        },
    );
    chat.run(
        1,
        Command::Part {
            room: "lobby".into(),
            reason: None,
        },
    );
    chat.run(
        1,
        Command::Join {
            room: "LOBBY".into(),
            key: None,
        },
    );
    chat.take(0);
    chat.take(1);
    assert!(ops_in(&mut chat, 1, "lobby").is_empty());
}

#[test]
fn server_operators_run_the_default_room() {
    let mut chat = with_default_lobby(&["alice", "bob"]);
    // Made a server operator while in the room: the rights without the status.
    chat.core.set_oper(1, true);
    chat.run(
        1,
        Command::Topic {
            room: "lobby".into(),
            text: Some("Welcome".into()),
        },
    );
    assert!(
        matches!(&chat.take(0)[..], [Event::TopicChanged { text, .. }] if &**text == "Welcome")
    );
    chat.take(1);
    set_modes(&mut chat, 1, "lobby", vec![mode(true, 'o', Some("bob"))]);
    assert!(matches!(&chat.take(0)[..], [Event::ModeChanged { .. }]));
    chat.take(1);
    chat.run(
        1,
        Command::Kick {
            room: "lobby".into(),
            name: "alice".into(),
            reason: None,
        },
    );
    assert!(matches!(&chat.take(0)[..], [Event::Kicked { .. }]));
    chat.take(1);
    // A server operator who joins it is one of its operators; others still are not.
    let carol = {
        let inbox = Inbox::default();
        chat.core.connect(2, inbox.clone(), "127.0.0.1");
        chat.inboxes.push(inbox);
        chat.core.set_oper(2, true);
        chat.run(
            2,
            Command::Register {
                name: "carol".into(),
            },
        );
        chat.run(
            2,
            Command::Join {
                room: "lobby".into(),
                key: None,
            },
        );
        chat.take(2);
        2
    };
    let dave = add_user(&mut chat, "dave", "lobby");
    assert_eq!(ops_in(&mut chat, dave, "lobby"), ["bob", "carol"]);
    // Server operators have no such rights in other rooms.
    add_user(&mut chat, "erin", "den");
    chat.run(
        carol,
        Command::Join {
            room: "den".into(),
            key: None,
        },
    );
    chat.take(carol);
    chat.run(
        carol,
        Command::Topic {
            room: "den".into(),
            text: Some("x".into()),
        },
    );
    assert_eq!(
        error(&chat.take(carol)),
        &ChatError::OperatorNeeded("den".into())
    );
}

#[test]
fn a_logged_in_creator_neither_owns_nor_runs_the_default_room() {
    let mut chat = with_default_lobby(&[]);
    let inbox = Inbox::default();
    chat.core.connect(0, inbox.clone(), "127.0.0.1");
    chat.inboxes.push(inbox);
    chat.run(
        0,
        Command::Register {
            name: "alice".into(),
        },
    );
    chat.core.logged_in(0, "alice", true, 0).unwrap();
    for room in ["lobby", "den"] {
        chat.run(
            0,
            Command::Join {
                room: room.into(),
                key: None,
            },
        );
    }
    chat.take(0);
    assert!(ops_in(&mut chat, 0, "lobby").is_empty());
    assert_eq!(ops_in(&mut chat, 0, "den"), ["alice"]);
    // Emptied, the default room is gone: it was not kept as alice's.
    chat.run(
        0,
        Command::Part {
            room: "lobby".into(),
            reason: None,
        },
    );
    chat.run(
        0,
        Command::Join {
            room: "lobby".into(),
            key: None,
        },
    );
    chat.take(0);
    assert!(ops_in(&mut chat, 0, "lobby").is_empty());
}
