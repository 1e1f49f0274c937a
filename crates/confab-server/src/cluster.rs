//! Several `confab serve` nodes sharing one chat over NATS.
//!
//! Each node keeps its own core, in which the users of other nodes live without a
//! mailbox (see `confab_core::cluster`). What a node's users change travels to the
//! others as JSON [`Packet`]s:
//!
//! - `confab.state`: presence and membership (every node needs them to answer for
//!   names, WHO and WHOIS), heartbeats, hellos and snapshots. Core NATS, no storage.
//! - `confab.msg.room.<hex of the room's folded name>` and `confab.msg.node.<node>`:
//!   room messages and direct messages for a user of `<node>`. These go into the
//!   JetStream stream `CONFAB_MSGS`, which gives every message of a room one place in
//!   one order, acknowledges it (so a sender whose message the bus did not take is
//!   told), and de-duplicates retries by message id. The stream republishes each
//!   stored message to `confab.out.…`; a node subscribes to `confab.out.room.<hex>` only
//!   for rooms it has members in, and to `confab.out.node.<itself>`, so message traffic
//!   reaches only the nodes that deliver it. Republished messages come from one
//!   publisher, the stream, so every subscriber sees one order.
//!
//! Names are claimed in the JetStream key-value bucket `confab_names` with
//! create-if-absent (compare-and-set), so two nodes can never both hand out one name;
//! a claim held by a node whose heartbeats stopped is taken over with a
//! revision-checked update. KV rather than PostgreSQL's unique constraint because the
//! claim sits on the path of every registration and nick change, and the bus is
//! already there and asynchronous, while the database is reached through the one store
//! thread that also runs group commits.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, kv, message::PublishMessage, stream};
use bytes::Bytes;
use confab_core::{
    ChatError, ClientId, Command, Envelope, Event, Key, Link, Name, Replica, RoomName, Route,
    Snapshot,
};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, Notify};
use tokio_util::sync::CancellationToken;

use crate::chat::{run_now, Chat};
pub use crate::config::ClusterConfig;
use crate::history::Durability;
use crate::outbox::{Outbox, Outgoing};

/// What the cluster's tasks need of the node they serve: its chat core, and how far its
/// messages are durable (a message goes on the bus only once it is). Implemented by
/// `Shared` (shared.rs), which holds the [`Cluster`]; a trait so that this module
/// does not depend on the module above it. Every user is generic over it.
pub(crate) trait Node: Chat + 'static {
    fn durability(&self) -> &Durability;
}

/// A subscription to one room's messages.
struct Watch {
    task: tokio::task::JoinHandle<()>,
    /// When it was made: a fresh one is kept even with no local member yet, since the
    /// join it was made for may still be on its way to the core.
    since: Instant,
}

/// How often a node says it is alive.
const HEARTBEAT: Duration = Duration::from_millis(500);
/// Silence after which a node counts as gone and its users quit everywhere.
const NODE_TIMEOUT: Duration = Duration::from_millis(3000);
/// Replicas waiting for the bus; past this, commands that need the bus are refused as
/// busy rather than held in memory.
const QUEUE: usize = 65_536;
/// Messages published to JetStream and not yet acknowledged.
const IN_FLIGHT: usize = 256;
/// How long a message may take to be acknowledged, retries included.
const ACK_DEADLINE: Duration = Duration::from_secs(5);
/// How long a new claim stays even if no local user holds the name yet.
const CLAIM_GRACE: Duration = Duration::from_secs(5);
const STREAM: &str = "CONFAB_MSGS";
const NAMES: &str = "confab_names";
const NODES: &str = "confab_nodes";

/// What nodes send each other.
#[derive(Debug, Serialize, Deserialize)]
struct Packet {
    node: String,
    body: Body,
}

#[derive(Debug, Serialize, Deserialize)]
enum Body {
    Replica(Replica),
    Heartbeat,
    /// A node (re)joined the bus: everyone answers with a snapshot.
    Hello,
    /// Part `part` (from 0) of `parts` of the sender's snapshot: a big node's state
    /// would not fit in one NATS message (1 MB by default).
    Snapshot {
        part: usize,
        parts: usize,
        snapshot: Snapshot,
    },
    /// A node is shutting down cleanly.
    Bye,
}

/// Why a node could not join its cluster.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("invalid node name {0:?}: use letters, digits, - and _")]
    BadNode(String),
    #[error("cannot reach NATS at {url}: {reason}")]
    Connect { url: String, reason: String },
    #[error("NATS JetStream is not usable (is nats-server running with -js?): {0}")]
    JetStream(String),
    #[error("the cluster already has {} nodes", confab_core::MAX_NODES)]
    Full,
}

/// The core's [`Link`]: a bounded queue to the publisher task.
struct BusLink(mpsc::Sender<(Replica, Route)>);

impl Link for BusLink {
    fn publish(&self, replica: Replica, route: Route) -> bool {
        self.0.try_send((replica, route)).is_ok()
    }
}

/// A node's handle on the cluster, shared by its sessions.
pub(crate) struct Cluster {
    node: String,
    index: u16,
    client: async_nats::Client,
    js: jetstream::Context,
    /// The message stream, read directly to fill gaps in a subscription.
    messages: stream::Stream,
    names: kv::Store,
    /// When each other node was last heard from.
    alive: Mutex<HashMap<String, Instant>>,
    /// Names (folded) this node holds in the name bucket, with when it claimed each.
    claimed: Mutex<HashMap<String, Instant>>,
    /// Room subscriptions, by folded room name.
    rooms: Mutex<HashMap<Key, Watch>>,
    /// Snapshots arriving in parts, by sender.
    partial: Mutex<HashMap<String, Vec<Snapshot>>>,
    /// Wakes the name reconciler (a user left or was renamed).
    names_changed: Notify,
    /// Wakes the hello task (the connection to NATS came back).
    reconnected: Arc<Notify>,
    outgoing: Mutex<Option<mpsc::Receiver<(Replica, Route)>>>,
}

fn hex(s: &str) -> String {
    s.bytes().map(|b| format!("{b:02x}")).collect()
}

fn room_subject(prefix: &str, key: &Key) -> String {
    format!("confab.{prefix}.room.{}", hex(key.as_str()))
}

fn node_subject(prefix: &str, node: &str) -> String {
    format!("confab.{prefix}.node.{node}")
}

impl Cluster {
    /// Connects to NATS, prepares the stream and buckets, and takes a node index.
    /// Returns the cluster handle and the link the core publishes through.
    pub(crate) async fn connect(
        config: &ClusterConfig,
    ) -> Result<(Arc<Cluster>, u16, Box<dyn Link>), ClusterError> {
        let node = &config.node;
        if node.is_empty()
            || node.len() > 64
            || !node
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(ClusterError::BadNode(node.clone()));
        }
        let reconnected = Arc::new(Notify::new());
        let notify = reconnected.clone();
        let client = async_nats::ConnectOptions::new()
            .name(format!("confab-{node}"))
            .connection_timeout(Duration::from_secs(5))
            .max_reconnects(None)
            .reconnect_delay_callback(|attempts| {
                Duration::from_millis((100 * attempts as u64).min(1000))
            })
            .event_callback(move |event| {
                let notify = notify.clone();
                async move {
                    match event {
                        async_nats::Event::Connected => {
                            tracing::info!("NATS connection is back");
                            notify.notify_one();
                        }
                        async_nats::Event::Disconnected => {
                            tracing::warn!("NATS connection lost; serving local users only")
                        }
                        other => tracing::debug!("NATS: {other}"),
                    }
                }
            })
            .connect(&config.nats_url)
            .await
            .map_err(|e| ClusterError::Connect {
                url: config.nats_url.clone(),
                reason: e.to_string(),
            })?;
        let js = jetstream::new(client.clone());
        let js_error = |e: &dyn std::fmt::Display| ClusterError::JetStream(e.to_string());
        let messages = js
            .get_or_create_stream(stream::Config {
                name: STREAM.into(),
                subjects: vec!["confab.msg.>".into()],
                storage: stream::StorageType::File,
                // The stream orders and hands on messages; history lives in the database,
                // so it keeps only what a reconnecting node may need to catch up on.
                max_age: Duration::from_secs(600),
                max_bytes: 256 << 20,
                duplicate_window: Duration::from_secs(60),
                allow_direct: true,
                republish: Some(stream::Republish {
                    source: "confab.msg.>".into(),
                    destination: "confab.out.>".into(),
                    headers_only: false,
                }),
                ..Default::default()
            })
            .await
            .map_err(|e| js_error(&e))?;
        let names = bucket(&js, NAMES).await.map_err(|e| js_error(&e))?;
        let nodes = bucket(&js, NODES).await.map_err(|e| js_error(&e))?;
        let index = node_index(&nodes, node).await?;
        let (tx, rx) = mpsc::channel(QUEUE);
        let cluster = Arc::new(Cluster {
            node: node.clone(),
            index,
            client,
            js,
            messages,
            names,
            alive: Mutex::new(HashMap::new()),
            claimed: Mutex::new(HashMap::new()),
            rooms: Mutex::new(HashMap::new()),
            names_changed: Notify::new(),
            partial: Mutex::new(HashMap::new()),
            reconnected,
            outgoing: Mutex::new(Some(rx)),
        });
        Ok((cluster, index, Box::new(BusLink(tx))))
    }

    /// The first client id of this node: ids carry the node index in their top bits,
    /// so no two nodes hand out the same one.
    pub(crate) fn first_client_id(&self) -> u64 {
        (u64::from(self.index) << 48) | 1
    }

    fn packet(&self, body: Body) -> Bytes {
        let packet = Packet {
            node: self.node.clone(),
            body,
        };
        serde_json::to_vec(&packet)
            .expect("packets serialize")
            .into()
    }

    async fn broadcast(&self, body: Body) {
        if let Err(e) = self.client.publish("confab.state", self.packet(body)).await {
            tracing::debug!("cannot publish to the cluster: {e}");
        }
    }

    /// Collects the parts of a node's snapshot; the whole one once the last part came.
    fn assemble(
        &self,
        node: &str,
        part: usize,
        parts: usize,
        snapshot: Snapshot,
    ) -> Option<Snapshot> {
        let mut partial = self.partial.lock().unwrap_or_else(|e| e.into_inner());
        assemble(&mut partial, node, part, parts, snapshot)
    }

    fn is_alive(&self, node: &str) -> bool {
        node == self.node || self.lock_alive().contains_key(node)
    }

    fn lock_alive(&self) -> std::sync::MutexGuard<'_, HashMap<String, Instant>> {
        self.alive.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Claims `name` for this node. `Ok(false)` when another live node holds it.
    pub(crate) async fn claim(&self, name: &str) -> Result<bool, ()> {
        let folded = Key::of(name).as_str().to_string();
        let key = hex(&folded);
        let mine = Bytes::from(self.node.clone());
        match self.names.create(&key, mine.clone()).await {
            Ok(_) => {}
            Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => {
                let entry = self.names.entry(&key).await.map_err(|_| ())?;
                let Some(entry) = entry else {
                    return Ok(false);
                };
                let holder = String::from_utf8_lossy(&entry.value).into_owned();
                let free = entry.operation != kv::Operation::Put;
                if holder == self.node {
                    // Ours already (a rename back, or a claim from before a restart);
                    // the core decides whether a local user holds it.
                } else if free || !self.is_alive(&holder) {
                    // The holder is gone: take the name over, unless someone else
                    // does first (the update checks the revision).
                    if self.names.update(&key, mine, entry.revision).await.is_err() {
                        return Ok(false);
                    }
                } else {
                    return Ok(false);
                }
            }
            Err(e) => {
                tracing::warn!("cannot claim a name: {e}");
                return Err(());
            }
        }
        self.lock_claimed().insert(folded, Instant::now());
        Ok(true)
    }

    fn lock_claimed(&self) -> std::sync::MutexGuard<'_, HashMap<String, Instant>> {
        self.claimed.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Says that a local user may have given up a name, so that the reconciler frees it.
    pub(crate) fn names_changed(&self) {
        self.names_changed.notify_one();
    }

    /// Subscribes to a room's messages before a local user joins it, so that nothing
    /// sent after the join is missed.
    pub(crate) async fn watch_room<N: Node>(self: &Arc<Self>, shared: &Arc<N>, key: Key) {
        if self.lock_rooms().contains_key(&key) {
            return;
        }
        let subscriber = match self.client.subscribe(room_subject("out", &key)).await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!("cannot subscribe to a room: {e}");
                return;
            }
        };
        let task = tokio::spawn(receive(self.clone(), shared.clone(), subscriber));
        let watch = Watch {
            task,
            since: Instant::now(),
        };
        if let Some(old) = self.lock_rooms().insert(key, watch) {
            old.task.abort();
        }
    }

    fn lock_rooms(&self) -> std::sync::MutexGuard<'_, HashMap<Key, Watch>> {
        self.rooms.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Starts the node's background tasks: publishing, receiving, heartbeats, names.
    pub(crate) fn start<N: Node>(self: &Arc<Self>, shared: &Arc<N>, token: CancellationToken) {
        let outgoing = self
            .outgoing
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(outgoing) = outgoing {
            tokio::spawn(publish(self.clone(), shared.clone(), outgoing));
        }
        tokio::spawn(listen(self.clone(), shared.clone(), token.clone()));
        tokio::spawn(heartbeat(self.clone(), shared.clone(), token.clone()));
        tokio::spawn(reconcile_names(self.clone(), shared.clone(), token));
    }

    /// Tells the other nodes this one is leaving, so they drop its users at once.
    pub(crate) async fn leave(&self) {
        self.broadcast(Body::Bye).await;
        let _ = self.client.flush().await;
    }
}

/// Opens a key-value bucket, creating it if needed. The bucket's stream is made here
/// rather than with `create_key_value`, whose request carries settings that Debian's
/// nats-server 2.9 rejects; this is the same layout (one value per key, rollups, direct
/// gets) that the KV API reads.
async fn bucket(js: &jetstream::Context, name: &str) -> Result<kv::Store, String> {
    js.get_or_create_stream(stream::Config {
        name: format!("KV_{name}"),
        subjects: vec![format!("$KV.{name}.>")],
        max_messages_per_subject: 1,
        allow_rollup: true,
        deny_delete: true,
        allow_direct: true,
        discard: stream::DiscardPolicy::New,
        storage: stream::StorageType::File,
        ..Default::default()
    })
    .await
    .map_err(|e| e.to_string())?;
    js.get_key_value(name).await.map_err(|e| e.to_string())
}

/// Adds one part of `node`'s snapshot to `partial`; returns the whole snapshot once its
/// last part arrived. Parts out of order drop the unfinished snapshot rather than apply
/// half of it (a newer one follows every hello).
fn assemble(
    partial: &mut HashMap<String, Vec<Snapshot>>,
    node: &str,
    part: usize,
    parts: usize,
    snapshot: Snapshot,
) -> Option<Snapshot> {
    if parts <= 1 {
        return Some(snapshot);
    }
    let entry = partial.entry(node.to_string()).or_default();
    // A part 0 starts a new snapshot, dropping any unfinished older one.
    if part == 0 {
        entry.clear();
    }
    if part != entry.len() {
        entry.clear();
        return None;
    }
    entry.push(snapshot);
    if entry.len() < parts {
        return None;
    }
    let mut whole = Snapshot::default();
    for piece in partial.remove(node).unwrap_or_default() {
        whole.users.extend(piece.users);
        whole.rooms.extend(piece.rooms);
        whole.accounts.extend(piece.accounts);
    }
    Some(whole)
}

/// Finds this node's index in the nodes bucket, or takes the first free one.
async fn node_index(nodes: &kv::Store, node: &str) -> Result<u16, ClusterError> {
    let js_error = |e: &dyn std::fmt::Display| ClusterError::JetStream(e.to_string());
    let own = format!("node.{node}");
    if let Some(value) = nodes.get(&own).await.map_err(|e| js_error(&e))? {
        if let Some(index) = std::str::from_utf8(&value)
            .ok()
            .and_then(|s| s.parse().ok())
        {
            return Ok(index);
        }
    }
    for index in 0..confab_core::MAX_NODES {
        if nodes
            .create(format!("index.{index}"), Bytes::from(node.to_string()))
            .await
            .is_ok()
        {
            nodes
                .put(&own, Bytes::from(index.to_string()))
                .await
                .map_err(|e| js_error(&e))?;
            return Ok(index);
        }
    }
    Err(ClusterError::Full)
}

/// Takes replicas from the core and puts them on the bus, in the core's order.
/// Messages wait until they are durable here (so no node shows a message that a crash
/// of its origin could lose), then go into the stream; their acknowledgements are
/// awaited by [`acknowledge`], a few hundred in flight, so the bus is not paced by
/// its round trip.
async fn publish<N: Node>(
    cluster: Arc<Cluster>,
    shared: Arc<N>,
    mut outgoing: mpsc::Receiver<(Replica, Route)>,
) {
    let (acks, pending) = mpsc::channel(IN_FLIGHT);
    tokio::spawn(acknowledge(cluster.clone(), shared.clone(), pending));
    while let Some((replica, route)) = outgoing.recv().await {
        let subject = match &route {
            Route::Everyone => {
                cluster.broadcast(Body::Replica(replica)).await;
                continue;
            }
            Route::Room(key) => room_subject("msg", key),
            Route::Node(node) => node_subject("msg", node),
        };
        let id = match &replica {
            Replica::Message { message, .. } => Some(message.id),
            _ => None,
        };
        // Tag-only messages are never stored, so nothing would ever make them durable.
        let stored = !matches!(&replica, Replica::Message { message, .. }
            if message.kind == confab_core::MessageKind::Tags);
        if let (Some(id), true) = (id, stored) {
            shared.durability().wait_for(id).await;
        }
        if cluster.client.connection_state() != async_nats::connection::State::Connected {
            shared.lock_core().bus_failed(replica);
            continue;
        }
        let payload = cluster.packet(Body::Replica(replica.clone()));
        let attempt = send(&cluster, &subject, id, payload.clone()).await;
        let _ = acks
            .send((replica, subject, id, payload, attempt, Instant::now()))
            .await;
    }
}

type Ack = jetstream::context::PublishAckFuture;
type Pending = (
    Replica,
    String,
    Option<u64>,
    Bytes,
    Result<Ack, String>,
    Instant,
);

async fn send(
    cluster: &Cluster,
    subject: &str,
    id: Option<u64>,
    payload: Bytes,
) -> Result<Ack, String> {
    let mut publish = PublishMessage::build().payload(payload);
    if let Some(id) = id {
        publish = publish.message_id(id.to_string());
    }
    cluster
        .js
        .send_publish(subject.to_string(), publish)
        .await
        .map_err(|e| e.to_string())
}

/// Awaits acknowledgements in order; a message the stream did not confirm is sent
/// again (the stream drops duplicates by message id) until its deadline, and then its
/// sender is told it may not have reached other nodes.
async fn acknowledge<N: Node>(
    cluster: Arc<Cluster>,
    shared: Arc<N>,
    mut pending: mpsc::Receiver<Pending>,
) {
    while let Some((replica, subject, id, payload, mut attempt, started)) = pending.recv().await {
        loop {
            let result = match attempt {
                Ok(ack) => ack.await.map(|_| ()).map_err(|e| e.to_string()),
                Err(e) => Err(e),
            };
            match result {
                Ok(()) => break,
                Err(e) if started.elapsed() < ACK_DEADLINE => {
                    tracing::debug!("the bus did not confirm a message, retrying: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    attempt = send(&cluster, &subject, id, payload.clone()).await;
                }
                Err(e) => {
                    tracing::warn!("the bus did not take a message: {e}");
                    shared.lock_core().bus_failed(replica);
                    break;
                }
            }
        }
    }
}

/// Applies what arrives on one subscription (a room's messages, or this node's).
///
/// A plain subscription can miss messages (while NATS restarts, say). The stream
/// stamps each republished message with its sequence and the previous sequence of the
/// same subject, so a gap shows on the next message, and the missing ones are read
/// from the stream, in order, before it.
async fn receive<N: Node>(
    cluster: Arc<Cluster>,
    shared: Arc<N>,
    mut subscriber: async_nats::Subscriber,
) {
    let mut last: Option<u64> = None;
    while let Some(message) = subscriber.next().await {
        let header = |name: &str| {
            message
                .headers
                .as_ref()
                .and_then(|h| h.get(name))
                .map(|v| v.as_str().to_string())
        };
        let number = |name: &str| header(name).and_then(|v| v.parse::<u64>().ok());
        let (seq, previous) = (number("Nats-Sequence"), number("Nats-Last-Sequence"));
        if let (Some(seen), Some(previous), Some(seq), Some(subject)) =
            (last, previous, seq, header("Nats-Subject"))
        {
            if previous > seen {
                fill_gap(&cluster, &*shared, &subject, seen, seq).await;
            }
        }
        if seq.is_some_and(|seq| last.is_some_and(|seen| seq <= seen)) {
            continue;
        }
        last = seq.or(last);
        apply_payload(&*shared, &message.payload);
    }
}

/// Reads the stream's messages on `subject` after sequence `seen` and before `next`.
async fn fill_gap<N: Node>(cluster: &Cluster, shared: &N, subject: &str, seen: u64, next: u64) {
    let mut from = seen + 1;
    let mut filled = 0;
    while from < next {
        match cluster
            .messages
            .direct_get_next_for_subject(subject, Some(from))
            .await
        {
            Ok(message) if message.sequence < next => {
                apply_payload(shared, &message.payload);
                from = message.sequence + 1;
                filled += 1;
            }
            Ok(_) => break,
            Err(e) => {
                tracing::warn!("cannot read missed messages from the stream: {e}");
                break;
            }
        }
    }
    tracing::info!("caught up on {filled} messages missed on {subject}");
}

fn apply_payload<N: Node>(shared: &N, payload: &[u8]) {
    let Ok(packet) = serde_json::from_slice::<Packet>(payload) else {
        tracing::warn!("ignoring a cluster packet that does not parse");
        return;
    };
    if let Body::Replica(replica) = packet.body {
        shared.lock_core().apply(&packet.node, replica);
    }
}

/// Listens to `confab.state` and to this node's own subject.
async fn listen<N: Node>(cluster: Arc<Cluster>, shared: Arc<N>, token: CancellationToken) {
    let state = cluster.client.subscribe("confab.state").await;
    let own = cluster
        .client
        .subscribe(node_subject("out", &cluster.node))
        .await;
    let (Ok(mut state), Ok(own)) = (state, own) else {
        tracing::error!("cannot subscribe to the cluster's subjects");
        return;
    };
    tokio::spawn(receive(cluster.clone(), shared.clone(), own));
    // Everyone learns this node's users, and this node learns everyone's.
    hello(&cluster, &*shared).await;
    loop {
        let message = tokio::select! {
            () = token.cancelled() => return,
            () = cluster.reconnected.notified() => {
                hello(&cluster, &*shared).await;
                continue;
            }
            message = state.next() => message,
        };
        let Some(message) = message else {
            return;
        };
        let Ok(packet) = serde_json::from_slice::<Packet>(&message.payload) else {
            tracing::warn!("ignoring a cluster packet that does not parse");
            continue;
        };
        if packet.node == cluster.node {
            continue;
        }
        let known = cluster
            .lock_alive()
            .insert(packet.node.clone(), Instant::now())
            .is_some();
        match packet.body {
            Body::Replica(replica) => shared.lock_core().apply(&packet.node, replica),
            Body::Heartbeat if !known => {
                // A node we had given up on (or never met): ask for its state.
                cluster.broadcast(Body::Hello).await;
            }
            Body::Heartbeat => {}
            Body::Hello => {
                send_snapshot(&cluster, &*shared).await;
            }
            Body::Snapshot {
                part,
                parts,
                snapshot,
            } => {
                let Some(snapshot) = cluster.assemble(&packet.node, part, parts, snapshot) else {
                    continue;
                };
                shared.lock_core().apply_snapshot(&packet.node, snapshot);
                tracing::info!("node {} is in the cluster", packet.node);
            }
            Body::Bye => {
                cluster.lock_alive().remove(&packet.node);
                let reason = format!("{} left the cluster", packet.node);
                shared.lock_core().drop_node(&packet.node, &reason);
            }
        }
    }
}

async fn hello<N: Node>(cluster: &Cluster, shared: &N) {
    send_snapshot(cluster, shared).await;
    cluster.broadcast(Body::Hello).await;
}

/// Users and rooms per snapshot part: a few hundred bytes each, so a part stays well
/// under NATS's default 1 MB message limit.
const SNAPSHOT_PART: usize = 1000;

async fn send_snapshot<N: Node>(cluster: &Cluster, shared: &N) {
    let whole = shared.lock_core().snapshot();
    let parts = whole
        .users
        .len()
        .max(whole.rooms.len())
        .div_ceil(SNAPSHOT_PART)
        .max(1);
    let mut users = whole.users.into_iter();
    let mut rooms = whole.rooms.into_iter();
    for part in 0..parts {
        let snapshot = Snapshot {
            users: users.by_ref().take(SNAPSHOT_PART).collect(),
            rooms: rooms.by_ref().take(SNAPSHOT_PART).collect(),
            accounts: if part == 0 {
                whole.accounts.clone()
            } else {
                Vec::new()
            },
        };
        let body = Body::Snapshot {
            part,
            parts,
            snapshot,
        };
        cluster.broadcast(body).await;
    }
}

/// Says this node is alive, and drops nodes that stopped saying so.
async fn heartbeat<N: Node>(cluster: Arc<Cluster>, shared: Arc<N>, token: CancellationToken) {
    let mut tick = tokio::time::interval(HEARTBEAT);
    loop {
        tokio::select! {
            () = token.cancelled() => return,
            _ = tick.tick() => {}
        }
        cluster.broadcast(Body::Heartbeat).await;
        let dead: Vec<String> = {
            let mut alive = cluster.lock_alive();
            let dead: Vec<String> = alive
                .iter()
                .filter(|(_, seen)| seen.elapsed() > NODE_TIMEOUT)
                .map(|(node, _)| node.clone())
                .collect();
            for node in &dead {
                alive.remove(node);
            }
            dead
        };
        for node in dead {
            tracing::warn!("node {node} stopped answering; its users are gone");
            let reason = format!("{node} lost contact");
            shared.lock_core().drop_node(&node, &reason);
        }
        // Rooms nobody here is in any more need no subscription.
        let mut rooms = cluster.lock_rooms();
        let core = shared.lock_core();
        rooms.retain(|key, watch| {
            let keep = watch.since.elapsed() < NODE_TIMEOUT || core.has_local_members(key);
            if !keep {
                watch.task.abort();
            }
            keep
        });
    }
}

/// Keeps the name bucket in step with the names local users hold: frees names nobody
/// here uses any more and claims names taken without a claim (guest renames, logins).
async fn reconcile_names<N: Node>(cluster: Arc<Cluster>, shared: Arc<N>, token: CancellationToken) {
    loop {
        tokio::select! {
            () = token.cancelled() => return,
            () = cluster.names_changed.notified() => {}
            () = tokio::time::sleep(Duration::from_secs(2)) => {}
        }
        let used: HashSet<String> = shared.lock_core().local_names().into_iter().collect();
        // A fresh claim may not be in use yet: its registration is on its way to the core.
        let claimed: Vec<String> = cluster
            .lock_claimed()
            .iter()
            .filter(|(_, at)| at.elapsed() > CLAIM_GRACE)
            .map(|(name, _)| name.clone())
            .collect();
        for name in claimed.iter().filter(|n| !used.contains(*n)) {
            let key = hex(name);
            if let Ok(Some(entry)) = cluster.names.entry(&key).await {
                if entry.value == cluster.node.as_bytes() && entry.operation == kv::Operation::Put {
                    let _ = cluster
                        .names
                        .delete_expect_revision(&key, Some(entry.revision))
                        .await;
                }
            }
            cluster.lock_claimed().remove(name);
        }
        let claimed: HashSet<String> = cluster.lock_claimed().keys().cloned().collect();
        for name in used.difference(&claimed) {
            if let Ok(false) = cluster.claim(name).await {
                tracing::warn!("name {name} is held on another node as well");
            }
        }
    }
}

/// Whether `command` must wait for the cluster before the core runs it: a name that
/// needs claiming, or a room this node does not follow yet.
pub(crate) fn must_wait<N: Node>(
    cluster: &Cluster,
    shared: &N,
    id: ClientId,
    command: &Command,
) -> bool {
    match command {
        Command::Register { name } | Command::Nick { name } => {
            let Ok(name) = Name::parse(name) else {
                return false;
            };
            let core = shared.lock_core();
            // The core refuses names in use itself, and a change of case keeps the key.
            core.name_of(id).map(Name::key) != Some(name.key()) && !core.is_online(name.as_str())
        }
        Command::Join { room, .. } => {
            RoomName::parse(room).is_ok_and(|r| !cluster.lock_rooms().contains_key(&r.key()))
        }
        _ => false,
    }
}

/// Runs `command` once the cluster is ready for it: the name claimed, the room followed.
pub(crate) async fn run_command<N: Node>(
    cluster: Arc<Cluster>,
    shared: Arc<N>,
    id: ClientId,
    outbox: Arc<Outbox>,
    command: Command,
) {
    let refuse = |error: ChatError| {
        outbox.push(Outgoing::Event(Envelope::new(Event::Error(error))));
    };
    match &command {
        Command::Register { name } | Command::Nick { name }
            if must_wait(&cluster, &*shared, id, &command) =>
        {
            match cluster.claim(name).await {
                Ok(true) => {}
                Ok(false) => return refuse(ChatError::NameInUse(name.clone())),
                Err(()) => return refuse(ChatError::Busy),
            }
        }
        Command::Join { room, .. } => {
            if let Ok(room) = RoomName::parse(room) {
                cluster.watch_room(&shared, room.key()).await;
            }
        }
        _ => {}
    }
    let renamed = matches!(command, Command::Nick { .. });
    run_now(&*shared, id, command);
    if renamed {
        cluster.names_changed();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use confab_core::cluster::RemoteUser;

    fn user(id: u64) -> RemoteUser {
        RemoteUser {
            id,
            source: Arc::new(confab_core::Source {
                name: Name::parse(&format!("u{id}")).unwrap(),
                user: "u".into(),
                host: "h".into(),
                realname: "r".into(),
                account: None,
                session: id,
                bot: false,
            }),
            away: None,
            oper: false,
            signon_ms: 0,
        }
    }

    fn part(ids: &[u64]) -> Snapshot {
        Snapshot {
            users: ids.iter().copied().map(user).collect(),
            ..Snapshot::default()
        }
    }

    #[test]
    fn snapshots_in_parts_are_put_back_together_in_order_only() {
        let mut partial = HashMap::new();
        assert!(assemble(&mut partial, "b", 0, 2, part(&[1])).is_none());
        let whole = assemble(&mut partial, "b", 1, 2, part(&[2])).unwrap();
        let ids: Vec<u64> = whole.users.iter().map(|u| u.id).collect();
        assert_eq!(ids, [1, 2]);
        // A missing part drops the snapshot instead of applying half of it.
        assert!(assemble(&mut partial, "b", 0, 3, part(&[1])).is_none());
        assert!(assemble(&mut partial, "b", 2, 3, part(&[3])).is_none());
        assert!(assemble(&mut partial, "b", 1, 3, part(&[2])).is_none());
        // A snapshot in one part is whole at once.
        let single = assemble(&mut partial, "c", 0, 1, part(&[7])).unwrap();
        assert_eq!(single.users.len(), 1);
    }

    #[test]
    fn subjects_carry_any_room_name() {
        let room = room_subject("out", &Key::of("Lobby.1"));
        assert_eq!(room, "confab.out.room.6c6f6262792e31");
        assert_eq!(node_subject("msg", "a-1"), "confab.msg.node.a-1");
    }
}
