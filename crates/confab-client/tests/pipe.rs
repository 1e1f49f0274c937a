//! Pipe mode against a fake server on a real socket: what is sent, what is printed, and
//! the exit codes.

mod common;

use std::process::ExitCode;

use common::{start, Behaviour};
use confab_client::run_pipe;

const GREETING_AND_REGISTRATION: [&str; 5] = [
    "* Register with #name, then type to chat. /help lists commands.",
    "* Your user detail saved as : alice",
    "* alice joined lobby",
    "* Members of lobby (2): bob, alice",
    "* Now talking in lobby",
];

fn lines(out: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(out)
        .lines()
        .map(str::to_string)
        .collect()
}

#[tokio::test]
async fn sends_stdin_prints_everything_and_quits_at_eof() {
    let server = start(Behaviour::default()).await;
    let stdin: &[u8] = b"hello\n@bob:hi\n/me waves";
    let mut stdout = Vec::new();
    let code = run_pipe(&server.addr, "alice", stdin, &mut stdout)
        .await
        .expect("pipe session");
    assert_eq!(code, ExitCode::SUCCESS);
    let received = server.received.await.expect("server");
    assert_eq!(
        received,
        ["#alice", "hello", "@bob:hi", "/me waves", "/quit"],
        "an unterminated last line is sent, and EOF sends /quit"
    );
    let printed = lines(&stdout);
    assert!(
        printed[0].starts_with("* Welcome to confab! You are connected from: 127.0.0.1:"),
        "{printed:?}"
    );
    assert_eq!(printed[1..6], GREETING_AND_REGISTRATION);
    assert_eq!(printed[6..], ["[lobby] bob: hi alice", "* Goodbye"]);
}

#[tokio::test]
async fn an_exit_word_ends_the_session_and_nothing_after_it_is_sent() {
    let server = start(Behaviour::default()).await;
    let stdin: &[u8] = b"/ping\nbye bye\nnot sent\n";
    let mut stdout = Vec::new();
    let code = run_pipe(&server.addr, "alice", stdin, &mut stdout)
        .await
        .expect("pipe session");
    assert_eq!(code, ExitCode::SUCCESS);
    assert_eq!(
        server.received.await.expect("server"),
        ["#alice", "/ping", "bye bye"]
    );
    let printed = lines(&stdout);
    assert_eq!(
        printed[printed.len() - 2..],
        ["* pong", "* Goodbye"],
        "the user's own /ping gets its pong"
    );
}

#[tokio::test]
async fn a_taken_name_exits_with_code_2_without_sending_stdin() {
    let server = start(Behaviour::default()).await;
    let stdin: &[u8] = b"hello\n";
    let mut stdout = Vec::new();
    let code = run_pipe(&server.addr, "taken", stdin, &mut stdout)
        .await
        .expect("pipe session");
    assert_eq!(code, ExitCode::from(2));
    assert_eq!(server.received.await.expect("server"), ["#taken"]);
    assert!(
        !lines(&stdout).iter().any(|l| l.starts_with("! ")),
        "the refusal goes to stderr"
    );
}

#[tokio::test]
async fn losing_the_connection_before_stdin_ends_exits_with_code_1() {
    let server = start(Behaviour {
        drop_after_register: true,
    })
    .await;
    // Stdin stays open for the whole test: the writer is held until the end.
    let (_stdin_writer, stdin_reader) = tokio::io::duplex(64);
    let mut stdout = Vec::new();
    let code = run_pipe(
        &server.addr,
        "alice",
        tokio::io::BufReader::new(stdin_reader),
        &mut stdout,
    )
    .await
    .expect("pipe session");
    assert_eq!(code, ExitCode::FAILURE);
    assert_eq!(lines(&stdout)[1..], GREETING_AND_REGISTRATION);
}

#[tokio::test]
async fn a_refused_connection_is_a_plain_error() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("local addr").to_string();
    drop(listener);
    let stdin: &[u8] = b"";
    let error = run_pipe(&addr, "alice", stdin, Vec::new())
        .await
        .expect_err("nothing listens");
    assert!(
        error
            .to_string()
            .starts_with(&format!("cannot connect to {addr}")),
        "{error:#}"
    );
}

#[tokio::test]
async fn an_address_without_a_port_is_a_plain_error() {
    let stdin: &[u8] = b"";
    let error = run_pipe("127.0.0.1", "alice", stdin, Vec::new())
        .await
        .expect_err("no port");
    assert!(error.to_string().contains("HOST:PORT"), "{error:#}");
}
