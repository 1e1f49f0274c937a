//! The SQLite store: one file in the data directory, WAL journaling, versioned
//! migrations.
//!
//! Durability: `synchronous=NORMAL` in WAL mode makes a committed transaction survive
//! the process being killed at any moment (the WAL is in the operating system's hands
//! once `COMMIT` returns); only a power cut can lose the last commits. That is the
//! guarantee confab makes and tests with `kill -9`.

use std::path::Path;

use confab_core::MessageKind;
use rusqlite::{params, Connection, OptionalExtension};

use crate::{Account, ConversationSummary, Range, Store, StoreError, StoredMessage};

/// Schema migrations, applied in order; `PRAGMA user_version` records how many ran.
const MIGRATIONS: &[&str] = &[
    // 1: history, accounts and offline messages.
    "CREATE TABLE messages (
        id INTEGER PRIMARY KEY,
        time_ms INTEGER NOT NULL,
        conversation TEXT NOT NULL,
        sender TEXT NOT NULL,
        sender_mask TEXT NOT NULL,
        target TEXT NOT NULL,
        to_room INTEGER NOT NULL,
        kind INTEGER NOT NULL,
        text TEXT NOT NULL
    );
    CREATE INDEX messages_by_conversation ON messages (conversation, id);
    CREATE INDEX messages_by_time ON messages (conversation, time_ms);
    CREATE TABLE accounts (
        key TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        password_hash TEXT NOT NULL,
        created_ms INTEGER NOT NULL
    );
    CREATE TABLE offline (
        id INTEGER PRIMARY KEY,
        recipient TEXT NOT NULL,
        message_id INTEGER NOT NULL REFERENCES messages (id)
    );
    CREATE INDEX offline_by_recipient ON offline (recipient, id);",
    // 2: rooms with a registered owner keep their topic, modes, bans and operators.
    "CREATE TABLE rooms (key TEXT PRIMARY KEY, record TEXT NOT NULL);",
];

pub struct SqliteStore {
    conn: Connection,
    /// The database file, named in log lines about failed writes.
    path: std::path::PathBuf,
    /// Moves the write-ahead log into the database in the background.
    _checkpointer: Checkpointer,
}

/// A thread with its own connection that checkpoints the WAL once a second, so that the
/// writer's commits never include a checkpoint's fsync. WAL mode lets it run beside the
/// writer; it stops when the store is dropped.
struct Checkpointer {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Checkpointer {
    fn start(path: &Path) -> Result<Checkpointer, StoreError> {
        use std::sync::atomic::{AtomicBool, Ordering};
        let conn = Connection::open(path)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let spawned = std::thread::Builder::new()
            .name("confab-checkpoint".into())
            .spawn(move || {
                while !stopped.load(Ordering::Relaxed) {
                    std::thread::sleep(std::time::Duration::from_millis(500));
                    // A failed or partial checkpoint is retried next time; the WAL only
                    // grows meanwhile.
                    let _ = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()));
                }
                let _ = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()));
            });
        if let Err(e) = spawned {
            return Err(StoreError::DataDir {
                path: path.display().to_string(),
                source: e,
            });
        }
        Ok(Checkpointer { stop })
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

fn kind_code(kind: MessageKind) -> i64 {
    match kind {
        MessageKind::Normal => 0,
        MessageKind::Action => 1,
        MessageKind::Notice => 2,
        // Never stored (the core journals no tag-only message); a code of its own all
        // the same, so that one could never read back as something else.
        MessageKind::Tags => 3,
    }
}

fn kind_of(code: i64) -> MessageKind {
    match code {
        1 => MessageKind::Action,
        2 => MessageKind::Notice,
        3 => MessageKind::Tags,
        _ => MessageKind::Normal,
    }
}

const COLUMNS: &str = "id, time_ms, conversation, sender, sender_mask, target, to_room, kind, text";

fn row_to_message(row: &rusqlite::Row<'_>) -> rusqlite::Result<StoredMessage> {
    Ok(StoredMessage {
        id: row.get::<_, i64>(0)? as u64,
        time_ms: row.get::<_, i64>(1)? as u64,
        conversation: row.get(2)?,
        sender: row.get(3)?,
        sender_mask: row.get(4)?,
        target: row.get(5)?,
        to_room: row.get::<_, i64>(6)? != 0,
        kind: kind_of(row.get(7)?),
        text: row.get(8)?,
    })
}

use crate::int;

impl SqliteStore {
    /// Opens (creating if needed) `confab.db` in `dir`, creating `dir` too.
    pub fn open_dir(dir: &Path) -> Result<SqliteStore, StoreError> {
        std::fs::create_dir_all(dir).map_err(|source| StoreError::DataDir {
            path: dir.display().to_string(),
            source,
        })?;
        Self::open(&dir.join("confab.db"))
    }

    /// Opens (creating if needed) the database file at `path` and migrates it.
    pub fn open(path: &Path) -> Result<SqliteStore, StoreError> {
        let conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        // Checkpoints fsync the database file, which can take a long time; done inside
        // a commit they would stall every message waiting for that commit. They run on
        // a thread of their own instead (see `Checkpointer`).
        conn.pragma_update(None, "wal_autocheckpoint", 0)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        let mut store = SqliteStore {
            conn,
            path: path.to_path_buf(),
            _checkpointer: Checkpointer::start(path)?,
        };
        store.migrate()?;
        Ok(store)
    }

    fn migrate(&mut self) -> Result<(), StoreError> {
        let version: i64 = self
            .conn
            .pragma_query_value(None, "user_version", |r| r.get(0))?;
        let known = MIGRATIONS.len() as i64;
        if version > known {
            return Err(StoreError::NewerSchema {
                found: version,
                known,
            });
        }
        for (i, migration) in MIGRATIONS.iter().enumerate().skip(version as usize) {
            let tx = self.conn.transaction()?;
            tx.execute_batch(migration)?;
            tx.pragma_update(None, "user_version", (i + 1) as i64)?;
            tx.commit()?;
        }
        Ok(())
    }

    fn query(
        &self,
        sql: &str,
        args: &[&dyn rusqlite::ToSql],
    ) -> Result<Vec<StoredMessage>, StoreError> {
        let mut statement = self.conn.prepare_cached(sql)?;
        let rows = statement.query_map(args, row_to_message)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

impl Store for SqliteStore {
    fn location(&self) -> String {
        self.path.display().to_string()
    }

    fn append(
        &mut self,
        messages: &[StoredMessage],
        offline: &[(String, u64)],
    ) -> Result<(), StoreError> {
        let tx = self.conn.transaction()?;
        {
            let mut insert = tx.prepare_cached(&format!(
                "INSERT INTO messages ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"
            ))?;
            for m in messages {
                insert.execute(params![
                    int(m.id),
                    int(m.time_ms),
                    m.conversation,
                    m.sender,
                    m.sender_mask,
                    m.target,
                    m.to_room as i64,
                    kind_code(m.kind),
                    m.text
                ])?;
            }
            let mut queue =
                tx.prepare_cached("INSERT INTO offline (recipient, message_id) VALUES (?1, ?2)")?;
            for (recipient, id) in offline {
                queue.execute(params![recipient, int(*id)])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    fn last_id(&self) -> Result<u64, StoreError> {
        let id: Option<i64> = self
            .conn
            .query_row("SELECT MAX(id) FROM messages", [], |r| r.get(0))?;
        Ok(id.unwrap_or(0).max(0) as u64)
    }

    fn history(
        &self,
        conversation: &str,
        range: Range,
        limit: usize,
    ) -> Result<Vec<StoredMessage>, StoreError> {
        let total = i64::try_from(limit).unwrap_or(i64::MAX);
        let mut found: Vec<StoredMessage> = Vec::new();
        for slice in crate::plan(range, limit) {
            let rows = slice.limit.min(total - found.len() as i64).max(0);
            let mut args: Vec<&dyn rusqlite::ToSql> = vec![&conversation];
            args.extend(slice.bounds.iter().map(|b| b as &dyn rusqlite::ToSql));
            args.push(&rows);
            let mut part = self.query(&slice.sql(COLUMNS), &args)?;
            if slice.newest_first {
                part.reverse();
            }
            found.extend(part);
        }
        Ok(found)
    }

    fn active_conversations(
        &self,
        candidates: &[String],
        from_ms: u64,
        to_ms: u64,
        limit: usize,
    ) -> Result<Vec<ConversationSummary>, StoreError> {
        let (lo, hi) = if from_ms <= to_ms {
            (from_ms, to_ms)
        } else {
            (to_ms, from_ms)
        };
        let mut statement = self.conn.prepare_cached(
            "SELECT MAX(time_ms) FROM messages WHERE conversation = ?1 AND time_ms > ?2 AND time_ms < ?3",
        )?;
        let mut found = Vec::new();
        for conversation in candidates {
            let latest: Option<i64> =
                statement.query_row(params![conversation, int(lo), int(hi)], |r| r.get(0))?;
            if let Some(latest) = latest {
                found.push(ConversationSummary {
                    conversation: conversation.clone(),
                    latest_ms: latest as u64,
                });
            }
        }
        found.sort_by_key(|f| std::cmp::Reverse(f.latest_ms));
        found.truncate(limit);
        Ok(found)
    }

    fn create_account(&mut self, key: &str, account: &Account) -> Result<bool, StoreError> {
        let inserted = self.conn.execute(
            "INSERT OR IGNORE INTO accounts (key, name, password_hash, created_ms) VALUES (?1, ?2, ?3, ?4)",
            params![key, account.name, account.password_hash, int(account.created_ms)],
        )?;
        Ok(inserted == 1)
    }

    fn account(&self, key: &str) -> Result<Option<Account>, StoreError> {
        Ok(self
            .conn
            .query_row(
                "SELECT name, password_hash, created_ms FROM accounts WHERE key = ?1",
                params![key],
                |r| {
                    Ok(Account {
                        name: r.get(0)?,
                        password_hash: r.get(1)?,
                        created_ms: r.get::<_, i64>(2)? as u64,
                    })
                },
            )
            .optional()?)
    }

    fn direct_conversations(&self, party: &str) -> Result<Vec<String>, StoreError> {
        // Conversation keys are `@a@b` and parties hold no `@`, so these two patterns
        // match exactly the conversations `party` is in.
        let name = crate::like_literal(party);
        let mut statement = self.conn.prepare_cached(
            "SELECT DISTINCT conversation FROM messages
             WHERE conversation LIKE ?1 ESCAPE '\\' OR conversation LIKE ?2 ESCAPE '\\'",
        )?;
        let found = statement
            .query_map(params![format!("@{name}@%"), format!("@%@{name}")], |r| {
                r.get(0)
            })?;
        Ok(found.collect::<Result<_, _>>()?)
    }

    fn account_names(&self) -> Result<Vec<String>, StoreError> {
        let mut statement = self.conn.prepare_cached("SELECT name FROM accounts")?;
        let names = statement.query_map([], |r| r.get(0))?;
        Ok(names.collect::<Result<_, _>>()?)
    }

    fn save_room(&mut self, key: &str, record: &str) -> Result<(), StoreError> {
        self.conn.execute(
            "INSERT INTO rooms (key, record) VALUES (?1, ?2)
             ON CONFLICT (key) DO UPDATE SET record = excluded.record",
            params![key, record],
        )?;
        Ok(())
    }

    fn rooms(&self) -> Result<Vec<String>, StoreError> {
        let mut statement = self
            .conn
            .prepare_cached("SELECT record FROM rooms ORDER BY key")?;
        let records = statement.query_map([], |r| r.get(0))?;
        Ok(records.collect::<Result<_, _>>()?)
    }

    fn take_offline(&mut self, recipient: &str) -> Result<Vec<StoredMessage>, StoreError> {
        let tx = self.conn.transaction()?;
        let messages = {
            let mut statement = tx.prepare_cached(&format!(
                "SELECT {} FROM offline o JOIN messages m ON m.id = o.message_id
                 WHERE o.recipient = ?1 ORDER BY o.id",
                COLUMNS
                    .split(", ")
                    .map(|c| format!("m.{c}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ))?;
            let rows = statement.query_map(params![recipient], row_to_message)?;
            rows.collect::<Result<Vec<_>, _>>()?
        };
        tx.execute(
            "DELETE FROM offline WHERE recipient = ?1",
            params![recipient],
        )?;
        tx.commit()?;
        Ok(messages)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(id: u64, conversation: &str, text: &str) -> StoredMessage {
        StoredMessage {
            id,
            time_ms: 1000 * id,
            conversation: conversation.into(),
            sender: "alice".into(),
            sender_mask: "alice!alice@h".into(),
            target: "lobby".into(),
            to_room: true,
            kind: MessageKind::Normal,
            text: text.into(),
        }
    }

    fn store() -> (tempfile::TempDir, SqliteStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open_dir(&dir.path().join("data")).unwrap();
        (dir, store)
    }

    fn ids(messages: &[StoredMessage]) -> Vec<u64> {
        messages.iter().map(|m| m.id).collect()
    }

    #[test]
    fn history_survives_reopening_and_ranges_select_oldest_first() {
        let (dir, mut store) = store();
        let batch: Vec<_> = (1..=10)
            .map(|i| message(i, "#lobby", &format!("m{i}")))
            .collect();
        store.append(&batch, &[]).unwrap();
        store
            .append(&[message(11, "#other", "elsewhere")], &[])
            .unwrap();
        drop(store);
        let store = SqliteStore::open_dir(&dir.path().join("data")).unwrap();
        assert_eq!(store.last_id().unwrap(), 11);
        assert_eq!(
            ids(&store.history("#lobby", Range::Latest, 3).unwrap()),
            [8, 9, 10]
        );
        assert_eq!(
            ids(&store.history("#lobby", Range::BeforeId(5), 2).unwrap()),
            [3, 4]
        );
        assert_eq!(
            ids(&store.history("#lobby", Range::AfterId(8), 5).unwrap()),
            [9, 10]
        );
        assert_eq!(
            ids(&store.history("#lobby", Range::BeforeTime(3000), 5).unwrap()),
            [1, 2]
        );
        assert_eq!(
            ids(&store.history("#lobby", Range::AfterTime(9000), 5).unwrap()),
            [10]
        );
        assert_eq!(
            ids(&store.history("#lobby", Range::AroundId(5), 4).unwrap()),
            [3, 4, 5, 6]
        );
        assert_eq!(
            ids(&store
                .history("#lobby", Range::BetweenTimes(7000, 2000), 10)
                .unwrap()),
            [3, 4, 5, 6]
        );
        assert_eq!(
            ids(&store
                .history("#lobby", Range::BetweenIds(2, 5), 10)
                .unwrap()),
            [3, 4]
        );
        assert_eq!(
            store
                .history("#lobby", Range::AfterId(u64::MAX), 5)
                .unwrap(),
            []
        );
        let active = store
            .active_conversations(
                &["#lobby".into(), "#other".into(), "#none".into()],
                0,
                u64::MAX,
                10,
            )
            .unwrap();
        assert_eq!(
            active
                .iter()
                .map(|a| a.conversation.as_str())
                .collect::<Vec<_>>(),
            ["#other", "#lobby"]
        );
    }

    #[test]
    fn accounts_are_unique_and_offline_messages_are_taken_once() {
        let (_dir, mut store) = store();
        let account = Account {
            name: "Alice".into(),
            password_hash: "$argon2id$...".into(),
            created_ms: 5,
        };
        assert!(store.create_account("alice", &account).unwrap());
        assert!(!store.create_account("alice", &account).unwrap());
        assert_eq!(store.account("alice").unwrap(), Some(account));
        assert_eq!(store.account("bob").unwrap(), None);
        assert_eq!(store.account_names().unwrap(), ["Alice"]);
        store.save_room("club", "{\"v\":1}").unwrap();
        store.save_room("club", "{\"v\":2}").unwrap();
        assert_eq!(store.rooms().unwrap(), ["{\"v\":2}"]);

        store
            .append(
                &[
                    message(1, "@alice@bob", "one"),
                    message(2, "@alice@bob", "two"),
                ],
                &[("bob".into(), 1), ("bob".into(), 2)],
            )
            .unwrap();
        assert_eq!(ids(&store.take_offline("bob").unwrap()), [1, 2]);
        store.append(&[message(3, "@axb@carol", "x")], &[]).unwrap();
        assert_eq!(store.direct_conversations("bob").unwrap(), ["@alice@bob"]);
        assert_eq!(
            store.direct_conversations("bo").unwrap(),
            Vec::<String>::new()
        );
        assert_eq!(
            store.direct_conversations("a_b").unwrap(),
            Vec::<String>::new(),
            "_ is literal"
        );
        assert_eq!(store.direct_conversations("carol").unwrap(), ["@axb@carol"]);
        assert_eq!(store.take_offline("bob").unwrap(), []);
    }

    #[test]
    fn several_conversations_read_as_one_would() {
        // Messages 1..=20 spread over three conversations, and the same twenty again
        // (ids 101..=120) in one: every range over the three reads what it reads there.
        let (_dir, mut store) = store();
        let keys = ["@a@x", "@a@y", "@a@z"];
        let spread: Vec<_> = (1..=20)
            .map(|i| message(i, keys[(i as usize * 7) % 3], "m"))
            .collect();
        let whole: Vec<_> = (1..=20).map(|i| message(100 + i, "@one", "m")).collect();
        store.append(&spread, &[]).unwrap();
        store.append(&whole, &[]).unwrap();
        let keys: Vec<String> = keys.iter().map(|k| k.to_string()).collect();
        let ranges = |o: u64| {
            [
                Range::Latest,
                Range::BeforeId(12 + o),
                Range::AfterId(5 + o),
                Range::AroundId(10 + o),
                Range::AroundId(1 + o),
                Range::BetweenIds(3 + o, 15 + o),
                Range::BeforeTime(1000 * (12 + o)),
                Range::AfterTime(1000 * (5 + o)),
                Range::AroundTime(1000 * (10 + o)),
                Range::BetweenTimes(1000 * (15 + o), 1000 * (3 + o)),
            ]
        };
        for limit in [1, 3, 4, 7, 50] {
            for (spread_range, whole_range) in ranges(0).into_iter().zip(ranges(100)) {
                let merged = ids(&store.history_of(&keys, spread_range, limit).unwrap());
                let one: Vec<u64> = ids(&store.history("@one", whole_range, limit).unwrap())
                    .into_iter()
                    .map(|id| id - 100)
                    .collect();
                assert_eq!(merged, one, "{spread_range:?} limit {limit}");
            }
        }
        assert_eq!(store.history_of(&[], Range::Latest, 5).unwrap(), []);
    }

    #[test]
    fn direct_conversations_have_one_key_for_both_directions() {
        use crate::Conversation;
        let a = Conversation::Direct("s:1f", "a:alice");
        let b = Conversation::Direct("a:alice", "s:1f");
        assert_eq!(a.key(), b.key());
        assert_eq!(a.key(), "@a:alice@s:1f");
        assert_eq!(Conversation::other_party(&a.key(), "a:alice"), Some("s:1f"));
        assert_eq!(Conversation::other_party(&a.key(), "s:1f"), Some("a:alice"));
        assert_eq!(Conversation::other_party(&a.key(), "a:bob"), None);
        assert_eq!(Conversation::other_party("#lobby", "a:alice"), None);
    }

    #[test]
    fn a_newer_schema_is_refused() {
        let (dir, store) = store();
        store.conn.pragma_update(None, "user_version", 99).unwrap();
        drop(store);
        assert!(matches!(
            SqliteStore::open_dir(&dir.path().join("data")),
            Err(StoreError::NewerSchema { found: 99, .. })
        ));
    }
}
