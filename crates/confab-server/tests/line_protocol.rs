//! End-to-end tests of the line protocol against a real server on a real socket.

mod common;

use std::time::Duration;

use common::{Client, TestServer};
use confab_server::Limits;

#[tokio::test]
async fn greeting_then_registration() {
    let server = TestServer::start().await;
    let mut alice = server.connect().await;
    alice.send("#alice").await;
    assert_eq!(alice.line().await, "* Your user detail saved as : alice");
    assert_eq!(alice.line().await, "* alice joined lobby");
    assert_eq!(alice.line().await, "* Now talking in lobby");
    assert_eq!(alice.line().await, "* Members of lobby (1): alice");
    server.stop().await;
}

#[tokio::test]
async fn bad_and_taken_names_are_refused_and_the_user_can_retry() {
    let server = TestServer::start().await;
    let _alice = server.user("Alice").await;
    let mut other = server.connect().await;
    for (attempt, error) in [
        ("#aLiCe", "! The name aLiCe is taken; try another"),
        ("#", "! Invalid name \"\": a name cannot be empty"),
        (
            "#bad name",
            "! Invalid name \"bad name\": a name may only contain letters, digits and _-[]{}|^",
        ),
        (&format!("#{}", "n".repeat(33)), "! Invalid name"),
    ] {
        other.send(attempt).await;
        let line = other.line().await;
        assert!(line.starts_with(error), "{attempt}: {line}");
    }
    other.send("#bob").await;
    other.expect("* Your user detail saved as : bob").await;
    other.send("#again").await;
    other.expect("! You are already registered as bob").await;
    server.stop().await;
}

#[tokio::test]
async fn only_registration_help_and_quit_work_before_registering() {
    let server = TestServer::start().await;
    let mut anon = server.connect().await;
    for line in [
        "hello",
        "@bob:hi",
        "/join rust",
        "/rooms",
        "/who",
        "/nick x",
        "/ping",
        "/bogus",
    ] {
        anon.send(line).await;
        assert_eq!(
            anon.line().await,
            "! Register first by sending #yourname",
            "{line}"
        );
    }
    anon.send("/help").await;
    assert_eq!(anon.line().await, "* Commands:");
    anon.expect("*   /quit").await;
    anon.send("/quit").await;
    assert_eq!(anon.rest().await, ["* Goodbye"]);
    server.stop().await;
}

#[tokio::test]
async fn direct_messages_reach_only_the_recipient() {
    let server = TestServer::start().await;
    let mut alice = server.user("alice").await;
    let mut bob = server.user("bob").await;
    let mut carol = server.user("carol").await;
    alice.expect("* carol joined lobby").await;
    bob.expect("* carol joined lobby").await;

    alice.send("@BOB:hello there: bob").await;
    assert_eq!(bob.line().await, "[dm] alice: hello there: bob");
    bob.send("/msg alice hi yourself").await;
    assert_eq!(alice.line().await, "[dm] bob: hi yourself");
    carol.expect_quiet().await;

    alice.send("@dave:anyone?").await;
    assert_eq!(alice.line().await, "! No such user: dave is not online");
    alice.send("@bob").await;
    assert_eq!(alice.line().await, "! Usage: @user:message");
    alice.send("@bob:").await;
    assert_eq!(alice.line().await, "! Messages cannot be empty");
    server.stop().await;
}

#[tokio::test]
async fn room_messages_commands_and_presence() {
    let server = TestServer::start().await;
    let mut alice = server.user("alice").await;
    let mut bob = server.user("bob").await;
    alice.expect("* bob joined lobby").await;

    alice.send("hello lobby").await;
    assert_eq!(bob.line().await, "[lobby] alice: hello lobby");
    alice.send("/me waves").await;
    assert_eq!(bob.line().await, "[lobby] * alice waves");
    alice.send("//not a command").await;
    assert_eq!(bob.line().await, "[lobby] alice: /not a command");

    // Alice moves to a new room: Bob no longer hears her plain text.
    alice.send("/join #rust").await;
    assert_eq!(alice.line().await, "* alice joined rust");
    assert_eq!(alice.line().await, "* Now talking in rust");
    assert_eq!(alice.line().await, "* Members of rust (1): alice");
    alice.send("anyone here?").await;
    bob.expect_quiet().await;

    bob.send("/rooms").await;
    assert_eq!(
        bob.line().await,
        "* Rooms (2): lobby (2 members), rust (1 member)"
    );
    bob.send("/join rust").await;
    bob.expect("* Members of rust (2): alice, bob").await;
    assert_eq!(alice.line().await, "* bob joined rust");
    bob.send("hi alice").await;
    assert_eq!(alice.line().await, "[rust] bob: hi alice");

    // Switching back to a room one is already in just moves the current room.
    alice.send("/join lobby").await;
    assert_eq!(alice.line().await, "* Now talking in lobby");
    alice.send("back in the lobby").await;
    assert_eq!(bob.line().await, "[lobby] alice: back in the lobby");

    bob.send("/who").await;
    assert_eq!(bob.line().await, "* Members of rust (2): alice, bob");
    bob.send("/who nowhere").await;
    assert_eq!(bob.line().await, "! No such room: nowhere");

    bob.send("/nick robert").await;
    assert_eq!(bob.line().await, "* bob is now known as robert");
    assert_eq!(
        alice.line().await,
        "* bob is now known as robert",
        "told once"
    );
    alice.send("@robert:new name?").await;
    assert_eq!(bob.line().await, "[dm] alice: new name?");

    bob.send("/part").await;
    assert_eq!(bob.line().await, "* robert left rust");
    assert_eq!(bob.line().await, "* Now talking in lobby");
    assert_eq!(alice.line().await, "* robert left rust");

    bob.send("/quit see you").await;
    assert_eq!(bob.rest().await, ["* Goodbye"]);
    assert_eq!(alice.line().await, "* robert quit (see you)");
    server.stop().await;
}

#[tokio::test]
async fn every_error_starts_with_bang_and_nothing_else_does() {
    let server = TestServer::start().await;
    let mut alice = server.user("alice").await;
    let mut bob = server.user("bob").await;
    alice.expect("* bob joined lobby").await;
    let errors = [
        "/bogus",
        "/join bad!room",
        "/part nowhere",
        "/nick bad nick",
        "/me",
        "/nick",
        "/join",
        "@nobody:hi",
        "#again",
    ];
    for input in errors {
        alice.send(input).await;
        let line = alice.line().await;
        assert!(line.starts_with("! "), "{input} -> {line}");
    }
    alice.send("! this is not an error").await;
    let line = bob.expect("[lobby]").await;
    assert_eq!(line, "[lobby] alice: ! this is not an error");
    server.stop().await;
}

#[tokio::test]
async fn exit_words_end_the_session_and_others_see_the_quit() {
    let server = TestServer::start().await;
    let mut watcher = server.user("watcher").await;
    for (i, word) in ["q", "quit", "exit", "bye bye"].into_iter().enumerate() {
        let name = format!("leaver{i}");
        let mut leaver = server.user(&name).await;
        watcher.expect(&format!("* {name} joined lobby")).await;
        leaver.send(word).await;
        assert_eq!(leaver.rest().await, ["* Goodbye"], "{word}");
        assert_eq!(watcher.line().await, format!("* {name} quit (Quit)"));
    }
    server.stop().await;
}

#[tokio::test]
async fn a_dropped_connection_is_a_quit() {
    let server = TestServer::start().await;
    let mut alice = server.user("alice").await;
    let bob = server.user("bob").await;
    alice.expect("* bob joined lobby").await;
    drop(bob);
    assert_eq!(alice.line().await, "* bob quit (Connection closed)");
    server.stop().await;
}

#[tokio::test]
async fn an_overlong_line_is_refused_and_the_connection_stays() {
    let server = TestServer::start().await;
    let mut alice = server.user("alice").await;
    let mut bob = server.user("bob").await;
    alice.expect("* bob joined lobby").await;
    let mut long = vec![b'x'; 100_000];
    long.extend_from_slice(b"\nafter the long line\n");
    alice.send_bytes(&long).await;
    assert_eq!(
        alice.line().await,
        "! Line too long (the limit is 4096 bytes); it was discarded"
    );
    bob.expect("[lobby] alice: after the long line").await;
    // Exactly at the limit is fine.
    alice.send(&"y".repeat(4096)).await;
    let line = bob.line().await;
    assert_eq!(line.len(), "[lobby] alice: ".len() + 4096);
    server.stop().await;
}

#[tokio::test]
async fn invalid_utf8_is_refused_and_the_connection_stays() {
    let server = TestServer::start().await;
    let mut alice = server.user("alice").await;
    let mut bob = server.user("bob").await;
    alice.expect("* bob joined lobby").await;
    alice
        .send_bytes(b"caf\xe9\n\xc0\xaf overlong slash\nstill here\n")
        .await;
    assert_eq!(alice.line().await, "! Invalid UTF-8; line discarded");
    assert_eq!(alice.line().await, "! Invalid UTF-8; line discarded");
    assert_eq!(bob.expect("[lobby]").await, "[lobby] alice: still here");
    server.stop().await;
}

#[tokio::test]
async fn control_characters_never_reach_other_terminals() {
    let server = TestServer::start().await;
    let mut alice = server.user("alice").await;
    let mut bob = server.user("bob").await;
    alice.expect("* bob joined lobby").await;
    alice.send_bytes(b"\x1b[2Jcleared?\r\n").await;
    assert_eq!(bob.line().await, "[lobby] alice: \u{fffd}[2Jcleared?");
    alice.send_bytes(b"nul\x00here\n").await;
    assert_eq!(
        alice.line().await,
        "! Messages cannot contain control characters such as NUL, CR or LF"
    );
    bob.expect_quiet().await;
    server.stop().await;
}

#[tokio::test]
async fn c1_control_characters_are_replaced_too() {
    let server = TestServer::start().await;
    let mut alice = server.user("alice").await;
    let mut bob = server.user("bob").await;
    alice.expect("* bob joined lobby").await;
    // U+009B is a one-character CSI to terminals that obey C1 controls; U+00A3 is a
    // pound sign, which shares its first UTF-8 byte and must stay.
    alice.send("\u{9b}2J \u{a3}5").await;
    assert_eq!(bob.line().await, "[lobby] alice: \u{fffd}2J \u{a3}5");
    server.stop().await;
}

/// Messages read together are delivered together (one batch per recipient); this
/// checks that nothing about what anyone sees changes: every line arrives, in order,
/// errors answer the line that caused them, and commands run after the messages sent
/// before them.
#[tokio::test]
async fn a_burst_of_lines_in_one_write_arrives_whole_in_order_with_its_errors_in_place() {
    let data = tempfile::tempdir().unwrap();
    // Flood control would (rightly) slow a client sending 300 lines at once.
    let no_flood_limit = Limits {
        flood_rate: 0,
        ..Limits::default()
    };
    let server = TestServer::with_data_and_limits(data.path(), no_flood_limit).await;
    let mut alice = server.user("alice").await;
    let mut bob = server.user("bob").await;
    alice.expect("* bob joined lobby").await;
    let mut burst = String::new();
    for i in 0..150 {
        burst.push_str(&format!("line {i}\n"));
    }
    burst.push_str("@nobody:are you there?\n@bob:psst\n@bob:psst again\n");
    for i in 150..300 {
        burst.push_str(&format!("line {i}\n"));
    }
    burst.push_str("/history lobby 2\n");
    alice.send_bytes(burst.as_bytes()).await;
    for i in 0..150 {
        assert_eq!(bob.line().await, format!("[lobby] alice: line {i}"));
    }
    assert_eq!(bob.line().await, "[dm] alice: psst");
    assert_eq!(bob.line().await, "[dm] alice: psst again");
    for i in 150..300 {
        assert_eq!(bob.line().await, format!("[lobby] alice: line {i}"));
    }
    assert_eq!(alice.line().await, "! No such user: nobody is not online");
    // The history query ran after every message before it was accepted.
    alice.expect("* History of ").await;
    let mut history = Vec::new();
    loop {
        match alice.line().await {
            end if end == "* End of history" => break,
            line => history.push(line),
        }
    }
    assert!(
        history
            .last()
            .is_some_and(|l| l.ends_with("alice: line 299")),
        "{history:?}"
    );
    bob.expect_quiet().await;
    alice.expect_quiet().await;
    server.stop().await;
}

#[tokio::test]
async fn a_client_that_stops_reading_is_cut_and_the_others_carry_on() {
    // The sender floods on purpose; flood control (tested in limits.rs) is off here.
    let server = TestServer::with_limits(Limits {
        send_queue: 64 * 1024,
        flood_rate: 0,
        ..Limits::default()
    })
    .await;
    let mut sender = server.user("sender").await;
    let mut reader = server.user("reader").await;
    let mut sleeper = server.user("sleeper").await; // registers, then stops reading
    sender.expect("* sleeper joined lobby").await;
    reader.expect("* sleeper joined lobby").await;

    // Far more than the sleeper's send queue plus every kernel buffer on the way, sent
    // in batches that the reader acknowledges, so that only the sleeper falls behind.
    let text = "z".repeat(1000);
    let (batches, batch) = (400, 50);
    let (ack, mut acked) = tokio::sync::mpsc::channel::<()>(1);
    let writer = tokio::spawn(async move {
        for b in 0..batches {
            for i in 0..batch {
                sender.send(&format!("{} {text}", b * batch + i)).await;
            }
            acked.recv().await.expect("the reader acknowledges");
        }
    });
    let mut quit_seen = false;
    for b in 0..batches {
        for i in 0..batch {
            let mut line = reader.line().await;
            if line.starts_with("* sleeper quit") {
                assert_eq!(line, "* sleeper quit (Send queue exceeded)");
                quit_seen = true;
                line = reader.line().await;
            }
            let n = b * batch + i;
            assert!(line.starts_with(&format!("[lobby] sender: {n} ")), "{line}");
        }
        ack.send(()).await.unwrap();
    }
    writer.await.unwrap();
    assert!(quit_seen, "the sleeper was cut");

    // What the sleeper finally reads is an unbroken prefix of the stream, then maybe
    // the reason (if it got through before the close), then the end.
    let lines = sleeper.rest_raw().await;
    let mut n = 0;
    for line in &lines {
        if line.starts_with("! ") {
            assert_eq!(
                line,
                "! Disconnected: you were not reading fast enough (send queue exceeded)"
            );
            break;
        }
        assert!(line.starts_with(&format!("[lobby] sender: {n} ")), "{line}");
        n += 1;
    }
    assert!(n < batches * batch, "the sleeper did not get everything");
    server.stop().await;
}

#[tokio::test]
async fn shutdown_tells_every_client() {
    let server = TestServer::start().await;
    let mut alice = server.user("alice").await;
    let mut anon = server.connect().await;
    server.stop().await;
    assert_eq!(alice.rest().await, ["* Server is shutting down"]);
    assert_eq!(anon.rest().await, ["* Server is shutting down"]);
}

#[tokio::test]
async fn registration_times_out() {
    let server = TestServer::with_limits(Limits {
        registration_timeout: Duration::from_millis(200),
        ..Limits::default()
    })
    .await;
    let mut anon = server.connect().await;
    assert_eq!(
        anon.rest().await,
        ["! Disconnected: register with #name sooner next time"]
    );
    server.stop().await;
}

#[tokio::test]
async fn idle_clients_time_out_and_pings_keep_them_alive() {
    let server = TestServer::with_limits(Limits {
        idle_timeout: Duration::from_millis(500),
        ..Limits::default()
    })
    .await;
    let mut idle = server.user("idle").await;
    let mut busy = server.user("busy").await;
    // Pacing, not synchronisation: `busy` pings for longer than the idle timeout.
    let mut quit_seen = false;
    for _ in 0..10 {
        busy.send("/ping").await;
        loop {
            let line = busy.line().await;
            if line == "* pong" {
                break;
            }
            assert_eq!(line, "* idle quit (Idle timeout)");
            quit_seen = true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(quit_seen);
    assert_eq!(
        idle.rest().await,
        ["* busy joined lobby", "! Disconnected: idle for too long"]
    );
    server.stop().await;
}

#[tokio::test]
async fn a_full_server_says_so() {
    let server = TestServer::with_limits(Limits {
        max_connections: 1,
        ..Limits::default()
    })
    .await;
    let _first = server.user("first").await;
    let mut second = Client::connect(server.addr).await;
    assert_eq!(second.rest().await, ["! Server is full; try again later"]);
    server.stop().await;
}

/// The tutorial's exercise: ten clients, each sending a direct message to each of the
/// other nine. All 90 arrive exactly once, at the right person, from the right sender.
#[tokio::test]
async fn ten_clients_each_message_the_other_nine() {
    let server = TestServer::start().await;
    let names: Vec<String> = (0..10).map(|i| format!("user{i}")).collect();
    let mut clients = Vec::new();
    for name in &names {
        clients.push(server.user(name).await);
    }
    for (i, client) in clients.iter_mut().enumerate() {
        for (j, to) in names.iter().enumerate() {
            if i != j {
                client.send(&format!("@{to}:from {i} to {j}")).await;
            }
        }
    }
    for (j, client) in clients.iter_mut().enumerate() {
        let mut received = Vec::new();
        while received.len() < 9 {
            let line = client.line().await;
            if let Some(dm) = line.strip_prefix("[dm] ") {
                received.push(dm.to_string());
            } else {
                assert!(line.starts_with("* "), "{line}");
            }
        }
        received.sort();
        let mut expected: Vec<String> = (0..10)
            .filter(|&i| i != j)
            .map(|i| format!("user{i}: from {i} to {j}"))
            .collect();
        expected.sort();
        assert_eq!(received, expected);
        client.expect_quiet().await;
    }
    server.stop().await;
}

/// `confab join` shows a direct message as sent only when the `/ping` it sends after
/// the message is answered with no error before the pong; this is the order it relies
/// on, a message in a batch of several included.
#[tokio::test]
async fn a_direct_message_s_refusal_comes_before_the_next_pong() {
    let server = TestServer::start().await;
    let mut alice = server.user("alice").await;
    let mut bob = server.user("bob").await;
    alice.expect("* bob joined lobby").await;
    alice
        .send_bytes(b"@nobody:hello?\n/ping\n@bob:hi\n/ping\n@bob:one\n@ghost:two\n/ping\n")
        .await;
    assert_eq!(alice.line().await, "! No such user: nobody is not online");
    assert_eq!(alice.line().await, "* pong");
    assert_eq!(alice.line().await, "* pong", "nothing for an accepted one");
    assert_eq!(alice.line().await, "! No such user: ghost is not online");
    assert_eq!(alice.line().await, "* pong");
    assert_eq!(bob.line().await, "[dm] alice: hi");
    assert_eq!(bob.line().await, "[dm] alice: one");
    server.stop().await;
}
