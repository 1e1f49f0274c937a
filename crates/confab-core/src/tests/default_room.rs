//! Tests of the default room, which nobody owns and server operators run.

use super::*;

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
