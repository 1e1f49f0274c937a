//! The PostgreSQL store: history, accounts and offline messages in a server database
//! that every node of a cluster shares, behind the same [`Store`] trait as SQLite.
//!
//! Why the synchronous `postgres` crate: the trait is synchronous because the server
//! runs the store on a thread of its own, and `postgres` is tokio-postgres with a
//! private current-thread runtime inside each client, which is exactly what a
//! hand-written wrapper would be. The one rule that follows is that a
//! [`PostgresStore`] must never be used from inside an async task (its calls block on
//! that private runtime, and tokio refuses to nest runtimes): the server connects on
//! the blocking pool and then hands the store to its store thread.
//!
//! Durability: PostgreSQL's default `synchronous_commit = on` means `COMMIT` returns
//! only once the transaction is flushed to the database server's disk, which is at
//! least the guarantee the SQLite store makes.
//!
//! Not done: TLS to the database. The connection is plain (`NoTls`), so the database
//! must be on loopback or a trusted private network; a URL with `sslmode=require` is
//! refused when connecting.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::time::{Duration, Instant};

use ::postgres::config::Host;
use ::postgres::fallible_iterator::FallibleIterator as _;
use ::postgres::{Client, NoTls, Row, Statement};
use confab_core::MessageKind;

use crate::{Account, ConversationSummary, Range, Store, StoreError, StoredMessage};

/// Schema migrations, applied in order in one transaction; each applied version is a
/// row of `schema_version`.
const MIGRATIONS: &[&str] = &[
    // 1: history, accounts, offline messages and kept rooms. Message ids are given by
    // the server (the core numbers messages), so they are plain BIGINTs, not a
    // sequence; the offline queue's own ids only order it, so the database makes them.
    "CREATE TABLE messages (
        id BIGINT PRIMARY KEY,
        time_ms BIGINT NOT NULL,
        conversation TEXT NOT NULL,
        sender TEXT NOT NULL,
        sender_mask TEXT NOT NULL,
        target TEXT NOT NULL,
        to_room BOOLEAN NOT NULL,
        kind SMALLINT NOT NULL,
        text TEXT NOT NULL
    );
    CREATE INDEX messages_by_conversation ON messages (conversation, id);
    CREATE INDEX messages_by_time ON messages (conversation, time_ms);
    CREATE TABLE accounts (
        key TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        password_hash TEXT NOT NULL,
        created_ms BIGINT NOT NULL
    );
    CREATE TABLE offline (
        id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        recipient TEXT NOT NULL,
        message_id BIGINT NOT NULL REFERENCES messages (id)
    );
    CREATE INDEX offline_by_recipient ON offline (recipient, id);
    CREATE TABLE rooms (key TEXT PRIMARY KEY, record TEXT NOT NULL);",
];

/// The advisory lock that serialises migrations, so that several nodes starting at
/// once against an empty database do not race to create the same tables ("confab"
/// in ASCII).
const MIGRATION_LOCK: i64 = 0x636f_6e66_6162;

/// How long to wait for the database when connecting, unless the URL says otherwise;
/// without it an unreachable host would hold the store thread (and so every message
/// behind the durability gate) for the kernel's TCP timeout.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long sent data may stay unacknowledged before the connection counts as dead,
/// unless the URL says otherwise, for the same reason once connected.
const TCP_USER_TIMEOUT: Duration = Duration::from_secs(30);
/// After a failed connection attempt, calls fail at once for this long instead of
/// each waiting for a new attempt, so that chat goes on (unrecorded) during an outage.
const RETRY_AFTER: Duration = Duration::from_secs(5);
/// A connection unused for this long is first asked whether the server closed it
/// meanwhile (a restart, a failover): the synchronous client reads its socket only
/// during a call, so it would otherwise find out by failing the next batch. Asking
/// waits for one turn of the client's runtime, about a millisecond: too much for every
/// call under load, nothing after a pause.
const CHECK_IDLE_AFTER: Duration = Duration::from_secs(1);

const COLUMNS: &str = "id, time_ms, conversation, sender, sender_mask, target, to_room, kind, text";

/// Why the PostgreSQL store failed. Messages name the server and database, never the
/// password.
#[derive(Debug, thiserror::Error)]
pub enum PostgresError {
    #[error("invalid database URL: {0}")]
    Url(String),
    #[error("cannot connect to PostgreSQL at {place}: {message}")]
    Connect { place: String, message: String },
    #[error("PostgreSQL at {place} is unreachable; trying again shortly")]
    Unreachable { place: String },
    #[error("PostgreSQL at {place}: {message}")]
    Query { place: String, message: String },
}

/// A live connection and the statements prepared on it.
struct Connection {
    client: Client,
    /// Prepared statements by their SQL, so each query is parsed once per connection.
    statements: HashMap<String, Statement>,
    /// When the connection was last used, to check it after a long silence.
    last_used: Instant,
}

impl Connection {
    fn prepared(&mut self, sql: &str) -> Result<Statement, ::postgres::Error> {
        if let Some(statement) = self.statements.get(sql) {
            return Ok(statement.clone());
        }
        let statement = self.client.prepare(sql)?;
        self.statements.insert(sql.to_string(), statement.clone());
        Ok(statement)
    }

    fn query(
        &mut self,
        sql: &str,
        args: &[&(dyn ::postgres::types::ToSql + Sync)],
    ) -> Result<Vec<StoredMessage>, ::postgres::Error> {
        let statement = self.prepared(sql)?;
        self.client
            .query(&statement, args)?
            .iter()
            .map(row_to_message)
            .collect()
    }
}

/// A store in a PostgreSQL database, shared by every node of a cluster.
///
/// It reconnects by itself: a call that finds the connection closed opens a new one,
/// so history writing resumes when the database is back.
pub struct PostgresStore {
    config: ::postgres::Config,
    /// Where the database is, for messages and logs: hosts, ports, database and user.
    place: String,
    /// The connection; `None` after it was lost and before the next attempt. A
    /// `RefCell` because reads take `&self` in the trait, while the client needs
    /// `&mut` even to read; the store is only ever used from one thread.
    connection: RefCell<Option<Connection>>,
    /// Until when calls fail at once after a failed connection attempt.
    retry_at: Cell<Option<Instant>>,
}

fn kind_code(kind: MessageKind) -> i16 {
    match kind {
        MessageKind::Normal => 0,
        MessageKind::Action => 1,
        MessageKind::Notice => 2,
        // Never stored (the core journals no tag-only message); a code of its own all
        // the same, so that one could never read back as something else.
        MessageKind::Tags => 3,
    }
}

fn kind_of(code: i16) -> MessageKind {
    match code {
        1 => MessageKind::Action,
        2 => MessageKind::Notice,
        3 => MessageKind::Tags,
        _ => MessageKind::Normal,
    }
}

fn row_to_message(row: &Row) -> Result<StoredMessage, ::postgres::Error> {
    Ok(StoredMessage {
        id: row.try_get::<_, i64>(0)? as u64,
        time_ms: row.try_get::<_, i64>(1)? as u64,
        conversation: row.try_get(2)?,
        sender: row.try_get(3)?,
        sender_mask: row.try_get(4)?,
        target: row.try_get(5)?,
        to_room: row.try_get(6)?,
        kind: kind_of(row.try_get(7)?),
        text: row.try_get(8)?,
    })
}

use crate::int;

/// The error with its causes: the client's own `Display` says only "db error", and
/// the useful part (the server's message) is in its source.
fn describe(error: &::postgres::Error) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Where a configuration points, without its password: `host:port,... database D as
/// user U`.
fn place_of(config: &::postgres::Config) -> String {
    let ports = config.get_ports();
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .enumerate()
        .map(|(i, host)| {
            // One port applies to every host; otherwise they pair up.
            let port = ports
                .get(i)
                .or_else(|| ports.first())
                .copied()
                .unwrap_or(5432);
            match host {
                Host::Tcp(name) if name.contains(':') => format!("[{name}]:{port}"),
                Host::Tcp(name) => format!("{name}:{port}"),
                #[cfg(unix)]
                Host::Unix(dir) => format!("{} (port {port})", dir.display()),
            }
        })
        .collect();
    let mut place = if hosts.is_empty() {
        "(no host)".to_string()
    } else {
        hosts.join(",")
    };
    if let Some(dbname) = config.get_dbname() {
        place.push_str(&format!(" database {dbname}"));
    }
    if let Some(user) = config.get_user() {
        place.push_str(&format!(" as user {user}"));
    }
    place
}

impl PostgresStore {
    /// Connects to the database at `url` (`postgres://USER:PASSWORD@HOST:PORT/DB`, or
    /// the `host=... user=...` form) and brings its schema up to date.
    ///
    /// Blocks; never call it from an async task (see the module documentation).
    pub fn connect(url: &str) -> Result<PostgresStore, StoreError> {
        let mut config: ::postgres::Config = url
            .parse()
            .map_err(|e: ::postgres::Error| PostgresError::Url(describe(&e)))?;
        // An unencoded `@` in the password makes the rest of it look like a host,
        // which would then be printed in messages; refuse it without saying more.
        if config
            .get_hosts()
            .iter()
            .any(|h| matches!(h, Host::Tcp(name) if name.contains('@')))
        {
            return Err(PostgresError::Url(
                "a host name contains '@'; write '@' in the password as %40".into(),
            )
            .into());
        }
        if config.get_hosts().is_empty() {
            return Err(PostgresError::Url("no host given".into()).into());
        }
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        if config.get_tcp_user_timeout().is_none() {
            config.tcp_user_timeout(TCP_USER_TIMEOUT);
        }
        if config.get_application_name().is_none() {
            config.application_name("confab");
        }
        let place = place_of(&config);
        let store = PostgresStore {
            connection: RefCell::new(Some(open(&config, &place)?)),
            config,
            place,
            retry_at: Cell::new(None),
        };
        store.migrate()?;
        Ok(store)
    }

    /// Where the database is (hosts, database, user), for logs; never the password.
    pub fn place(&self) -> &str {
        &self.place
    }

    /// Creates or updates the schema, under an advisory lock so that nodes starting
    /// together take turns.
    fn migrate(&self) -> Result<(), StoreError> {
        let known = MIGRATIONS.len() as i64;
        let found = self.with(|c| {
            let mut tx = c.client.transaction()?;
            tx.batch_execute(&format!(
                "SET LOCAL client_min_messages = warning;
                 SELECT pg_advisory_xact_lock({MIGRATION_LOCK});
                 CREATE TABLE IF NOT EXISTS schema_version (
                     version BIGINT PRIMARY KEY,
                     applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
                 );"
            ))?;
            let found: Option<i64> = tx
                .query_one("SELECT MAX(version) FROM schema_version", &[])?
                .try_get(0)?;
            let found = found.unwrap_or(0);
            if found > known {
                return Ok(found);
            }
            for (i, migration) in MIGRATIONS.iter().enumerate().skip(found as usize) {
                tx.batch_execute(migration)?;
                tx.execute(
                    "INSERT INTO schema_version (version) VALUES ($1)",
                    &[&(i as i64 + 1)],
                )?;
            }
            tx.commit()?;
            Ok(found)
        })?;
        if found > known {
            return Err(StoreError::NewerSchema { found, known });
        }
        Ok(())
    }

    /// Runs `f` on the connection, reconnecting first if it was lost.
    fn with<T>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, ::postgres::Error>,
    ) -> Result<T, StoreError> {
        let mut slot = self.connection.borrow_mut();
        let lost = match slot.as_mut() {
            None => true,
            Some(c) => {
                (c.last_used.elapsed() > CHECK_IDLE_AFTER
                    && c.client
                        .notifications()
                        .timeout_iter(Duration::ZERO)
                        .next()
                        .is_err())
                    || c.client.is_closed()
            }
        };
        if lost {
            *slot = None;
            if self.retry_at.get().is_some_and(|at| Instant::now() < at) {
                return Err(PostgresError::Unreachable {
                    place: self.place.clone(),
                }
                .into());
            }
            match open(&self.config, &self.place) {
                Ok(c) => {
                    self.retry_at.set(None);
                    *slot = Some(c);
                }
                Err(e) => {
                    self.retry_at.set(Some(Instant::now() + RETRY_AFTER));
                    return Err(e.into());
                }
            }
        }
        let connection = slot.as_mut().expect("connected just above");
        connection.last_used = Instant::now();
        f(connection).map_err(|e| {
            PostgresError::Query {
                place: self.place.clone(),
                message: describe(&e),
            }
            .into()
        })
    }
}

fn open(config: &::postgres::Config, place: &str) -> Result<Connection, PostgresError> {
    let client = config.connect(NoTls).map_err(|e| PostgresError::Connect {
        place: place.to_string(),
        message: describe(&e),
    })?;
    Ok(Connection {
        client,
        statements: HashMap::new(),
        last_used: Instant::now(),
    })
}

impl Store for PostgresStore {
    fn append(
        &mut self,
        messages: &[StoredMessage],
        offline: &[(String, u64)],
    ) -> Result<(), StoreError> {
        // One statement per table whatever the batch size: the columns travel as
        // arrays and UNNEST turns them back into rows, so a group commit of thousands
        // of messages is a single round trip.
        let ids: Vec<i64> = messages.iter().map(|m| int(m.id)).collect();
        let times: Vec<i64> = messages.iter().map(|m| int(m.time_ms)).collect();
        let conversations: Vec<&str> = messages.iter().map(|m| m.conversation.as_str()).collect();
        let senders: Vec<&str> = messages.iter().map(|m| m.sender.as_str()).collect();
        let masks: Vec<&str> = messages.iter().map(|m| m.sender_mask.as_str()).collect();
        let targets: Vec<&str> = messages.iter().map(|m| m.target.as_str()).collect();
        let to_room: Vec<bool> = messages.iter().map(|m| m.to_room).collect();
        let kinds: Vec<i16> = messages.iter().map(|m| kind_code(m.kind)).collect();
        let texts: Vec<&str> = messages.iter().map(|m| m.text.as_str()).collect();
        let recipients: Vec<&str> = offline.iter().map(|(r, _)| r.as_str()).collect();
        let queued: Vec<i64> = offline.iter().map(|(_, id)| int(*id)).collect();
        self.with(|c| {
            let insert = c.prepared(&format!(
                "INSERT INTO messages ({COLUMNS})
                 SELECT * FROM UNNEST($1::BIGINT[], $2::BIGINT[], $3::TEXT[], $4::TEXT[],
                     $5::TEXT[], $6::TEXT[], $7::BOOLEAN[], $8::SMALLINT[], $9::TEXT[])"
            ))?;
            // WITH ORDINALITY keeps the queue in the order given, which is the order
            // the recipient is sent it.
            let queue = c.prepared(
                "INSERT INTO offline (recipient, message_id)
                 SELECT recipient, message_id
                 FROM UNNEST($1::TEXT[], $2::BIGINT[]) WITH ORDINALITY AS q (recipient, message_id, n)
                 ORDER BY n",
            )?;
            let mut tx = c.client.transaction()?;
            if !messages.is_empty() {
                tx.execute(
                    &insert,
                    &[
                        &ids,
                        &times,
                        &conversations,
                        &senders,
                        &masks,
                        &targets,
                        &to_room,
                        &kinds,
                        &texts,
                    ],
                )?;
            }
            if !offline.is_empty() {
                tx.execute(&queue, &[&recipients, &queued])?;
            }
            tx.commit()
        })
    }

    fn last_id(&self) -> Result<u64, StoreError> {
        self.with(|c| {
            let statement = c.prepared("SELECT MAX(id) FROM messages")?;
            let id: Option<i64> = c.client.query_one(&statement, &[])?.try_get(0)?;
            Ok(id.unwrap_or(0).max(0) as u64)
        })
    }

    fn history(
        &self,
        conversation: &str,
        range: Range,
        limit: usize,
    ) -> Result<Vec<StoredMessage>, StoreError> {
        let total = i64::try_from(limit).unwrap_or(i64::MAX);
        self.with(|db| {
            let mut found: Vec<StoredMessage> = Vec::new();
            for slice in crate::plan(range, limit) {
                let rows = slice.limit.min(total - found.len() as i64).max(0);
                let mut args: Vec<&(dyn ::postgres::types::ToSql + Sync)> = vec![&conversation];
                args.extend(
                    slice
                        .bounds
                        .iter()
                        .map(|b| b as &(dyn ::postgres::types::ToSql + Sync)),
                );
                args.push(&rows);
                let mut part = db.query(&slice.sql(COLUMNS), &args)?;
                if slice.newest_first {
                    part.reverse();
                }
                found.extend(part);
            }
            Ok(found)
        })
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
        // One query for all candidates rather than one each as SQLite does, since
        // here every query is a network round trip.
        let latest: HashMap<String, i64> = self.with(|c| {
            let statement = c.prepared(
                "SELECT conversation, MAX(time_ms) FROM messages
                 WHERE conversation = ANY($1) AND time_ms > $2 AND time_ms < $3
                 GROUP BY conversation",
            )?;
            c.client
                .query(&statement, &[&candidates, &int(lo), &int(hi)])?
                .iter()
                .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
                .collect()
        })?;
        // Built in the candidates' order and sorted stably, so that ties come out as
        // they do from the SQLite store.
        let mut found: Vec<ConversationSummary> = candidates
            .iter()
            .filter_map(|conversation| {
                latest.get(conversation).map(|&ms| ConversationSummary {
                    conversation: conversation.clone(),
                    latest_ms: ms as u64,
                })
            })
            .collect();
        found.sort_by_key(|f| std::cmp::Reverse(f.latest_ms));
        found.truncate(limit);
        Ok(found)
    }

    fn create_account(&mut self, key: &str, account: &Account) -> Result<bool, StoreError> {
        // ON CONFLICT DO NOTHING makes "first to register wins" hold across nodes too:
        // of two registrations racing on different nodes, exactly one inserts a row.
        self.with(|c| {
            let statement = c.prepared(
                "INSERT INTO accounts (key, name, password_hash, created_ms)
                 VALUES ($1, $2, $3, $4) ON CONFLICT (key) DO NOTHING",
            )?;
            let inserted = c.client.execute(
                &statement,
                &[
                    &key,
                    &account.name,
                    &account.password_hash,
                    &int(account.created_ms),
                ],
            )?;
            Ok(inserted == 1)
        })
    }

    fn account(&self, key: &str) -> Result<Option<Account>, StoreError> {
        self.with(|c| {
            let statement =
                c.prepared("SELECT name, password_hash, created_ms FROM accounts WHERE key = $1")?;
            c.client
                .query_opt(&statement, &[&key])?
                .map(|row| {
                    Ok(Account {
                        name: row.try_get(0)?,
                        password_hash: row.try_get(1)?,
                        created_ms: row.try_get::<_, i64>(2)? as u64,
                    })
                })
                .transpose()
        })
    }

    fn direct_conversations(&self, party: &str) -> Result<Vec<String>, StoreError> {
        // Conversation keys are `@a@b` and parties hold no `@`, so these two patterns
        // match exactly the conversations `party` is in.
        let name = crate::like_literal(party);
        let (first, second) = (format!("@{name}@%"), format!("@%@{name}"));
        self.with(|c| {
            let statement = c.prepared(
                "SELECT DISTINCT conversation FROM messages
                 WHERE conversation LIKE $1 ESCAPE '\\' OR conversation LIKE $2 ESCAPE '\\'",
            )?;
            c.client
                .query(&statement, &[&first, &second])?
                .iter()
                .map(|row| row.try_get(0))
                .collect()
        })
    }

    fn account_names(&self) -> Result<Vec<String>, StoreError> {
        self.with(|c| {
            let statement = c.prepared("SELECT name FROM accounts ORDER BY key")?;
            c.client
                .query(&statement, &[])?
                .iter()
                .map(|row| row.try_get(0))
                .collect()
        })
    }

    fn save_room(&mut self, key: &str, record: &str) -> Result<(), StoreError> {
        self.with(|c| {
            let statement = c.prepared(
                "INSERT INTO rooms (key, record) VALUES ($1, $2)
                 ON CONFLICT (key) DO UPDATE SET record = excluded.record",
            )?;
            c.client.execute(&statement, &[&key, &record])?;
            Ok(())
        })
    }

    fn rooms(&self) -> Result<Vec<String>, StoreError> {
        self.with(|c| {
            // Byte order, as SQLite sorts, whatever the database's collation.
            let statement = c.prepared("SELECT record FROM rooms ORDER BY key COLLATE \"C\"")?;
            c.client
                .query(&statement, &[])?
                .iter()
                .map(|row| row.try_get(0))
                .collect()
        })
    }

    fn take_offline(&mut self, recipient: &str) -> Result<Vec<StoredMessage>, StoreError> {
        // One statement deletes the queue and returns its messages, so it is atomic by
        // itself: if two nodes take the same recipient's queue at once, each queued
        // message goes to exactly one of them.
        let columns = COLUMNS
            .split(", ")
            .map(|c| format!("m.{c}"))
            .collect::<Vec<_>>()
            .join(", ");
        self.with(|c| {
            c.query(
                &format!(
                    "WITH taken AS (
                         DELETE FROM offline WHERE recipient = $1 RETURNING id, message_id
                     )
                     SELECT {columns} FROM taken t JOIN messages m ON m.id = t.message_id
                     ORDER BY t.id"
                ),
                &[&recipient],
            )
        })
    }
}
