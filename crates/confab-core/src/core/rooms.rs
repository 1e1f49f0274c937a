//! Rooms: who may join them, joining and parting, the member list in name order,
//! topics, kicks and invitations, and keeping the rooms a logged-in user owns. The
//! rules for who may enter and who may speak are `Room`'s methods here.

use std::collections::BTreeSet;
use std::sync::Arc;

use crate::cluster::{Replica, Route};
use crate::error::ChatError;
use crate::event::{
    Envelope, Event, MemberInfo, RoomModes, RoomRecord, RoomSummary, Source, Topic,
};
use crate::mailbox::Mailbox;
use crate::name::{glob_match, Key, RoomName};

use super::{clip, cmp_folded, post, reply, ClientId, Core, Map, Member, Room, Set};

impl<M> Room<M> {
    /// A room nobody has held before, made by its first member.
    fn new(
        name: RoomName,
        now: u64,
        owner: Option<Arc<str>>,
        op_accounts: BTreeSet<String>,
    ) -> Self {
        Room {
            name,
            members: Map::default(),
            topic: None,
            modes: RoomModes::default(),
            bans: Vec::new(),
            invited: Set::default(),
            created_ms: now,
            owner,
            op_accounts,
            order: Vec::new(),
            bus: false,
        }
    }

    /// A kept room, back as it was saved, when its first member joins.
    fn restored(record: RoomRecord) -> Self {
        Room {
            name: record.name,
            members: Map::default(),
            topic: record.topic,
            modes: record.modes,
            bans: record.bans,
            invited: Set::default(),
            created_ms: record.created_ms,
            owner: Some(record.owner),
            op_accounts: record.ops.into_iter().collect(),
            order: Vec::new(),
            bus: false,
        }
    }

    /// Why `source` may not join this room with `key`, if it may not: a ban or `+i`
    /// (unless invited), a wrong `+k` key, `+l`, or the server's member bound.
    fn refusal(&self, source: &Source, key: Option<&str>, max_members: usize) -> Option<ChatError> {
        let invited = self.invited.contains(&source.session);
        let room_name = &self.name;
        if self.is_banned(source) && !invited {
            Some(ChatError::Banned(room_name.to_string()))
        } else if self.modes.invite_only && !invited {
            Some(ChatError::InviteOnly(room_name.to_string()))
        } else if self.modes.key.as_deref().is_some_and(|k| Some(k) != key) {
            Some(ChatError::BadKey(room_name.to_string()))
        } else if self.modes.limit.is_some_and(|l| self.members.len() >= l) {
            Some(ChatError::RoomFull(room_name.to_string()))
        } else if max_members > 0 && self.members.len() >= max_members {
            Some(ChatError::TooManyMembers {
                room: room_name.to_string(),
                limit: max_members,
            })
        } else {
            None
        }
    }

    pub(super) fn is_op(&self, id: ClientId) -> bool {
        self.members.get(&id).is_some_and(|m| m.op)
    }

    fn is_banned(&self, source: &Source) -> bool {
        if self.bans.is_empty() {
            return false;
        }
        let mask = source.mask();
        self.bans.iter().any(|ban| glob_match(&ban.mask, &mask))
    }

    /// Whether client `id` (who is `from`) may send messages here: members unless the
    /// room is moderated or they are banned (operators and voiced members always),
    /// outsiders only into a `-n` room that does not ban them.
    pub(super) fn may_speak(&self, id: ClientId, from: &Source) -> bool {
        match self.members.get(&id) {
            None => !self.modes.no_external && !self.is_banned(from),
            Some(m) => m.op || m.voice || !(self.modes.moderated || self.is_banned(from)),
        }
    }
}

fn parse_room(wanted: &str) -> Result<RoomName, ChatError> {
    RoomName::parse(wanted).map_err(|reason| ChatError::InvalidRoom {
        name: wanted.to_string(),
        reason,
    })
}

/// Takes `id` out of a room's name order.
pub(super) fn unorder<M>(room: &mut Room<M>, id: ClientId) {
    if let Some(at) = room.order.iter().position(|&other| other == id) {
        room.order.remove(at);
    }
}

impl<M: Mailbox> Core<M> {
    /// Whether `id` is a server operator and `key` the default room, which server
    /// operators run whether or not they hold operator status in it.
    pub(super) fn runs_default_room(&self, key: &Key, id: ClientId) -> bool {
        self.default_room.as_ref() == Some(key) && self.clients.get(&id).is_some_and(|c| c.oper)
    }

    /// How many rooms exist.
    pub fn room_count(&self) -> usize {
        self.rooms.len()
    }

    /// Whether a room is secret (`+s`), for the channel type in IRC's NAMES reply.
    pub fn is_secret(&self, room: &str) -> bool {
        self.rooms
            .get(&Key::of(room))
            .is_some_and(|room| room.modes.secret)
    }

    /// Restores a kept room at startup; it comes back when someone joins it.
    pub fn restore_room(&mut self, record: RoomRecord) {
        self.records.insert(record.name.key(), record);
    }

    /// Writes an owned room's state to the journal.
    pub(super) fn persist(&mut self, key: &Key) {
        let Some(room) = self.rooms.get(key) else {
            return;
        };
        let Some(owner) = room.owner.clone() else {
            return;
        };
        let record = RoomRecord {
            name: room.name.clone(),
            owner,
            topic: room.topic.clone(),
            modes: room.modes.clone(),
            bans: room.bans.clone(),
            ops: room.op_accounts.iter().cloned().collect(),
            created_ms: room.created_ms,
        };
        if let Some(journal) = &self.journal {
            journal.save_room(&record);
        }
        self.records.insert(key.clone(), record);
    }

    pub(super) fn join(
        &mut self,
        id: ClientId,
        wanted: &str,
        key: Option<&str>,
        now: u64,
    ) -> Result<(), ChatError> {
        let name = parse_room(wanted)?;
        let room_key = name.key();
        let client = self.clients.get_mut(&id).expect("caller checked");
        let source = client.source.clone().expect("caller checked");
        let existing = self.rooms.get(&room_key);
        let member = existing.is_some_and(|room| room.members.contains_key(&id));
        // Checked before the room is created, so that a refusal leaves no empty room.
        let max_rooms = self.limits.max_rooms_per_user;
        if !member && max_rooms > 0 && client.rooms.len() >= max_rooms {
            return Err(ChatError::TooManyRooms {
                room: existing.map_or_else(|| name.to_string(), |room| room.name.to_string()),
                limit: max_rooms,
            });
        }
        let fresh = existing.is_none();
        let default = self.default_room.as_ref() == Some(&room_key);
        let oper = client.oper;
        let max_members = self.limits.max_members_per_room;
        let account = source
            .account
            .as_deref()
            .map(|a| Key::of(a).as_str().to_string());
        let record = self.records.get(&room_key).cloned();
        let room = self
            .rooms
            .entry(room_key.clone())
            .or_insert_with(|| match record {
                Some(record) => Room::restored(record),
                // A logged-in creator owns the room, and the room is kept; nobody owns
                // the default room.
                None => Room::new(
                    name,
                    now,
                    source.account.clone().filter(|_| !default),
                    account.iter().filter(|_| !default).cloned().collect(),
                ),
            });
        // In a kept room, operator status belongs to accounts; elsewhere to whoever
        // created the room.
        let op = match &room.owner {
            // In the default room only server operators are operators, whatever an
            // older record of the room says.
            _ if default => oper,
            Some(_) => account
                .as_ref()
                .is_some_and(|a| room.op_accounts.contains(a)),
            None => fresh,
        };
        let save = fresh && room.owner.is_some();
        let room_name = room.name.clone();
        if room.members.contains_key(&id) {
            return self.who(id, room_name.as_str());
        }
        if let Some(error) = room.refusal(&source, key, max_members) {
            return Err(error);
        }
        room.invited.remove(&source.session);
        room.members.insert(
            id,
            Member {
                mailbox: client.mailbox.clone(),
                op,
                voice: false,
            },
        );
        client.rooms.push(room_key.clone());
        room.bus |= room.members.values().any(|m| m.mailbox.is_none());
        let envelope = Envelope::new(Event::Joined {
            room: room_name.clone(),
            who: source,
            history_until: self.next_message_id - 1,
            away: client.away().cloned(),
        });
        for m in room.members.values() {
            post(&m.mailbox, &envelope);
        }
        if room.topic.is_some() {
            let topic = room.topic.clone();
            reply(
                &self.clients[&id],
                Event::TopicIs {
                    room: room_name.clone(),
                    topic,
                },
            );
        }
        if save {
            self.persist(&room_key);
        }
        self.order(&room_key, id);
        if self.cluster.is_some() {
            let room = self.room_state(&room_key);
            self.publish(Replica::Joined { id, room, op }, Route::Everyone);
        }
        self.who(id, room_name.as_str())
    }

    /// Takes `id` out of the room at `key` and deletes the room if it emptied.
    pub(super) fn leave(&mut self, id: ClientId, key: &Key) {
        if let Some(client) = self.clients.get_mut(&id) {
            client.rooms.retain(|k| k != key);
        }
        if let Some(room) = self.rooms.get_mut(key) {
            room.members.remove(&id);
            unorder(room, id);
            if room.members.is_empty() {
                self.rooms.remove(key);
            }
        }
    }

    /// Puts member `id` of the room at `key` in its place in the room's name order.
    pub(super) fn order(&mut self, key: &Key, id: ClientId) {
        let clients = &self.clients;
        let name_of = |id: &ClientId| {
            clients
                .get(id)
                .and_then(|c| c.source.as_ref())
                .map(|s| s.name.as_str())
        };
        let (Some(room), Some(name)) = (self.rooms.get_mut(key), name_of(&id)) else {
            return;
        };
        unorder(room, id);
        let at = room.order.partition_point(|other| {
            name_of(other).is_some_and(|o| cmp_folded(o, name) == std::cmp::Ordering::Less)
        });
        room.order.insert(at, id);
    }

    /// Moves client `id` to its new place in every room's order after a rename.
    pub(super) fn reorder(&mut self, id: ClientId) {
        let keys = self
            .clients
            .get(&id)
            .map(|c| c.rooms.clone())
            .unwrap_or_default();
        for key in keys {
            self.order(&key, id);
        }
    }

    /// A room the asker is in. A room that does not exist, or that is secret to the
    /// asker, is `NoSuchRoom` (IRC's 403), not `NotInRoom` (442).
    fn member_room(&self, id: ClientId, wanted: &str) -> Result<&Room<M>, ChatError> {
        self.visible_room(id, wanted)?;
        self.rooms
            .get(&Key::of(wanted))
            .filter(|room| room.members.contains_key(&id))
            .ok_or_else(|| ChatError::NotInRoom(wanted.to_string()))
    }

    /// A room the asker may see: secret rooms are invisible to non-members.
    pub(super) fn visible_room(&self, id: ClientId, wanted: &str) -> Result<&Room<M>, ChatError> {
        self.rooms
            .get(&Key::of(wanted))
            .filter(|room| !room.modes.secret || room.members.contains_key(&id))
            .ok_or_else(|| ChatError::NoSuchRoom(wanted.to_string()))
    }

    pub(super) fn part(
        &mut self,
        id: ClientId,
        wanted: &str,
        reason: Option<String>,
    ) -> Result<(), ChatError> {
        let room = self.member_room(id, wanted)?;
        let room_name = room.name.clone();
        let reason = reason.as_deref().map(clip);
        let envelope = Envelope::new(Event::Parted {
            room: room.name.clone(),
            who: self.source(id),
            reason: reason.clone(),
        });
        for m in room.members.values() {
            post(&m.mailbox, &envelope);
        }
        self.leave(id, &Key::of(wanted));
        self.publish(
            Replica::Parted {
                id,
                room: room_name,
                reason,
            },
            Route::Everyone,
        );
        Ok(())
    }

    pub(super) fn rooms_reply(&self, id: ClientId) {
        let mut rooms: Vec<RoomSummary> = self
            .rooms
            .values()
            .filter(|room| !room.modes.secret || room.members.contains_key(&id))
            .map(|room| RoomSummary {
                name: room.name.clone(),
                members: room.members.len(),
                topic: room.topic.as_ref().map(|t| t.text.clone()),
            })
            .collect();
        rooms.sort_unstable_by(|a, b| cmp_folded(a.name.as_str(), b.name.as_str()));
        reply(&self.clients[&id], Event::Rooms { rooms });
    }

    pub(super) fn who(&self, id: ClientId, wanted: &str) -> Result<(), ChatError> {
        let room = self.visible_room(id, wanted)?;
        // Invisible members are listed only to those in the room with them.
        let inside = room.members.contains_key(&id);
        let info = |member: &ClientId, m: &Member<M>| {
            let client = self.clients.get(member)?;
            if client.invisible && !inside {
                return None;
            }
            Some(MemberInfo {
                who: client.source.clone()?,
                op: m.op,
                voice: m.voice,
                away: client.away().is_some(),
                oper: client.oper,
            })
        };
        // The kept order covers every member; should it ever not, sorting is the
        // fallback, so the list is always whole and sorted.
        let members: Vec<MemberInfo> = if room.order.len() == room.members.len() {
            room.order
                .iter()
                .filter_map(|member| info(member, room.members.get(member)?))
                .collect()
        } else {
            debug_assert!(false, "the member order of {} is out of step", room.name);
            let mut members: Vec<MemberInfo> = room
                .members
                .iter()
                .filter_map(|(member, m)| info(member, m))
                .collect();
            members.sort_unstable_by(|a, b| cmp_folded(a.who.name.as_str(), b.who.name.as_str()));
            members
        };
        reply(
            &self.clients[&id],
            Event::Members {
                room: room.name.clone(),
                members,
            },
        );
        Ok(())
    }

    pub(super) fn topic(
        &mut self,
        id: ClientId,
        wanted: &str,
        text: Option<String>,
        now: u64,
    ) -> Result<(), ChatError> {
        let Some(text) = text else {
            let room = self.visible_room(id, wanted)?;
            reply(
                &self.clients[&id],
                Event::TopicIs {
                    room: room.name.clone(),
                    topic: room.topic.clone(),
                },
            );
            return Ok(());
        };
        let source = self.source(id);
        let runs = self.runs_default_room(&Key::of(wanted), id);
        self.member_room(id, wanted)?;
        let room = self
            .rooms
            .get_mut(&Key::of(wanted))
            .expect("member_room found it");
        if room.modes.topic_ops && !(room.is_op(id) || runs) {
            return Err(ChatError::OperatorNeeded(room.name.to_string()));
        }
        let text = clip(&text);
        room.topic = (!text.is_empty()).then(|| Topic {
            text: text.clone(),
            by: source.mask().into(),
            time_ms: now,
        });
        let envelope = Envelope::new(Event::TopicChanged {
            room: room.name.clone(),
            by: source,
            text: text.clone(),
        });
        for m in room.members.values() {
            post(&m.mailbox, &envelope);
        }
        self.persist(&Key::of(wanted));
        if self.cluster.is_some() {
            let room = self.room_state(&Key::of(wanted));
            self.publish(Replica::Topic { by: id, room, text }, Route::Everyone);
        }
        Ok(())
    }

    pub(super) fn kick(
        &mut self,
        id: ClientId,
        wanted: &str,
        name: &str,
        reason: Option<String>,
    ) -> Result<(), ChatError> {
        let room = self.member_room(id, wanted)?;
        if !(room.is_op(id) || self.runs_default_room(&Key::of(wanted), id)) {
            return Err(ChatError::OperatorNeeded(room.name.to_string()));
        }
        let target = self
            .names
            .get(&Key::of(name))
            .copied()
            .filter(|t| room.members.contains_key(t))
            .ok_or_else(|| ChatError::UserNotInRoom {
                name: name.to_string(),
                room: room.name.to_string(),
            })?;
        let by = self.source(id);
        let room_name = room.name.clone();
        let reason = clip(reason.as_deref().unwrap_or(by.name.as_str()));
        let envelope = Envelope::new(Event::Kicked {
            room: room.name.clone(),
            target: self.name_of(target).cloned().expect("registered"),
            reason: reason.clone(),
            by,
        });
        for m in room.members.values() {
            post(&m.mailbox, &envelope);
        }
        self.leave(target, &Key::of(wanted));
        let kicked = Replica::Kicked {
            by: id,
            room: room_name,
            target,
            reason,
        };
        self.publish(kicked, Route::Everyone);
        Ok(())
    }

    pub(super) fn invite(
        &mut self,
        id: ClientId,
        name: &str,
        wanted: &str,
    ) -> Result<(), ChatError> {
        let target = self
            .names
            .get(&Key::of(name))
            .copied()
            .ok_or_else(|| ChatError::NoSuchUser(name.to_string()))?;
        let room = self.member_room(id, wanted)?;
        let runs = self.runs_default_room(&Key::of(wanted), id);
        if room.modes.invite_only && !(room.is_op(id) || runs) {
            return Err(ChatError::OperatorNeeded(room.name.to_string()));
        }
        let target_source = self.source(target);
        let target_name = target_source.name.clone();
        if room.members.contains_key(&target) {
            return Err(ChatError::AlreadyInRoom {
                name: target_name.to_string(),
                room: room.name.to_string(),
            });
        }
        let room_name = room.name.clone();
        let by = self.source(id);
        self.rooms
            .get_mut(&Key::of(wanted))
            .expect("found above")
            .invited
            .insert(target_source.session);
        reply(
            &self.clients[&target],
            Event::Invited {
                room: room_name.clone(),
                by,
            },
        );
        let invited = Replica::Invited {
            by: id,
            target,
            room: room_name.clone(),
        };
        self.publish(invited, Route::Everyone);
        reply(
            &self.clients[&id],
            Event::InviteSent {
                room: room_name,
                target: target_name,
            },
        );
        Ok(())
    }
}
