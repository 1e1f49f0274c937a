//! Validated user and room names, the case-folded keys that make them unique, and the
//! glob matching of masks over names.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// The longest user name, in bytes (names are ASCII, so also in characters).
pub const MAX_NAME_LEN: usize = 32;
/// The longest room name, in bytes.
pub const MAX_ROOM_LEN: usize = 50;

/// Why a proposed name was refused. The text is shown to users as is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum NameError {
    #[error("a name cannot be empty")]
    Empty,
    #[error("a name is at most {max} characters long")]
    TooLong { max: usize },
    #[error("a name may only contain {allowed}")]
    BadCharacter { allowed: String },
}

/// A user's name as they typed it. Two names that differ only in ASCII case are the same
/// user: compare [`Name::key`]s, never the display form.
///
/// The allowed characters are the tutorial's letters and digits plus the IRC nick
/// specials `_-[]{}|^`, all ASCII, so that no two names can look alike on screen.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Name(Arc<str>);

/// A room's name without any protocol prefix: the line protocol's `lobby` is IRC's `#lobby`.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RoomName(Arc<str>);

/// The case-folded form of a name, used as the key of every map in the core.
///
/// Folding is ASCII lowercase only (IRC `CASEMAPPING=ascii`), because names are ASCII.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Debug, Serialize, Deserialize)]
pub struct Key(Arc<str>);

fn fold(s: &str) -> Key {
    Key(s.to_ascii_lowercase().into())
}

fn validate(s: &str, max: usize, ok: fn(u8) -> bool, allowed: &str) -> Result<(), NameError> {
    if s.is_empty() {
        return Err(NameError::Empty);
    }
    if !s.bytes().all(ok) {
        return Err(NameError::BadCharacter {
            allowed: allowed.to_string(),
        });
    }
    if s.len() > max {
        return Err(NameError::TooLong { max });
    }
    Ok(())
}

fn is_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"_-[]{}|^".contains(&b)
}

fn is_room_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"_-.".contains(&b)
}

impl Name {
    /// Checks `s` against the naming rules.
    pub fn parse(s: &str) -> Result<Name, NameError> {
        validate(
            s,
            MAX_NAME_LEN,
            is_name_byte,
            "letters, digits and _-[]{}|^",
        )?;
        Ok(Name(s.into()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn key(&self) -> Key {
        fold(&self.0)
    }
}

impl RoomName {
    /// Checks `s` against the room naming rules; a leading `#` is not part of the name.
    pub fn parse(s: &str) -> Result<RoomName, NameError> {
        validate(s, MAX_ROOM_LEN, is_room_byte, "letters, digits and _-.")?;
        Ok(RoomName(s.into()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn key(&self) -> Key {
        fold(&self.0)
    }
}

/// Keys hash and compare as their text, so maps keyed by [`Key`] can be searched with a
/// folded `&str` (see [`with_folded`]) without building a key.
impl std::borrow::Borrow<str> for Key {
    fn borrow(&self) -> &str {
        &self.0
    }
}

/// Runs `f` with the folded form of `s`, folded on the stack when it is short (every
/// valid name is), so that looking up a recipient on the message path allocates nothing.
pub fn with_folded<R>(s: &str, f: impl FnOnce(&str) -> R) -> R {
    let mut buf = [0u8; 64];
    if s.len() <= buf.len() {
        let folded = &mut buf[..s.len()];
        folded.copy_from_slice(s.as_bytes());
        folded.make_ascii_lowercase();
        // Lowercasing ASCII bytes keeps UTF-8 valid, so this cannot fail.
        if let Ok(folded) = std::str::from_utf8(folded) {
            return f(folded);
        }
    }
    f(&s.to_ascii_lowercase())
}

/// Whether `subject` matches the glob `mask` (`*` any run, `?` any one byte), ignoring
/// ASCII case: ban masks, WHO masks and IRC's server masks are matched with it, on
/// every front-end. Iterative with one backtrack point, so no mask can make it slow.
pub fn glob_match(mask: &str, subject: &str) -> bool {
    let (m, s) = (mask.as_bytes(), subject.as_bytes());
    let (mut mi, mut si) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while si < s.len() {
        if mi < m.len() && (m[mi] == b'?' || m[mi].eq_ignore_ascii_case(&s[si])) {
            mi += 1;
            si += 1;
        } else if mi < m.len() && m[mi] == b'*' {
            star = Some((mi, si));
            mi += 1;
        } else if let Some((star_m, star_s)) = star {
            mi = star_m + 1;
            si = star_s + 1;
            star = Some((star_m, star_s + 1));
        } else {
            return false;
        }
    }
    m[mi..].iter().all(|&c| c == b'*')
}

impl Key {
    /// The folded key of any string, valid name or not, for lookups.
    pub fn of(s: &str) -> Key {
        fold(s)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

macro_rules! show_as_str {
    ($t:ty) => {
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
        impl fmt::Debug for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(&*self.0, f)
            }
        }
    };
}
show_as_str!(Name);
show_as_str!(RoomName);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_rules() {
        for ok in ["a", "alice", "Bob_42", "[x]{y}|^-", &"n".repeat(32)] {
            assert!(Name::parse(ok).is_ok(), "{ok} should be valid");
        }
        assert_eq!(Name::parse(""), Err(NameError::Empty));
        assert_eq!(
            Name::parse(&"n".repeat(33)),
            Err(NameError::TooLong { max: 32 })
        );
        for bad in ["al ice", "al:ice", "é", "a\u{0}", "a.b", "#a", "@a"] {
            assert!(
                matches!(Name::parse(bad), Err(NameError::BadCharacter { .. })),
                "{bad:?} should be refused"
            );
        }
    }

    #[test]
    fn folding_on_the_stack_matches_keys() {
        use std::collections::HashMap;
        let map = HashMap::from([(Key::of("Alice"), 1)]);
        assert_eq!(with_folded("ALICE", |k| map.get(k).copied()), Some(1));
        assert_eq!(with_folded(&"X".repeat(100), |k| k.len()), 100);
        assert_eq!(with_folded("É", |k| k.to_string()), "É");
    }

    #[test]
    fn keys_ignore_ascii_case() {
        assert_eq!(Name::parse("Alice").unwrap().key(), Key::of("aLICE"));
        assert_ne!(Name::parse("a[").unwrap().key(), Key::of("a{"));
        assert_eq!(RoomName::parse("Lobby").unwrap().key(), Key::of("lobby"));
    }
}
