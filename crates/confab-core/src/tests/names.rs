//! Tests of names: uniqueness ignoring case, and nothing before registering.

use super::*;

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
