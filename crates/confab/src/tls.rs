//! `confab serve`'s TLS flags, and how they become the server's [`TlsConfig`].

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context as _;
use confab_server::tls::{
    DEFAULT_HANDSHAKE_TIMEOUT, DEFAULT_HTTPS_ADDR, DEFAULT_IRC_TLS_ADDR, DEFAULT_LINE_TLS_ADDR,
};
use confab_server::{TlsConfig, TlsIdentity};

/// TLS for every front-end. A certificate (`--tls-cert` and `--tls-key`, or
/// `--tls-self-signed`) adds TLS listeners beside the plain ones; without one nothing
/// changes.
#[derive(Debug, clap::Args)]
#[command(next_help_heading = "TLS")]
pub struct TlsArgs {
    /// PEM certificate chain, server certificate first; with --tls-key, turns on the
    /// TLS listeners (line protocol, IRC, HTTPS and WSS).
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert (PKCS#8, PKCS#1 or SEC1).
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Make a throwaway self-signed certificate for localhost, 127.0.0.1 and ::1, for
    /// local testing; its SHA-256 fingerprint is logged at startup.
    #[arg(long, conflicts_with_all = ["tls_cert", "tls_key"])]
    tls_self_signed: bool,
    /// Write the --tls-self-signed certificate to FILE (PEM), for clients to trust.
    #[arg(long, value_name = "FILE", requires = "tls_self_signed")]
    tls_self_signed_out: Option<PathBuf>,
    /// Address for the line protocol over TLS; repeat for several.
    #[arg(long = "tls-listen", value_name = "ADDR", value_parser = crate::parse_listen_addr, default_value = DEFAULT_LINE_TLS_ADDR)]
    tls_listen: Vec<SocketAddr>,
    /// Address for IRC over TLS; repeat for several.
    #[arg(long = "irc-tls-listen", value_name = "ADDR", value_parser = crate::parse_listen_addr, default_value = DEFAULT_IRC_TLS_ADDR)]
    irc_tls_listen: Vec<SocketAddr>,
    /// Address for the web page and its WebSocket over HTTPS; repeat for several.
    #[arg(long = "https-listen", value_name = "ADDR", value_parser = crate::parse_listen_addr, default_value = DEFAULT_HTTPS_ADDR)]
    https_listen: Vec<SocketAddr>,
    /// Serve over TLS only: leave out the plain listeners.
    #[arg(long)]
    tls_only: bool,
    /// Seconds a client has to complete the TLS handshake.
    #[arg(long, value_name = "SECS", default_value_t = DEFAULT_HANDSHAKE_TIMEOUT.as_secs())]
    tls_handshake_timeout: u64,
}

impl TlsArgs {
    /// The TLS configuration, or `None` when no certificate was asked for. Loads or
    /// makes the certificate now, so that a bad file stops the server at startup with
    /// its name in the message.
    pub fn config(self) -> anyhow::Result<Option<TlsConfig>> {
        let identity = match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => {
                let identity = TlsIdentity::from_pem_files(cert, key)?;
                tracing::info!(sha256 = %identity.fingerprint(), "TLS certificate loaded");
                identity
            }
            _ if self.tls_self_signed => self_signed(self.tls_self_signed_out.as_ref())?,
            _ if self.tls_only => anyhow::bail!(
                "--tls-only needs a certificate: --tls-cert and --tls-key, or --tls-self-signed"
            ),
            _ => return Ok(None),
        };
        Ok(Some(TlsConfig {
            identity,
            line_listen: self.tls_listen,
            irc_listen: self.irc_tls_listen,
            https_listen: self.https_listen,
            tls_only: self.tls_only,
            handshake_timeout: confab_server::seconds(self.tls_handshake_timeout.max(1)),
        }))
    }
}

/// Makes the self-signed certificate, writes it to `out` if asked, and says how to
/// recognise it, since no client trusts it on its own.
fn self_signed(out: Option<&PathBuf>) -> anyhow::Result<TlsIdentity> {
    let identity = TlsIdentity::self_signed()?;
    if let (Some(out), Some(pem)) = (out, identity.generated_pem()) {
        std::fs::write(out, pem).with_context(|| {
            format!(
                "writing the self-signed TLS certificate to {}",
                out.display()
            )
        })?;
        tracing::info!(file = %out.display(), "self-signed TLS certificate written");
    }
    tracing::warn!(
        sha256 = %identity.fingerprint(),
        "TLS with a self-signed certificate, for testing: clients must be told to trust it"
    );
    Ok(identity)
}
