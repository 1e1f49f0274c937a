//! confab's storage: message history, accounts and offline messages behind the
//! [`Store`] trait, with SQLite ([`SqliteStore`]) as the embedded default that needs
//! nothing set up.
//!
//! # Layout
//! - this file: the [`Store`] trait and the types it speaks in.
//! - [`sqlite`]: the SQLite implementation, with versioned migrations and WAL.
//! - [`postgres`]: the PostgreSQL implementation, which every node of a cluster shares.
//!
//! The trait is synchronous on purpose: the server runs a store on a thread of its own
//! (see `confab-server`'s `history` module) and batches writes into one transaction, so
//! no async runtime ever waits on the disk. [`PostgresStore`], the server database
//! for several nodes, implements the same trait.

pub mod postgres;
pub mod sqlite;

pub use crate::postgres::{PostgresError, PostgresStore};
pub use sqlite::SqliteStore;

use confab_core::{Key, MessageKind};

/// Why the store failed. Shown to users who asked for history, and logged.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Database(#[from] rusqlite::Error),
    #[error(transparent)]
    Postgres(#[from] crate::postgres::PostgresError),
    // The cause is the error's source, which reports print after this line; naming it
    // here as well printed it twice.
    #[error("cannot open the data directory {path}")]
    DataDir {
        path: String,
        source: std::io::Error,
    },
    #[error("the database was written by a newer confab (schema {found}, this one knows {known})")]
    NewerSchema { found: i64, known: i64 },
}

impl StoreError {
    /// Whether the same write may work later without anyone changing the data: the
    /// disk was full, read-only or failing, the file was locked, or the database server
    /// could not be reached. The server keeps messages whose write failed this way and
    /// tries again; any other error (a constraint, a bug) would fail again forever.
    pub fn is_transient(&self) -> bool {
        use rusqlite::ErrorCode;
        match self {
            StoreError::Database(rusqlite::Error::SqliteFailure(e, _)) => matches!(
                e.code,
                ErrorCode::DiskFull
                    | ErrorCode::ReadOnly
                    | ErrorCode::SystemIoFailure
                    | ErrorCode::CannotOpen
                    | ErrorCode::DatabaseBusy
                    | ErrorCode::DatabaseLocked
                    | ErrorCode::OutOfMemory
            ),
            StoreError::Postgres(
                PostgresError::Unreachable { .. } | PostgresError::Connect { .. },
            ) => true,
            _ => false,
        }
    }
}

/// Where a stored message went: a room, or the conversation between two parties.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Conversation<'a> {
    /// A room, by its folded name.
    Room(Key),
    /// Direct messages between two parties ([`confab_core::Source::party`]: an
    /// account, or a connection that ends), in either order. Never names: a name passes
    /// to its next holder, and its conversations must not.
    Direct(&'a str, &'a str),
}

impl Conversation<'_> {
    /// The key the store files messages under: `#room`, or `@a:alice@s:1f` with the two
    /// parties sorted so that both directions land in one conversation. Parties hold no
    /// `@` (names cannot), so the key splits back into them.
    pub fn key(&self) -> String {
        match self {
            Conversation::Room(room) => format!("#{}", room.as_str()),
            Conversation::Direct(a, b) => {
                let (a, b) = if a <= b { (a, b) } else { (b, a) };
                format!("@{a}@{b}")
            }
        }
    }

    /// The other party of a direct conversation key that `me` is in.
    pub fn other_party<'k>(key: &'k str, me: &str) -> Option<&'k str> {
        let (a, b) = key.strip_prefix('@')?.split_once('@')?;
        if a == me {
            Some(b)
        } else if b == me {
            Some(a)
        } else {
            None
        }
    }
}

/// One message as stored and read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMessage {
    pub id: u64,
    pub time_ms: u64,
    pub conversation: String,
    /// The sender's name as shown.
    pub sender: String,
    /// The sender's `nick!user@host`.
    pub sender_mask: String,
    /// The room's display name, or the recipient's name for a direct message.
    pub target: String,
    /// Whether `target` is a room.
    pub to_room: bool,
    pub kind: MessageKind,
    pub text: String,
}

/// Which slice of a conversation to read. Results are always oldest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Range {
    /// The newest `limit` messages.
    Latest,
    /// Messages with ids below the given one.
    BeforeId(u64),
    /// Messages with ids above the given one.
    AfterId(u64),
    /// Messages strictly before a time (ms since the epoch).
    BeforeTime(u64),
    /// Messages strictly after a time.
    AfterTime(u64),
    /// Messages around an id: half before, half after.
    AroundId(u64),
    /// Messages around a time.
    AroundTime(u64),
    /// Messages strictly between two times, in either order.
    BetweenTimes(u64, u64),
    /// Messages strictly between two ids.
    BetweenIds(u64, u64),
}

/// A stored account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub name: String,
    /// A PHC-format argon2 hash; never the password.
    pub password_hash: String,
    pub created_ms: u64,
}

/// What a conversation list shows for one conversation (IRC `CHATHISTORY TARGETS`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConversationSummary {
    pub conversation: String,
    pub latest_ms: u64,
}

/// Persistent state: history, accounts and offline messages.
pub trait Store: Send {
    /// Where the data lives, for log lines: a file's path, or a database server.
    fn location(&self) -> String {
        "the database".to_string()
    }
    /// Writes messages, and queues those listed in `offline` (recipient, message id)
    /// for offline delivery, in one transaction; when this returns `Ok`, all of it is
    /// durable.
    fn append(
        &mut self,
        messages: &[StoredMessage],
        offline: &[(String, u64)],
    ) -> Result<(), StoreError>;
    /// The highest message id ever stored (0 for an empty store), so that ids keep
    /// increasing across restarts.
    fn last_id(&self) -> Result<u64, StoreError>;
    /// Reads up to `limit` messages of one conversation, oldest first.
    fn history(
        &self,
        conversation: &str,
        range: Range,
        limit: usize,
    ) -> Result<Vec<StoredMessage>, StoreError>;
    /// Reads up to `limit` messages of several conversations as if they were one,
    /// oldest first: each is read as [`Store::history`] would, and the pieces are
    /// merged and cut as the range cuts one conversation.
    fn history_of(
        &self,
        conversations: &[String],
        range: Range,
        limit: usize,
    ) -> Result<Vec<StoredMessage>, StoreError> {
        match conversations {
            [] => Ok(Vec::new()),
            [one] => self.history(one, range, limit),
            many => {
                let mut all = Vec::new();
                for conversation in many {
                    all.extend(self.history(conversation, range, limit)?);
                }
                Ok(cut(all, range, limit))
            }
        }
    }
    /// Conversations among `candidates` with messages between two times, newest first.
    fn active_conversations(
        &self,
        candidates: &[String],
        from_ms: u64,
        to_ms: u64,
        limit: usize,
    ) -> Result<Vec<ConversationSummary>, StoreError>;
    /// Every direct conversation `party` ([`confab_core::Source::party`]) has a message
    /// in.
    fn direct_conversations(&self, party: &str) -> Result<Vec<String>, StoreError>;
    /// Creates an account; `Ok(false)` when the name is already registered.
    fn create_account(&mut self, key: &str, account: &Account) -> Result<bool, StoreError>;
    fn account(&self, key: &str) -> Result<Option<Account>, StoreError>;
    /// Every registered account's name, to protect them from the start.
    fn account_names(&self) -> Result<Vec<String>, StoreError>;
    /// Keeps the state of a room with a registered owner (opaque JSON, written by the
    /// server), replacing what was kept before.
    fn save_room(&mut self, key: &str, record: &str) -> Result<(), StoreError>;
    /// Every kept room's state.
    fn rooms(&self) -> Result<Vec<String>, StoreError>;
    /// Takes everything queued for `recipient`, oldest first.
    fn take_offline(&mut self, recipient: &str) -> Result<Vec<StoredMessage>, StoreError>;
}

/// The messages of several reads of `range` (each already cut to `limit`), merged in
/// id order and cut to what one read of all of them would return: the newest for
/// ranges read back from a point, the oldest for those read forward, and around a
/// point half before it and the rest from it on, as [`plan`] does.
fn cut(mut all: Vec<StoredMessage>, range: Range, limit: usize) -> Vec<StoredMessage> {
    all.sort_by_key(|m| m.id);
    all.dedup_by_key(|m| m.id);
    let newest = |mut v: Vec<StoredMessage>, n: usize| {
        v.drain(..v.len().saturating_sub(n));
        v
    };
    let oldest = |mut v: Vec<StoredMessage>, n: usize| {
        v.truncate(n);
        v
    };
    let around = |all: Vec<StoredMessage>, before: &dyn Fn(&StoredMessage) -> bool| {
        let (early, late): (Vec<_>, Vec<_>) = all.into_iter().partition(|m| before(m));
        let mut found = newest(early, (limit / 2).max(1));
        let rest = limit.saturating_sub(found.len());
        found.extend(oldest(late, rest));
        found
    };
    match range {
        Range::Latest | Range::BeforeId(_) | Range::BeforeTime(_) => newest(all, limit),
        Range::AfterId(_)
        | Range::AfterTime(_)
        | Range::BetweenTimes(..)
        | Range::BetweenIds(..) => oldest(all, limit),
        Range::AroundId(id) => around(all, &|m| m.id < id),
        Range::AroundTime(t) => around(all, &|m| m.time_ms < t),
    }
}

/// `s` with LIKE's wildcards escaped (with `\`), for matching names literally.
pub(crate) fn like_literal(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// One query of a history read: the rows of a conversation matching `condition` (with
/// `$2`, `$3`... bound to `bounds`), in id order, newest first when `newest_first`,
/// at most `limit` of them. SQLite and PostgreSQL both take `$N` parameters, so both
/// stores run the same text.
pub(crate) struct Slice {
    condition: &'static str,
    pub(crate) bounds: Vec<i64>,
    pub(crate) newest_first: bool,
    pub(crate) limit: i64,
}

impl Slice {
    /// The query: `$1` is the conversation, then the bounds, then the row limit.
    pub(crate) fn sql(&self, columns: &str) -> String {
        let order = if self.newest_first { "DESC" } else { "ASC" };
        let limit = self.bounds.len() + 2;
        format!(
            "SELECT {columns} FROM messages WHERE conversation = $1 AND {} ORDER BY id {order} LIMIT ${limit}",
            self.condition
        )
    }
}

/// Ids and times are unsigned; stores keep signed 64-bit integers, and saturating keeps
/// a hostile `u64::MAX` from wrapping into a negative bound.
pub(crate) fn int(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// The queries that read `range`, at most `limit` rows in all; their rows, each
/// slice put oldest first, are concatenated in order. Shared by every SQL store so that
/// a range means the same everywhere.
pub(crate) fn plan(range: Range, limit: usize) -> Vec<Slice> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let slice = |condition, bounds: Vec<u64>, newest_first, limit| Slice {
        condition,
        bounds: bounds.into_iter().map(int).collect(),
        newest_first,
        limit,
    };
    let ordered = |a: u64, b: u64| if a <= b { vec![a, b] } else { vec![b, a] };
    let half = (limit / 2).max(1);
    match range {
        Range::Latest => vec![slice("1 = 1", vec![], true, limit)],
        Range::BeforeId(id) => vec![slice("id < $2", vec![id], true, limit)],
        Range::AfterId(id) => vec![slice("id > $2", vec![id], false, limit)],
        Range::BeforeTime(t) => vec![slice("time_ms < $2", vec![t], true, limit)],
        Range::AfterTime(t) => vec![slice("time_ms > $2", vec![t], false, limit)],
        Range::AroundId(id) => vec![
            slice("id < $2", vec![id], true, half),
            slice("id >= $2", vec![id], false, limit),
        ],
        Range::AroundTime(t) => vec![
            slice("time_ms < $2", vec![t], true, half),
            slice("time_ms >= $2", vec![t], false, limit),
        ],
        Range::BetweenTimes(a, b) => {
            vec![slice(
                "time_ms > $2 AND time_ms < $3",
                ordered(a, b),
                false,
                limit,
            )]
        }
        Range::BetweenIds(a, b) => vec![slice("id > $2 AND id < $3", ordered(a, b), false, limit)],
    }
}
