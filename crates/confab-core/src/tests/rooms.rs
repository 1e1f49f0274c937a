//! Tests of rooms: joins, parts, quits and renames as members see them, room errors and
//! listings, kicks, topics, away, WHOIS, WHOWAS and KILL, bounds, and member order.

use super::*;

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
