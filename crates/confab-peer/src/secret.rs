//! Turns the shared passphrase into the protocol's pre-shared key with Argon2id.
//!
//! A slow, memory-hard hash means that an eavesdropper who records a handshake pays one
//! such hash per guessed passphrase. The salt is fixed: both friends must reach the same
//! key before they have exchanged anything, and the per-session salts (the two nonces)
//! enter later, through HKDF in `confab_wire::peer`. The cost is that one precomputed
//! table would serve against every confab chat, so choose a passphrase nobody guesses.

use anyhow::Context as _;
use argon2::{Algorithm, Argon2, Params, Version};
use confab_wire::peer::Psk;

use crate::Secret;

const SALT: &[u8] = b"confab-peer/1 passphrase";

/// OWASP's recommended minimum for Argon2id: 19 MiB, two passes, one lane.
const MEMORY_KIB: u32 = 19 * 1024;
const PASSES: u32 = 2;

/// Derives the key, on a blocking thread because it takes a noticeable moment.
pub(crate) async fn derive(secret: &Secret) -> anyhow::Result<Psk> {
    let passphrase = secret.0.clone();
    if passphrase.is_empty() {
        anyhow::bail!("the secret is empty");
    }
    tokio::task::spawn_blocking(move || derive_now(passphrase.as_bytes()))
        .await
        .context("deriving the key from the secret")?
}

fn derive_now(passphrase: &[u8]) -> anyhow::Result<Psk> {
    let params = Params::new(MEMORY_KIB, PASSES, 1, Some(32))
        .map_err(|e| anyhow::anyhow!("Argon2 parameters: {e}"))?;
    let mut key = [0u8; 32];
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
        .hash_password_into(passphrase, SALT, &mut key)
        .map_err(|e| anyhow::anyhow!("deriving the key from the secret: {e}"))?;
    Ok(Psk::from_bytes(key))
}

#[cfg(test)]
mod tests {
    use super::derive_now;

    #[test]
    fn the_key_is_derived_and_debug_hides_it() {
        let a = derive_now(b"correct horse").unwrap();
        assert_eq!(format!("{a:?}"), "Psk(..)");
    }
}
