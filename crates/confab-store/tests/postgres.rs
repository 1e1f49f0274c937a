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

use std::time::Duration;

mod support;

use confab_core::MessageKind;
use confab_store::{Account, PostgresStore, Range, Store, StoreError, StoredMessage};
use support::{free_port, TestPostgres};

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
