//! Names: registering one, changing it, guest names, the names of registered accounts
//! and logging into them, WHOWAS, and the parties ([`Source::party`]) a client or a
//! name stands for.

use std::sync::Arc;

use crate::cluster::{Replica, Route};
use crate::error::ChatError;
use crate::event::{Envelope, Event, Source};
use crate::mailbox::Mailbox;
use crate::name::{with_folded, Key, Name};

use super::{reply, ClientId, Core, WHOWAS_HISTORY};

impl<M: Mailbox> Core<M> {
    /// The name and prefix of client `id`, once it has registered.
    pub fn source_of(&self, id: ClientId) -> Option<Arc<Source>> {
        self.clients.get(&id)?.source.clone()
    }

    /// The registered name of a client, if any.
    pub fn name_of(&self, id: ClientId) -> Option<&Name> {
        self.clients.get(&id)?.source.as_ref().map(|s| &s.name)
    }

    /// Client `id`'s party ([`Source::party`]): whose direct conversations it reads.
    pub fn party_of(&self, id: ClientId) -> Option<String> {
        Some(self.clients.get(&id)?.source.as_ref()?.party())
    }

    /// Every party client `id` speaks for: its account when logged in, and its own
    /// session (what reached it before it logged in).
    pub fn parties_of(&self, id: ClientId) -> Vec<String> {
        let Some(source) = self.clients.get(&id).and_then(|c| c.source.as_ref()) else {
            return Vec::new();
        };
        let mut parties = vec![source.session_party()];
        if source.account.is_some() {
            parties.push(source.party());
        }
        parties
    }

    /// The parties `name` stands for now: the user holding it, and the account of that
    /// name if there is one. An earlier holder of the name who was not logged in is
    /// not among them: nobody reaches them by the name any more.
    pub fn parties_named(&self, name: &str) -> Vec<String> {
        let mut parties = Vec::new();
        if let Some(id) = with_folded(name, |k| self.names.get(k)) {
            parties.extend(self.party_of(*id));
        }
        let account = crate::event::account_party(name);
        if self.accounts.contains(&Key::of(name)) && !parties.contains(&account) {
            parties.push(account);
        }
        parties
    }

    /// The name a party goes by now: an account's name, or the name of the connected
    /// user whose session it is; `None` for a session that ended.
    pub fn name_of_party(&self, party: &str) -> Option<Name> {
        if let Some(account) = party.strip_prefix("a:") {
            return Name::parse(account).ok();
        }
        let session = u64::from_str_radix(party.strip_prefix("s:")?, 16).ok()?;
        // A scan, but only for CHATHISTORY TARGETS, a rare request; an index of
        // sessions would cost every connection memory for it.
        self.clients
            .values()
            .filter_map(|c| c.source.as_ref())
            .find(|s| s.session == session)
            .map(|s| s.name.clone())
    }

    /// Whether someone is registered under `name` (ignoring case).
    pub fn is_online(&self, name: &str) -> bool {
        self.names.contains_key(&Key::of(name))
    }

    fn claim_name(&self, wanted: &str) -> Result<Name, ChatError> {
        let name = Name::parse(wanted).map_err(|reason| ChatError::InvalidName {
            name: wanted.to_string(),
            reason,
        })?;
        // NickServ is the name of the IRC front-end's account service.
        if self.names.contains_key(&name.key()) || name.key().as_str() == "nickserv" {
            return Err(ChatError::NameInUse(name.to_string()));
        }
        Ok(name)
    }

    pub(super) fn register(
        &mut self,
        id: ClientId,
        wanted: &str,
        now: u64,
    ) -> Result<(), ChatError> {
        let name = self.claim_name(wanted)?;
        self.names.insert(name.key(), id);
        let protected = self.accounts.contains(&name.key());
        let client = self.clients.get_mut(&id).expect("caller checked");
        let rare = client.rare();
        let account = rare.pending_account.take();
        let host = rare.host.take().unwrap_or_else(|| "unknown".into());
        let user = rare.user.take();
        let realname = rare.realname.take();
        client.tidy();
        let owns = account.as_deref().map(Key::of) == Some(name.key());
        client.signon_ms = now;
        client.last_spoke_ms = now;
        client.source = Some(Arc::new(Source {
            name: name.clone(),
            user: user.unwrap_or_else(|| name.as_str().into()),
            host,
            realname: realname.unwrap_or_else(|| name.as_str().into()),
            account: account.clone(),
            session: self.session_seed.wrapping_add(id),
            bot: false,
        }));
        reply(client, Event::Registered { name: name.clone() });
        let counts = self.lusers();
        self.peak_local = counts.max_local;
        self.peak_global = counts.max_global;
        let client = &self.clients[&id];
        if protected && !owns {
            reply(client, Event::LoginRequired { name });
        }
        self.publish_user(id);
        Ok(())
    }

    pub(super) fn nick(&mut self, id: ClientId, wanted: &str) -> Result<(), ChatError> {
        let old = self.source(id);
        // A change of case only is allowed: the key stays the same and stays ours.
        let name = if Key::of(wanted) == old.name.key() {
            Name::parse(wanted).map_err(|reason| ChatError::InvalidName {
                name: wanted.to_string(),
                reason,
            })?
        } else {
            self.claim_name(wanted)?
        };
        if self.accounts.contains(&name.key())
            && old.account.as_deref().map(Key::of) != Some(name.key())
        {
            return Err(ChatError::NameRegistered(name.to_string()));
        }
        self.rename(id, name);
        Ok(())
    }

    /// Gives client `id` the (free) name `name` and tells everyone concerned.
    fn rename(&mut self, id: ClientId, name: Name) {
        let old = self.source(id);
        if name == old.name {
            return;
        }
        self.names.remove(&old.name.key());
        self.names.insert(name.key(), id);
        self.remember(old.clone());
        let client = self.clients.get_mut(&id).expect("caller checked");
        client.source = Some(Arc::new(Source {
            name: name.clone(),
            ..(*old).clone()
        }));
        self.reorder(id);
        let envelope = Envelope::new(Event::NickChanged { old, new: name });
        self.tell_neighbours(id, &envelope, true);
        if self.clients[&id].node().is_none() {
            let source = self.source(id);
            self.publish(Replica::Renamed { id, source }, Route::Everyone);
        }
    }

    /// A free `GuestN` name.
    fn guest_name(&mut self) -> Name {
        loop {
            self.next_guest += 1;
            let name = Name::parse(&format!("Guest{}", self.next_guest)).expect("valid name");
            if !self.names.contains_key(&name.key()) && !self.accounts.contains(&name.key()) {
                return name;
            }
        }
    }

    /// Marks `name` as a registered account: from now on only its owner may use it.
    pub fn add_account(&mut self, name: &str) {
        if self.accounts.insert(Key::of(name)) {
            let name = name.to_string();
            self.publish(Replica::Account { name }, Route::Everyone);
        }
    }

    /// Whether `name` is a registered account.
    pub fn is_account(&self, name: &str) -> bool {
        self.accounts.contains(&Key::of(name))
    }

    /// The account client `id` is logged into.
    pub fn account_of(&self, id: ClientId) -> Option<Arc<str>> {
        self.clients.get(&id)?.source.as_ref()?.account.clone()
    }

    /// Client `id` proved it owns `account` (the front-end checked the password). A
    /// registered client is renamed to the account's name if needed; one that has not
    /// registered yet takes the name now when `register` says so, and otherwise keeps
    /// the account for when it registers (IRC SASL). An unauthenticated client holding
    /// the name is renamed to a guest name first.
    pub fn logged_in(
        &mut self,
        id: ClientId,
        account: &str,
        register: bool,
        now_ms: u64,
    ) -> Result<(), ChatError> {
        let name = Name::parse(account).map_err(|reason| ChatError::InvalidName {
            name: account.to_string(),
            reason,
        })?;
        if !self.clients.contains_key(&id) {
            return Ok(());
        }
        if let Some(&holder) = self.names.get(&name.key()) {
            // A holder on another node can only be renamed by its own node, which will
            // do so when its login grace runs out.
            if holder != id && self.clients[&holder].node().is_some() {
                return Err(ChatError::NameInUse(name.to_string()));
            }
            if holder != id {
                if self
                    .account_of(holder)
                    .is_some_and(|a| Key::of(&a) == name.key())
                {
                    return Err(ChatError::AlreadyLoggedIn(name.to_string()));
                }
                let guest = self.guest_name();
                self.rename(holder, guest);
                reply(
                    &self.clients[&holder],
                    Event::Error(ChatError::NameRegistered(name.to_string())),
                );
            }
        }
        let client = self.clients.get_mut(&id).expect("checked above");
        let Some(old) = client.source.clone() else {
            client.rare().pending_account = Some(name.as_str().into());
            reply(
                client,
                Event::LoggedIn {
                    account: name.clone(),
                },
            );
            if register {
                return self.register(id, name.as_str(), now_ms);
            }
            return Ok(());
        };
        client.source = Some(Arc::new(Source {
            account: Some(name.as_str().into()),
            ..(*old).clone()
        }));
        self.rename(id, name.clone());
        reply(&self.clients[&id], Event::LoggedIn { account: name });
        Ok(())
    }

    /// The login grace period of client `id` ran out: if it still uses a registered
    /// name it does not own, it becomes a guest.
    pub fn enforce_login(&mut self, id: ClientId) {
        let Some(source) = self.clients.get(&id).and_then(|c| c.source.clone()) else {
            return;
        };
        let owned = source.account.as_deref().map(Key::of) == Some(source.name.key());
        if self.accounts.contains(&source.name.key()) && !owned {
            let guest = self.guest_name();
            self.rename(id, guest);
            reply(
                &self.clients[&id],
                Event::Error(ChatError::NameRegistered(source.name.to_string())),
            );
        }
    }

    pub(super) fn remember(&mut self, source: Arc<Source>) {
        if self.whowas.len() == WHOWAS_HISTORY {
            self.whowas.pop_front();
        }
        self.whowas.push_back(source);
    }

    pub(super) fn whowas_reply(&self, id: ClientId, name: &str) -> Result<(), ChatError> {
        let key = Key::of(name);
        let entries: Vec<Arc<Source>> = self
            .whowas
            .iter()
            .rev()
            .filter(|s| s.name.key() == key)
            .take(10)
            .cloned()
            .collect();
        if entries.is_empty() {
            return Err(ChatError::WasNoSuchUser(name.to_string()));
        }
        reply(&self.clients[&id], Event::WasUser { entries });
        Ok(())
    }
}
