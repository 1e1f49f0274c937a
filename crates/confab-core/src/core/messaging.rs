//! Messaging: sending messages to rooms and users, one at a time or as one burst, and
//! routing them to the recipients' mailboxes (directly, over the cluster's bus, or into
//! the journal for an offline account). A new kind of message event (an edit, a
//! reaction) is carried out here; the encoders are the only other place it touches.

use std::sync::Arc;

use crate::cluster::{Replica, Route};
use crate::error::ChatError;
use crate::event::{Batch, Envelope, Event, Message, MessageKind, Source, Target};
use crate::mailbox::Mailbox;
use crate::name::{with_folded, Key, Name};

use super::{post, reply, Client, ClientId, Core, Recipient};

/// Checks a message text: not empty, and no character that would end or corrupt a
/// line on some front-end.
fn check_text(text: &str) -> Result<(), ChatError> {
    if text.is_empty() {
        return Err(ChatError::EmptyMessage);
    }
    if text.bytes().any(|b| matches!(b, b'\0' | b'\r' | b'\n')) {
        return Err(ChatError::ControlCharacter);
    }
    Ok(())
}

/// One message of [`Core::send`] before its target is known: the same for a room
/// and a user, so that each half builds its message alike.
struct Draft<'a> {
    id: u64,
    time_ms: u64,
    from: Arc<Source>,
    kind: MessageKind,
    text: &'a str,
    tags: Option<Arc<str>>,
}

impl Draft<'_> {
    fn to(&self, to: Target) -> Message {
        Message {
            id: self.id,
            time_ms: self.time_ms,
            from: self.from.clone(),
            to,
            kind: self.kind,
            text: self.text.into(),
            tags: self.tags.clone(),
        }
    }
}

impl<M: Mailbox> Core<M> {
    /// Sends one message from client `id` (see [`Command::Send`](super::Command::Send)):
    /// checks it, numbers it, journals it and hands it to its recipients.
    pub(super) fn send(
        &mut self,
        id: ClientId,
        to: Recipient,
        kind: MessageKind,
        text: String,
        tags: Option<Arc<str>>,
        now_ms: u64,
    ) -> Result<(), ChatError> {
        // A tag-only message has no text to check; anything else needs some.
        if kind != MessageKind::Tags {
            check_text(&text)?;
        }
        self.align_message_id(now_ms);
        let client = &self.clients[&id];
        let draft = Draft {
            id: self.next_message_id,
            time_ms: now_ms,
            from: client.source.clone().expect("caller checked"),
            kind,
            text: &text,
            tags,
        };
        let delivered = match to {
            Recipient::Room(wanted) => self.send_to_room(id, client, wanted, &draft)?,
            Recipient::User(wanted) => self.send_to_user(id, client, wanted, &draft)?,
        };
        self.advance_message_id();
        self.stats.messages += 1;
        // Delivered here, not passed on to the bus or kept for an offline user.
        if let Some(delivered) = delivered {
            self.stats.deliveries += delivered;
            if let Some(client) = self.clients.get_mut(&id) {
                client.last_spoke_ms = now_ms;
            }
        }
        Ok(())
    }

    /// Whether the journal took `message` for history (or there is none); tag-only
    /// messages are not history, so nothing records them.
    fn recorded(&self, message: &Message, recipient: Option<&Source>) -> bool {
        message.kind == MessageKind::Tags
            || self
                .journal
                .as_deref()
                .is_none_or(|j| j.record(message, recipient))
    }

    /// The room half of [`Core::send`]: how many copies were delivered here, or `None`
    /// when the message went to the cluster's bus, which delivers it.
    fn send_to_room(
        &self,
        id: ClientId,
        client: &Client<M>,
        wanted: String,
        draft: &Draft<'_>,
    ) -> Result<Option<u64>, ChatError> {
        let Some(room) = with_folded(&wanted, |k| self.rooms.get(k)) else {
            return Err(ChatError::NoSuchRoom(wanted));
        };
        let member = room.members.get(&id);
        if !room.may_speak(id, &draft.from) {
            return Err(ChatError::CannotSend(room.name.to_string()));
        }
        let message = draft.to(Target::Room(room.name.clone()));
        if !self.recorded(&message, None) {
            return Err(ChatError::Busy);
        }
        // A room with members elsewhere is delivered, here too, when the bus
        // hands the message back, so every node sees one order.
        if let (Some(cluster), true) = (&self.cluster, room.bus) {
            let route = Route::Room(room.name.key());
            if !cluster.link.publish(
                Replica::Message {
                    from: id,
                    to: None,
                    message,
                },
                route,
            ) {
                return Err(ChatError::Busy);
            }
            return Ok(None);
        }
        let mut delivered = 0;
        let envelope = Envelope::new(Event::Message(message));
        for (member, m) in &room.members {
            if *member != id || client.echo {
                post(&m.mailbox, &envelope);
                delivered += 1;
            }
        }
        if member.is_none() && client.echo {
            post(&client.mailbox, &envelope);
            delivered += 1;
        }
        Ok(Some(delivered))
    }

    /// The user half of [`Core::send`]: how many copies were delivered, or `None` when
    /// the user is offline and the journal keeps the message for their next login.
    fn send_to_user(
        &self,
        id: ClientId,
        client: &Client<M>,
        wanted: String,
        draft: &Draft<'_>,
    ) -> Result<Option<u64>, ChatError> {
        let Some(recipient_id) = with_folded(&wanted, |k| self.names.get(k)) else {
            let key = Key::of(&wanted);
            // A registered user who is offline gets the message on next login.
            let stored = draft.kind != MessageKind::Tags && self.accounts.contains(&key);
            let (Some(journal), true) = (self.journal.as_deref(), stored) else {
                return Err(ChatError::NoSuchUser(wanted));
            };
            let name = Name::parse(&wanted).map_err(|_| ChatError::NoSuchUser(wanted.clone()))?;
            let message = draft.to(Target::User(name.clone()));
            if !journal.record_offline(&message, key.as_str()) {
                return Err(ChatError::Busy);
            }
            reply(client, Event::StoredForLater { name });
            return Ok(None);
        };
        let recipient = &self.clients[recipient_id];
        let to = recipient.source.as_deref().expect("named");
        let name = to.name.clone();
        let message = draft.to(Target::User(name.clone()));
        if !self.recorded(&message, Some(to)) {
            return Err(ChatError::Busy);
        }
        let envelope = Envelope::new(Event::Message(message));
        if let (Some(cluster), Some(node)) = (&self.cluster, recipient.node()) {
            let replica = Replica::Message {
                from: id,
                to: Some(*recipient_id),
                message: match &envelope.event {
                    Event::Message(m) => m.clone(),
                    _ => unreachable!("built above"),
                },
            };
            if !cluster.link.publish(replica, Route::Node(node.clone())) {
                return Err(ChatError::Busy);
            }
        }
        let mut delivered = 0;
        post(&recipient.mailbox, &envelope);
        delivered += 1;
        if client.echo && *recipient_id != id {
            post(&client.mailbox, &envelope);
            delivered += 1;
        }
        if let (Some(away), MessageKind::Normal | MessageKind::Action) =
            (recipient.away(), draft.kind)
        {
            reply(
                client,
                Event::RecipientAway {
                    name,
                    message: away.clone(),
                },
            );
        }
        Ok(Some(delivered))
    }

    /// Sends several messages from one client to one recipient (see
    /// [`Command::SendMany`]). Each is checked, numbered and journaled as [`Core::send`]
    /// would; the recipients get them as one [`Batch`], so that fan-out costs one
    /// delivery per recipient instead of one per message. Anything out of the ordinary
    /// (a room shared with other nodes, a remote or offline user, a refused message)
    /// goes through `send` one message at a time, with its usual replies.
    pub(super) fn send_many(
        &mut self,
        id: ClientId,
        to: Recipient,
        kind: MessageKind,
        texts: Vec<String>,
        now_ms: u64,
    ) {
        let batchable = texts.len() > 1 && texts.iter().all(|t| check_text(t).is_ok());
        let target = if batchable {
            self.local_target(id, &to)
        } else {
            None
        };
        let Some(target) = target else {
            for text in texts {
                if let Err(error) = self.send(id, to.clone(), kind, text, None, now_ms) {
                    if let Some(client) = self.clients.get(&id) {
                        reply(client, Event::Error(error));
                    }
                }
            }
            return;
        };
        let from = self.source(id);
        // A direct message's history belongs to the recipient's party, not their name.
        let recipient = match &target {
            Target::User(name) => self
                .names
                .get(&name.key())
                .and_then(|r| self.clients.get(r))
                .and_then(|c| c.source.clone()),
            Target::Room(_) => None,
        };
        let mut texts = texts.into_iter();
        let mut messages = Vec::with_capacity(texts.len());
        for text in texts.by_ref() {
            self.align_message_id(now_ms);
            let message = Message {
                id: self.next_message_id,
                time_ms: now_ms,
                from: from.clone(),
                to: target.clone(),
                kind,
                text: text.into(),
                tags: None,
            };
            if self
                .journal
                .as_deref()
                .is_some_and(|j| !j.record(&message, recipient.as_deref()))
            {
                // The journal is full; the rest go one by one and are refused (or
                // accepted, if it has caught up) with the usual replies.
                let text = message.text.to_string();
                self.deliver_batch(id, &target, messages, kind);
                for text in std::iter::once(text).chain(texts) {
                    if let Err(error) = self.send(id, to.clone(), kind, text, None, now_ms) {
                        reply(&self.clients[&id], Event::Error(error));
                    }
                }
                return;
            }
            self.advance_message_id();
            self.stats.messages += 1;
            messages.push(Envelope::new(Event::Message(message)));
        }
        self.deliver_batch(id, &target, messages, kind);
        if let Some(client) = self.clients.get_mut(&id) {
            client.last_spoke_ms = now_ms;
        }
    }

    /// Where client `id`'s messages to `to` would go if every recipient is on this node
    /// and the client may send there; `None` otherwise (the caller then takes the
    /// general path, which also gives the reason).
    fn local_target(&self, id: ClientId, to: &Recipient) -> Option<Target> {
        let from = self.clients.get(&id)?.source.as_ref()?;
        match to {
            Recipient::Room(wanted) => {
                let room = with_folded(wanted, |k| self.rooms.get(k))?;
                let shared = self.cluster.is_some() && room.bus;
                (!shared && room.may_speak(id, from)).then(|| Target::Room(room.name.clone()))
            }
            Recipient::User(wanted) => {
                let recipient = with_folded(wanted, |k| self.names.get(k))?;
                let recipient = &self.clients[recipient];
                let name = &recipient.source.as_ref()?.name;
                recipient
                    .node()
                    .is_none()
                    .then(|| Target::User(name.clone()))
            }
        }
    }

    /// Hands a batch of client `id`'s messages (already journaled) to their recipients,
    /// as `send` hands one.
    fn deliver_batch(
        &mut self,
        id: ClientId,
        target: &Target,
        messages: Vec<Arc<Envelope>>,
        kind: MessageKind,
    ) {
        let count = messages.len() as u64;
        let batch = match messages.len() {
            0 => return,
            _ => Batch::new(messages),
        };
        let client = &self.clients[&id];
        let give = |mailbox: &Option<M>| {
            if let Some(mailbox) = mailbox {
                mailbox.deliver_batch(&batch);
            }
        };
        let mut delivered = 0;
        match target {
            Target::Room(name) => {
                let room = &self.rooms[&name.key()];
                for (member, m) in &room.members {
                    if *member != id || client.echo {
                        give(&m.mailbox);
                        delivered += count;
                    }
                }
                if !room.members.contains_key(&id) && client.echo {
                    give(&client.mailbox);
                    delivered += count;
                }
            }
            Target::User(name) => {
                let recipient_id = self.names[&name.key()];
                let recipient = &self.clients[&recipient_id];
                give(&recipient.mailbox);
                delivered += count;
                if client.echo && recipient_id != id {
                    give(&client.mailbox);
                    delivered += count;
                }
                if let (Some(away), MessageKind::Normal | MessageKind::Action) =
                    (recipient.away(), kind)
                {
                    for _ in 0..count {
                        reply(
                            client,
                            Event::RecipientAway {
                                name: name.clone(),
                                message: away.clone(),
                            },
                        );
                    }
                }
            }
        }
        self.stats.deliveries += delivered;
    }
}
