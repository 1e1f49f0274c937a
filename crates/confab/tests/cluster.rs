//! Several `confab serve` nodes sharing one chat over a real `nats-server` (JetStream
//! on) and a real PostgreSQL, each started by the test on free loopback ports in
//! temporary directories. The nodes are child processes of the built binary, so a
//! node can be killed with SIGKILL like a crashed machine.
#![cfg(unix)]

#[path = "../../confab-store/tests/support/mod.rs"]
mod support;

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use support::{free_port, TestPostgres};

/// How long anything in these tests may take before the test fails.
const PATIENCE: Duration = Duration::from_secs(20);

/// A `nats-server` with JetStream, on a fixed port and store directory so that it can
/// be stopped and started again as the same server.
struct Nats {
    child: Option<Child>,
    port: u16,
    store: tempfile::TempDir,
}

impl Nats {
    fn start() -> Nats {
        let mut nats = Nats {
            child: None,
            port: free_port(),
            store: tempfile::tempdir().unwrap(),
        };
        nats.restart();
        nats
    }

    fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    fn restart(&mut self) {
        let binary = ["/usr/sbin/nats-server", "/usr/bin/nats-server"]
            .into_iter()
            .map(PathBuf::from)
            .find(|p| p.exists())
            .unwrap_or_else(|| PathBuf::from("nats-server"));
        let child = Command::new(&binary)
            .args([
                "-a",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-js",
                "-sd",
            ])
            .arg(self.store.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot run {binary:?} ({e}); install Debian's nats-server (.ci/run does)")
            });
        self.child = Some(child);
        let started = Instant::now();
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(started.elapsed() < PATIENCE, "nats-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        self.stop();
    }
}

/// One node: a `confab serve` process in the cluster.
struct Node {
    child: Child,
    line: SocketAddr,
    irc: SocketAddr,
}

impl Node {
    fn start(name: &str, nats: &Nats, database: &str) -> Node {
        let mut child = Command::new(env!("CARGO_BIN_EXE_confab"))
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--irc-listen",
                "127.0.0.1:0",
            ])
            .args(["--http-listen", "127.0.0.1:0", "--node", name, "--nats"])
            .arg(nats.url())
            .arg("--database-url")
            .arg(database)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn confab serve");
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut addr = |what: &str| {
            let mut line = String::new();
            stdout.read_line(&mut line).unwrap();
            line.trim()
                .strip_prefix(&format!("confab: {what} listening on "))
                .unwrap_or_else(|| panic!("unexpected line {line:?} from node {name}"))
                .parse()
                .unwrap()
        };
        let line = addr("line protocol");
        let irc = addr("IRC");
        Node { child, line, irc }
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A line-protocol or IRC user reading with a deadline.
struct User {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl User {
    fn connect(addr: SocketAddr) -> User {
        let stream = TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        User {
            writer: stream.try_clone().unwrap(),
            reader: BufReader::new(stream),
        }
    }

    /// A line-protocol user registered as `name`.
    fn line(addr: SocketAddr, name: &str) -> User {
        let mut user = User::connect(addr);
        user.send(&format!("#{name}"));
        user.wait_for(|l| l.starts_with("* Now talking in lobby"));
        user
    }

    /// An IRC user registered as `nick`, in `#lobby`.
    fn irc(addr: SocketAddr, nick: &str) -> User {
        let mut user = User::connect(addr);
        user.send(&format!("NICK {nick}"));
        user.send(&format!("USER {nick} 0 * :{nick}"));
        user.wait_for(|l| l.contains(" 001 "));
        user.send("JOIN #lobby");
        user.wait_for(|l| l.contains(" 366 "));
        user
    }

    fn send(&mut self, line: &str) {
        self.writer
            .write_all(format!("{line}\r\n").as_bytes())
            .unwrap();
    }

    /// The next line, or `None` if none came within a short while.
    fn next_line(&mut self) -> Option<String> {
        let mut line = String::new();
        match self.reader.read_line(&mut line) {
            Ok(0) => panic!("the server closed the connection"),
            Ok(_) => Some(line.trim_end().to_string()),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                assert!(line.is_empty(), "a line was cut: {line:?}");
                None
            }
            Err(e) => panic!("read failed: {e}"),
        }
    }

    /// Reads until a line matches, and returns it.
    fn wait_for(&mut self, wanted: impl Fn(&str) -> bool) -> String {
        let started = Instant::now();
        while started.elapsed() < PATIENCE {
            if let Some(line) = self.next_line() {
                if wanted(&line) {
                    return line;
                }
            }
        }
        panic!("no matching line within {PATIENCE:?}");
    }

    /// Every line that arrives until none has come for a while.
    fn drain(&mut self) -> Vec<String> {
        let mut lines = Vec::new();
        while let Some(line) = self.next_line() {
            lines.push(line);
        }
        lines
    }
}

/// One cluster's services: NATS, PostgreSQL and the shared database.
struct Services {
    nats: Nats,
    _postgres: TestPostgres,
    database: String,
}

fn services() -> Services {
    let postgres = TestPostgres::start();
    let database = postgres.database("confab");
    Services {
        nats: Nats::start(),
        _postgres: postgres,
        database,
    }
}

impl Services {
    fn node(&self, name: &str) -> Node {
        Node::start(name, &self.nats, &self.database)
    }
}

/// The texts of `[lobby] name: text` lines (line protocol) and IRC PRIVMSGs to
/// #lobby, in arrival order.
fn room_texts(lines: &[String]) -> Vec<String> {
    lines
        .iter()
        .filter_map(|l| {
            if let Some(rest) = l.strip_prefix("[lobby] ") {
                return Some(rest.split_once(": ")?.1.to_string());
            }
            let (_, text) = l.split_once(" PRIVMSG #lobby :")?;
            Some(text.to_string())
        })
        .collect()
}

#[test]
fn three_nodes_share_a_room_and_direct_messages_in_one_order() {
    let services = services();
    let nodes = ["a", "b", "c"].map(|n| services.node(n));
    // A talker and a silent listener on each node; the third node's use IRC.
    let ann = User::line(nodes[0].line, "ann");
    let bob = User::line(nodes[1].line, "bob");
    let cy = User::irc(nodes[2].irc, "cy");
    let mut dee = User::line(nodes[0].line, "dee");
    let mut eve = User::line(nodes[1].line, "eve");
    let mut fay = User::irc(nodes[2].irc, "fay");
    // Everyone sees everyone else arrive, whichever node and front-end they use.
    dee.wait_for(|l| l == "* fay joined lobby");
    eve.wait_for(|l| l == "* fay joined lobby");
    fay.send("NAMES #lobby");
    let names = fay.wait_for(|l| l.contains(" 353 "));
    for name in ["ann", "bob", "cy", "dee", "eve", "fay"] {
        assert!(names.contains(name), "{names}");
    }

    // The three talkers send at once.
    let rounds = 40;
    let barrier = Arc::new(Barrier::new(3));
    let talk = |mut user: User, me: &'static str, irc: bool, barrier: Arc<Barrier>| {
        std::thread::spawn(move || {
            barrier.wait();
            for i in 0..rounds {
                let text = format!("{me}{i}");
                match irc {
                    true => user.send(&format!("PRIVMSG #lobby :{text}")),
                    false => user.send(&text),
                }
            }
            user
        })
    };
    let talkers = [
        talk(ann, "a", false, barrier.clone()),
        talk(bob, "b", false, barrier.clone()),
        talk(cy, "c", true, barrier),
    ];
    let mut talkers = talkers.map(|t| t.join().unwrap());
    let collect = |user: &mut User, wanted: usize| {
        let mut lines = Vec::new();
        let started = Instant::now();
        while room_texts(&lines).len() < wanted && started.elapsed() < PATIENCE {
            lines.extend(user.drain());
        }
        room_texts(&lines)
    };
    let heard: Vec<Vec<String>> = [&mut dee, &mut eve, &mut fay]
        .into_iter()
        .map(|u| collect(u, 3 * rounds))
        .collect();
    // Nothing lost, and every listener on every node heard one and the same order.
    assert_eq!(heard[0].len(), 3 * rounds, "{:?}", heard[0]);
    assert_eq!(heard[0], heard[1]);
    assert_eq!(heard[0], heard[2]);
    // Each talker heard the others in that order too, and each sender's messages keep
    // the order they were sent in.
    for (talker, me) in talkers.iter_mut().zip(["a", "b", "c"]) {
        let theirs: Vec<String> = heard[0]
            .iter()
            .filter(|t| !t.starts_with(me))
            .cloned()
            .collect();
        assert_eq!(collect(talker, 2 * rounds), theirs, "as heard by {me}");
        let mine: Vec<String> = heard[0]
            .iter()
            .filter(|t| t.starts_with(me))
            .cloned()
            .collect();
        let sent: Vec<String> = (0..rounds).map(|i| format!("{me}{i}")).collect();
        assert_eq!(mine, sent);
    }

    // Direct messages cross nodes and front-ends, and reach only their recipient.
    let [mut ann, mut bob, mut cy] = talkers;
    ann.send("@cy:psst");
    cy.wait_for(|l| l.ends_with("PRIVMSG cy :psst"));
    cy.send("PRIVMSG bob :hello bob");
    bob.wait_for(|l| l == "[dm] cy: hello bob");
    ann.send("/ping");
    let before_pong = {
        let mut lines = Vec::new();
        loop {
            let line = ann.wait_for(|_| true);
            if line == "* pong" {
                break lines;
            }
            lines.push(line);
        }
    };
    assert!(before_pong.iter().all(|l| !l.contains("hello bob")));
}

#[test]
fn two_nodes_racing_for_one_name_have_exactly_one_winner() {
    let services = services();
    let nodes = [services.node("a"), services.node("b")];
    for round in 0..10 {
        let name = format!("racer{round}");
        let barrier = Arc::new(Barrier::new(2));
        let racers: Vec<_> = nodes
            .iter()
            .map(|node| {
                let (addr, name, barrier) = (node.line, name.clone(), barrier.clone());
                std::thread::spawn(move || {
                    let mut user = User::connect(addr);
                    user.wait_for(|l| l.starts_with("* Register with"));
                    barrier.wait();
                    user.send(&format!("#{name}"));
                    let outcome = user.wait_for(|l| {
                        l.starts_with("* Your user detail saved") || l.starts_with("! ")
                    });
                    (user, outcome.starts_with("* "))
                })
            })
            .collect();
        let outcomes: Vec<(User, bool)> = racers.into_iter().map(|r| r.join().unwrap()).collect();
        let winners = outcomes.iter().filter(|(_, won)| *won).count();
        assert_eq!(winners, 1, "round {round}: both or neither got {name}");
    }
}

#[test]
fn a_killed_node_s_users_leave_everywhere_and_it_rejoins_on_restart() {
    let services = services();
    let a = services.node("a");
    let mut b = services.node("b");
    let mut ann = User::line(a.line, "ann");
    let _bob = User::line(b.line, "bob");
    ann.wait_for(|l| l == "* bob joined lobby");

    // A crash, not a goodbye: the node's heartbeats stop and the others notice.
    let killed = Instant::now();
    b.kill();
    ann.wait_for(|l| l.starts_with("* bob quit"));
    assert!(
        killed.elapsed() < Duration::from_secs(10),
        "{:?}",
        killed.elapsed()
    );
    // Bob's name is free again, here.
    let mut bob_again = User::connect(a.line);
    bob_again.send("#bob");
    bob_again.wait_for(|l| l.starts_with("* Your user detail saved as : bob"));
    bob_again.send("q");

    // The node comes back under the same name and its users are seen again.
    let b = services.node("b");
    let _cat = User::line(b.line, "cat");
    ann.wait_for(|l| l == "* cat joined lobby");
    ann.send("hello cat");
    let mut cat_view = User::line(b.line, "cal");
    ann.send("hello cal");
    cat_view.wait_for(|l| l == "[lobby] ann: hello cal");
}

#[test]
fn history_written_through_one_node_is_read_through_another() {
    let services = services();
    let a = services.node("a");
    let b = services.node("b");
    let mut ann = User::line(a.line, "ann");
    for i in 0..5 {
        ann.send(&format!("kept {i}"));
    }
    ann.send("/history lobby 50");
    ann.wait_for(|l| l.ends_with("ann: kept 4"));
    let mut ben = User::line(b.line, "ben");
    ben.send("/history lobby 50");
    ben.wait_for(|l| l.starts_with("* History of lobby"));
    let mut texts = Vec::new();
    loop {
        let line = ben.wait_for(|_| true);
        if line == "* End of history" {
            break;
        }
        if let Some((_, text)) = line.split_once("] ann: ") {
            texts.push(text.to_string());
        }
    }
    let sent: Vec<String> = (0..5).map(|i| format!("kept {i}")).collect();
    assert_eq!(texts, sent);
}

#[test]
fn restarting_nats_under_traffic_loses_no_message_silently() {
    let mut services = services();
    let a = services.node("a");
    let b = services.node("b");
    let mut ann = User::line(a.line, "ann");
    let mut bob = User::line(b.line, "bob");
    ann.wait_for(|l| l == "* bob joined lobby");

    // Ann talks before, during and after a NATS restart. Every message must reach bob,
    // or ann must be told that one did not.
    let mut sent = 0;
    let mut ann_lines = Vec::new();
    let mut bob_lines = Vec::new();
    let mut say = |ann: &mut User, count: usize| {
        for _ in 0..count {
            ann.send(&format!("m{sent}"));
            sent += 1;
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    say(&mut ann, 20);
    services.nats.stop();
    say(&mut ann, 20);
    services.nats.restart();
    say(&mut ann, 20);
    // After the restart the nodes find each other again and chat flows both ways.
    let started = Instant::now();
    loop {
        ann.send("probe");
        let got = bob.drain();
        let through = got.iter().any(|l| l == "[lobby] ann: probe");
        bob_lines.extend(got);
        if through {
            break;
        }
        assert!(
            started.elapsed() < PATIENCE,
            "chat did not resume after NATS restarted"
        );
    }
    ann_lines.extend(ann.drain());
    let received: Vec<usize> = bob_lines
        .iter()
        .filter_map(|l| l.strip_prefix("[lobby] ann: m")?.parse().ok())
        .collect();
    // No duplicates, and in order.
    assert!(received.windows(2).all(|w| w[0] < w[1]), "{received:?}");
    let told = ann_lines
        .iter()
        .filter(|l| l.starts_with("! ") && l.contains("may not have reached"))
        .count();
    eprintln!(
        "NATS restart: bob received {} of 60, ann was told of {told}",
        received.len()
    );
    assert!(
        received.len() + told >= 60,
        "bob got {} of 60 and ann was told of {told} failures: {received:?}",
        received.len()
    );
}
