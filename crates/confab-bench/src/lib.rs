//! `confab bench`: a load generator for confab and other chat servers.

use std::process::ExitCode;

/// Command-line options of `confab bench`.
#[derive(Debug, clap::Args)]
pub struct BenchArgs {}

/// Runs one benchmark workload and prints its report.
pub async fn run(_args: BenchArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("confab bench is being built")
}
