//! A throwaway PostgreSQL server for tests: `initdb` and `pg_ctl` in a temporary
//! directory, on a free loopback port, as the unprivileged `postgres` user when the
//! tests run as root. Shared by the store's tests and the cluster tests of `confab`
//! (which include this file by path).
#![allow(dead_code)]

use std::net::TcpListener;
use std::os::unix::fs::MetadataExt as _;
use std::path::PathBuf;
use std::process::{Command, Stdio};

/// A PostgreSQL server of our own, stopped (immediately) when dropped.
pub struct TestPostgres {
    /// The directory holding the cluster, its socket and its log; removed on drop.
    dir: tempfile::TempDir,
    /// Where `initdb` and `pg_ctl` are.
    bin: PathBuf,
    /// Whether commands run as the `postgres` user (because we are root).
    as_postgres: bool,
    pub port: u16,
}

/// The directory of the newest PostgreSQL server binaries: Debian's
/// `/usr/lib/postgresql/VERSION/bin`, or else wherever `pg_ctl` is on the PATH.
pub fn postgres_bin() -> PathBuf {
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
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port()
}

impl TestPostgres {
    pub fn start() -> TestPostgres {
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

    pub fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn log(&self) -> PathBuf {
        self.dir.path().join("log")
    }

    /// A command running one of the server binaries, as `postgres` when we are root.
    pub fn command(&self, program: &str) -> Command {
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
    pub fn url(&self, name: &str) -> String {
        format!("postgres://confab:secret-pw@127.0.0.1:{}/{name}", self.port)
    }

    /// Creates an empty database and returns its URL.
    pub fn database(&self, name: &str) -> String {
        let mut client = postgres::Client::connect(&self.url("postgres"), postgres::NoTls)
            .expect("connect to the maintenance database");
        client
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .expect("create a database");
        self.url(name)
    }

    pub fn pg_ctl(&self, action: &str) {
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
pub fn run(command: &mut Command) {
    let output = command.output().expect("the command runs");
    assert!(
        output.status.success(),
        "{command:?} failed:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}
