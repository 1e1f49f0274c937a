//! `confab peer`: direct 1:1 chat with no server, over TCP or UDP.

use std::process::ExitCode;

/// Command-line options of `confab peer`.
#[derive(Debug, clap::Args)]
pub struct PeerArgs {}

/// Runs one peer chat until it ends.
pub async fn run(_args: PeerArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("confab peer is being built")
}
