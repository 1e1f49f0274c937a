//! Placeholder.
use crate::{Link, PeerArgs, Report};
pub(crate) async fn run(_args: PeerArgs, _link: Link) -> anyhow::Result<Report> {
    anyhow::bail!("todo")
}
