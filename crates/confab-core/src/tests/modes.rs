//! Tests of room modes: operators, keys, limits, invitations, bans and secret rooms.

use super::*;

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
