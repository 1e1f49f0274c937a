//! End-to-end tests of the web front-end: the WebSocket JSON protocol through a real
//! WebSocket client, the page and `/healthz` over plain HTTP, and browser users meeting
//! line-protocol users in one namespace.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::{TestServer, PATIENCE};
use confab_server::{Config, Frontend, Limits, Server};
use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

const INJECTION: &str = "<img src=x onerror=alert(1)>";

/// A WebSocket client that reads events with timeouts instead of sleeping.
struct Web {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

impl Web {
    /// Connects and reads the `hello` event.
    async fn connect(addr: SocketAddr) -> Web {
        let (ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/ws"))
            .await
            .expect("WebSocket handshake");
        let mut web = Web { ws };
        let hello = web.event().await;
        assert_eq!(hello["type"], "hello", "{hello}");
        web
    }

    /// Connects, registers `name` and reads up to the default room's member list.
    async fn user(addr: SocketAddr, name: &str) -> Web {
        let mut web = Web::connect(addr).await;
        web.send(json!({"type": "register", "name": name})).await;
        assert_eq!(
            web.expect("registered").await,
            json!({"type": "registered", "name": name})
        );
        let joined = web.expect("joined").await;
        assert_eq!(
            joined,
            json!({"type": "joined", "room": "lobby", "name": name})
        );
        web.expect("members").await;
        web
    }

    async fn send(&mut self, request: Value) {
        self.send_text(&request.to_string()).await;
    }

    async fn send_text(&mut self, text: &str) {
        self.ws
            .send(Message::text(text))
            .await
            .expect("send a frame");
    }

    /// The next frame, whatever it is; panics on timeout.
    async fn frame(&mut self) -> Option<Result<Message, WsError>> {
        tokio::time::timeout(PATIENCE, self.ws.next())
            .await
            .expect("timed out waiting for a frame")
    }

    /// The next event; panics on timeout, a close or a frame that is not JSON text.
    async fn event(&mut self) -> Value {
        loop {
            match self.frame().await {
                Some(Ok(Message::Text(text))) => {
                    return serde_json::from_str(&text).expect("events are JSON")
                }
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                other => panic!("expected an event, got {other:?}"),
            }
        }
    }

    /// Reads events until one of type `kind`, returning it. Skipped events must not be
    /// errors.
    async fn expect(&mut self, kind: &str) -> Value {
        loop {
            let event = self.event().await;
            if event["type"] == kind {
                return event;
            }
            assert_ne!(
                event["type"], "error",
                "unexpected error while waiting for {kind}: {event}"
            );
        }
    }

    /// Reads the next error event, which must have `code`.
    async fn expect_error(&mut self, code: &str) -> Value {
        let event = self.expect("error").await;
        assert_eq!(event["code"], code, "{event}");
        event
    }

    /// Proves nothing else is queued: a ping's pong is the next event.
    async fn expect_quiet(&mut self) {
        self.send(json!({"type": "ping"})).await;
        assert_eq!(self.event().await, json!({"type": "pong"}));
    }

    /// Reads until the server closes: the events on the way and the close frame's code.
    async fn until_closed(&mut self) -> (Vec<Value>, Option<CloseCode>) {
        let mut events = Vec::new();
        loop {
            match self.frame().await {
                Some(Ok(Message::Text(text))) => {
                    events.push(serde_json::from_str(&text).expect("events are JSON"))
                }
                Some(Ok(Message::Close(frame))) => return (events, frame.map(|f| f.code)),
                Some(Ok(_)) => {}
                None | Some(Err(_)) => return (events, None),
            }
        }
    }
}

/// One HTTP/1.1 request over a fresh connection: the status, the head and the body.
async fn http(addr: SocketAddr, request: &str) -> (u16, String, String) {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut bytes = Vec::new();
    tokio::time::timeout(PATIENCE, stream.read_to_end(&mut bytes))
        .await
        .expect("timed out reading the response")
        .expect("read");
    let text = String::from_utf8(bytes).expect("UTF-8 response");
    let (head, body) = text.split_once("\r\n\r\n").expect("a complete response");
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("a status code");
    (status, head.to_ascii_lowercase(), body.to_string())
}

async fn get(addr: SocketAddr, path: &str) -> (u16, String, String) {
    http(
        addr,
        &format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"),
    )
    .await
}

/// Opens the WebSocket with an `Origin` header; the HTTP status of a refusal.
async fn connect_with_origin(addr: SocketAddr, origin: &str) -> Result<Web, u16> {
    let mut request = format!("ws://{addr}/ws").into_client_request().unwrap();
    request
        .headers_mut()
        .insert("Origin", HeaderValue::from_str(origin).unwrap());
    match tokio_tungstenite::connect_async(request).await {
        Ok((ws, _)) => Ok(Web { ws }),
        Err(WsError::Http(response)) => Err(response.status().as_u16()),
        Err(e) => panic!("unexpected handshake failure: {e}"),
    }
}

#[tokio::test]
async fn healthz_answers_ok() {
    let server = TestServer::start().await;
    let (status, head, body) = get(server.http_addr, "/healthz").await;
    assert_eq!((status, body.as_str()), (200, "ok\n"));
    assert!(head.contains("content-type: text/plain"), "{head}");
    let (status, _, _) = get(server.http_addr, "/no/such/page").await;
    assert_eq!(status, 404);
    server.stop().await;
}

#[tokio::test]
async fn the_page_and_its_assets_are_served_with_their_types() {
    let server = TestServer::start().await;
    let (status, head, body) = get(server.http_addr, "/").await;
    assert_eq!(status, 200);
    assert!(
        head.contains("content-type: text/html; charset=utf-8"),
        "{head}"
    );
    assert!(
        head.contains("content-security-policy: default-src 'none'"),
        "{head}"
    );
    assert!(head.contains("x-content-type-options: nosniff"), "{head}");
    assert!(body.contains("<title>confab</title>"));
    assert!(body.contains(r#"<script type="module" src="app.js"></script>"#));
    for (path, content_type, needle) in [
        ("/app.js", "text/javascript", "new WebSocket("),
        ("/style.css", "text/css", ".messages"),
        ("/favicon.svg", "image/svg+xml", "<svg"),
    ] {
        let (status, head, body) = get(server.http_addr, path).await;
        assert_eq!(status, 200, "{path}");
        assert!(
            head.contains(&format!("content-type: {content_type}")),
            "{path}: {head}"
        );
        assert!(body.contains(needle), "{path}");
    }
    // HEAD works too, for health checkers that use it.
    let (status, _, body) = http(
        server.http_addr,
        "HEAD / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!((status, body.as_str()), (200, ""));
    server.stop().await;
}

#[tokio::test]
async fn registration_and_its_errors() {
    let server = TestServer::start().await;
    let _alice = server.user("alice").await;
    let mut web = Web::connect(server.http_addr).await;

    web.send(json!({"type": "message", "room": "lobby", "text": "hi"}))
        .await;
    web.expect_error("not_registered").await;
    web.send(json!({"type": "register", "name": "ALICE"})).await;
    let taken = web.expect_error("name_in_use").await;
    assert_eq!(taken["text"], "The name ALICE is taken; try another");
    web.send(json!({"type": "register", "name": "bad name"}))
        .await;
    web.expect_error("invalid_name").await;
    web.send(json!({"type": "register", "name": INJECTION}))
        .await;
    let refused = web.expect_error("invalid_name").await;
    assert!(refused["text"].as_str().unwrap().contains(INJECTION));

    web.send(json!({"type": "register", "name": "bob"})).await;
    assert_eq!(
        web.event().await,
        json!({"type": "registered", "name": "bob"})
    );
    assert_eq!(
        web.event().await,
        json!({"type": "joined", "room": "lobby", "name": "bob"})
    );
    let members = web.event().await;
    assert_eq!(members["type"], "members");
    assert_eq!(members["room"], "lobby");
    let names: Vec<&str> = members["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["alice", "bob"]);

    web.send(json!({"type": "register", "name": "carol"})).await;
    web.expect_error("already_registered").await;
    web.expect_quiet().await;
    server.stop().await;
}

#[tokio::test]
async fn room_messages_flow_both_ways_with_line_users() {
    let server = TestServer::start().await;
    let mut alice = server.user("alice").await;
    let mut bob = Web::user(server.http_addr, "bob").await;
    alice.expect("* bob joined lobby").await;

    bob.send(json!({"type": "message", "room": "lobby", "text": "hello from the web"}))
        .await;
    assert_eq!(alice.line().await, "[lobby] bob: hello from the web");
    // The page gets its own message back, with the server's id and time.
    let echo = bob.expect("message").await;
    assert_eq!(echo["from"], "bob");
    assert_eq!(echo["room"], "lobby");
    assert_eq!(echo["text"], "hello from the web");
    assert!(echo["id"].as_u64().is_some() && echo["time"].as_u64().unwrap() > 0);

    alice.send("hello from nc").await;
    let message = bob.expect("message").await;
    assert_eq!(message["from"], "alice");
    assert_eq!(message["room"], "lobby");
    assert_eq!(message["kind"], "normal");
    assert_eq!(message["text"], "hello from nc");
    assert!(message.get("to").is_none());

    alice.send("/me waves").await;
    let action = bob.expect("message").await;
    assert_eq!(
        (&action["kind"], &action["text"]),
        (&json!("action"), &json!("waves"))
    );
    bob.send(json!({"type": "message", "room": "#lobby", "text": "waves back", "kind": "action"}))
        .await;
    assert_eq!(alice.line().await, "[lobby] * bob waves back");

    bob.send(json!({"type": "message", "room": "nowhere", "text": "x"}))
        .await;
    bob.expect_error("no_such_room").await;
    server.stop().await;
}

/// A burst read in one go reaches every recipient as one batch; the web page still gets
/// one event per message, in order, each with its own id.
#[tokio::test]
async fn a_burst_from_a_line_user_reaches_the_page_message_by_message() {
    let server = TestServer::start().await;
    let mut alice = server.user("alice").await;
    let mut bob = Web::user(server.http_addr, "bob").await;
    alice.expect("* bob joined lobby").await;
    alice.send_bytes(b"one\ntwo\nthree\n").await;
    let mut ids = Vec::new();
    for text in ["one", "two", "three"] {
        let message = bob.expect("message").await;
        assert_eq!(
            (&message["from"], &message["text"]),
            (&json!("alice"), &json!(text))
        );
        ids.push(message["id"].as_u64().expect("an id"));
    }
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
    server.stop().await;
}

#[tokio::test]
async fn direct_messages_flow_every_way() {
    let server = TestServer::start().await;
    let mut carol = server.user("carol").await;
    let mut alice = Web::user(server.http_addr, "alice").await;
    let mut bob = Web::user(server.http_addr, "bob").await;

    alice
        .send(json!({"type": "message", "to": "CAROL", "text": "web to line"}))
        .await;
    carol.expect("[dm] alice: web to line").await;
    // The page gets a copy of what it sent, naming the recipient.
    let copy = alice.expect("message").await;
    assert_eq!(
        (&copy["from"], &copy["to"]),
        (&json!("alice"), &json!("carol"))
    );
    carol.send("@alice:line to web").await;
    let dm = alice.expect("message").await;
    assert_eq!(
        (&dm["from"], &dm["to"], &dm["text"]),
        (&json!("carol"), &json!("alice"), &json!("line to web"))
    );
    assert!(dm.get("room").is_none());

    alice
        .send(json!({"type": "message", "to": "bob", "text": "web to web"}))
        .await;
    let dm = bob.expect("message").await;
    assert_eq!((&dm["from"], &dm["to"]), (&json!("alice"), &json!("bob")));
    // The sender's copy names the recipient, so the page files it under bob.
    let copy = alice.expect("message").await;
    assert_eq!(
        (&copy["from"], &copy["to"]),
        (&json!("alice"), &json!("bob"))
    );

    bob.send(json!({"type": "message", "to": "dave", "text": "anyone?"}))
        .await;
    let error = bob.expect_error("no_such_user").await;
    assert_eq!(error["text"], "No such user: dave is not online");
    bob.send(json!({"type": "message", "to": "alice", "room": "lobby", "text": "both"}))
        .await;
    bob.expect_error("invalid_request").await;
    carol.expect_quiet().await;
    server.stop().await;
}

#[tokio::test]
async fn joins_parts_quits_and_renames_are_announced() {
    let server = TestServer::start().await;
    let mut bob = Web::user(server.http_addr, "bob").await;
    let mut alice = server.user("alice").await;
    assert_eq!(
        bob.expect("joined").await,
        json!({"type": "joined", "room": "lobby", "name": "alice"})
    );

    bob.send(json!({"type": "join", "room": "#Rust"})).await;
    assert_eq!(
        bob.expect("joined").await,
        json!({"type": "joined", "room": "Rust", "name": "bob"})
    );
    let members = bob.expect("members").await;
    assert_eq!(members["room"], "Rust");
    assert_eq!(members["members"][0]["name"], "bob");
    assert_eq!(members["members"][0]["op"], true);

    alice.send("/join rust").await;
    alice.expect("* Members of Rust").await;
    assert_eq!(
        bob.expect("joined").await,
        json!({"type": "joined", "room": "Rust", "name": "alice"})
    );
    bob.send(json!({"type": "who", "room": "rust"})).await;
    let members = bob.expect("members").await;
    assert_eq!(members["members"].as_array().unwrap().len(), 2);

    alice.send("/part rust gone fishing").await;
    assert_eq!(
        bob.expect("parted").await,
        json!({"type": "parted", "room": "Rust", "name": "alice", "reason": "gone fishing"})
    );
    alice.send("/nick alicia").await;
    assert_eq!(
        bob.expect("nick").await,
        json!({"type": "nick", "old": "alice", "new": "alicia"})
    );
    alice.send("/quit see you").await;
    assert_eq!(
        bob.expect("quit").await,
        json!({"type": "quit", "name": "alicia", "reason": "see you"})
    );

    bob.send(json!({"type": "part", "room": "rust"})).await;
    assert_eq!(
        bob.expect("parted").await,
        json!({"type": "parted", "room": "Rust", "name": "bob", "reason": null})
    );
    bob.send(json!({"type": "rooms"})).await;
    let rooms = bob.expect("rooms").await;
    assert_eq!(
        rooms["rooms"],
        json!([{"name": "lobby", "members": 1, "topic": null}])
    );

    // A web user leaving is announced to line users with the reason it gave.
    let mut carol = server.user("carol").await;
    bob.send(json!({"type": "quit", "reason": "off to bed"}))
        .await;
    carol.expect("* bob quit (off to bed)").await;
    let (events, code) = bob.until_closed().await;
    assert_eq!(
        events.last(),
        Some(&json!({"type": "closing", "code": "quit", "text": "Goodbye"}))
    );
    assert_eq!(code, Some(CloseCode::Normal));
    server.stop().await;
}

#[tokio::test]
async fn a_closed_browser_tab_counts_as_a_quit() {
    let server = TestServer::start().await;
    let mut alice = server.user("alice").await;
    let bob = Web::user(server.http_addr, "bob").await;
    alice.expect("* bob joined lobby").await;
    drop(bob);
    alice.expect("* bob quit (Connection closed)").await;
    server.stop().await;
}

#[tokio::test]
async fn markup_is_carried_as_plain_data() {
    let server = TestServer::start().await;
    let mut carol = server.user("carol").await;
    let mut alice = Web::user(server.http_addr, "alice").await;
    let mut bob = Web::user(server.http_addr, "bob").await;
    alice.expect("joined").await;

    alice
        .send(json!({"type": "message", "room": "lobby", "text": INJECTION}))
        .await;
    assert_eq!(bob.expect("message").await["text"], INJECTION);
    carol.expect(&format!("[lobby] alice: {INJECTION}")).await;
    carol
        .send(&format!("@bob:{INJECTION} \"quoted\" \\ </script>"))
        .await;
    assert_eq!(
        bob.expect("message").await["text"],
        format!("{INJECTION} \"quoted\" \\ </script>")
    );
    server.stop().await;
}

#[tokio::test]
async fn bad_frames_get_errors_and_the_connection_stays() {
    let server = TestServer::start().await;
    let mut web = Web::user(server.http_addr, "bob").await;
    for (frame, code) in [
        ("{not json", "invalid_json"),
        ("", "invalid_json"),
        ("[]", "invalid_request"),
        (r#"{"type":"dance"}"#, "invalid_request"),
        (r#"{"type":"message","room":"lobby"}"#, "invalid_request"),
    ] {
        web.send_text(frame).await;
        web.expect_error(code).await;
    }
    web.ws.send(Message::binary(vec![1u8, 2, 3])).await.unwrap();
    web.expect_error("binary_not_supported").await;

    // Longer than a message may be (4096 bytes), though within the frame limit.
    let long = "x".repeat(5000);
    web.send(json!({"type": "message", "room": "lobby", "text": long}))
        .await;
    let error = web.expect_error("too_long").await;
    assert!(error["text"].as_str().unwrap().contains("4096"));
    web.send(json!({"type": "message", "room": "lobby", "text": "still here"}))
        .await;
    assert_eq!(web.expect("message").await["text"], "still here");
    web.expect_quiet().await;
    server.stop().await;
}

#[tokio::test]
async fn a_frame_over_the_limit_closes_with_1009() {
    let server = TestServer::start().await;
    let mut alice = server.user("alice").await;
    let mut web = Web::user(server.http_addr, "bob").await;
    alice.expect("* bob joined lobby").await;
    let huge = json!({"type": "message", "room": "lobby", "text": "x".repeat(20 * 1024)});
    web.send(huge).await;
    let (events, code) = web.until_closed().await;
    let closing = events.last().expect("a closing event");
    assert_eq!(closing["type"], "closing");
    assert_eq!(closing["code"], "frame_too_large");
    assert_eq!(code, Some(CloseCode::Size));
    alice.expect("* bob quit (Frame too large)").await;
    server.stop().await;
}

#[tokio::test]
async fn requests_past_the_rate_are_slowed_not_dropped() {
    let server = TestServer::with_limits(Limits {
        flood_burst: 5,
        flood_rate: 50,
        ..Limits::default()
    })
    .await;
    let mut web = Web::user(server.http_addr, "bob").await;
    // Three times the burst: the rest waits for budget, and every request is answered.
    for _ in 0..15 {
        web.send(json!({"type": "rooms"})).await;
    }
    for _ in 0..15 {
        web.expect("rooms").await;
    }
    web.expect_quiet().await;
    server.stop().await;
}

#[tokio::test]
async fn a_sustained_flood_is_cut_with_excess_flood() {
    let server = TestServer::with_limits(Limits {
        flood_burst: 5,
        flood_rate: 20,
        flood_grace: Duration::from_millis(500),
        ..Limits::default()
    })
    .await;
    let mut alice = server.user("alice").await;
    let mut web = Web::user(server.http_addr, "bob").await;
    alice.expect("* bob joined lobby").await;
    // Far more than the burst plus the rate over the grace period.
    for _ in 0..1000 {
        web.send(json!({"type": "rooms"})).await;
    }
    let (events, code) = web.until_closed().await;
    let closing = events.last().expect("a closing event");
    assert_eq!(closing["code"], "excess_flood", "{closing}");
    assert_eq!(code, Some(CloseCode::Policy));
    let answered = events.iter().filter(|e| e["type"] == "rooms").count();
    assert!(answered < 500, "{answered} requests answered: not slowed");
    alice.expect("* bob quit (Excess Flood)").await;
    server.stop().await;
}

#[tokio::test]
async fn registering_too_late_is_a_timeout() {
    let server = TestServer::with_limits(Limits {
        registration_timeout: Duration::from_millis(300),
        ..Limits::default()
    })
    .await;
    let mut web = Web::connect(server.http_addr).await;
    let (events, code) = web.until_closed().await;
    assert_eq!(events[0]["code"], "registration_timeout");
    assert_eq!(code, Some(CloseCode::Policy));
    server.stop().await;
}

#[tokio::test]
async fn origins_other_than_the_pages_own_are_refused() {
    let server = TestServer::start().await;
    let addr = server.http_addr;
    assert_eq!(
        connect_with_origin(addr, "http://evil.example").await.err(),
        Some(403)
    );
    assert_eq!(connect_with_origin(addr, "null").await.err(), Some(403));
    let mut same = connect_with_origin(addr, &format!("http://{addr}"))
        .await
        .expect("the page's own origin is allowed");
    assert_eq!(same.event().await["type"], "hello");
    // With no Origin at all (not a browser), the connection is allowed.
    Web::connect(addr).await;
    server.stop().await;
}

#[tokio::test]
async fn the_allow_list_admits_other_origins() {
    let config = Config {
        line_listen: Vec::new(),
        http_listen: vec!["127.0.0.1:0".parse().unwrap()],
        allowed_origins: vec!["https://chat.example.org".into()],
        limits: Limits {
            shutdown_grace: Duration::from_millis(500),
            ..Limits::default()
        },
        ..Config::default()
    };
    let server = Server::bind(config).await.expect("bind");
    let addr = server.addrs(Frontend::Http)[0];
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(server.run(async {
        let _ = stopped.await;
    }));

    let mut allowed = connect_with_origin(addr, "https://chat.example.org")
        .await
        .expect("an allowed origin");
    assert_eq!(allowed.event().await["type"], "hello");
    assert_eq!(
        connect_with_origin(addr, "https://evil.example.org")
            .await
            .err(),
        Some(403)
    );
    assert!(connect_with_origin(addr, &format!("http://{addr}"))
        .await
        .is_ok());

    let _ = stop.send(());
    tokio::time::timeout(PATIENCE, task).await.unwrap().unwrap();
}

#[tokio::test]
async fn shutdown_tells_web_clients_then_closes() {
    let server = TestServer::start().await;
    let mut web = Web::user(server.http_addr, "bob").await;
    let stopping = tokio::spawn(server.stop());
    let (events, code) = web.until_closed().await;
    assert_eq!(
        events.last(),
        Some(&json!({"type": "closing", "code": "shutdown", "text": "Server is shutting down"}))
    );
    assert_eq!(code, Some(CloseCode::Away));
    // The close handshake completes, so the server finishes well within its grace.
    drop(web);
    stopping.await.unwrap();
}

// ---------------------------------------------------------------- history and accounts

/// A server keeping its history in `dir`, with a short login grace period.
async fn server_with_data(dir: &std::path::Path) -> TestServer {
    TestServer::with_data_and_limits(
        dir,
        Limits {
            login_grace: Duration::from_millis(300),
            ..Limits::default()
        },
    )
    .await
}

impl Web {
    /// Asks for a page of history and returns the answer, which must be a `history`.
    async fn history(&mut self, request: Value) -> Value {
        let mut request = request;
        request["type"] = json!("history");
        self.send(request).await;
        self.expect("history").await
    }

    /// Sends a message to `room` and returns the id of its echo.
    async fn say(&mut self, room: &str, text: &str) -> u64 {
        self.send(json!({"type": "message", "room": room, "text": text}))
            .await;
        let echo = self.expect("message").await;
        assert_eq!(echo["text"], text, "{echo}");
        echo["id"].as_u64().expect("an id")
    }

    /// Connects and logs in to `name` before registering; reads up to the members of
    /// the default room, returning every event on the way.
    async fn login(addr: SocketAddr, name: &str, password: &str) -> (Web, Vec<Value>) {
        let mut web = Web::connect(addr).await;
        web.send(json!({"type": "login", "name": name, "password": password}))
            .await;
        let mut seen = Vec::new();
        loop {
            let event = web.event().await;
            assert_ne!(event["type"], "error", "{event}");
            let done = event["type"] == "members";
            seen.push(event);
            if done {
                return (web, seen);
            }
        }
    }
}

/// The ids and texts of a history answer's messages.
fn page(answer: &Value) -> Vec<(u64, String)> {
    answer["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .map(|m| {
            (
                m["id"].as_u64().unwrap(),
                m["text"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[tokio::test]
async fn history_survives_a_restart_and_pages_back() {
    let data = tempfile::tempdir().unwrap();
    let server = server_with_data(data.path()).await;
    let mut alice = Web::user(server.http_addr, "alice").await;
    let mut bob = server.user("bob").await;
    let mut sent = Vec::new();
    for i in 1..=5 {
        let text = format!("message {i} {INJECTION}");
        sent.push((alice.say("lobby", &text).await, text));
    }
    bob.send("from the line protocol").await;
    let from_bob = alice.expect("message").await;
    sent.push((
        from_bob["id"].as_u64().unwrap(),
        "from the line protocol".into(),
    ));
    // What was delivered live is what history holds: the same ids, times and fields.
    let latest = alice.history(json!({"room": "lobby", "limit": 1})).await;
    let mut live = from_bob.clone();
    live.as_object_mut().unwrap().remove("type");
    assert_eq!(latest["messages"], json!([live]));
    drop(alice);
    drop(bob);
    server.stop().await;

    let server = server_with_data(data.path()).await;
    let mut alice = Web::user(server.http_addr, "alice").await;
    let newest = alice.history(json!({"room": "#LOBBY", "limit": 4})).await;
    assert_eq!(newest["room"], "lobby");
    assert!(newest.get("before").is_none());
    assert_eq!(newest["more"], true);
    assert_eq!(page(&newest), sent[2..]);
    let first = newest["messages"][0]["from"].clone();
    assert_eq!(first, "alice");
    let oldest = sent[2].0;
    let older = alice
        .history(json!({"room": "lobby", "before": oldest, "limit": 4}))
        .await;
    assert_eq!(older["before"], oldest);
    assert_eq!(older["more"], false);
    assert_eq!(page(&older), sent[..2]);
    // Ids keep increasing across the restart, so paging by id stays sound.
    assert!(alice.say("lobby", "after the restart").await > sent[5].0);
    // The default is 50 and at most 200 come back, so a huge limit is no error.
    let all = alice
        .history(json!({"room": "lobby", "limit": 100000}))
        .await;
    assert_eq!(page(&all).len(), 7);
    assert_eq!(all["more"], false);
    server.stop().await;
}

#[tokio::test]
async fn history_is_for_members_and_for_the_two_parties_only() {
    let data = tempfile::tempdir().unwrap();
    let server = server_with_data(data.path()).await;
    let mut alice = Web::user(server.http_addr, "alice").await;
    let mut bob = Web::user(server.http_addr, "bob").await;
    let mut carol = Web::user(server.http_addr, "carol").await;
    alice.send(json!({"type": "join", "room": "Secret"})).await;
    alice.expect("members").await;
    alice.say("Secret", "for members").await;

    carol
        .send(json!({"type": "history", "room": "secret"}))
        .await;
    assert_eq!(
        carol.expect("error").await,
        json!({"type": "error", "code": "not_in_room", "text": "You are not in room secret", "room": "secret"})
    );
    let mine = alice.history(json!({"room": "secret"})).await;
    assert_eq!(mine["room"], "Secret");
    assert_eq!(
        page(&mine),
        [(
            mine["messages"][0]["id"].as_u64().unwrap(),
            "for members".into()
        )]
    );
    // Having left, a member reads no more.
    alice.send(json!({"type": "part", "room": "secret"})).await;
    alice.expect("parted").await;
    alice
        .send(json!({"type": "history", "room": "secret"}))
        .await;
    alice.expect_error("not_in_room").await;

    alice
        .send(json!({"type": "message", "to": "bob", "text": "just for bob"}))
        .await;
    let dm = alice.expect("message").await;
    bob.expect("message").await;
    for (web, with) in [(&mut alice, "BOB"), (&mut bob, "alice")] {
        let answer = web.history(json!({"with": with})).await;
        assert_eq!(answer["with"], with);
        let mut expected = dm.clone();
        expected.as_object_mut().unwrap().remove("type");
        assert_eq!(answer["messages"], json!([expected]));
    }
    // Carol's conversation with alice is her own, and empty.
    let other = carol.history(json!({"with": "alice"})).await;
    assert_eq!(
        (other["messages"].clone(), other["more"].clone()),
        (json!([]), json!(false))
    );

    for (request, code) in [
        (
            json!({"type": "history", "room": "lobby", "with": "bob"}),
            "invalid_request",
        ),
        (json!({"type": "history"}), "invalid_request"),
        (
            json!({"type": "history", "with": "bad name"}),
            "invalid_name",
        ),
        (
            json!({"type": "history", "room": "lobby", "before": "x"}),
            "invalid_request",
        ),
    ] {
        carol.send(request).await;
        carol.expect_error(code).await;
    }
    let mut stranger = Web::connect(server.http_addr).await;
    stranger
        .send(json!({"type": "history", "room": "lobby"}))
        .await;
    stranger.expect_error("not_registered").await;
    carol.expect_quiet().await;
    server.stop().await;
}

#[tokio::test]
async fn a_server_without_history_says_so() {
    let server = TestServer::start().await;
    let mut web = Web::connect(server.http_addr).await;
    drop(web);
    // The greeting tells a page there is no history and there are no accounts.
    let (ws, _) = tokio_tungstenite::connect_async(format!("ws://{}/ws", server.http_addr))
        .await
        .unwrap();
    web = Web { ws };
    let hello = web.event().await;
    assert_eq!(
        (&hello["history"], &hello["accounts"]),
        (&json!(false), &json!(false))
    );
    web.send(json!({"type": "login", "name": "alice", "password": "pw"}))
        .await;
    web.expect_error("no_accounts").await;
    web.send(json!({"type": "register", "name": "alice"})).await;
    web.expect("members").await;
    web.send(json!({"type": "history", "room": "lobby"})).await;
    assert_eq!(web.expect_error("no_history").await["room"], "lobby");
    web.send(json!({"type": "register_account", "password": "pw"}))
        .await;
    web.expect_error("no_accounts").await;
    server.stop().await;
}

#[tokio::test]
async fn accounts_register_log_in_and_protect_their_names() {
    let data = tempfile::tempdir().unwrap();
    let server = server_with_data(data.path()).await;
    let mut alice = Web::user(server.http_addr, "alice").await;
    alice
        .send(json!({"type": "register_account", "password": "correct horse"}))
        .await;
    assert_eq!(
        alice.expect("logged_in").await,
        json!({"type": "logged_in", "account": "alice"})
    );
    alice
        .send(json!({"type": "register_account", "password": "again"}))
        .await;
    alice.expect_error("account_exists").await;
    alice.send(json!({"type": "quit"})).await;
    alice.until_closed().await;

    // Someone else takes the name: told to log in, then renamed after the grace period,
    // and meanwhile kept from the name's direct messages.
    let mut mallory = Web::connect(server.http_addr).await;
    mallory
        .send(json!({"type": "register", "name": "alice"}))
        .await;
    mallory.expect("registered").await;
    assert_eq!(
        mallory.expect("login_required").await,
        json!({"type": "login_required", "name": "alice"})
    );
    mallory
        .send(json!({"type": "history", "with": "bob"}))
        .await;
    mallory.expect_error("not_logged_in").await;
    let renamed = mallory.expect("nick").await;
    assert_eq!(renamed["old"], "alice");
    let guest = renamed["new"].as_str().unwrap().to_string();
    assert!(guest.starts_with("Guest"), "{guest}");
    mallory.expect_error("name_registered").await;
    mallory.send(json!({"type": "nick", "name": "alice"})).await;
    mallory.expect_error("name_registered").await;

    // A wrong password is refused without saying whether the account exists; the
    // password is never echoed.
    let mut web = Web::connect(server.http_addr).await;
    for name in ["alice", "nobody"] {
        web.send(json!({"type": "login", "name": name, "password": "wrong horse"}))
            .await;
        let failed = web.expect_error("login_failed").await;
        assert!(!failed.to_string().contains("wrong horse"), "{failed}");
    }
    // Logging in before registering takes the account's name and the default room.
    let (mut owner, events) = Web::login(server.http_addr, "ALICE", "correct horse").await;
    let types: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert!(types.contains(&"logged_in"), "{types:?}");
    let registered = events.iter().find(|e| e["type"] == "registered").unwrap();
    assert_eq!(registered["name"], "alice");
    assert_eq!(types.last(), Some(&"members"));
    assert!(types.contains(&"joined"), "{types:?}");
    mallory.expect("joined").await;
    // The owner may read the name's direct messages.
    let own = owner.history(json!({"with": "bob"})).await;
    assert_eq!(own["messages"], json!([]));
    // Logging in again on a registered connection keeps it, and says so.
    owner
        .send(json!({"type": "login", "name": "alice", "password": "correct horse"}))
        .await;
    assert_eq!(
        owner.expect("logged_in").await,
        json!({"type": "logged_in", "account": "alice"})
    );
    owner.expect_quiet().await;
    server.stop().await;
}

#[tokio::test]
async fn direct_messages_wait_for_an_offline_account_and_arrive_on_login() {
    let data = tempfile::tempdir().unwrap();
    let server = server_with_data(data.path()).await;
    let mut alice = Web::user(server.http_addr, "alice").await;
    alice
        .send(json!({"type": "register_account", "password": "pw"}))
        .await;
    alice.expect("logged_in").await;
    alice.send(json!({"type": "quit"})).await;
    alice.until_closed().await;

    let mut bob = Web::user(server.http_addr, "bob").await;
    bob.send(json!({"type": "message", "to": "alice", "text": "while you were out"}))
        .await;
    // The sender is told it waits; it is not echoed, but it is in their history.
    assert_eq!(
        bob.event().await,
        json!({"type": "stored_for_later", "name": "alice"})
    );
    let sent = bob.history(json!({"with": "alice"})).await;
    let mut echo = sent["messages"][0].clone();
    echo["type"] = json!("message");
    assert_eq!(
        (&echo["from"], &echo["to"], &echo["text"]),
        (&json!("bob"), &json!("alice"), &json!("while you were out"))
    );

    let (mut alice, mut events) = Web::login(server.http_addr, "alice", "pw").await;
    // The stored message may come before or after the room's member list.
    let message = match events.iter().position(|e| e["type"] == "message") {
        Some(at) => events.remove(at),
        None => alice.expect("message").await,
    };
    assert_eq!(
        message, echo,
        "delivered as sent, with its original id and time"
    );
    assert_eq!(message["to"], "alice");
    // It is delivered once, and stays in the conversation's history.
    alice.expect_quiet().await;
    let answer = alice.history(json!({"with": "bob"})).await;
    assert_eq!(
        page(&answer),
        [(echo["id"].as_u64().unwrap(), "while you were out".into())]
    );
    drop(alice);
    let (mut again, events) = Web::login(server.http_addr, "alice", "pw").await;
    assert!(events.iter().all(|e| e["type"] != "message"), "{events:?}");
    again.expect_quiet().await;
    server.stop().await;
}

#[tokio::test]
async fn room_operators_kick_set_modes_topics_and_invite_from_the_web() {
    let server = TestServer::start().await;
    let mut op = Web::user(server.http_addr, "op").await;
    let mut member = Web::user(server.http_addr, "member").await;
    let mut guest = Web::user(server.http_addr, "guest").await;
    op.send(json!({"type": "join", "room": "den"})).await;
    op.expect("members").await;
    member.send(json!({"type": "join", "room": "den"})).await;
    member.expect("members").await;
    op.expect("joined").await;

    // A member is refused what needs an operator: modes, a topic under +t, kicks.
    member
        .send(json!({"type": "mode", "room": "den", "changes": [{"add": true, "mode": "m", "arg": null}]}))
        .await;
    member.expect_error("operator_needed").await;
    member
        .send(json!({"type": "topic", "room": "den", "text": "mine"}))
        .await;
    member.expect_error("operator_needed").await;
    member
        .send(json!({"type": "kick", "room": "den", "name": "op"}))
        .await;
    member.expect_error("operator_needed").await;

    // The operator sets the topic; members read it.
    op.send(json!({"type": "topic", "room": "den", "text": "the den"}))
        .await;
    let topic = member.expect("topic").await;
    assert_eq!(
        (&topic["by"], &topic["text"]),
        (&json!("op"), &json!("the den"))
    );
    op.expect("topic").await;
    member.send(json!({"type": "topic", "room": "den"})).await;
    assert_eq!(member.expect("topic_is").await["topic"]["text"], "the den");

    // -t: any member sets it.
    op.send(json!({"type": "mode", "room": "den", "changes": [{"add": false, "mode": "t", "arg": null}]}))
        .await;
    member.expect("mode").await;
    member
        .send(json!({"type": "topic", "room": "den", "text": "ours"}))
        .await;
    let topic = op.expect("topic").await;
    assert_eq!(
        (&topic["by"], &topic["text"]),
        (&json!("member"), &json!("ours"))
    );

    // -i: any member invites; +i: only operators. (An invitation made under -i is
    // still good after +i, so the +i checks use someone not invited yet.)
    let mut friend = Web::user(server.http_addr, "friend").await;
    member
        .send(json!({"type": "invite", "room": "den", "name": "friend"}))
        .await;
    member.expect("invite_sent").await;
    let invited = friend.expect("invited").await;
    assert_eq!(
        (&invited["room"], &invited["by"]),
        (&json!("den"), &json!("member"))
    );
    op.send(json!({"type": "mode", "room": "den", "changes": [{"add": true, "mode": "i", "arg": null}]}))
        .await;
    member.expect("mode").await;
    member
        .send(json!({"type": "invite", "room": "den", "name": "guest"}))
        .await;
    member.expect_error("operator_needed").await;
    guest.send(json!({"type": "join", "room": "den"})).await;
    guest.expect_error("invite_only").await;
    op.send(json!({"type": "invite", "room": "den", "name": "guest"}))
        .await;
    op.expect("invite_sent").await;
    guest.expect("invited").await;
    guest.send(json!({"type": "join", "room": "den"})).await;
    guest.expect("members").await;

    // The operator kicks; the kicked member can no longer talk there.
    op.send(json!({"type": "kick", "room": "den", "name": "member", "reason": "out"}))
        .await;
    let kicked = member.expect("kicked").await;
    assert_eq!(
        (&kicked["by"], &kicked["name"], &kicked["reason"]),
        (&json!("op"), &json!("member"), &json!("out"))
    );
    member
        .send(json!({"type": "message", "room": "den", "text": "still here?"}))
        .await;
    member.expect("error").await;
    server.stop().await;
}

#[tokio::test]
async fn web_logins_are_throttled_after_five_failures() {
    let data = tempfile::tempdir().unwrap();
    let server = server_with_data(data.path()).await;
    let mut alice = Web::user(server.http_addr, "alice").await;
    alice
        .send(json!({"type": "register_account", "password": "correct horse"}))
        .await;
    alice.expect("logged_in").await;
    let mut guesser = Web::connect(server.http_addr).await;
    for _ in 0..5 {
        guesser
            .send(json!({"type": "login", "name": "alice", "password": "wrong"}))
            .await;
        guesser.expect_error("login_failed").await;
    }
    // Now even the right password is refused for a while, and the page is told when
    // to try again.
    guesser
        .send(json!({"type": "login", "name": "alice", "password": "correct horse"}))
        .await;
    let throttled = guesser.expect_error("login_throttled").await;
    assert!(
        throttled.to_string().contains("Too many failed logins"),
        "{throttled}"
    );
    server.stop().await;
}

#[tokio::test]
async fn a_released_name_brings_none_of_its_direct_messages_to_the_next_web_holder() {
    let data = tempfile::tempdir().unwrap();
    let server = server_with_data(data.path()).await;
    let mut ann = Web::user(server.http_addr, "ann").await;
    let mut ben = Web::user(server.http_addr, "ben").await;
    ann.send(json!({"type": "message", "to": "ben", "text": "my bank pin is 1234"}))
        .await;
    ben.expect("message").await;
    ann.expect("message").await;
    // The holder reads the conversation back while connected.
    let mine = ben.history(json!({"with": "ann"})).await;
    assert_eq!(
        page(&mine).into_iter().map(|(_, t)| t).collect::<Vec<_>>(),
        ["my bank pin is 1234"]
    );
    ben.send(json!({"type": "quit"})).await;
    ben.until_closed().await;

    // The next ben, on the web page's protocol, sees nothing of it; ann, who was in
    // it, still does.
    let mut next = Web::user(server.http_addr, "ben").await;
    let theirs = next.history(json!({"with": "ann"})).await;
    assert_eq!(theirs["messages"], json!([]), "{theirs}");
    assert_eq!(theirs["with"], "ann");
    let hers = ann.history(json!({"with": "ben"})).await;
    assert_eq!(
        page(&hers).into_iter().map(|(_, t)| t).collect::<Vec<_>>(),
        ["my bank pin is 1234"]
    );
    drop(next);
    drop(ann);
    server.stop().await;
}

// ---------------------------------------------------------------- reply order

#[tokio::test]
async fn a_history_answer_comes_before_the_reply_to_the_next_request() {
    let data = tempfile::tempdir().unwrap();
    let server = server_with_data(data.path()).await;
    let mut alice = Web::user(server.http_addr, "alice").await;
    for i in 0..10 {
        alice.say("lobby", &format!("line {i}")).await;
    }
    for _ in 0..5 {
        // Both frames in one write, so that the server has the second at once.
        let history = json!({"type": "history", "room": "lobby", "limit": 50});
        alice
            .ws
            .feed(Message::text(history.to_string()))
            .await
            .unwrap();
        alice.send(json!({"type": "ping"})).await;
        let answer = alice.event().await;
        assert_eq!(answer["type"], "history", "{answer}");
        assert_eq!(page(&answer).len(), 10);
        assert_eq!(alice.event().await, json!({"type": "pong"}));
    }
    server.stop().await;
}

#[tokio::test]
async fn login_and_account_answers_come_before_the_reply_to_the_next_request() {
    let data = tempfile::tempdir().unwrap();
    let server = server_with_data(data.path()).await;
    let mut alice = Web::user(server.http_addr, "alice").await;
    let register = json!({"type": "register_account", "password": "correct horse"});
    alice
        .ws
        .feed(Message::text(register.to_string()))
        .await
        .unwrap();
    alice.send(json!({"type": "ping"})).await;
    assert_eq!(alice.event().await["type"], "logged_in");
    assert_eq!(alice.event().await, json!({"type": "pong"}));
    drop(alice);

    // A login before registering: the registration, the login and the default room's
    // join all come before the pong.
    let mut owner = Web::connect(server.http_addr).await;
    owner
        .send(json!({"type": "login", "name": "alice", "password": "correct horse"}))
        .await;
    owner.send(json!({"type": "ping"})).await;
    let mut types = Vec::new();
    loop {
        let event = owner.event().await;
        if event["type"] == "pong" {
            break;
        }
        types.push(event["type"].as_str().unwrap().to_string());
    }
    for wanted in ["registered", "logged_in", "joined", "members"] {
        assert!(types.iter().any(|t| t == wanted), "{wanted}: {types:?}");
    }
    // A failed login answers in order too.
    owner
        .send(json!({"type": "login", "name": "alice", "password": "wrong"}))
        .await;
    owner.send(json!({"type": "ping"})).await;
    assert_eq!(owner.event().await["code"], "login_failed");
    assert_eq!(owner.event().await, json!({"type": "pong"}));
    server.stop().await;
}
