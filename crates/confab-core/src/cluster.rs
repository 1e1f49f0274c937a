//! What the nodes of a cluster tell each other: the changes one node's users make,
//! as [`Replica`]s, and a node's whole local state as a [`Snapshot`].
//!
//! Each node is the authority on its own users: it validates their commands against
//! its copy of the shared state, applies them, and publishes the outcome. Other nodes
//! apply the outcome without judging it again and deliver the matching events to their
//! own users. The transport (NATS, in `confab-server`) lives behind [`Link`].

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::core::ClientId;
use crate::event::{Ban, Message, ModeChange, RoomModes, Source, Topic};
use crate::name::{Key, RoomName};

/// A registered user as other nodes see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoteUser {
    pub id: ClientId,
    pub source: Arc<Source>,
    pub away: Option<Arc<str>>,
    pub oper: bool,
    pub signon_ms: u64,
}

/// A room's shared state, sent whole with each change to it: changes are rare and
/// small, and a whole state makes every replica converge on the latest writer's view.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomState {
    pub name: RoomName,
    pub topic: Option<Topic>,
    pub modes: RoomModes,
    pub bans: Vec<Ban>,
    pub created_ms: u64,
    pub owner: Option<Arc<str>>,
    pub op_accounts: Vec<String>,
}

/// One change made on one node, for the others to apply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Replica {
    UserOn(RemoteUser),
    UserOff {
        id: ClientId,
        reason: Arc<str>,
    },
    Renamed {
        id: ClientId,
        source: Arc<Source>,
    },
    Away {
        id: ClientId,
        message: Option<Arc<str>>,
    },
    Joined {
        id: ClientId,
        room: RoomState,
        op: bool,
    },
    Parted {
        id: ClientId,
        room: RoomName,
        reason: Option<Arc<str>>,
    },
    Kicked {
        by: ClientId,
        room: RoomName,
        target: ClientId,
        reason: Arc<str>,
    },
    Topic {
        by: ClientId,
        room: RoomState,
        text: Arc<str>,
    },
    Modes {
        by: ClientId,
        room: RoomState,
        changes: Vec<ModeChange>,
    },
    Invited {
        by: ClientId,
        target: ClientId,
        room: RoomName,
    },
    Kill {
        by: ClientId,
        target: ClientId,
        reason: Arc<str>,
    },
    /// A new account: its name is protected on every node from now on.
    Account {
        name: String,
    },
    /// A message for a room (`to` is `None`) or for user `to`.
    Message {
        from: ClientId,
        to: Option<ClientId>,
        message: Message,
    },
}

/// Who needs a replica: every node, the nodes with members in one room, or one node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    Everyone,
    Room(Key),
    Node(Arc<str>),
}

/// One member of a room in a [`Snapshot`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotMember {
    pub id: ClientId,
    pub op: bool,
    pub voice: bool,
}

/// Everything a node's own users make of the shared state: who they are and which
/// rooms they are in. A node sends it when it joins the bus (and after the bus comes
/// back); the others replace what they knew of that node with it.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Snapshot {
    pub users: Vec<RemoteUser>,
    pub rooms: Vec<(RoomState, Vec<SnapshotMember>)>,
    pub accounts: Vec<String>,
}

/// The core's way out to the other nodes. Like a [`crate::Mailbox`], it is called with
/// the core locked, so it must never block: it queues, and says `false` when its queue
/// is full (the command is then refused as busy).
pub trait Link: Send {
    fn publish(&self, replica: Replica, route: Route) -> bool;
}
