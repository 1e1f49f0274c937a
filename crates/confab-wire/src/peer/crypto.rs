//! The key schedule and the AEAD seal for chats with a secret.
//!
//! - The caller turns the passphrase into a 32-byte [`Psk`] with a slow password hash
//!   (confab-peer uses Argon2id), so a captured handshake costs an attacker one such hash
//!   per guess.
//! - Hellos carry an HMAC-SHA256 (truncated to 16 bytes) under `HKDF(psk, "hello")`: a
//!   friend with another secret is told apart from a forger before any text is shown.
//! - Each direction of a session gets its own ChaCha20-Poly1305 key from
//!   `HKDF(salt = both nonces, ikm = psk, info = sender's nonce)`; the AEAD nonce is the
//!   packet number, which never repeats under one key because nonces are fresh per run.

use chacha20poly1305::aead::{AeadInPlace, KeyInit};
use chacha20poly1305::{ChaCha20Poly1305, Key, Tag};
use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

use super::frame::{Nonce, MAC_LEN};

/// Bytes the AEAD adds to each packet body.
pub const TAG_LEN: usize = 16;

/// The pre-shared key both friends derive from their passphrase.
#[derive(Clone)]
pub struct Psk([u8; 32]);

impl Psk {
    pub fn from_bytes(bytes: [u8; 32]) -> Psk {
        Psk(bytes)
    }
}

impl std::fmt::Debug for Psk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Psk(..)")
    }
}

fn hello_hmac(psk: &Psk) -> Hmac<Sha256> {
    let mut key = [0u8; 32];
    Hkdf::<Sha256>::new(None, &psk.0)
        .expand(b"confab-peer/1 hello", &mut key)
        .expect("32 bytes is a valid HKDF-SHA256 output length");
    <Hmac<Sha256> as Mac>::new_from_slice(&key).expect("HMAC takes keys of any length")
}

/// The MAC a hello's signed part carries.
pub fn hello_mac(psk: &Psk, signed: &[u8]) -> [u8; MAC_LEN] {
    let mut mac = hello_hmac(psk);
    mac.update(signed);
    let full = mac.finalize().into_bytes();
    let mut out = [0; MAC_LEN];
    out.copy_from_slice(&full[..MAC_LEN]);
    out
}

/// Checks a hello's MAC in constant time.
pub fn hello_mac_ok(psk: &Psk, signed: &[u8], tag: &[u8; MAC_LEN]) -> bool {
    let mut mac = hello_hmac(psk);
    mac.update(signed);
    mac.verify_truncated_left(tag).is_ok()
}

/// The nonces of a session in a fixed order, so both sides compute the same thing.
fn ordered<'a>(a: &'a Nonce, b: &'a Nonce) -> [&'a Nonce; 2] {
    if a <= b {
        [a, b]
    } else {
        [b, a]
    }
}

/// The tag in every packet header of the session between these two runs.
pub fn session_tag(a: &Nonce, b: &Nonce) -> u64 {
    let [lo, hi] = ordered(a, b);
    let digest = Sha256::new()
        .chain_update(b"confab-peer/1 session")
        .chain_update(lo)
        .chain_update(hi)
        .finalize();
    let mut first = [0; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(first)
}

/// One session's two directional ciphers.
pub struct SessionKeys {
    seal: ChaCha20Poly1305,
    open: ChaCha20Poly1305,
}

impl std::fmt::Debug for SessionKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionKeys(..)")
    }
}

impl SessionKeys {
    pub fn derive(psk: &Psk, ours: &Nonce, theirs: &Nonce) -> SessionKeys {
        let [lo, hi] = ordered(ours, theirs);
        let mut salt = [0u8; 2 * 16];
        salt[..16].copy_from_slice(lo);
        salt[16..].copy_from_slice(hi);
        let hkdf = Hkdf::<Sha256>::new(Some(&salt), &psk.0);
        let key_for = |sender: &Nonce| {
            let mut key = Key::default();
            hkdf.expand_multi_info(&[b"confab-peer/1 data ", sender], &mut key)
                .expect("32 bytes is a valid HKDF-SHA256 output length");
            ChaCha20Poly1305::new(&key)
        };
        SessionKeys {
            seal: key_for(ours),
            open: key_for(theirs),
        }
    }

    /// Encrypts `body` in place and appends the tag; `header` is authenticated too.
    pub fn seal(&self, pn: u64, header: &[u8], body: &mut Vec<u8>) {
        let tag = self
            .seal
            .encrypt_in_place_detached(&aead_nonce(pn), header, body)
            .expect("packet bodies are far below the AEAD's length limit");
        body.extend_from_slice(&tag);
    }

    /// Decrypts a sealed body, or returns `None` if it was not sealed by the friend under
    /// this session's key with exactly this header.
    pub fn open(&self, pn: u64, header: &[u8], sealed: &[u8]) -> Option<Vec<u8>> {
        let split = sealed.len().checked_sub(TAG_LEN)?;
        let (ciphertext, tag) = sealed.split_at(split);
        let mut plain = ciphertext.to_vec();
        self.open
            .decrypt_in_place_detached(&aead_nonce(pn), header, &mut plain, Tag::from_slice(tag))
            .ok()?;
        Some(plain)
    }
}

fn aead_nonce(pn: u64) -> chacha20poly1305::Nonce {
    let mut nonce = chacha20poly1305::Nonce::default();
    nonce[4..].copy_from_slice(&pn.to_be_bytes());
    nonce
}
