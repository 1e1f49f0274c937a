//! Helpers for the workload tests: parsing a `confab bench` command line, a real confab
//! server on port 0, and a small fake IRC server that routes just enough of IRC for the
//! generator, standing in for other servers' IRC and answering the generator's PONGs.

#![allow(dead_code)]

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clap::Parser;
use confab_bench::{BenchArgs, Workload};
use confab_server::{Config, Frontend, Limits, Server};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    bench: BenchArgs,
}

/// Parses the words after `confab bench`.
pub fn workload(args: &str) -> Workload {
    let words = std::iter::once("bench").chain(args.split_whitespace());
    match Cli::try_parse_from(words) {
        Ok(cli) => cli.bench.workload,
        Err(e) => panic!("bad test command line {args:?}: {e}"),
    }
}

/// A confab server on free loopback ports (line protocol and IRC, no HTTP), stopped by
/// [`TestServer::stop`].
pub struct TestServer {
    pub addr: SocketAddr,
    pub irc_addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl TestServer {
    pub async fn start() -> TestServer {
        // A load generator is many clients from one address, sending as fast as it can:
        // the per-address and flood limits are off, as `confab serve` flags turn them
        // off for benchmarks.
        TestServer::start_with(Limits {
            max_connections_per_ip: 0,
            connection_rate_per_ip: 0,
            flood_rate: 0,
            shutdown_grace: Duration::from_millis(500),
            ..Limits::default()
        })
        .await
    }

    /// A server with the given limits, for tests that need flood control on.
    pub async fn start_with(limits: Limits) -> TestServer {
        let config = Config {
            line_listen: vec!["127.0.0.1:0".parse().unwrap()],
            irc_listen: vec!["127.0.0.1:0".parse().unwrap()],
            http_listen: Vec::new(),
            limits,
            ..Config::default()
        };
        let server = Server::bind(config).await.expect("bind");
        let addr = server.line_addrs()[0];
        let irc_addr = server.addrs(Frontend::Irc)[0];
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(server.run(async {
            let _ = stopped.await;
        }));
        TestServer {
            addr,
            irc_addr,
            stop: Some(stop),
            task,
        }
    }

    pub async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        tokio::time::timeout(Duration::from_secs(15), self.task)
            .await
            .expect("server stops in time")
            .unwrap();
    }
}

/// Just enough IRC: NICK/USER with 001 (and a PING the client must answer), JOIN with
/// 366, PRIVMSG to channels and nicks, PING and QUIT. Lines to a client go through a
/// bounded queue and its own writer task.
pub struct FakeIrc {
    pub addr: SocketAddr,
    /// PONGs received in answer to the server's own PINGs.
    pub pongs: Arc<Mutex<u64>>,
    task: JoinHandle<()>,
}

#[derive(Default)]
struct State {
    clients: HashMap<String, mpsc::Sender<String>>,
    channels: HashMap<String, HashSet<String>>,
}

impl FakeIrc {
    pub async fn start() -> FakeIrc {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(Mutex::new(State::default()));
        let pongs = Arc::new(Mutex::new(0));
        let task = tokio::spawn({
            let pongs = pongs.clone();
            async move {
                while let Ok((stream, _)) = listener.accept().await {
                    tokio::spawn(session(stream, state.clone(), pongs.clone()));
                }
            }
        });
        FakeIrc { addr, pongs, task }
    }
}

impl Drop for FakeIrc {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn session(stream: TcpStream, state: Arc<Mutex<State>>, pongs: Arc<Mutex<u64>>) {
    let (read, mut write) = stream.into_split();
    let (tx, mut rx) = mpsc::channel::<String>(1 << 16);
    let writer = tokio::spawn(async move {
        while let Some(line) = rx.recv().await {
            if write.write_all(line.as_bytes()).await.is_err() {
                break;
            }
        }
    });
    let mut lines = BufReader::new(read).lines();
    let mut nick = None::<String>;
    while let Ok(Some(line)) = lines.next_line().await {
        let (command, rest) = line.split_once(' ').unwrap_or((&line, ""));
        let mut deliveries: Vec<(mpsc::Sender<String>, String)> = Vec::new();
        match command {
            "NICK" => {
                let wanted = rest.to_string();
                let mut state = state.lock().unwrap();
                if state.clients.contains_key(&wanted) {
                    deliveries.push((
                        tx.clone(),
                        format!(":fake 433 * {wanted} :Nickname is already in use\r\n"),
                    ));
                } else {
                    state.clients.insert(wanted.clone(), tx.clone());
                    nick = Some(wanted);
                }
            }
            "USER" => {
                if let Some(nick) = &nick {
                    let welcome = format!(":fake 001 {nick} :Welcome\r\n:fake 376 {nick} :End of MOTD\r\nPING :fake\r\n");
                    deliveries.push((tx.clone(), welcome));
                }
            }
            "PONG" => *pongs.lock().unwrap() += 1,
            "PING" => deliveries.push((tx.clone(), format!(":fake PONG fake {rest}\r\n"))),
            "JOIN" => {
                let Some(nick) = &nick else { continue };
                let channel = rest.to_ascii_lowercase();
                let mut state = state.lock().unwrap();
                let members = state.channels.entry(channel.clone()).or_default();
                members.insert(nick.clone());
                let members: Vec<String> = members.iter().cloned().collect();
                for member in &members {
                    if let Some(to) = state.clients.get(member) {
                        deliveries.push((
                            to.clone(),
                            format!(":{nick}!{nick}@127.0.0.1 JOIN {channel}\r\n"),
                        ));
                    }
                }
                deliveries.push((
                    tx.clone(),
                    format!(
                        ":fake 353 {nick} = {channel} :{}\r\n:fake 366 {nick} {channel} :End of /NAMES list.\r\n",
                        members.join(" ")
                    ),
                ));
            }
            "PRIVMSG" => {
                let Some(nick) = &nick else { continue };
                let Some((target, _)) = rest.split_once(' ') else {
                    continue;
                };
                let out = format!(":{nick}!{nick}@127.0.0.1 PRIVMSG {rest}\r\n");
                let state = state.lock().unwrap();
                let recipients: Vec<String> = match state.channels.get(&target.to_ascii_lowercase())
                {
                    Some(members) => members.iter().filter(|m| *m != nick).cloned().collect(),
                    None => vec![target.to_string()],
                };
                for recipient in recipients {
                    match state.clients.get(&recipient) {
                        Some(to) => deliveries.push((to.clone(), out.clone())),
                        None => deliveries.push((
                            tx.clone(),
                            format!(":fake 401 {nick} {recipient} :No such nick\r\n"),
                        )),
                    }
                }
            }
            "QUIT" => {
                let _ = tx.send("ERROR :Closing link\r\n".into()).await;
                break;
            }
            _ => {}
        }
        for (to, line) in deliveries {
            let _ = to.send(line).await;
        }
    }
    if let Some(nick) = nick {
        let mut state = state.lock().unwrap();
        state.clients.remove(&nick);
        for members in state.channels.values_mut() {
            members.remove(&nick);
        }
    }
    drop(tx);
    let _ = writer.await;
}
