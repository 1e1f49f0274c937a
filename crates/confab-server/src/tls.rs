//! TLS for every front-end: the certificate the server presents, the TLS listeners'
//! settings, and the rustls configurations built from them.
//!
//! # Layout
//! - this file: [`TlsConfig`], [`TlsIdentity`] (a certificate and key loaded from PEM
//!   files or generated with rcgen) and [`TlsError`], which names the file at fault.
//! - `transport`: a `rustls::ServerConnection` driven over a non-blocking `TcpStream`,
//!   the transport `connection::run` uses for the line protocol and IRC over TLS.
//!
//! The web front-end uses tokio-rustls instead (see `web.rs`), because hyper wants an
//! `AsyncRead + AsyncWrite` stream, which tokio-rustls provides as it is.
//!
//! rustls is built with the `ring` provider, named explicitly here rather than taken
//! from a process-wide default, so that another crate enabling a second provider cannot
//! make the server's choice ambiguous. Only TLS 1.2 and 1.3 are offered (rustls's safe
//! defaults).

mod transport;

use std::fmt;
use std::io::{self, Read as _};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::ServerConfig;

pub(crate) use transport::TlsTransport;

/// Where `confab serve` speaks the line protocol over TLS by default: the plain port
/// plus one.
pub const DEFAULT_LINE_TLS_ADDR: &str = "127.0.0.1:12346";
/// IRC over TLS's registered port.
pub const DEFAULT_IRC_TLS_ADDR: &str = "127.0.0.1:6697";
/// Where `confab serve` serves HTTPS and WSS by default.
pub const DEFAULT_HTTPS_ADDR: &str = "127.0.0.1:8443";
/// Time a client has to complete the TLS handshake before it is dropped.
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The largest certificate or key file read; real ones are a few kilobytes, and a
/// mistaken path (a disk image, say) must not be read into memory whole.
const MAX_PEM_FILE: u64 = 1 << 20;

/// The names a generated certificate is valid for: what a local client connects to.
const SELF_SIGNED_NAMES: [&str; 3] = ["localhost", "127.0.0.1", "::1"];

/// The TLS listeners and the certificate they present.
#[derive(Debug, Clone)]
pub struct TlsConfig {
    /// The certificate chain and key every TLS listener presents.
    pub identity: TlsIdentity,
    /// Addresses that speak the line protocol over TLS.
    pub line_listen: Vec<SocketAddr>,
    /// Addresses that speak IRC over TLS.
    pub irc_listen: Vec<SocketAddr>,
    /// Addresses that serve the web page and its WebSocket over HTTPS.
    pub https_listen: Vec<SocketAddr>,
    /// Whether to leave out the plain (unencrypted) listeners of [`crate::Config`].
    pub tls_only: bool,
    /// Time a client has to complete the TLS handshake before it is dropped, so that
    /// connections that never finish one cannot hold connection slots for long.
    pub handshake_timeout: Duration,
}

impl TlsConfig {
    /// TLS on the default addresses, beside the plain listeners.
    pub fn new(identity: TlsIdentity) -> TlsConfig {
        let addr = |a: &str| a.parse().expect("valid default address");
        TlsConfig {
            identity,
            line_listen: vec![addr(DEFAULT_LINE_TLS_ADDR)],
            irc_listen: vec![addr(DEFAULT_IRC_TLS_ADDR)],
            https_listen: vec![addr(DEFAULT_HTTPS_ADDR)],
            tls_only: false,
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
        }
    }
}

/// A certificate chain and its private key, ready to serve, checked to belong
/// together. Cheap to clone.
#[derive(Clone)]
pub struct TlsIdentity {
    inner: Arc<Identity>,
}

struct Identity {
    /// For the line protocol and IRC: no ALPN, since neither has a registered name.
    streams: Arc<ServerConfig>,
    /// For HTTPS: ALPN `http/1.1`, the only HTTP version the web front-end speaks.
    https: Arc<ServerConfig>,
    /// The end-entity certificate, for its fingerprint and for clients to trust.
    leaf: CertificateDer<'static>,
    /// The PEM text of a generated certificate; files need none, the operator has them.
    generated_pem: Option<String>,
}

/// Why TLS could not be set up. Every variant that comes from a file names it; the
/// underlying cause, where there is one, is the error's `source`.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read the TLS {what} file {}", .path.display())]
    Read {
        what: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error("the TLS {what} file {} is larger than {MAX_PEM_FILE} bytes", .path.display())]
    TooLarge { what: &'static str, path: PathBuf },
    #[error("the TLS {what} file {} holds no usable PEM {what}: {detail}", .path.display())]
    Pem {
        what: &'static str,
        path: PathBuf,
        detail: String,
    },
    #[error(
        "the TLS certificate {} and key {} cannot be used together",
        .cert.display(),
        .key.display()
    )]
    Rejected {
        cert: PathBuf,
        key: PathBuf,
        // Boxed to keep the error small: two Windows paths and a rustls error inline
        // make every `Result` of this module over 128 bytes.
        source: Box<rustls::Error>,
    },
    #[error("cannot generate a self-signed TLS certificate")]
    Generate(#[from] rcgen::Error),
    #[error("cannot set up TLS")]
    Setup(#[source] rustls::Error),
}

impl TlsIdentity {
    /// Loads a PEM certificate chain (end-entity certificate first, as web servers
    /// expect) and a PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub fn from_pem_files(cert: &Path, key: &Path) -> Result<TlsIdentity, TlsError> {
        let pem_error = |what, path: &Path, detail: String| TlsError::Pem {
            what,
            path: path.to_path_buf(),
            detail,
        };
        let cert_pem = read_bounded("certificate", cert)?;
        let chain = CertificateDer::pem_slice_iter(&cert_pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| pem_error("certificate", cert, e.to_string()))?;
        if chain.is_empty() {
            return Err(pem_error(
                "certificate",
                cert,
                "no -----BEGIN CERTIFICATE----- section".into(),
            ));
        }
        let key_pem = read_bounded("key", key)?;
        let private = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| match e {
            rustls::pki_types::pem::Error::NoItemsFound => pem_error(
                "key",
                key,
                "no -----BEGIN PRIVATE KEY----- (or RSA/EC PRIVATE KEY) section".into(),
            ),
            e => pem_error("key", key, e.to_string()),
        })?;
        Self::build(chain, private, None).map_err(|source| TlsError::Rejected {
            cert: cert.to_path_buf(),
            key: key.to_path_buf(),
            source: Box::new(source),
        })
    }

    /// Generates a fresh self-signed certificate for `localhost`, `127.0.0.1` and `::1`,
    /// for local testing: clients must be told to trust it (or not to verify).
    pub fn self_signed() -> Result<TlsIdentity, TlsError> {
        let names: Vec<String> = SELF_SIGNED_NAMES.iter().map(|s| s.to_string()).collect();
        let generated = rcgen::generate_simple_self_signed(names)?;
        let pem = generated.cert.pem();
        let chain = vec![generated.cert.der().clone()];
        let key = PrivateKeyDer::from(generated.signing_key);
        Self::build(chain, key, Some(pem)).map_err(TlsError::Setup)
    }

    fn build(
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
        generated_pem: Option<String>,
    ) -> Result<TlsIdentity, rustls::Error> {
        let Some(leaf) = chain.first().cloned() else {
            return Err(rustls::Error::NoCertificatesPresented);
        };
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        // rustls checks here that the key parses and matches the certificate's public
        // key, so a wrong pair fails at startup rather than at the first handshake.
        let streams = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(chain, key)?;
        let mut https = streams.clone();
        https.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(TlsIdentity {
            inner: Arc::new(Identity {
                streams: Arc::new(streams),
                https: Arc::new(https),
                leaf,
                generated_pem,
            }),
        })
    }

    /// The end-entity certificate in DER, for a client to trust.
    pub fn certificate_der(&self) -> &[u8] {
        &self.inner.leaf
    }

    /// The PEM text of a certificate made by [`TlsIdentity::self_signed`], so that it
    /// can be written where clients find it; `None` for certificates from files.
    pub fn generated_pem(&self) -> Option<&str> {
        self.inner.generated_pem.as_deref()
    }

    /// The SHA-256 fingerprint of the end-entity certificate, as `openssl x509
    /// -fingerprint -sha256` prints it (`AB:CD:...`), for checking by eye.
    pub fn fingerprint(&self) -> String {
        let digest = ring::digest::digest(&ring::digest::SHA256, &self.inner.leaf);
        let hex: Vec<String> = digest.as_ref().iter().map(|b| format!("{b:02X}")).collect();
        hex.join(":")
    }

    /// The rustls configuration for the line protocol and IRC.
    pub(crate) fn stream_config(&self) -> Arc<ServerConfig> {
        self.inner.streams.clone()
    }

    /// The rustls configuration for HTTPS.
    pub(crate) fn https_config(&self) -> Arc<ServerConfig> {
        self.inner.https.clone()
    }
}

impl fmt::Debug for TlsIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsIdentity")
            .field("sha256", &self.fingerprint())
            .field("self_signed", &self.inner.generated_pem.is_some())
            .finish()
    }
}

/// Reads a whole PEM file of at most [`MAX_PEM_FILE`] bytes.
fn read_bounded(what: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    let read_error = |source| TlsError::Read {
        what,
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::File::open(path).map_err(read_error)?;
    let mut bytes = Vec::new();
    file.take(MAX_PEM_FILE + 1)
        .read_to_end(&mut bytes)
        .map_err(read_error)?;
    if bytes.len() as u64 > MAX_PEM_FILE {
        return Err(TlsError::TooLarge {
            what,
            path: path.to_path_buf(),
        });
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A scratch file under the system's temporary directory, removed when dropped.
    struct Scratch(PathBuf);

    impl Scratch {
        fn new(name: &str, contents: &[u8]) -> Scratch {
            let path =
                std::env::temp_dir().join(format!("confab-tls-unit-{}-{name}", std::process::id()));
            std::fs::write(&path, contents).unwrap();
            Scratch(path)
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    fn key_pem() -> String {
        rcgen::KeyPair::generate().unwrap().serialize_pem()
    }

    /// Loading `cert` and `key` fails, and the message names `culprit`.
    fn check_fails(cert: &Path, key: &Path, culprit: &Path) {
        let error = TlsIdentity::from_pem_files(cert, key)
            .expect_err("a bad pair must be refused")
            .to_string();
        assert!(
            error.contains(&culprit.display().to_string()),
            "{error:?} names {culprit:?}"
        );
    }

    #[test]
    fn a_generated_certificate_loads_back_from_files() {
        let generated = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        let cert = Scratch::new("good-cert.pem", generated.cert.pem().as_bytes());
        let key = Scratch::new(
            "good-key.pem",
            generated.signing_key.serialize_pem().as_bytes(),
        );
        let identity = TlsIdentity::from_pem_files(&cert.0, &key.0).unwrap();
        assert_eq!(identity.certificate_der(), &generated.cert.der()[..]);
        assert!(identity.generated_pem().is_none());
        assert_eq!(identity.fingerprint().len(), 32 * 3 - 1);
    }

    #[test]
    fn bad_files_are_named() {
        let generated = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        let cert = Scratch::new("cert.pem", generated.cert.pem().as_bytes());
        let key = Scratch::new("key.pem", generated.signing_key.serialize_pem().as_bytes());
        let other_key = Scratch::new("other-key.pem", key_pem().as_bytes());
        let garbage = Scratch::new("garbage.pem", b"not a certificate\n");
        let broken = Scratch::new("broken.pem", b"-----BEGIN CERTIFICATE-----\nAAAA\n");
        let missing = std::env::temp_dir().join("confab-tls-unit-does-not-exist.pem");

        check_fails(&missing, &key.0, &missing);
        check_fails(&cert.0, &missing, &missing);
        check_fails(&garbage.0, &key.0, &garbage.0);
        check_fails(&broken.0, &key.0, &broken.0);
        check_fails(&cert.0, &garbage.0, &garbage.0);
        // The key is a fine key, but not the certificate's: both files are named.
        check_fails(&cert.0, &other_key.0, &other_key.0);
        check_fails(&cert.0, &other_key.0, &cert.0);
        // Swapped arguments: the key file has no certificate in it.
        check_fails(&key.0, &cert.0, &key.0);
    }

    #[test]
    fn self_signed_certificates_are_fresh_and_offer_http_1_1() {
        let one = TlsIdentity::self_signed().unwrap();
        let two = TlsIdentity::self_signed().unwrap();
        assert_ne!(one.fingerprint(), two.fingerprint());
        assert!(one
            .generated_pem()
            .unwrap()
            .starts_with("-----BEGIN CERTIFICATE-----"));
        assert_eq!(
            one.https_config().alpn_protocols,
            vec![b"http/1.1".to_vec()]
        );
        assert!(one.stream_config().alpn_protocols.is_empty());
    }
}
