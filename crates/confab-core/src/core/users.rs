//! Users: connections coming and going, what the front-end sets on them (identity,
//! operator, `+i`, bot, echo), away, the questions asked about users (WHOIS, WHO with
//! a mask, presence lookups), KILL, and the counts LUSERS and the metrics report.

use std::sync::Arc;

use crate::cluster::{Replica, Route};
use crate::error::ChatError;
use crate::event::{Envelope, Event, UserInfo, UserSummary};
use crate::mailbox::Mailbox;
use crate::name::{glob_match, Key};

use super::rooms::unorder;
use super::{clip, cmp_folded, post, reply, Client, ClientId, Core, Lusers, Rare, Set};

impl<M: Mailbox> Core<M> {
    /// Adds a connection that has not registered yet. `host` is what others will see as
    /// its address.
    pub fn connect(&mut self, id: ClientId, mailbox: M, host: &str) {
        let rare = Rare {
            host: Some(host.into()),
            ..Rare::default()
        };
        self.clients.insert(id, Client::new(Some(mailbox), rare));
    }

    /// Sets the IRC user name and real name shown once the client registers.
    pub fn set_identity(&mut self, id: ClientId, user: &str, realname: &str) {
        if let Some(client) = self.clients.get_mut(&id) {
            let rare = client.rare();
            rare.user = Some(user.into());
            rare.realname = Some(clip(realname));
        }
    }

    /// Makes a client a server operator; the front-end checked the credentials.
    pub fn set_oper(&mut self, id: ClientId, on: bool) {
        if let Some(client) = self.clients.get_mut(&id) {
            client.oper = on;
        }
    }

    /// Sets user mode `+i` (invisible) for one client.
    pub fn set_invisible(&mut self, id: ClientId, on: bool) {
        if let Some(client) = self.clients.get_mut(&id) {
            client.invisible = on;
        }
    }

    /// Turns IRC's echo-message on or off for one client.
    pub fn set_echo(&mut self, id: ClientId, on: bool) {
        if let Some(client) = self.clients.get_mut(&id) {
            client.echo = on;
        }
    }

    /// Marks a registered client as a bot or not (IRC user mode `+B`): its messages
    /// then carry the `bot` tag, and WHO and WHOIS say so.
    pub fn set_bot(&mut self, id: ClientId, on: bool) {
        let Some(client) = self.clients.get_mut(&id) else {
            return;
        };
        let Some(source) = client.source.as_mut().filter(|s| s.bot != on) else {
            return;
        };
        Arc::make_mut(source).bot = on;
        // Other nodes take the new source as they take a rename to the same name.
        let source = source.clone();
        if client.node().is_none() {
            self.publish(Replica::Renamed { id, source }, Route::Everyone);
        }
    }

    /// Removes a connection, telling everyone who shared a room with it.
    pub fn disconnect(&mut self, id: ClientId, reason: &str) {
        let local = self.clients.get(&id).is_some_and(|c| c.node().is_none());
        if self.remove_client(id, reason) && local {
            self.publish(
                Replica::UserOff {
                    id,
                    reason: clip(reason),
                },
                Route::Everyone,
            );
        }
    }

    /// Takes a client out of everything; `true` when it was registered.
    pub(super) fn remove_client(&mut self, id: ClientId, reason: &str) -> bool {
        let Some(client) = self.clients.remove(&id) else {
            return false;
        };
        let Some(source) = client.source else {
            return false;
        };
        self.names.remove(&source.name.key());
        self.remember(source.clone());
        let envelope = Envelope::new(Event::Quit {
            who: source,
            reason: clip(reason),
        });
        let mut told = Set::default();
        for key in &client.rooms {
            let Some(room) = self.rooms.get_mut(key) else {
                continue;
            };
            room.members.remove(&id);
            unorder(room, id);
            for (member, m) in &room.members {
                if told.insert(*member) {
                    post(&m.mailbox, &envelope);
                }
            }
            if room.members.is_empty() {
                self.rooms.remove(key);
            }
        }
        true
    }

    /// How many clients are connected, registered or not.
    pub fn client_count(&self) -> usize {
        self.clients.len()
    }

    /// Calls `f` with the mailbox of every client of this node (to wake them all at
    /// shutdown, say).
    pub fn each_local_mailbox(&self, mut f: impl FnMut(&M)) {
        for client in self.clients.values() {
            if let Some(mailbox) = &client.mailbox {
                f(mailbox);
            }
        }
    }

    /// How many clients are registered.
    pub fn user_count(&self) -> usize {
        self.names.len()
    }

    /// How many registered clients are server operators.
    pub fn oper_count(&self) -> usize {
        self.clients.values().filter(|c| c.oper).count()
    }

    /// The LUSERS counts. Users of other nodes count as visible: `+i` is not shared.
    pub fn lusers(&self) -> Lusers {
        let mut counts = Lusers {
            rooms: self.rooms.len(),
            ..Lusers::default()
        };
        for client in self.clients.values() {
            let local = client.node().is_none();
            if client.source.is_none() {
                counts.unknown += usize::from(local);
                continue;
            }
            counts.global += 1;
            counts.local += usize::from(local);
            counts.opers += usize::from(client.oper);
            if client.invisible {
                counts.invisible += 1;
            } else {
                counts.visible += 1;
            }
        }
        counts.max_local = self.peak_local.max(counts.local);
        counts.max_global = self.peak_global.max(counts.global);
        counts
    }

    pub(super) fn away(&mut self, id: ClientId, message: Option<String>) {
        let message = message.filter(|m| !m.is_empty()).map(|m| clip(&m));
        let client = self.clients.get_mut(&id).expect("caller checked");
        let changed = client.away() != message.as_ref();
        client.rare().away = message.clone();
        client.tidy();
        reply(
            client,
            Event::AwayStatus {
                away: message.is_some(),
            },
        );
        if changed {
            let envelope = Envelope::new(Event::AwayChanged {
                who: self.source(id),
                message: message.clone(),
            });
            self.tell_neighbours(id, &envelope, false);
            self.publish(Replica::Away { id, message }, Route::Everyone);
        }
    }

    pub(super) fn whois(&self, id: ClientId, name: &str, now: u64) -> Result<(), ChatError> {
        let target = self
            .names
            .get(&Key::of(name))
            .and_then(|t| self.clients.get(t).map(|c| (*t, c)))
            .ok_or_else(|| ChatError::NoSuchUser(name.to_string()))?;
        let (target_id, client) = target;
        let rooms = client
            .rooms
            .iter()
            .filter_map(|key| self.rooms.get(key))
            .filter(|room| !room.modes.secret || room.members.contains_key(&id))
            .map(|room| {
                let m = &room.members[&target_id];
                let prefix = if m.op {
                    "@"
                } else if m.voice {
                    "+"
                } else {
                    ""
                };
                (prefix.to_string(), room.name.clone())
            })
            .collect();
        reply(
            &self.clients[&id],
            Event::UserInfo(UserInfo {
                who: client.source.clone().expect("registered"),
                rooms,
                away: client.away().cloned(),
                oper: client.oper,
                signon_ms: client.signon_ms,
                idle_ms: now.saturating_sub(client.last_spoke_ms),
            }),
        );
        Ok(())
    }

    pub(super) fn lookup(&self, id: ClientId, names: &[String]) {
        let users = names
            .iter()
            .filter_map(|name| self.names.get(&Key::of(name)))
            .filter_map(|t| self.clients.get(t))
            .filter_map(|c| {
                Some(UserSummary {
                    who: c.source.clone()?,
                    away: c.away().is_some(),
                    oper: c.oper,
                })
            })
            .collect();
        reply(&self.clients[&id], Event::Presence { users });
    }

    /// The most users one WHO mask lists: the scan is bounded by the users online, the
    /// reply by this.
    const WHO_MASK_LIMIT: usize = 500;

    pub(super) fn who_mask(&self, id: ClientId, mask: &str) {
        let asker = &self.clients[&id];
        let shares_room = |client: &Client<M>| {
            client
                .rooms
                .iter()
                .any(|key| asker.rooms.iter().any(|mine| mine == key))
        };
        // `WHO 0` is the old spelling of `WHO *`.
        let mask = if mask == "0" || mask.is_empty() {
            "*"
        } else {
            mask
        };
        let mut users: Vec<UserSummary> = self
            .clients
            .iter()
            .filter_map(|(client_id, client)| {
                let who = client.source.as_ref()?;
                let listed = !client.invisible || *client_id == id || shares_room(client);
                let matches = [who.name.as_str(), &who.user, &who.host, &who.realname]
                    .iter()
                    .any(|field| glob_match(mask, field));
                (listed && matches).then(|| UserSummary {
                    who: who.clone(),
                    away: client.away().is_some(),
                    oper: client.oper,
                })
            })
            .take(Self::WHO_MASK_LIMIT)
            .collect();
        users.sort_unstable_by(|a, b| cmp_folded(a.who.name.as_str(), b.who.name.as_str()));
        reply(asker, Event::Presence { users });
    }

    pub(super) fn kill(&mut self, id: ClientId, name: &str, reason: &str) -> Result<(), ChatError> {
        if !self.clients[&id].oper {
            return Err(ChatError::NoPrivileges);
        }
        let target = self
            .names
            .get(&Key::of(name))
            .copied()
            .ok_or_else(|| ChatError::NoSuchUser(name.to_string()))?;
        reply(
            &self.clients[&target],
            Event::Killed {
                by: self.source(id),
                reason: clip(reason),
            },
        );
        if let Some(node) = self.clients[&target].node().cloned() {
            let reason = clip(reason);
            self.publish(
                Replica::Kill {
                    by: id,
                    target,
                    reason,
                },
                Route::Node(node),
            );
        }
        Ok(())
    }
}
