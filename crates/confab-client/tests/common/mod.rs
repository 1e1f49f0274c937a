//! A tiny stand-in for the confab server: it speaks the line protocol to one client and
//! records every line the client sent.

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// How the fake server treats its one client.
#[derive(Debug, Clone, Copy, Default)]
pub struct Behaviour {
    /// Close the connection right after a successful registration.
    pub drop_after_register: bool,
}

pub struct FakeServer {
    /// HOST:PORT to connect to.
    pub addr: String,
    /// Ends with the lines the client sent, once the connection is over.
    pub received: JoinHandle<Vec<String>>,
}

/// Listens on an ephemeral port and serves one client in the background.
pub async fn start(behaviour: Behaviour) -> FakeServer {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("local addr").to_string();
    let received = tokio::spawn(async move {
        let (socket, peer) = listener.accept().await.expect("accept");
        let (read_half, mut write_half) = socket.into_split();
        let mut lines = BufReader::new(read_half).lines();
        let mut received = Vec::new();
        let mut name = String::new();
        let mut send = format!(
            "* Welcome to confab! You are connected from: {peer}\n\
             * Register with #name, then type to chat. /help lists commands.\n"
        );
        loop {
            if !send.is_empty() {
                if write_half.write_all(send.as_bytes()).await.is_err() {
                    return received;
                }
                send.clear();
            }
            let Ok(Some(line)) = lines.next_line().await else {
                return received;
            };
            received.push(line.clone());
            if let Some(wanted) = line.strip_prefix('#') {
                if wanted == "taken" {
                    send = format!("! Name {wanted} is already taken\n");
                    continue;
                }
                name = wanted.to_string();
                send = format!(
                    "* Your user detail saved as : {name}\n* {name} joined lobby\n\
                     * Members of lobby (2): bob, {name}\n* Now talking in lobby\n"
                );
                if behaviour.drop_after_register {
                    let _ = write_half.write_all(send.as_bytes()).await;
                    return received;
                }
            } else if line == "hello" {
                send = format!("[lobby] bob: hi {name}\n");
            } else if line == "/ping" {
                send = "* pong\n".into();
            } else if line == "/quit" || ["q", "quit", "exit", "bye bye"].contains(&line.as_str()) {
                let _ = write_half.write_all(b"* Goodbye\n").await;
                return received;
            }
        }
    });
    FakeServer { addr, received }
}
