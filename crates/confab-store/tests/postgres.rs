//! The PostgreSQL store against real, throwaway PostgreSQL servers: the same checks as
//! the SQLite store's tests, and what only a shared server database has (several
//! nodes on one database, a database that restarts).
//!
//! Each test starts its own server with `initdb` and `pg_ctl` in a temporary directory,
//! on a free loopback port, and stops it when done; no system service is used. When
//! the tests run as root (as CI does), the server runs as the unprivileged `postgres`
//! user, because PostgreSQL refuses to run as root. Without the PostgreSQL server
//! binaries the tests fail, saying what to install: a store nobody tested must not
//! look tested.
// The helper runs PostgreSQL's own tools as another user, which is a Unix affair.
#![cfg(unix)]

use std::net::TcpListener;
use std::os::unix::fs::MetadataExt as _;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use confab_core::MessageKind;
use confab_store::{Account, PostgresStore, Range, Store, StoreError, StoredMessage};

/// A PostgreSQL server of our own, stopped (immediately) when dropped.
struct TestPostgres {
    /// The directory holding the cluster, its socket and its log; removed on drop.
    dir: tempfile::TempDir,
    /// Where `initdb` and `pg_ctl` are.
    bin: PathBuf,
    /// Whether commands run as the `postgres` user (because we are root).
    as_postgres: bool,
    port: u16,
}

/// The directory of the newest PostgreSQL server binaries: Debian's
/// `/usr/lib/postgresql/VERSION/bin`, or else wherever `pg_ctl` is on the PATH.
fn postgres_bin() -> PathBuf {
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            (bin.join("initdb").exists() && bin.join("pg_ctl").exists()).then_some((version, bin))
        })
        .collect();
    found.sort();
    if let Some((_, bin)) = found.pop() {
        return bin;
    }
    let on_path = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .find(|dir| dir.join("initdb").exists() && dir.join("pg_ctl").exists())
    });
    on_path.unwrap_or_else(|| {
        panic!(
            "PostgreSQL server binaries (initdb, pg_ctl) were found neither under \
             /usr/lib/postgresql/*/bin nor on the PATH; install Debian's `postgresql` \
             package (.ci/run does) to run the PostgreSQL store's tests"
        )
    })
}

/// A loopback port nobody listens on right now.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port()
}

impl TestPostgres {
    fn start() -> TestPostgres {
        let bin = postgres_bin();
        let dir = tempfile::tempdir().expect("a temporary directory");
        // The directory is ours, so its owner tells who we are without calling libc.
        let as_postgres = std::fs::metadata(dir.path()).unwrap().uid() == 0;
        if as_postgres {
            run(Command::new("chown").arg("postgres:").arg(dir.path()));
        }
        let mut server = TestPostgres {
            dir,
            bin,
            as_postgres,
            port: 0,
        };
        run(server
            .command("initdb")
            .arg("-D")
            .arg(server.data())
            .args(["-U", "confab", "-A", "trust", "-E", "UTF8", "--no-locale"])
            // Nothing here needs to survive a power cut, and syncing is slow.
            .arg("--no-sync"));
        // Another process may take the port between our look and the server's bind,
        // so a failed start is tried again on another port.
        for _ in 0..3 {
            server.port = free_port();
            let options = format!(
                "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
                server.port,
                server.dir.path().display()
            );
            let started = server
                .command("pg_ctl")
                .arg("-D")
                .arg(server.data())
                .arg("-l")
                .arg(server.log())
                .args(["-w", "-t", "60", "-o", &options, "start"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .expect("pg_ctl runs");
            if started.success() {
                return server;
            }
        }
        panic!(
            "PostgreSQL did not start; its log says:\n{}",
            std::fs::read_to_string(server.log()).unwrap_or_default()
        );
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn log(&self) -> PathBuf {
        self.dir.path().join("log")
    }

    /// A command running one of the server binaries, as `postgres` when we are root.
    fn command(&self, program: &str) -> Command {
        let program = self.bin.join(program);
        let mut command = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(program);
            c
        } else {
            Command::new(program)
        };
        // The server user may not be allowed into our working directory.
        command.current_dir(self.dir.path());
        command
    }

    /// The URL of database `name`, with a password that the server (trusting every
    /// local connection) ignores, so that tests can check it is never shown.
    fn url(&self, name: &str) -> String {
        format!("postgres://confab:secret-pw@127.0.0.1:{}/{name}", self.port)
    }

    /// Creates an empty database and returns its URL.
    fn database(&self, name: &str) -> String {
        let mut client = postgres::Client::connect(&self.url("postgres"), postgres::NoTls)
            .expect("connect to the maintenance database");
        client
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .expect("create a database");
        self.url(name)
    }

    fn pg_ctl(&self, action: &str) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            self.port,
            self.dir.path().display()
        );
        run(self
            .command("pg_ctl")
            .arg("-D")
            .arg(self.data())
            .arg("-l")
            .arg(self.log())
            .args(["-w", "-m", "immediate", "-o", &options, action])
            .stdout(Stdio::null()));
    }
}

impl Drop for TestPostgres {
    fn drop(&mut self) {
        let _ = self
            .command("pg_ctl")
            .arg("-D")
            .arg(self.data())
            .args(["-m", "immediate", "-w", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// Runs a setup command, failing the test with its output if it fails.
fn run(command: &mut Command) {
    let output = command.output().expect("the command runs");
    assert!(
        output.status.success(),
        "{command:?} failed:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

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

fn ids(messages: &[StoredMessage]) -> Vec<u64> {
    messages.iter().map(|m| m.id).collect()
}

#[test]
fn history_survives_reconnecting_and_ranges_select_oldest_first() {
    let pg = TestPostgres::start();
    let url = pg.database("history");
    let mut store = PostgresStore::connect(&url).unwrap();
    assert_eq!(store.last_id().unwrap(), 0);
    let batch: Vec<_> = (1..=10)
        .map(|i| message(i, "#lobby", &format!("m{i}")))
        .collect();
    store.append(&batch, &[]).unwrap();
    let mut action = message(11, "#other", "elsewhere");
    action.kind = MessageKind::Action;
    action.to_room = false;
    store.append(&[action.clone()], &[]).unwrap();
    drop(store);
    let store = PostgresStore::connect(&url).unwrap();
    assert_eq!(store.last_id().unwrap(), 11);
    assert_eq!(
        store.history("#other", Range::Latest, 5).unwrap(),
        [action],
        "every field reads back as written"
    );
    let check = |range, limit, expected: &[u64]| {
        assert_eq!(
            ids(&store.history("#lobby", range, limit).unwrap()),
            expected,
            "{range:?} limit {limit}"
        );
    };
    check(Range::Latest, 3, &[8, 9, 10]);
    check(Range::BeforeId(5), 2, &[3, 4]);
    check(Range::AfterId(8), 5, &[9, 10]);
    check(Range::BeforeTime(3000), 5, &[1, 2]);
    check(Range::AfterTime(9000), 5, &[10]);
    check(Range::AroundId(5), 4, &[3, 4, 5, 6]);
    check(Range::AroundTime(5000), 4, &[3, 4, 5, 6]);
    check(Range::BetweenTimes(7000, 2000), 10, &[3, 4, 5, 6]);
    check(Range::BetweenIds(2, 5), 10, &[3, 4]);
    check(Range::AfterId(u64::MAX), 5, &[]);
    check(Range::BeforeId(u64::MAX), 2, &[9, 10]);
    assert_eq!(store.history("#nowhere", Range::Latest, 5).unwrap(), []);
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
            .map(|a| (a.conversation.as_str(), a.latest_ms))
            .collect::<Vec<_>>(),
        [("#other", 11_000), ("#lobby", 10_000)]
    );
    let bounded = store
        .active_conversations(&["#lobby".into(), "#other".into()], 10_500, 0, 10)
        .unwrap();
    assert_eq!(bounded.len(), 1);
    assert_eq!(bounded[0].conversation, "#lobby");
}

#[test]
fn accounts_are_unique_and_offline_messages_are_taken_once() {
    let pg = TestPostgres::start();
    let mut store = PostgresStore::connect(&pg.database("accounts")).unwrap();
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
    assert_eq!(store.take_offline("bob").unwrap(), []);
    store.append(&[message(3, "@axb@carol", "x")], &[]).unwrap();
    assert_eq!(store.direct_conversations("bob").unwrap(), ["@alice@bob"]);
    assert_eq!(
        store.direct_conversations("bo").unwrap(),
        Vec::<String>::new()
    );
    assert_eq!(
        store.direct_conversations("a_b").unwrap(),
        Vec::<String>::new()
    );
    assert_eq!(store.direct_conversations("carol").unwrap(), ["@axb@carol"]);
}

#[test]
fn a_failed_batch_keeps_nothing_of_it() {
    let pg = TestPostgres::start();
    let mut store = PostgresStore::connect(&pg.database("atomic")).unwrap();
    store.append(&[message(1, "#lobby", "one")], &[]).unwrap();
    // Message 2 is new but 1 is already stored, so the whole batch, and the offline
    // entry with it, must be rolled back.
    assert!(store
        .append(
            &[message(2, "#lobby", "two"), message(1, "#lobby", "again")],
            &[("bob".into(), 2)],
        )
        .is_err());
    assert_eq!(
        ids(&store.history("#lobby", Range::Latest, 10).unwrap()),
        [1]
    );
    assert_eq!(store.take_offline("bob").unwrap(), []);
}

#[test]
fn a_newer_schema_is_refused() {
    let pg = TestPostgres::start();
    let url = pg.database("newer");
    drop(PostgresStore::connect(&url).unwrap());
    let mut client = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    client
        .batch_execute("INSERT INTO schema_version (version) VALUES (99)")
        .unwrap();
    assert!(matches!(
        PostgresStore::connect(&url),
        Err(StoreError::NewerSchema { found: 99, .. })
    ));
}

#[test]
fn nodes_sharing_a_database_agree() {
    let pg = TestPostgres::start();
    let url = pg.database("cluster");
    // Both nodes find an empty database at once; the migration lock lets one create
    // the schema and the other find it done.
    let nodes: Vec<_> = (0..2)
        .map(|_| {
            let url = url.clone();
            std::thread::spawn(move || PostgresStore::connect(&url).unwrap())
        })
        .collect();
    let mut nodes: Vec<PostgresStore> = nodes.into_iter().map(|n| n.join().unwrap()).collect();
    let (a, b) = nodes.split_at_mut(1);
    let (a, b) = (&mut a[0], &mut b[0]);

    let account = |name: &str| Account {
        name: name.into(),
        password_hash: "$argon2id$...".into(),
        created_ms: 1,
    };
    assert!(a.create_account("carol", &account("Carol")).unwrap());
    assert!(!b.create_account("carol", &account("CAROL")).unwrap());
    assert_eq!(b.account("carol").unwrap(), Some(account("Carol")));

    a.append(&[message(7, "@alice@bob", "for bob")], &[("bob".into(), 7)])
        .unwrap();
    assert_eq!(b.last_id().unwrap(), 7);
    assert_eq!(ids(&b.take_offline("bob").unwrap()), [7]);
    assert_eq!(a.take_offline("bob").unwrap(), []);
}

#[test]
fn writing_resumes_after_the_database_restarts() {
    let pg = TestPostgres::start();
    let mut store = PostgresStore::connect(&pg.database("restart")).unwrap();
    store
        .append(&[message(1, "#lobby", "before")], &[])
        .unwrap();

    // After a pause the store checks its connection before using it, so the first
    // batch after a restart is kept.
    pg.pg_ctl("restart");
    std::thread::sleep(Duration::from_millis(1200));
    store.append(&[message(2, "#lobby", "after")], &[]).unwrap();

    // Straight after a restart, the call that finds the connection dead may fail; the
    // next one connects again.
    pg.pg_ctl("restart");
    let _ = store.append(&[message(3, "#lobby", "maybe")], &[]);
    store.append(&[message(4, "#lobby", "again")], &[]).unwrap();
    let kept = ids(&store.history("#lobby", Range::Latest, 10).unwrap());
    assert!(kept == [1, 2, 4] || kept == [1, 2, 3, 4], "{kept:?}");
}

#[test]
fn errors_name_the_server_but_never_the_password() {
    // Nothing listens on this port, so the connection is refused.
    let port = free_port();
    let url = format!("postgres://confab:secret-pw@127.0.0.1:{port}/confab");
    let error = PostgresStore::connect(&url)
        .err()
        .expect("nothing listens there");
    let shown = format!("{error} {error:?}");
    assert!(shown.contains(&format!("127.0.0.1:{port}")), "{shown}");
    assert!(shown.contains("database confab"), "{shown}");
    assert!(!shown.contains("secret-pw"), "{shown}");

    // An unencoded '@' in a password would put part of it where the host goes.
    let error = PostgresStore::connect("postgres://confab:p@ss@127.0.0.1/confab")
        .err()
        .expect("refused");
    let shown = format!("{error} {error:?}");
    assert!(shown.contains("%40"), "{shown}");
    assert!(!shown.contains("ss@"), "{shown}");

    let pg = TestPostgres::start();
    let url = pg.database("errors");
    let error = PostgresStore::connect(&url.replace("/errors", "/missing"))
        .err()
        .expect("no such database");
    let shown = format!("{error} {error:?}");
    assert!(
        shown.contains("missing"),
        "the server's reason is kept: {shown}"
    );
    assert!(!shown.contains("secret-pw"), "{shown}");
}
