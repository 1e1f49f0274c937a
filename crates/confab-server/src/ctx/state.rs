//! What a front-end may read or change of the chat's state through its [`Ctx`], each
//! a named method that locks the core for one short call, so that no front-end holds
//! the core's lock itself. Commands with replies go through [`Ctx::command`] instead.

use std::sync::Arc;

use confab_core::{Key, Lusers, Name, Source};

use super::Ctx;

/// Who asks for direct history, as one look at the core: the client's name, and
/// whether it may read that name's direct conversations.
pub(crate) struct Reader {
    pub name: Name,
    /// The client is logged in to the account of its name, or the name has none.
    pub owns_name: bool,
}

impl Ctx<'_> {
    /// Whether someone is registered under `name` (ignoring case).
    pub fn is_online(&self, name: &str) -> bool {
        self.shared.lock_core().is_online(name)
    }

    /// Whether the room is secret (IRC's `+s`).
    pub fn is_secret(&self, room: &str) -> bool {
        self.shared.lock_core().is_secret(room)
    }

    /// The user and host counts, from one look so that they agree.
    pub fn lusers(&self) -> Lusers {
        self.shared.lock_core().lusers()
    }

    /// This client's name and prefix, once it has registered.
    pub fn source(&self) -> Option<Arc<Source>> {
        self.shared.lock_core().source_of(self.id)
    }

    /// Whether this client has registered a name.
    pub fn is_registered(&self) -> bool {
        self.shared.lock_core().name_of(self.id).is_some()
    }

    /// Whether this client is marked as a bot.
    pub fn is_bot(&self) -> bool {
        self.shared
            .lock_core()
            .source_of(self.id)
            .is_some_and(|s| s.bot)
    }

    /// Whether this client gets its own messages back.
    pub fn set_echo(&self, on: bool) {
        self.shared.lock_core().set_echo(self.id, on);
    }

    /// Hides this client from lists of users (IRC's `+i`), or shows it.
    pub fn set_invisible(&self, on: bool) {
        self.shared.lock_core().set_invisible(self.id, on);
    }

    /// Makes this client an operator, or no longer one.
    pub fn set_oper(&self, on: bool) {
        self.shared.lock_core().set_oper(self.id, on);
    }

    /// Marks this client as a bot, or no longer one; returns whether that changed
    /// anything. One look at the core, so the answer is the change made.
    pub fn set_bot(&self, on: bool) -> bool {
        let mut core = self.shared.lock_core();
        let was = core.source_of(self.id).is_some_and(|s| s.bot);
        if was != on {
            core.set_bot(self.id, on);
        }
        was != on
    }

    /// The user name and real name this client gave before it registers.
    pub fn set_identity(&self, user: &str, realname: &str) {
        self.shared
            .lock_core()
            .set_identity(self.id, user, realname);
    }

    /// This client's name (empty before it registers) and every party it speaks for,
    /// from one look at the core so that they belong together.
    pub fn name_and_parties(&self) -> (String, Vec<String>) {
        let core = self.shared.lock_core();
        let me = core
            .name_of(self.id)
            .map(|n| n.to_string())
            .unwrap_or_default();
        (me, core.parties_of(self.id))
    }

    /// The name a party goes by now, for work on another thread (the store's) that
    /// names the other sides of direct conversations; each call locks the core once.
    pub fn party_names(&self) -> impl Fn(&str) -> Option<String> + Send + 'static {
        let shared = self.shared.clone();
        move |party| shared.name_of_party(party)
    }

    /// Who asks for history, or `None` before the client registers.
    pub fn reader(&self) -> Option<Reader> {
        let core = self.shared.lock_core();
        let name = core.name_of(self.id).cloned()?;
        let owns = core
            .account_of(self.id)
            .is_some_and(|account| Key::of(&account) == name.key());
        let free = !core.is_account(name.as_str());
        Some(Reader {
            name,
            owns_name: owns || free,
        })
    }
}
