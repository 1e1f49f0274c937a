//! `confab join`: the full-duplex terminal client for the line protocol.
//!
//! # Layout
//! - `conn`: connecting, bounded line reading, the send queue and the keepalive's
//!   ping bookkeeping; shared by both modes.
//! - `pipe`: pipe mode, for scripts: stdin lines out, server lines to stdout.
//! - `app`, `input`, `scrollback`: the terminal UI's model, plain structs with no I/O.
//! - `ui`: draws the model with ratatui.
//! - `tui`: the terminal session: raw mode, the event loop, restoring the terminal.
//! - `stdin`: standard input on a thread that cannot hold up the process's exit.
//!
//! # Invariants
//! - No server input can panic the client or make it buffer without limit.
//! - The terminal is restored on every way out of the UI, panics included.

use std::io::IsTerminal as _;
use std::process::ExitCode;

mod app;
mod conn;
mod input;
mod pipe;
mod scrollback;
pub mod stdin;
mod tui;
mod ui;

pub use pipe::{run_pipe, EXIT_NAME_REFUSED};

/// Command-line options of `confab join`.
#[derive(Debug, clap::Args)]
pub struct JoinArgs {
    /// The server to join, as HOST:PORT (for example 127.0.0.1:12345, the default of `confab serve`).
    pub addr: String,
    /// The name to register as.
    #[arg(long, value_name = "NAME")]
    pub name: String,
    /// Read lines from stdin and print the server's lines, without the full-screen UI.
    /// This is the default when stdin or stdout is not a terminal.
    #[arg(long)]
    pub plain: bool,
}

/// Runs the client until the user quits or the connection ends.
///
/// Exit codes: 0 after quitting, 1 when the connection is lost, 2 when the server
/// refuses the name in pipe mode.
pub async fn run(args: JoinArgs) -> anyhow::Result<ExitCode> {
    let interactive = std::io::stdin().is_terminal() && std::io::stdout().is_terminal();
    if args.plain || !interactive {
        let stdin = stdin::ThreadStdin::spawn()?;
        return run_pipe(&args.addr, &args.name, stdin, tokio::io::stdout()).await;
    }
    tui::run(&args.addr, &args.name).await
}
