//! Plain-mode interoperability with the tutorial's own UDP chat script (a corrected copy
//! in `tutorial_udp_chat.py`, run with python3): lines both ways, exit words both ways,
//! and confab's automatic fall-back to plain text when the script ignores its handshake.

mod common;

use std::net::SocketAddr;
use std::process::Stdio;

use common::{loopback_udp, udp_args, Peer, WAIT};
use confab_peer::Link;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use tokio::time::timeout;

/// What the script prints before each message from its friend.
const FRIEND_SAYS: &str = "YOUR FRIEND'S MSG --->";
const FRIEND_LEFT: &str = "NOW YOUR FRIEND GOES OFFLINE";

struct Script {
    child: Child,
    stdin: ChildStdin,
    stdout: Lines<BufReader<ChildStdout>>,
    addr: SocketAddr,
}

impl Script {
    /// Starts the script on a free port, chatting with `friend`.
    async fn start(friend: SocketAddr) -> Script {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/tutorial_udp_chat.py");
        let mut child = Command::new("python3")
            .arg("-u")
            .arg(path)
            .args(["127.0.0.1", "0", "127.0.0.1", &friend.port().to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("python3 must be installed to run the tutorial's script");
        let stdin = child.stdin.take().unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
        let bound = next(&mut stdout)
            .await
            .expect("the script says where it listens");
        let port = bound
            .strip_prefix("BOUND ")
            .expect("BOUND line")
            .parse::<u16>()
            .unwrap();
        Script {
            child,
            stdin,
            stdout,
            addr: ([127, 0, 0, 1], port).into(),
        }
    }

    async fn type_line(&mut self, line: &str) {
        self.stdin
            .write_all(format!("{line}\n").as_bytes())
            .await
            .unwrap();
    }

    /// The next message the script shows from its friend, or its "friend left" line.
    async fn shown(&mut self) -> String {
        loop {
            let line = next(&mut self.stdout).await.expect("the script ended");
            if let Some((_, text)) = line.split_once(FRIEND_SAYS) {
                return text.to_owned();
            }
            if line.starts_with(FRIEND_LEFT) {
                return FRIEND_LEFT.to_owned();
            }
        }
    }

    /// Waits for the script to exit; the tutorial exits with status 1 on an exit word.
    async fn exit_code(mut self) -> Option<i32> {
        timeout(WAIT, self.child.wait())
            .await
            .expect("the script did not exit")
            .unwrap()
            .code()
    }
}

async fn next(lines: &mut Lines<BufReader<ChildStdout>>) -> Option<String> {
    timeout(WAIT, lines.next_line())
        .await
        .expect("the script said nothing in time")
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_mode_talks_with_the_script_and_its_exit_word_ends_the_chat() {
    let socket = loopback_udp();
    let mut script = Script::start(socket.local_addr().unwrap()).await;
    let mut confab = Peer::spawn(
        udp_args(&socket, script.addr, &["--plain"]),
        Link::Udp(socket),
    );

    script.type_line("hello from python").await;
    assert_eq!(confab.line().await, "hello from python");
    confab.send("hello from confab").await;
    assert_eq!(script.shown().await, "hello from confab");

    // Longer than the script's recvfrom(1024): it arrives in pieces, none cut inside a
    // character, so the script's decode() never fails.
    let long = "é".repeat(1500);
    confab.send(&long).await;
    let mut pieces = String::new();
    while pieces.len() < long.len() {
        pieces.push_str(&script.shown().await);
    }
    assert_eq!(pieces, long);

    script.type_line("quit").await;
    confab.notice("the friend left", WAIT).await;
    assert_eq!(script.exit_code().await, Some(1));
    let report = confab.finish().await.unwrap();
    assert_eq!(report.undelivered, 0);
    assert_eq!(report.received, 1, "the exit word is not a message");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn confab_falls_back_to_plain_text_and_its_exit_word_ends_the_script() {
    let socket = loopback_udp();
    let mut script = Script::start(socket.local_addr().unwrap()).await;
    // No --plain: confab offers its handshake, the script shows the offer as a line
    // and does not answer, and confab speaks plain text from then on.
    let flags = ["--handshake-timeout", "0.5"];
    let mut confab = Peer::spawn(udp_args(&socket, script.addr, &flags), Link::Udp(socket));
    confab.notice("the friend did not answer", WAIT).await;

    confab.send("can you read me").await;
    loop {
        let shown = script.shown().await;
        if shown == "can you read me" {
            break;
        }
        assert!(
            shown.contains("confab-peer/1 hello"),
            "only hellos come before: {shown:?}"
        );
    }
    script.type_line("loud and clear").await;
    assert_eq!(confab.line().await, "loud and clear");

    confab.send("exit").await;
    assert_eq!(script.shown().await, FRIEND_LEFT);
    assert_eq!(script.exit_code().await, Some(1));
    let report = confab.finish().await.unwrap();
    assert_eq!(
        (report.undelivered, report.sent, report.received),
        (0, 1, 1)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn end_of_input_says_goodbye_in_the_tutorials_words() {
    let socket = loopback_udp();
    let mut script = Script::start(socket.local_addr().unwrap()).await;
    let mut confab = Peer::spawn(
        udp_args(&socket, script.addr, &["--plain"]),
        Link::Udp(socket),
    );
    confab.send("last line").await;
    confab.close_input();
    assert_eq!(script.shown().await, "last line");
    assert_eq!(script.shown().await, FRIEND_LEFT);
    assert_eq!(
        confab.finish().await.unwrap().exit_code(),
        std::process::ExitCode::SUCCESS
    );
}
