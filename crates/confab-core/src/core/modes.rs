//! Room modes: querying and changing them (`+imnstkl`), operator and voice status, and
//! the ban list. Changes are checked one by one and announced together.

use crate::cluster::{Replica, Route};
use crate::error::ChatError;
use crate::event::{Ban, Envelope, Event, ModeChange, Source};
use crate::mailbox::Mailbox;
use crate::name::Key;

use super::{post, reply, ClientId, Core, MAX_BANS};

/// A ban mask in full `nick!user@host` form: `bob` means `bob!*@*`, `*@host` means
/// `*!*@host`.
fn normalize_mask(mask: &str) -> String {
    match (mask.contains('!'), mask.contains('@')) {
        (true, true) => mask.to_string(),
        (true, false) => format!("{mask}@*"),
        (false, true) => format!("*!{mask}"),
        (false, false) => format!("{mask}!*@*"),
    }
}

impl<M: Mailbox> Core<M> {
    pub(super) fn mode(
        &mut self,
        id: ClientId,
        wanted: &str,
        changes: Vec<ModeChange>,
        now: u64,
    ) -> Result<(), ChatError> {
        if changes.is_empty() {
            let room = self.visible_room(id, wanted)?;
            reply(
                &self.clients[&id],
                Event::RoomModes {
                    room: room.name.clone(),
                    modes: room.modes.clone(),
                    created_ms: room.created_ms,
                },
            );
            return Ok(());
        }
        let source = self.source(id);
        // Listing bans needs no rights; everything else needs a room operator.
        let only_lists = changes.iter().all(|c| c.mode == 'b' && c.arg.is_none());
        let room_key = Key::of(wanted);
        let room = self
            .rooms
            .get(&room_key)
            .filter(|room| !room.modes.secret || room.members.contains_key(&id))
            .ok_or_else(|| ChatError::NoSuchRoom(wanted.to_string()))?;
        if only_lists {
            reply(
                &self.clients[&id],
                Event::BanList {
                    room: room.name.clone(),
                    bans: room.bans.clone(),
                },
            );
            return Ok(());
        }
        if !(room.is_op(id) || self.runs_default_room(&room_key, id)) {
            return Err(ChatError::OperatorNeeded(room.name.to_string()));
        }
        let mut errors = Vec::new();
        let mut applied = Vec::new();
        let mut list_bans = false;
        for change in changes {
            match self.apply_mode(&room_key, &change, &source, now) {
                Ok(Some(done)) => applied.push(done),
                Ok(None) if change.mode == 'b' && change.arg.is_none() => list_bans = true,
                Ok(None) => {}
                Err(e) => errors.push(e),
            }
        }
        let client = &self.clients[&id];
        for error in errors {
            reply(client, Event::Error(error));
        }
        let room = &self.rooms[&room_key];
        if list_bans {
            reply(
                client,
                Event::BanList {
                    room: room.name.clone(),
                    bans: room.bans.clone(),
                },
            );
        }
        if !applied.is_empty() {
            let envelope = Envelope::new(Event::ModeChanged {
                room: room.name.clone(),
                by: source,
                changes: applied.clone(),
            });
            for m in room.members.values() {
                post(&m.mailbox, &envelope);
            }
            self.persist(&room_key);
            if self.cluster.is_some() {
                let room = self.room_state(&room_key);
                let changes = applied;
                self.publish(
                    Replica::Modes {
                        by: id,
                        room,
                        changes,
                    },
                    Route::Everyone,
                );
            }
        }
        Ok(())
    }

    /// Applies one mode change; `Ok(None)` when it changed nothing.
    fn apply_mode(
        &mut self,
        room_key: &Key,
        change: &ModeChange,
        by: &Source,
        now: u64,
    ) -> Result<Option<ModeChange>, ChatError> {
        let target_id = match (change.mode, &change.arg) {
            ('o' | 'v', Some(name)) => Some(
                self.names
                    .get(&Key::of(name))
                    .copied()
                    .ok_or_else(|| ChatError::NoSuchUser(name.clone()))?,
            ),
            _ => None,
        };
        let target_name = target_id.and_then(|t| self.name_of(t).cloned());
        let target_account = target_id
            .and_then(|t| self.account_of(t))
            .map(|a| Key::of(&a).as_str().to_string());
        let room = self.rooms.get_mut(room_key).expect("caller checked");
        let room_name = room.name.to_string();
        let modes = &mut room.modes;
        let flag = |flag: &mut bool| {
            let changed = *flag != change.add;
            *flag = change.add;
            changed
        };
        let changed = match change.mode {
            'i' => flag(&mut modes.invite_only),
            'm' => flag(&mut modes.moderated),
            'n' => flag(&mut modes.no_external),
            't' => flag(&mut modes.topic_ops),
            's' => flag(&mut modes.secret),
            'k' => match (change.add, &change.arg) {
                (true, Some(key)) if !key.is_empty() && !key.contains(' ') => {
                    modes.key = Some(key.as_str().into());
                    true
                }
                (true, _) => return Err(ChatError::ModeNeedsParameter('k')),
                (false, _) => modes.key.take().is_some(),
            },
            'l' => match (change.add, change.arg.as_deref().map(str::parse::<usize>)) {
                (true, Some(Ok(limit))) if limit > 0 => {
                    modes.limit = Some(limit);
                    true
                }
                (true, _) => return Err(ChatError::ModeNeedsParameter('l')),
                (false, _) => modes.limit.take().is_some(),
            },
            'o' | 'v' => {
                let (Some(target), Some(name)) = (target_id, target_name) else {
                    return Err(ChatError::ModeNeedsParameter(change.mode));
                };
                let Some(member) = room.members.get_mut(&target) else {
                    return Err(ChatError::UserNotInRoom {
                        name: name.to_string(),
                        room: room_name,
                    });
                };
                let slot = if change.mode == 'o' {
                    &mut member.op
                } else {
                    &mut member.voice
                };
                let changed = *slot != change.add;
                *slot = change.add;
                // In a kept room operator status follows the account across restarts.
                if change.mode == 'o' {
                    if let Some(account) = &target_account {
                        if change.add {
                            room.op_accounts.insert(account.clone());
                        } else {
                            room.op_accounts.remove(account);
                        }
                    }
                }
                return Ok(changed.then(|| ModeChange {
                    arg: Some(name.to_string()),
                    ..change.clone()
                }));
            }
            'b' => {
                let Some(mask) = &change.arg else {
                    return Ok(None);
                };
                let mask = normalize_mask(mask);
                let existing = room
                    .bans
                    .iter()
                    .position(|b| b.mask.eq_ignore_ascii_case(&mask));
                match (change.add, existing) {
                    (true, None) => {
                        if room.bans.len() >= MAX_BANS {
                            return Err(ChatError::BanListFull(room_name));
                        }
                        room.bans.push(Ban {
                            mask: mask.as_str().into(),
                            by: by.mask().into(),
                            time_ms: now,
                        });
                    }
                    (false, Some(i)) => {
                        room.bans.remove(i);
                    }
                    _ => return Ok(None),
                }
                return Ok(Some(ModeChange {
                    arg: Some(mask),
                    ..change.clone()
                }));
            }
            other => return Err(ChatError::UnknownMode(other)),
        };
        Ok(changed.then(|| change.clone()))
    }
}
