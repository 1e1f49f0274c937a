//! Unit tests of the core through its public API, with mailboxes that just record: the
//! harness and helpers here, the tests in one file per part of the core.

use std::sync::Arc;

use crate::test_support::Inbox;
use crate::*;

mod default_room;
mod messaging;
mod modes;
mod names;
mod rooms;

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

fn join(room: &str) -> Command {
    Command::Join {
        room: room.into(),
        key: None,
    }
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
