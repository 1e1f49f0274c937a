//! The chat state machine: who is online, which rooms exist, who is in them, and where
//! each event goes. It owns no sockets and knows no wire format.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::error::ChatError;
use crate::event::{Envelope, Event, Message, MessageKind, RoomSummary, Source, Target};
use crate::mailbox::Mailbox;
use crate::name::{Key, Name, RoomName};

/// Identifies one connection for as long as it lasts; never reused within one core.
pub type ClientId = u64;

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
    },
    Part {
        room: String,
        reason: Option<String>,
    },
    Send {
        to: Recipient,
        kind: MessageKind,
        text: String,
    },
    Rooms,
    Who {
        room: String,
    },
}

struct Client<M> {
    mailbox: M,
    /// Present once registered; the name and prefix shown to others.
    source: Option<Arc<Source>>,
    /// The host shown in `source`, kept for building it at registration.
    host: Arc<str>,
    /// Keys of the rooms this client is in, in the order joined.
    rooms: Vec<Key>,
    /// Whether this client wants a copy of its own messages (IRC's echo-message).
    echo: bool,
}

struct Room<M> {
    name: RoomName,
    /// Members with their mailboxes, so that fan-out touches only this map and never
    /// looks each recipient up again.
    members: HashMap<ClientId, M>,
}

/// The whole chat: users, rooms, routing and presence.
///
/// Every method runs to completion without blocking; callers serialise access (the
/// server keeps it behind a mutex that is never held across an `.await`).
pub struct Core<M> {
    clients: HashMap<ClientId, Client<M>>,
    /// Registered names, folded, to their owners: the uniqueness rule lives here.
    names: HashMap<Key, ClientId>,
    rooms: HashMap<Key, Room<M>>,
    next_message_id: u64,
}

impl<M: Mailbox> Default for Core<M> {
    fn default() -> Self {
        Core {
            clients: HashMap::new(),
            names: HashMap::new(),
            rooms: HashMap::new(),
            next_message_id: 1,
        }
    }
}

fn reply<M: Mailbox>(client: &Client<M>, event: Event) {
    client.mailbox.deliver(&Envelope::new(event));
}

impl<M: Mailbox> Core<M> {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a connection that has not registered yet. `host` is what others will see as
    /// its address.
    pub fn connect(&mut self, id: ClientId, mailbox: M, host: &str) {
        self.clients.insert(
            id,
            Client {
                mailbox,
                source: None,
                host: host.into(),
                rooms: Vec::new(),
                echo: false,
            },
        );
    }

    /// Removes a connection, telling everyone who shared a room with it.
    pub fn disconnect(&mut self, id: ClientId, reason: &str) {
        let Some(client) = self.clients.remove(&id) else {
            return;
        };
        let Some(source) = client.source else {
            return;
        };
        self.names.remove(&source.name.key());
        let envelope = Envelope::new(Event::Quit {
            who: source,
            reason: reason.into(),
        });
        let mut told = HashSet::new();
        for key in &client.rooms {
            let Some(room) = self.rooms.get_mut(key) else {
                continue;
            };
            room.members.remove(&id);
            for (member, mailbox) in &room.members {
                if told.insert(*member) {
                    mailbox.deliver(&envelope);
                }
            }
            if room.members.is_empty() {
                self.rooms.remove(key);
            }
        }
    }

    /// Turns IRC's echo-message on or off for one client.
    pub fn set_echo(&mut self, id: ClientId, on: bool) {
        if let Some(client) = self.clients.get_mut(&id) {
            client.echo = on;
        }
    }

    /// The registered name of a client, if any.
    pub fn name_of(&self, id: ClientId) -> Option<&Name> {
        self.clients.get(&id)?.source.as_ref().map(|s| &s.name)
    }

    /// How many clients are connected, registered or not.
    pub fn client_count(&self) -> usize {
        self.clients.len()
    }

    /// Carries out one command from client `id`; `now_ms` stamps any message it sends.
    pub fn handle(&mut self, id: ClientId, command: Command, now_ms: u64) {
        let Some(client) = self.clients.get(&id) else {
            return;
        };
        let result = match (&client.source, command) {
            (None, Command::Register { name }) => self.register(id, &name),
            (Some(source), Command::Register { .. }) => {
                Err(ChatError::AlreadyRegistered(source.name.clone()))
            }
            (None, _) => Err(ChatError::NotRegistered),
            (Some(_), Command::Nick { name }) => self.nick(id, &name),
            (Some(_), Command::Join { room }) => self.join(id, &room),
            (Some(_), Command::Part { room, reason }) => self.part(id, &room, reason),
            (Some(_), Command::Send { to, kind, text }) => self.send(id, to, kind, text, now_ms),
            (Some(_), Command::Rooms) => {
                self.rooms_reply(id);
                Ok(())
            }
            (Some(_), Command::Who { room }) => self.who(id, &room),
        };
        if let Err(error) = result {
            if let Some(client) = self.clients.get(&id) {
                reply(client, Event::Error(error));
            }
        }
    }

    fn claim_name(&self, wanted: &str) -> Result<Name, ChatError> {
        let name = Name::parse(wanted).map_err(|reason| ChatError::InvalidName {
            name: wanted.to_string(),
            reason,
        })?;
        if self.names.contains_key(&name.key()) {
            return Err(ChatError::NameInUse(name.to_string()));
        }
        Ok(name)
    }

    fn register(&mut self, id: ClientId, wanted: &str) -> Result<(), ChatError> {
        let name = self.claim_name(wanted)?;
        self.names.insert(name.key(), id);
        let client = self.clients.get_mut(&id).expect("caller checked");
        client.source = Some(Arc::new(Source {
            name: name.clone(),
            user: name.as_str().into(),
            host: client.host.clone(),
        }));
        reply(client, Event::Registered { name });
        Ok(())
    }

    fn nick(&mut self, id: ClientId, wanted: &str) -> Result<(), ChatError> {
        let client = &self.clients[&id];
        let old = client.source.clone().expect("caller checked");
        // A change of case only is allowed: the key stays the same and stays ours.
        let name = if Key::of(wanted) == old.name.key() {
            Name::parse(wanted).map_err(|reason| ChatError::InvalidName {
                name: wanted.to_string(),
                reason,
            })?
        } else {
            self.claim_name(wanted)?
        };
        self.names.remove(&old.name.key());
        self.names.insert(name.key(), id);
        let client = self.clients.get_mut(&id).expect("caller checked");
        client.source = Some(Arc::new(Source {
            name: name.clone(),
            user: old.user.clone(),
            host: old.host.clone(),
        }));
        let envelope = Envelope::new(Event::NickChanged { old, new: name });
        client.mailbox.deliver(&envelope);
        let mut told = HashSet::from([id]);
        for key in &client.rooms {
            for (member, mailbox) in &self.rooms[key].members {
                if told.insert(*member) {
                    mailbox.deliver(&envelope);
                }
            }
        }
        Ok(())
    }

    fn join(&mut self, id: ClientId, wanted: &str) -> Result<(), ChatError> {
        let name = RoomName::parse(wanted).map_err(|reason| ChatError::InvalidRoom {
            name: wanted.to_string(),
            reason,
        })?;
        let key = name.key();
        let client = self.clients.get_mut(&id).expect("caller checked");
        let room = self.rooms.entry(key.clone()).or_insert_with(|| Room {
            name,
            members: HashMap::new(),
        });
        let room_name = room.name.clone();
        if let std::collections::hash_map::Entry::Vacant(slot) = room.members.entry(id) {
            slot.insert(client.mailbox.clone());
            client.rooms.push(key.clone());
            let envelope = Envelope::new(Event::Joined {
                room: room.name.clone(),
                who: client.source.clone().expect("caller checked"),
            });
            for mailbox in room.members.values() {
                mailbox.deliver(&envelope);
            }
        }
        self.who(id, room_name.as_str())
    }

    fn part(&mut self, id: ClientId, wanted: &str, reason: Option<String>) -> Result<(), ChatError> {
        let key = Key::of(wanted);
        let client = self.clients.get_mut(&id).expect("caller checked");
        let Some(room) = self
            .rooms
            .get_mut(&key)
            .filter(|room| room.members.contains_key(&id))
        else {
            return Err(ChatError::NotInRoom(wanted.to_string()));
        };
        let envelope = Envelope::new(Event::Parted {
            room: room.name.clone(),
            who: client.source.clone().expect("caller checked"),
            reason: reason.map(Into::into),
        });
        for mailbox in room.members.values() {
            mailbox.deliver(&envelope);
        }
        room.members.remove(&id);
        client.rooms.retain(|k| *k != key);
        if room.members.is_empty() {
            self.rooms.remove(&key);
        }
        Ok(())
    }

    fn send(
        &mut self,
        id: ClientId,
        to: Recipient,
        kind: MessageKind,
        text: String,
        now_ms: u64,
    ) -> Result<(), ChatError> {
        if text.is_empty() {
            return Err(ChatError::EmptyMessage);
        }
        if text.bytes().any(|b| matches!(b, b'\0' | b'\r' | b'\n')) {
            return Err(ChatError::ControlCharacter);
        }
        let client = &self.clients[&id];
        let from = client.source.clone().expect("caller checked");
        let message = |to| Message {
            id: self.next_message_id,
            time_ms: now_ms,
            from,
            to,
            kind,
            text: text.into(),
        };
        match to {
            Recipient::Room(wanted) => {
                let key = Key::of(&wanted);
                let Some(room) = self
                    .rooms
                    .get(&key)
                    .filter(|room| room.members.contains_key(&id))
                else {
                    return Err(ChatError::NotInRoom(wanted));
                };
                let envelope = Envelope::new(Event::Message(message(Target::Room(
                    room.name.clone(),
                ))));
                for (member, mailbox) in &room.members {
                    if *member != id || client.echo {
                        mailbox.deliver(&envelope);
                    }
                }
            }
            Recipient::User(wanted) => {
                let Some(recipient) = self.names.get(&Key::of(&wanted)) else {
                    return Err(ChatError::NoSuchUser(wanted));
                };
                let recipient = &self.clients[recipient];
                let name = recipient.source.as_ref().expect("named").name.clone();
                let envelope = Envelope::new(Event::Message(message(Target::User(name))));
                recipient.mailbox.deliver(&envelope);
                if client.echo && !std::ptr::eq(recipient, client) {
                    client.mailbox.deliver(&envelope);
                }
            }
        }
        self.next_message_id += 1;
        Ok(())
    }

    fn rooms_reply(&self, id: ClientId) {
        let mut rooms: Vec<RoomSummary> = self
            .rooms
            .values()
            .map(|room| RoomSummary {
                name: room.name.clone(),
                members: room.members.len(),
            })
            .collect();
        rooms.sort_by_key(|r| r.name.key());
        reply(&self.clients[&id], Event::Rooms { rooms });
    }

    fn who(&self, id: ClientId, wanted: &str) -> Result<(), ChatError> {
        let Some(room) = self.rooms.get(&Key::of(wanted)) else {
            return Err(ChatError::NoSuchRoom(wanted.to_string()));
        };
        let mut names: Vec<Name> = room
            .members
            .keys()
            .filter_map(|member| self.name_of(*member).cloned())
            .collect();
        names.sort_by_key(Name::key);
        reply(
            &self.clients[&id],
            Event::Members {
                room: room.name.clone(),
                names,
            },
        );
        Ok(())
    }
}
