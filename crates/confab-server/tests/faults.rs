//! Faults around the server: a data directory whose disk fills up or turns read-only
//! while clients chat, and many clients dropping and reconnecting at once.
//!
//! The disk tests mount file systems of their own (a small tmpfs, an ext4 image on a
//! loop device), so they need root, as CI has; without it they fail saying so. The
//! log is captured by a small `tracing` subscriber installed for this test binary.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{http_get, Client, TestServer, PATIENCE};
use confab_server::Limits;

/// Limits that let a test send quickly and scrape `/metrics` often from one address.
fn unthrottled() -> Limits {
    Limits {
        flood_rate: 0,
        connection_rate_per_ip: 0,
        max_connections_per_ip: 0,
        ..Limits::default()
    }
}

/// Captures the server's log lines (INFO and up) for the whole test binary, so that a
/// test can check what an operator would read.
mod log {
    use std::fmt::Write as _;
    use std::sync::{Mutex, Once};

    use tracing::field::{Field, Visit};
    use tracing::{span, Event, Level, Metadata, Subscriber};

    static LINES: Mutex<Vec<(Level, String)>> = Mutex::new(Vec::new());

    struct Capture;

    impl Subscriber for Capture {
        fn enabled(&self, metadata: &Metadata<'_>) -> bool {
            *metadata.level() <= Level::INFO
        }
        fn new_span(&self, _: &span::Attributes<'_>) -> span::Id {
            span::Id::from_u64(1)
        }
        fn record(&self, _: &span::Id, _: &span::Record<'_>) {}
        fn record_follows_from(&self, _: &span::Id, _: &span::Id) {}
        fn event(&self, event: &Event<'_>) {
            let mut text = String::new();
            event.record(&mut Text(&mut text));
            let mut lines = LINES.lock().unwrap_or_else(|e| e.into_inner());
            lines.push((*event.metadata().level(), text));
        }
        fn enter(&self, _: &span::Id) {}
        fn exit(&self, _: &span::Id) {}
    }

    /// Renders an event as its message followed by its other fields.
    struct Text<'a>(&'a mut String);

    impl Visit for Text<'_> {
        fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
            if field.name() == "message" {
                let _ = write!(self.0, "{value:?}");
            } else {
                let _ = write!(self.0, " {}={value:?}", field.name());
            }
        }
    }

    pub fn install() {
        static INSTALL: Once = Once::new();
        INSTALL.call_once(|| {
            tracing::subscriber::set_global_default(Capture).expect("no other subscriber");
        });
    }

    /// Every captured line at `level` that contains `needle`.
    pub fn lines(level: Level, needle: &str) -> Vec<String> {
        let lines = LINES.lock().unwrap_or_else(|e| e.into_inner());
        lines
            .iter()
            .filter(|(l, text)| *l == level && text.contains(needle))
            .map(|(_, text)| text.clone())
            .collect()
    }
}

/// A file system this test mounted, unmounted (lazily, in case a file is still open)
/// when dropped.
struct Mount {
    dir: tempfile::TempDir,
}

impl Mount {
    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

/// Runs a command that the test needs, failing with its output when it does not work.
fn run(program: &str, args: &[&str], why: &str) {
    let output = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{why}: cannot run {program}: {e}"));
    assert!(
        output.status.success(),
        "{why}: `{program} {}` failed ({}); this test needs root and {program}: {}",
        args.join(" "),
        output.status,
        String::from_utf8_lossy(&output.stderr).trim()
    );
}

/// A tmpfs of `bytes`, to fill up.
fn tmpfs(bytes: usize) -> Mount {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_str().unwrap().to_string();
    run(
        "mount",
        &[
            "-t",
            "tmpfs",
            "-o",
            &format!("size={bytes}"),
            "tmpfs",
            &path,
        ],
        "mounting a small tmpfs to fill",
    );
    Mount { dir }
}

/// An ext4 file system in an image file on a loop device, mounted so that a file
/// system error turns it read-only (`errors=remount-ro`), as a failing disk does. A
/// tmpfs cannot be made read-only under an open database: `mount -o remount,ro` is
/// refused while files are open for writing.
fn ext4(image_dir: &Path) -> Mount {
    let image = image_dir.join("disk.img");
    std::fs::File::create(&image)
        .unwrap()
        .set_len(16 << 20)
        .unwrap();
    let image = image.to_str().unwrap();
    run(
        "mkfs.ext4",
        &["-q", "-F", image],
        "making an ext4 image to turn read-only",
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_str().unwrap().to_string();
    run(
        "mount",
        &["-o", "loop,errors=remount-ro", image, &path],
        "mounting an ext4 image on a loop device",
    );
    Mount { dir }
}

/// Makes the kernel treat `mount` as having hit a file system error, which with
/// `errors=remount-ro` turns it read-only at once, open files and all.
fn fail_ext4(mount: &Mount) {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let target = mount.path().to_str().unwrap();
    let device = mountinfo
        .lines()
        .find_map(|line| {
            let fields: Vec<&str> = line.split(' ').collect();
            let dash = fields.iter().position(|f| *f == "-")?;
            (fields[4] == target).then(|| fields[dash + 2].to_string())
        })
        .unwrap_or_else(|| panic!("{target} is not mounted"));
    let device = Path::new(&device).file_name().unwrap().to_str().unwrap();
    let trigger = format!("/sys/fs/ext4/{device}/trigger_fs_error");
    std::fs::write(&trigger, "confab fault test\n")
        .unwrap_or_else(|e| panic!("cannot write {trigger}: {e}"));
    let probe = mount.path().join("probe");
    assert!(
        std::fs::write(&probe, "x").is_err(),
        "the file system is read-only now"
    );
}

/// Fills the file system holding `dir` with one file, returning its path.
fn fill(dir: &Path) -> PathBuf {
    use std::io::Write as _;
    let path = dir.join("filler");
    let mut file = std::fs::File::create(&path).unwrap();
    let chunk = vec![0u8; 4096];
    loop {
        match file.write_all(&chunk) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(28) => break,
            Err(e) => panic!("filling the disk: {e}"),
        }
    }
    // Whatever a last partial chunk left is taken too.
    let _ = file.write_all(&chunk[..1]);
    path
}

/// The value of one metric series.
async fn metric(server: &TestServer, series: &str) -> u64 {
    let (status, body) = http_get(server.http_addr, "/metrics").await;
    assert_eq!(status, 200);
    body.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no {series} in\n{body}"))
        .parse()
        .unwrap()
}

/// Waits until a metric reaches `value`. The store thread tries a failing disk again
/// once a second and nothing tells a client when it has, so this polls what an
/// operator would watch.
async fn metric_reaches(server: &TestServer, series: &str, value: u64) {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let now = metric(server, series).await;
        if now == value {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{series} stays at {now}, not {value}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Reads a `/history` answer: its lines up to "* End of history", without the header.
async fn history(client: &mut Client) -> Vec<String> {
    client.send("/history").await;
    let header = client.line().await;
    assert!(header.starts_with("* History of "), "{header}");
    let mut lines = Vec::new();
    loop {
        let line = client.line().await;
        if line == "* End of history" {
            return lines;
        }
        lines.push(line);
    }
}

/// An IRC client registered as `nick` in `#lobby`, with chathistory and batches.
async fn irc_user(server: &TestServer, nick: &str) -> Client {
    let mut irc = Client::connect(server.irc_addr).await;
    irc.send(&format!(
        "CAP REQ :draft/chathistory batch server-time message-tags\r\nCAP END\r\nNICK {nick}\r\nUSER {nick} 0 * :{nick}\r"
    ))
    .await;
    irc.expect(&format!(":confab.local 001 {nick} ")).await;
    irc.send("JOIN #lobby\r").await;
    irc.expect(&format!(":confab.local 366 {nick} #lobby"))
        .await;
    irc
}

/// Sends `text` from `from` and checks `to` receives it live.
async fn say(from: &mut Client, to: &mut Client, sender: &str, text: &str) {
    from.send(text).await;
    assert_eq!(to.line().await, format!("[lobby] {sender}: {text}"));
}

#[tokio::test]
async fn a_full_disk_keeps_chat_going_tells_history_readers_and_writes_again_later() {
    log::install();
    let disk = tmpfs(4 << 20);
    let data = disk.path().join("data");
    let server = TestServer::with_data_and_limits(&data, unthrottled()).await;
    let database = data.join("confab.db").display().to_string();
    let mut alice = server.user("alice").await;
    let mut bob = server.user("bob").await;
    alice.expect("* bob joined lobby").await;
    say(&mut alice, &mut bob, "alice", "before the disk filled").await;

    let filler = fill(disk.path());
    // Large messages make SQLite's log grow past the pages it already has.
    let big = "x".repeat(3000);
    let mut sent = 0;
    while metric(&server, "confab_history_write_errors_total").await == 0 {
        assert!(
            sent < 200,
            "200 messages on a full disk and no write failed"
        );
        say(&mut alice, &mut bob, "alice", &format!("full {sent} {big}")).await;
        sent += 1;
    }
    // Every message so far reached bob, and the sender was told of no error.
    for i in sent..sent + 5 {
        say(&mut alice, &mut bob, "alice", &format!("full {i} {big}")).await;
    }
    let during = sent + 5;
    alice.expect_quiet().await;
    assert!(metric(&server, "confab_history_unsaved_messages").await > 0);
    assert_eq!(
        metric(&server, "confab_history_lost_messages_total").await,
        0
    );

    // History readers are told, on each front-end, and still get what was stored.
    let lines = history(&mut alice).await;
    assert!(
        lines[0].starts_with("! History is not being saved: the server cannot write to its disk."),
        "{lines:?}"
    );
    assert!(
        lines[1].ends_with("[lobby] alice: before the disk filled"),
        "{lines:?}"
    );
    let mut irc = irc_user(&server, "carol").await;
    alice.expect("* carol joined lobby").await;
    irc.send("CHATHISTORY LATEST #lobby * 10\r").await;
    let warning = irc.line().await;
    assert!(
        warning.starts_with(
            ":confab.local WARN CHATHISTORY HISTORY_NOT_SAVED LATEST :History is not being saved"
        ),
        "{warning}"
    );
    irc.expect(":confab.local BATCH +").await;
    bob.expect("* carol joined lobby").await;

    // The log said it once, naming the database, however many writes failed.
    let errors = log::lines(tracing::Level::ERROR, &database);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].starts_with(&format!("cannot write history to {database}: ")),
        "{errors:?}"
    );
    assert!(errors[0].contains("full"), "{errors:?}");

    // Space comes back: what waited is written, and new messages are stored again.
    std::fs::remove_file(filler).unwrap();
    metric_reaches(&server, "confab_history_unsaved_messages", 0).await;
    say(&mut alice, &mut bob, "alice", "after the disk emptied").await;
    let lines = history(&mut alice).await;
    assert!(lines.iter().all(|l| !l.starts_with("! ")), "{lines:?}");
    assert_eq!(lines.len(), 1 + during + 1, "{lines:?}");
    for (i, line) in lines[1..=during].iter().enumerate() {
        assert!(line.contains(&format!("alice: full {i} x")), "{line}");
    }
    assert!(lines[during + 1].ends_with("alice: after the disk emptied"));
    let back = log::lines(tracing::Level::INFO, "history writes work again");
    assert!(!back.is_empty());
    assert_eq!(
        metric(&server, "confab_history_lost_messages_total").await,
        0
    );
    server.stop().await;
}

#[tokio::test]
async fn a_data_directory_turned_read_only_keeps_chat_going_and_says_so() {
    log::install();
    let image_dir = tempfile::tempdir().unwrap();
    let disk = ext4(image_dir.path());
    let data = disk.path().join("data");
    let server = TestServer::with_data_and_limits(&data, unthrottled()).await;
    let database = data.join("confab.db").display().to_string();
    let mut alice = server.user("alice").await;
    let mut bob = server.user("bob").await;
    alice.expect("* bob joined lobby").await;
    say(&mut alice, &mut bob, "alice", "before the disk failed").await;

    fail_ext4(&disk);
    for i in 0..20 {
        say(&mut alice, &mut bob, "alice", &format!("read-only {i}")).await;
    }
    alice.expect_quiet().await;
    assert!(metric(&server, "confab_history_write_errors_total").await >= 1);
    assert_eq!(metric(&server, "confab_history_unsaved_messages").await, 20);

    let lines = history(&mut alice).await;
    assert!(
        lines[0].starts_with("! History is not being saved"),
        "{lines:?}"
    );
    assert!(lines[0].contains("The last 20 messages are not in history yet"));
    assert!(
        lines[1].ends_with("alice: before the disk failed"),
        "{lines:?}"
    );
    assert_eq!(lines.len(), 2, "{lines:?}");

    let errors = log::lines(tracing::Level::ERROR, &database);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].starts_with(&format!("cannot write history to {database}: ")),
        "{errors:?}"
    );
    server.stop().await;
}

/// Registers `n` line clients named `{prefix}{i}`, all in the lobby.
async fn crowd(server: &TestServer, prefix: &str, n: usize) -> Vec<Client> {
    let mut clients = Vec::with_capacity(n);
    for i in 0..n {
        clients.push(server.user(&format!("{prefix}{i}")).await);
    }
    clients
}

#[tokio::test]
async fn five_hundred_clients_drop_at_once_reconnect_and_chat_goes_on() {
    let server = TestServer::with_limits(unthrottled()).await;
    let crowd_of = 500;
    let clients = crowd(&server, "c", crowd_of).await;
    assert_eq!(metric(&server, "confab_clients").await, crowd_of as u64);

    // Every connection closes at the same moment, without a quit, as when a proxy in
    // front of the server restarts.
    drop(clients);
    metric_reaches(&server, "confab_clients", 0).await;
    assert_eq!(metric(&server, "confab_users").await, 0);

    // They all come back under the same names, which only works if every quit above
    // was processed, and the room works for them.
    let mut clients = crowd(&server, "c", crowd_of).await;
    assert_eq!(metric(&server, "confab_clients").await, crowd_of as u64);
    let (first, rest) = clients.split_first_mut().unwrap();
    first.send("we are back").await;
    for client in rest.iter_mut() {
        client.expect("[lobby] c0: we are back").await;
    }
    first.send("/who").await;
    let members = first.expect("* Members of lobby").await;
    assert!(
        members.starts_with(&format!("* Members of lobby ({crowd_of}): ")),
        "{members}"
    );
    drop(clients);
    metric_reaches(&server, "confab_clients", 0).await;
    server.stop().await;
}
