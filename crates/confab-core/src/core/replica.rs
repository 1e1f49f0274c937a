//! The core's side of clustering: publishing what local users change, and applying what
//! other nodes publish. Users of other nodes live in the core like local ones, with no
//! mailbox, so names, rooms, WHO and WHOIS answer for the whole cluster.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use crate::cluster::{Link, RemoteUser, Replica, RoomState, Route, Snapshot, SnapshotMember};
use crate::event::{Envelope, Event};
use crate::mailbox::Mailbox;
use crate::name::Key;
use crate::{ChatError, ClientId, Core};

use super::{post, reply, Client, Map, Member, Rare, Room, Set};

/// Message ids in a cluster: milliseconds since 2025 in the high 42 bits, a sequence
/// in the next 12 and the node's index in the low 10. Ids stay unique without asking
/// anyone (the index is unique in the cluster), and roughly follow time across nodes,
/// which keeps history queries by id meaningful. A node steps by `1 << NODE_BITS`, so
/// the sequence overflowing simply borrows the next millisecond.
const ID_EPOCH_MS: u64 = 1_735_689_600_000;
const NODE_BITS: u32 = 10;
const SEQ_BITS: u32 = 12;

/// The most nodes a cluster can have: node indexes fit in `NODE_BITS`.
pub const MAX_NODES: u16 = 1 << NODE_BITS;

/// This node's identity in the cluster and its link to the others.
pub(super) struct Cluster {
    pub(super) node: Arc<str>,
    index: u16,
    pub(super) link: Box<dyn Link>,
}

impl<M: Mailbox> Core<M> {
    /// Makes this core one node of a cluster: from now on it publishes what its users
    /// change through `link` and numbers messages so that no other node can reuse an
    /// id. `index` must be unique in the cluster and below [`MAX_NODES`].
    pub fn join_cluster(&mut self, node: &str, index: u16, link: Box<dyn Link>) {
        assert!(index < MAX_NODES, "node index out of range");
        self.cluster = Some(Cluster {
            node: node.into(),
            index,
            link,
        });
    }

    /// This node's name, in a cluster.
    pub fn node_name(&self) -> Option<&str> {
        self.cluster.as_ref().map(|c| &*c.node)
    }

    /// The node a user is connected to, `None` for local users and unknown ids.
    pub fn node_of(&self, id: ClientId) -> Option<Arc<str>> {
        self.clients.get(&id)?.node().cloned()
    }

    pub(super) fn publish(&self, replica: Replica, route: Route) {
        if let Some(cluster) = &self.cluster {
            // State changes are small and rare; if the link's queue is full the change
            // is lost to the other nodes until the next snapshot repairs it, which is
            // better than refusing a command that already took effect here.
            cluster.link.publish(replica, route);
        }
    }

    pub(super) fn publish_user(&self, id: ClientId) {
        if self.cluster.is_none() {
            return;
        }
        if let Some(user) = self.remote_user(id) {
            self.publish(Replica::UserOn(user), Route::Everyone);
        }
    }

    fn remote_user(&self, id: ClientId) -> Option<RemoteUser> {
        let client = self.clients.get(&id)?;
        Some(RemoteUser {
            id,
            source: client.source.clone()?,
            away: client.away().cloned(),
            oper: client.oper,
            signon_ms: client.signon_ms,
        })
    }

    pub(super) fn room_state(&self, key: &Key) -> RoomState {
        let room = &self.rooms[key];
        RoomState {
            name: room.name.clone(),
            topic: room.topic.clone(),
            modes: room.modes.clone(),
            bans: room.bans.clone(),
            created_ms: room.created_ms,
            owner: room.owner.clone(),
            op_accounts: room.op_accounts.iter().cloned().collect(),
        }
    }

    /// Moves the next message id up to the current millisecond, in cluster mode.
    pub(super) fn align_message_id(&mut self, now_ms: u64) {
        let Some(cluster) = &self.cluster else {
            return;
        };
        let index = u64::from(cluster.index);
        let mask = (1u64 << NODE_BITS) - 1;
        let mut next = self.next_message_id;
        if next & mask != index {
            next = (((next >> NODE_BITS) + 1) << NODE_BITS) | index;
        }
        let floor = (now_ms.saturating_sub(ID_EPOCH_MS) << (NODE_BITS + SEQ_BITS)) | index;
        self.next_message_id = next.max(floor);
    }

    pub(super) fn advance_message_id(&mut self) {
        self.next_message_id += match self.cluster {
            Some(_) => 1 << NODE_BITS,
            None => 1,
        };
    }

    /// Applies a change published by node `node`, delivering the events it implies to
    /// local users.
    pub fn apply(&mut self, node: &str, replica: Replica) {
        match replica {
            Replica::UserOn(user) => self.upsert_remote(node, user),
            Replica::UserOff { id, reason } => {
                if self.is_remote(id) {
                    self.remove_client(id, &reason);
                }
            }
            Replica::Renamed { id, source } => self.remote_renamed(id, source),
            Replica::Away { id, message } => {
                let Some(who) = self.remote_source(id) else {
                    return;
                };
                let client = self.clients.get_mut(&id).expect("checked");
                client.rare().away = message.clone();
                client.tidy();
                let envelope = Envelope::new(Event::AwayChanged { who, message });
                self.tell_neighbours(id, &envelope, false);
            }
            Replica::Joined { id, room, op } => self.remote_join(id, room, op, false),
            Replica::Parted { id, room, reason } => self.remote_parted(id, room, reason),
            Replica::Kicked {
                by,
                room,
                target,
                reason,
            } => self.remote_kicked(by, room, target, reason),
            Replica::Topic { by, room, text } => {
                let Some(by) = self.clients.get(&by).and_then(|c| c.source.clone()) else {
                    return;
                };
                let Some(local) = self.rooms.get_mut(&room.name.key()) else {
                    return;
                };
                local.topic = room.topic;
                let envelope = Envelope::new(Event::TopicChanged {
                    room: local.name.clone(),
                    by,
                    text,
                });
                for m in local.members.values() {
                    post(&m.mailbox, &envelope);
                }
            }
            Replica::Modes { by, room, changes } => self.remote_modes(by, room, changes),
            Replica::Invited { by, target, room } => {
                let (Some(by), Some(invited)) = (
                    self.clients.get(&by).and_then(|c| c.source.clone()),
                    self.clients.get(&target).and_then(|c| c.source.clone()),
                ) else {
                    return;
                };
                if let Some(local) = self.rooms.get_mut(&room.key()) {
                    local.invited.insert(invited.session);
                }
                if let Some(client) = self.clients.get(&target) {
                    reply(client, Event::Invited { room, by });
                }
            }
            Replica::Kill { by, target, reason } => {
                let by = self.clients.get(&by).and_then(|c| c.source.clone());
                if let (Some(by), Some(client)) = (by, self.clients.get(&target)) {
                    reply(client, Event::Killed { by, reason });
                }
            }
            Replica::Account { name } => {
                self.accounts.insert(Key::of(&name));
            }
            Replica::Message { from, to, message } => {
                self.deliver_from_bus(from, to, message);
            }
        }
    }

    /// A remote user took a new name, or a new source under the same name.
    fn remote_renamed(&mut self, id: ClientId, source: Arc<crate::Source>) {
        let Some(old) = self.remote_source(id) else {
            return;
        };
        if old.name.key() != source.name.key() {
            if self.names.get(&old.name.key()) == Some(&id) {
                self.names.remove(&old.name.key());
            }
            self.names.entry(source.name.key()).or_insert(id);
            self.remember(old.clone());
        }
        let new = source.name.clone();
        self.clients.get_mut(&id).expect("checked").source = Some(source);
        self.reorder(id);
        if old.name != new {
            let envelope = Envelope::new(Event::NickChanged { old, new });
            self.tell_neighbours(id, &envelope, false);
        }
    }

    /// A remote user left a room.
    fn remote_parted(&mut self, id: ClientId, room: crate::RoomName, reason: Option<Arc<str>>) {
        let Some(who) = self.remote_source(id) else {
            return;
        };
        let key = room.key();
        let Some(room) = self.rooms.get(&key).filter(|r| r.members.contains_key(&id)) else {
            return;
        };
        let envelope = Envelope::new(Event::Parted {
            room: room.name.clone(),
            who,
            reason,
        });
        for m in room.members.values() {
            post(&m.mailbox, &envelope);
        }
        self.leave(id, &key);
    }

    /// A remote operator kicked someone out of a room.
    fn remote_kicked(
        &mut self,
        by: ClientId,
        room: crate::RoomName,
        target: ClientId,
        reason: Arc<str>,
    ) {
        let key = room.key();
        let (Some(by), Some(target_name)) = (
            self.clients.get(&by).and_then(|c| c.source.clone()),
            self.name_of(target).cloned(),
        ) else {
            return;
        };
        let Some(room) = self
            .rooms
            .get(&key)
            .filter(|r| r.members.contains_key(&target))
        else {
            return;
        };
        let envelope = Envelope::new(Event::Kicked {
            room: room.name.clone(),
            by,
            target: target_name,
            reason,
        });
        for m in room.members.values() {
            post(&m.mailbox, &envelope);
        }
        self.leave(target, &key);
    }

    /// A remote operator changed a room's modes; `room` is the room's state after.
    fn remote_modes(&mut self, by: ClientId, room: RoomState, changes: Vec<crate::ModeChange>) {
        let Some(by) = self.clients.get(&by).and_then(|c| c.source.clone()) else {
            return;
        };
        let targets: Vec<Option<ClientId>> = changes
            .iter()
            .map(|c| match (c.mode, &c.arg) {
                ('o' | 'v', Some(name)) => self.names.get(&Key::of(name)).copied(),
                _ => None,
            })
            .collect();
        let Some(local) = self.rooms.get_mut(&room.name.key()) else {
            return;
        };
        local.modes = room.modes;
        local.bans = room.bans;
        local.op_accounts = room.op_accounts.into_iter().collect();
        for (change, target) in changes.iter().zip(targets) {
            if let Some(member) = target.and_then(|t| local.members.get_mut(&t)) {
                match change.mode {
                    'o' => member.op = change.add,
                    _ => member.voice = change.add,
                }
            }
        }
        let envelope = Envelope::new(Event::ModeChanged {
            room: local.name.clone(),
            by,
            changes,
        });
        for m in local.members.values() {
            post(&m.mailbox, &envelope);
        }
    }

    /// Delivers a message that came back from the bus to the local users it is for.
    fn deliver_from_bus(&mut self, from: ClientId, to: Option<ClientId>, message: crate::Message) {
        let echo = self
            .clients
            .get(&from)
            .is_some_and(|c| c.node().is_none() && c.echo);
        let key = match &message.to {
            crate::Target::Room(room) => Some(room.key()),
            crate::Target::User(_) => None,
        };
        let envelope = Envelope::from_bus(Event::Message(message));
        let mut delivered = 0;
        match (key, to) {
            (Some(key), _) => {
                let Some(room) = self.rooms.get(&key) else {
                    return;
                };
                for (member, m) in &room.members {
                    if (*member != from || echo) && m.mailbox.is_some() {
                        post(&m.mailbox, &envelope);
                        delivered += 1;
                    }
                }
                if echo && !room.members.contains_key(&from) {
                    post(&self.clients[&from].mailbox, &envelope);
                    delivered += 1;
                }
            }
            (None, Some(to)) => {
                if let Some(client) = self.clients.get(&to) {
                    post(&client.mailbox, &envelope);
                    delivered += 1;
                }
            }
            (None, None) => {}
        }
        self.stats.deliveries += delivered;
    }

    /// The bus could not take `replica` (it is down, or did not confirm in time): a
    /// room message is delivered to this node's members after all, and its sender, if
    /// local, is told who may not have received it.
    pub fn bus_failed(&mut self, replica: Replica) {
        let Replica::Message { from, to, message } = replica else {
            return;
        };
        let target = match &message.to {
            crate::Target::Room(room) => room.to_string(),
            crate::Target::User(name) => name.to_string(),
        };
        if to.is_none() {
            self.deliver_from_bus(from, None, message);
        }
        if let Some(client) = self.clients.get(&from) {
            reply(client, Event::Error(ChatError::NotDelivered(target)));
        }
    }

    fn is_remote(&self, id: ClientId) -> bool {
        self.clients.get(&id).is_some_and(|c| c.node().is_some())
    }

    fn remote_source(&self, id: ClientId) -> Option<Arc<crate::Source>> {
        let client = self.clients.get(&id).filter(|c| c.node().is_some())?;
        client.source.clone()
    }

    fn upsert_remote(&mut self, node: &str, user: RemoteUser) {
        let id = user.id;
        if let Some(client) = self.clients.get_mut(&id) {
            if client.node().is_none() {
                return;
            }
            client.rare().away = user.away;
            client.oper = user.oper;
            let renamed =
                client.source.as_ref().map(|s| s.name.key()) != Some(user.source.name.key());
            if renamed {
                let source = user.source.clone();
                self.apply(node, Replica::Renamed { id, source });
            }
            return;
        }
        let key = user.source.name.key();
        // The name service makes a clash impossible in a healthy cluster; if one slips
        // through a partition, the user who held the name here keeps it.
        self.names.entry(key).or_insert(id);
        let rare = Rare {
            node: Some(node.into()),
            away: user.away,
            ..Rare::default()
        };
        let mut client = Client::new(None, rare);
        client.source = Some(user.source);
        client.oper = user.oper;
        client.signon_ms = user.signon_ms;
        client.last_spoke_ms = user.signon_ms;
        self.clients.insert(id, client);
    }

    /// Puts remote user `id` in a room, creating the room from `state` if this node
    /// has not seen it, and tells local members.
    fn remote_join(&mut self, id: ClientId, state: RoomState, op: bool, voice: bool) {
        let Some(who) = self.remote_source(id) else {
            return;
        };
        let key = state.name.key();
        let history_until = self.next_message_id.saturating_sub(1);
        let away = self.clients.get(&id).and_then(|c| c.away().cloned());
        let room = self.rooms.entry(key.clone()).or_insert_with(|| Room {
            name: state.name,
            members: Map::default(),
            topic: state.topic,
            modes: state.modes,
            bans: state.bans,
            invited: Set::default(),
            created_ms: state.created_ms,
            owner: state.owner,
            op_accounts: state.op_accounts.into_iter().collect(),
            order: Vec::new(),
            bus: true,
        });
        room.bus = true;
        if let Some(member) = room.members.get_mut(&id) {
            member.op = op;
            member.voice = voice;
            return;
        }
        room.invited.remove(&who.session);
        room.members.insert(
            id,
            Member {
                mailbox: None,
                op,
                voice,
            },
        );
        let envelope = Envelope::new(Event::Joined {
            room: room.name.clone(),
            who,
            history_until,
            away,
        });
        for m in room.members.values() {
            post(&m.mailbox, &envelope);
        }
        self.clients
            .get_mut(&id)
            .expect("checked")
            .rooms
            .push(key.clone());
        self.order(&key, id);
    }

    /// This node's users and their rooms, for the other nodes.
    pub fn snapshot(&self) -> Snapshot {
        let users = self
            .clients
            .iter()
            .filter(|(_, c)| c.node().is_none())
            .filter_map(|(id, _)| self.remote_user(*id))
            .collect();
        let rooms = self
            .rooms
            .iter()
            .filter_map(|(key, room)| {
                let members: Vec<SnapshotMember> = room
                    .members
                    .iter()
                    .filter(|(id, m)| {
                        m.mailbox.is_some()
                            && self.clients.get(id).is_some_and(|c| c.source.is_some())
                    })
                    .map(|(id, m)| SnapshotMember {
                        id: *id,
                        op: m.op,
                        voice: m.voice,
                    })
                    .collect();
                (!members.is_empty()).then(|| (self.room_state(key), members))
            })
            .collect();
        let accounts = self
            .accounts
            .iter()
            .map(|k| k.as_str().to_string())
            .collect();
        Snapshot {
            users,
            rooms,
            accounts,
        }
    }

    /// Replaces everything known of node `node` with its snapshot: users it no longer
    /// has quit, new ones appear, memberships are added and removed to match.
    pub fn apply_snapshot(&mut self, node: &str, snapshot: Snapshot) {
        let listed: HashSet<ClientId> = snapshot.users.iter().map(|u| u.id).collect();
        let gone: Vec<ClientId> = self
            .clients
            .iter()
            .filter(|(id, c)| c.node().is_some_and(|n| **n == *node) && !listed.contains(id))
            .map(|(id, _)| *id)
            .collect();
        for id in gone {
            self.remove_client(id, "Connection lost");
        }
        for user in snapshot.users {
            self.upsert_remote(node, user);
        }
        let mut wanted: HashMap<ClientId, HashSet<Key>> = HashMap::new();
        for (state, members) in snapshot.rooms {
            let key = state.name.key();
            if let Some(room) = self.rooms.get_mut(&key) {
                if room.members.values().all(|m| m.mailbox.is_none()) {
                    room.topic = state.topic.clone();
                    room.modes = state.modes.clone();
                    room.bans = state.bans.clone();
                }
            }
            for member in members {
                if !self.is_remote(member.id) {
                    continue;
                }
                wanted.entry(member.id).or_default().insert(key.clone());
                self.remote_join(member.id, state.clone(), member.op, member.voice);
            }
        }
        let stale: Vec<(ClientId, Key)> = self
            .clients
            .iter()
            .filter(|(_, c)| c.node().is_some_and(|n| **n == *node))
            .flat_map(|(id, c)| {
                let keep = wanted.get(id);
                c.rooms
                    .iter()
                    .filter(move |k| !keep.is_some_and(|w| w.contains(*k)))
                    .map(move |k| (*id, k.clone()))
            })
            .collect();
        for (id, key) in stale {
            if let (Some(who), Some(room)) = (self.remote_source(id), self.rooms.get(&key)) {
                let envelope = Envelope::new(Event::Parted {
                    room: room.name.clone(),
                    who,
                    reason: None,
                });
                for m in room.members.values() {
                    post(&m.mailbox, &envelope);
                }
            }
            self.leave(id, &key);
        }
        for account in snapshot.accounts {
            self.accounts.insert(Key::of(&account));
        }
    }

    /// Node `node` is gone (its heartbeats stopped): its users quit everywhere here.
    pub fn drop_node(&mut self, node: &str, reason: &str) {
        let gone: Vec<ClientId> = self
            .clients
            .iter()
            .filter(|(_, c)| c.node().is_some_and(|n| **n == *node))
            .map(|(id, _)| *id)
            .collect();
        for id in gone {
            self.remove_client(id, reason);
        }
    }

    /// Whether any user of this node is in the room at `key`.
    pub fn has_local_members(&self, key: &Key) -> bool {
        self.rooms
            .get(key)
            .is_some_and(|room| room.members.values().any(|m| m.mailbox.is_some()))
    }

    /// The folded names of this node's registered users, for re-claiming them with the
    /// cluster's name service after an outage.
    pub fn local_names(&self) -> Vec<String> {
        self.clients
            .values()
            .filter(|c| c.node().is_none())
            .filter_map(|c| c.source.as_ref())
            .map(|s| s.name.key().as_str().to_string())
            .collect()
    }
}
