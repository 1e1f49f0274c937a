//! The commands a client sends the core, and the one dispatch that hands each to the
//! part of the core that carries it out. A new command is a variant here and an arm in
//! [`Core::registered`]; its work lives in its part.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::error::ChatError;
use crate::event::{Event, MessageKind, ModeChange};
use crate::mailbox::Mailbox;

use super::{reply, ClientId, Core};

/// Where a [`Command::Send`] goes, as the user wrote it (validated by the core).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Recipient {
    Room(String),
    User(String),
}

/// What a client asks the core to do. Every command's outcome arrives as events in the
/// client's own mailbox, in order with everything else it receives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    Register {
        name: String,
    },
    Nick {
        name: String,
    },
    Join {
        room: String,
        key: Option<String>,
    },
    Part {
        room: String,
        reason: Option<String>,
    },
    Send {
        to: Recipient,
        kind: MessageKind,
        text: String,
        /// Client-only tags to relay with the message (see
        /// [`Message::tags`](crate::event::Message::tags)).
        #[serde(default)]
        tags: Option<Arc<str>>,
    },
    /// Several messages to one recipient, as one read of a client's input brought them:
    /// the same as a `Send` for each, in order, but delivered as one
    /// [`Batch`](crate::event::Batch).
    SendMany {
        to: Recipient,
        kind: MessageKind,
        texts: Vec<String>,
    },
    Rooms,
    Who {
        room: String,
    },
    /// Query (`None`) or set a room's topic.
    Topic {
        room: String,
        text: Option<String>,
    },
    /// Query (no changes) or change a room's modes.
    Mode {
        room: String,
        changes: Vec<ModeChange>,
    },
    Kick {
        room: String,
        name: String,
        reason: Option<String>,
    },
    Invite {
        name: String,
        room: String,
    },
    /// Go away with a message, or come back with `None`.
    Away {
        message: Option<String>,
    },
    Whois {
        name: String,
    },
    WhoWas {
        name: String,
    },
    /// Which of these users are online.
    Lookup {
        names: Vec<String>,
    },
    /// Users whose nick, user name, host or real name match an IRC mask (`*`, `?`):
    /// the visible ones, and invisible ones who share a room with the asker.
    WhoMask {
        mask: String,
    },
    /// Remove a user from the server; server operators only.
    Kill {
        name: String,
        reason: String,
    },
}

impl<M: Mailbox> Core<M> {
    /// Carries out one command from client `id`; `now_ms` stamps what it changes.
    pub fn handle(&mut self, id: ClientId, command: Command, now_ms: u64) {
        let Some(client) = self.clients.get(&id) else {
            return;
        };
        let result = match (&client.source, command) {
            (None, Command::Register { name }) => self.register(id, &name, now_ms),
            (Some(source), Command::Register { .. }) => {
                Err(ChatError::AlreadyRegistered(source.name.clone()))
            }
            (None, _) => Err(ChatError::NotRegistered),
            (Some(_), command) => self.registered(id, command, now_ms),
        };
        if let Err(error) = result {
            if let Some(client) = self.clients.get(&id) {
                reply(client, Event::Error(error));
            }
        }
    }

    fn registered(&mut self, id: ClientId, command: Command, now: u64) -> Result<(), ChatError> {
        match command {
            Command::Register { .. } => unreachable!("handled by the caller"),
            Command::Nick { name } => self.nick(id, &name),
            Command::Join { room, key } => self.join(id, &room, key.as_deref(), now),
            Command::Part { room, reason } => self.part(id, &room, reason),
            Command::Send {
                to,
                kind,
                text,
                tags,
            } => self.send(id, to, kind, text, tags, now),
            Command::SendMany { to, kind, texts } => {
                self.send_many(id, to, kind, texts, now);
                Ok(())
            }
            Command::Rooms => {
                self.rooms_reply(id);
                Ok(())
            }
            Command::Who { room } => self.who(id, &room),
            Command::Topic { room, text } => self.topic(id, &room, text, now),
            Command::Mode { room, changes } => self.mode(id, &room, changes, now),
            Command::Kick { room, name, reason } => self.kick(id, &room, &name, reason),
            Command::Invite { name, room } => self.invite(id, &name, &room),
            Command::Away { message } => {
                self.away(id, message);
                Ok(())
            }
            Command::Whois { name } => self.whois(id, &name, now),
            Command::WhoWas { name } => self.whowas_reply(id, &name),
            Command::Lookup { names } => {
                self.lookup(id, &names);
                Ok(())
            }
            Command::WhoMask { mask } => {
                self.who_mask(id, &mask);
                Ok(())
            }
            Command::Kill { name, reason } => self.kill(id, &name, &reason),
        }
    }
}
