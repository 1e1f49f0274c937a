//! Accounts: registering a name with a password, logging in (from every front-end,
//! through the throttle in `crate::logins`), and delivering what arrived while a user
//! was offline.
//!
//! Passwords are hashed with argon2 on the blocking pool, never on the core's lock or
//! the store thread, since one hash takes tens of milliseconds by design. Nothing here
//! logs a password.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use confab_core::{ChatError, Envelope, Event, Key, Message, Name, Source, Target};
use confab_store::{Account, StoredMessage};
use rand_core::OsRng;

use crate::ctx::{Ctx, Later};
use crate::outbox::{Outbox, Outgoing};

/// The longest password accepted, so that hashing cost stays bounded.
const MAX_PASSWORD: usize = 512;

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn tell(outbox: &Outbox, event: Event) {
    outbox.push(Outgoing::Event(Envelope::new(event)));
}

fn hash(password: &str) -> Option<String> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .ok()
        .map(|h| h.to_string())
}

fn verify(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash)
        .map(|parsed| {
            Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok()
        })
        .unwrap_or(false)
}

/// A hash of nothing in particular, checked when an account does not exist so that a
/// login takes as long either way and does not reveal which names are registered.
fn dummy_hash() -> &'static str {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DUMMY.get_or_init(|| hash("confab-dummy-password").unwrap_or_default())
}

/// `/register PASSWORD`: makes the client's current name an account it owns.
pub(crate) fn register(ctx: &Ctx, password: String) {
    let (shared, id, outbox) = (ctx.shared, ctx.id, ctx.outbox());
    let Some(history) = shared.history.clone() else {
        return tell(&outbox, Event::Error(ChatError::NoAccounts));
    };
    let name = {
        let core = shared.lock_core();
        match core.name_of(id) {
            None => return tell(&outbox, Event::Error(ChatError::NotRegistered)),
            Some(name) if core.is_account(name.as_str()) => {
                return tell(
                    &outbox,
                    Event::Error(ChatError::AccountExists(name.to_string())),
                )
            }
            Some(name) => name.clone(),
        }
    };
    if password.is_empty() || password.len() > MAX_PASSWORD {
        return tell(&outbox, Event::Error(ChatError::LoginFailed));
    }
    let shared = shared.clone();
    tokio::spawn(async move {
        let hashed = tokio::task::spawn_blocking(move || hash(&password)).await;
        let Ok(Some(password_hash)) = hashed else {
            return tell(&outbox, Event::Error(ChatError::Busy));
        };
        let account = Account {
            name: name.to_string(),
            password_hash,
            created_ms: now_ms(),
        };
        let busy = outbox.clone();
        let queued =
            history.run(
                move |store| match store.create_account(name.key().as_str(), &account) {
                    Ok(true) => {
                        tracing::info!(account = %name, "account registered");
                        let mut core = shared.lock_core();
                        core.add_account(name.as_str());
                        if let Err(e) = core.logged_in(id, name.as_str(), false, now_ms()) {
                            tell(&outbox, Event::Error(e));
                        }
                    }
                    Ok(false) => tell(
                        &outbox,
                        Event::Error(ChatError::AccountExists(name.to_string())),
                    ),
                    Err(e) => {
                        tracing::error!("cannot store an account: {e}");
                        tell(&outbox, Event::Error(ChatError::Busy));
                    }
                },
            );
        if !queued {
            tell(&busy, Event::Error(ChatError::Busy));
        }
    });
}

/// Logs the client into account `name`. On success the core renames it to the
/// account's name (or registers it under that name, when `register` and it has none
/// yet) and everything stored for it while it was offline is delivered.
pub(crate) fn login(ctx: &Ctx, ip: IpAddr, name: &str, password: String, register: bool) {
    let (shared, id, outbox) = (ctx.shared, ctx.id, ctx.outbox());
    let Some(history) = shared.history.clone() else {
        return tell(&outbox, Event::Error(ChatError::NoAccounts));
    };
    let key = Key::of(name).as_str().to_string();
    let throttle_keys = vec![format!("account:{key}"), format!("ip:{ip}")];
    if let Err(seconds) = shared.logins.check(&throttle_keys) {
        return tell(&outbox, Event::Error(ChatError::LoginThrottled(seconds)));
    }
    if password.len() > MAX_PASSWORD {
        return tell(&outbox, Event::Error(ChatError::LoginFailed));
    }
    let shared = shared.clone();
    let runtime = tokio::runtime::Handle::current();
    let queued = history.clone().run(move |store| {
        let account = match store.account(&key) {
            Ok(account) => account,
            Err(e) => {
                tracing::error!("cannot read an account: {e}");
                return tell(&outbox, Event::Error(ChatError::Busy));
            }
        };
        runtime.spawn(async move {
            let stored_hash = account.as_ref().map(|a| a.password_hash.clone());
            let checked = tokio::task::spawn_blocking(move || {
                let ok = verify(&password, stored_hash.as_deref().unwrap_or(dummy_hash()));
                ok && stored_hash.is_some()
            })
            .await
            .unwrap_or(false);
            let Some(account) = account.filter(|_| checked) else {
                shared.logins.failed(&throttle_keys);
                tracing::warn!(account = %key, %ip, "failed login");
                return tell(&outbox, Event::Error(ChatError::LoginFailed));
            };
            shared.logins.succeeded(&throttle_keys[0]);
            let result = {
                let mut core = shared.lock_core();
                core.logged_in(id, &account.name, register, now_ms())
                    .map(|()| core.name_of(id).is_some())
            };
            match result {
                Err(e) => tell(&outbox, Event::Error(e)),
                Ok(registered) => {
                    tracing::info!(account = %account.name, %ip, "logged in");
                    // A client still registering (IRC SASL) gets its stored messages
                    // once it has a name; its front-end asks then.
                    if registered {
                        deliver_offline(&history, outbox, key);
                    }
                }
            }
        });
    });
    if !queued {
        // The outbox moved into the job; a full queue means the job never runs, and
        // the client hears nothing but can simply try again.
        tracing::warn!("login dropped: the store is overloaded");
    }
}

/// Renames the client to a guest name after the login grace period, unless it logged
/// in to the registered name it uses by then.
pub(crate) fn start_grace(ctx: &Ctx) {
    let (shared, id) = (ctx.shared.clone(), ctx.id);
    tokio::spawn(async move {
        tokio::time::sleep(shared.limits.login_grace).await;
        shared.lock_core().enforce_login(id);
    });
}

/// Sends what was stored for account `key` while it was offline, with original times.
pub(crate) fn deliver_offline(history: &crate::history::History, outbox: Later, key: String) {
    history.run(move |store| match store.take_offline(&key) {
        Ok(messages) => {
            for m in messages {
                if let Some(event) = offline_event(&m) {
                    tell(&outbox, event);
                }
            }
        }
        Err(e) => tracing::error!("cannot read offline messages: {e}"),
    });
}

/// A stored direct message as the live event it was.
fn offline_event(m: &StoredMessage) -> Option<Event> {
    let (nick, rest) = m.sender_mask.split_once('!')?;
    let (user, host) = rest.split_once('@')?;
    let from = Arc::new(Source {
        name: Name::parse(nick).ok()?,
        user: user.into(),
        host: host.into(),
        realname: nick.into(),
        account: None,
        // Only shown: a stored message's sender is no live session.
        session: 0,
        bot: false,
    });
    Some(Event::Message(Message {
        id: m.id,
        time_ms: m.time_ms,
        from,
        to: Target::User(Name::parse(&m.target).ok()?),
        kind: m.kind,
        text: m.text.as_str().into(),
        tags: None,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_verify_and_are_salted() {
        let a = hash("correct horse").unwrap();
        let b = hash("correct horse").unwrap();
        assert_ne!(a, b);
        assert!(a.starts_with("$argon2"));
        assert!(verify("correct horse", &a));
        assert!(!verify("wrong", &a));
        assert!(!verify("x", "not a hash"));
    }
}
