//! Measures `confab peer` reliable mode over loopback: messages per second and one-way
//! latency, with 0% and 10% of datagrams dropped, plain and encrypted.
//!
//! `cargo run --release -p confab-peer --example peer_bench [MESSAGES]`

use confab_peer::bench::{bench, BenchConfig};

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let messages = match std::env::args().nth(1) {
        Some(n) => n.parse()?,
        None => BenchConfig::default().messages,
    };
    for encrypted in [false, true] {
        for loss in [0.0, 0.1] {
            let config = BenchConfig {
                messages,
                loss,
                encrypted,
                ..BenchConfig::default()
            };
            println!("{}", bench(config).await?);
        }
    }
    Ok(())
}
