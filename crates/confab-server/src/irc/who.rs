//! WHO and NAMES for the IRC session: the lines depend on the client's caps
//! (`multi-prefix`, `userhost-in-names`) and, for WHOX, on the fields it asked for.

use bytes::Bytes;
use confab_core::{MemberInfo, RoomName, Source, UserSummary};
use confab_wire::irc::encode::{self, channel, prefix};
use confab_wire::irc::numerics::*;

use super::IrcSession;
use crate::ctx::Ctx;
use crate::write_queue::WriteQueue;

/// A WHO command: its mask, and for WHOX the fields and token asked for.
#[derive(Debug, Clone)]
pub(super) struct WhoQuery {
    pub(super) mask: String,
    pub(super) whox: Option<Whox>,
    /// `WHO mask o`: server operators only.
    pub(super) opers_only: bool,
}

/// The WHOX part of `WHO mask %fields[,token]`.
#[derive(Debug, Clone)]
pub(super) struct Whox {
    /// The field letters asked for; the reply has them in [`Whox::ORDER`].
    pub(super) fields: String,
    /// The query type token (`t`): up to three digits.
    pub(super) token: Option<String>,
}

impl Whox {
    /// The order of the fields in a 354 reply, whatever order they were asked in.
    pub(super) const ORDER: &'static str = "tcuihsnfdlaor";

    pub(super) fn parse(spec: &str) -> Whox {
        let (fields, token) = match spec.split_once(',') {
            Some((fields, token)) => (fields, Some(token)),
            None => (spec, None),
        };
        let token = token
            .filter(|t| !t.is_empty() && t.len() <= 3 && t.bytes().all(|b| b.is_ascii_digit()))
            .map(str::to_string);
        Whox {
            fields: fields
                .chars()
                .filter(|c| Self::ORDER.contains(*c))
                .collect(),
            token,
        }
    }
}

/// One user as a WHO line describes it.
pub(super) struct WhoEntry<'a> {
    pub(super) chan: &'a str,
    pub(super) who: &'a Source,
    pub(super) away: bool,
    pub(super) oper: bool,
    /// The channel membership prefix (`@`, `+`), if any.
    pub(super) status: &'a str,
}

impl IrcSession {
    pub(super) fn member_prefix(&self, op: bool, voice: bool) -> &'static str {
        match (op, voice, self.caps.multi_prefix) {
            (true, true, true) => "@+",
            (true, _, _) => "@",
            (false, true, _) => "+",
            _ => "",
        }
    }

    pub(super) fn names_reply(
        &self,
        ctx: &Ctx,
        room: &RoomName,
        members: &[confab_core::MemberInfo],
        out: &mut WriteQueue,
    ) {
        let chan = channel(room);
        // `@` marks a secret channel, `=` a public one.
        let kind = if ctx.is_secret(room.as_str()) {
            "@"
        } else {
            "="
        };
        let mut names = String::new();
        for member in members {
            let entry = if self.caps.userhost_in_names {
                format!(
                    "{}{}",
                    self.member_prefix(member.op, member.voice),
                    prefix(&member.who)
                )
            } else {
                format!(
                    "{}{}",
                    self.member_prefix(member.op, member.voice),
                    member.who.name
                )
            };
            // Keep each 353 line well under 512 bytes.
            if names.len() + entry.len() > 380 {
                out.push(self.numeric(ctx, RPL_NAMREPLY, &[kind, &chan, &names]));
                names.clear();
            }
            if !names.is_empty() {
                names.push(' ');
            }
            names.push_str(&entry);
        }
        if !names.is_empty() {
            out.push(self.numeric(ctx, RPL_NAMREPLY, &[kind, &chan, &names]));
        }
        out.push(self.numeric(ctx, RPL_ENDOFNAMES, &[&chan, "End of /NAMES list."]));
    }

    pub(super) fn who_line(
        &self,
        ctx: &Ctx,
        chan: &str,
        who: &Source,
        away: bool,
        oper: bool,
        status: &str,
    ) -> Bytes {
        let flags = format!(
            "{}{}{status}{}",
            if away { "G" } else { "H" },
            if oper { "*" } else { "" },
            if who.bot { "B" } else { "" }
        );
        self.numeric(
            ctx,
            RPL_WHOREPLY,
            &[
                chan,
                &who.user,
                &who.host,
                &ctx.shared.irc.server_name,
                who.name.as_str(),
                &flags,
                &format!("0 {}", who.realname),
            ],
        )
    }

    /// A WHOX reply (354): the fields asked for, in the order the specification
    /// gives, the real name last as a trailing parameter.
    pub(super) fn whox_line(&self, ctx: &Ctx, whox: &Whox, entry: &WhoEntry<'_>) -> Bytes {
        let who = entry.who;
        let flags = format!(
            "{}{}{}",
            if entry.away { "G" } else { "H" },
            if entry.oper { "*" } else { "" },
            entry.status
        );
        let mut params: Vec<&str> = vec![self.target()];
        for field in Whox::ORDER.chars().filter(|c| whox.fields.contains(*c)) {
            params.push(match field {
                't' => whox.token.as_deref().unwrap_or("0"),
                'c' => entry.chan,
                'u' => &who.user,
                'i' | 'h' => &who.host,
                's' => &ctx.shared.irc.server_name,
                'n' => who.name.as_str(),
                'f' => &flags,
                'd' | 'l' => "0",
                'a' => who.account.as_deref().unwrap_or("0"),
                'o' => "n/a",
                _ => &who.realname,
            });
        }
        let trailing = whox.fields.contains('r');
        let server = &ctx.shared.irc.server_name;
        encode::server_line(server, RPL_WHOSPCRPL, &params, trailing)
    }

    /// One WHO line: 352, or 354 for WHOX.
    pub(super) fn who_reply(&self, ctx: &Ctx, query: &WhoQuery, entry: WhoEntry<'_>) -> Bytes {
        match &query.whox {
            Some(whox) => self.whox_line(ctx, whox, &entry),
            None => self.who_line(
                ctx,
                entry.chan,
                entry.who,
                entry.away,
                entry.oper,
                entry.status,
            ),
        }
    }

    /// WHO of a channel: its members (operators alone for `WHO #chan o`).
    pub(super) fn who_members(
        &self,
        ctx: &Ctx,
        query: &WhoQuery,
        room: &RoomName,
        members: &[MemberInfo],
        out: &mut WriteQueue,
    ) {
        let chan = channel(room);
        for m in members.iter().filter(|m| m.oper || !query.opers_only) {
            let entry = WhoEntry {
                chan: &chan,
                who: &m.who,
                away: m.away,
                oper: m.oper,
                status: self.member_prefix(m.op, m.voice),
            };
            out.push(self.who_reply(ctx, query, entry));
        }
        let mask = &query.mask;
        out.push(self.numeric(ctx, RPL_ENDOFWHO, &[mask, "End of /WHO list."]));
    }

    /// WHO of a nick or mask: the users found, with no channel.
    pub(super) fn who_users(
        &self,
        ctx: &Ctx,
        query: &WhoQuery,
        users: &[UserSummary],
        out: &mut WriteQueue,
    ) {
        for u in users.iter().filter(|u| u.oper || !query.opers_only) {
            let entry = WhoEntry {
                chan: "*",
                who: &u.who,
                away: u.away,
                oper: u.oper,
                status: "",
            };
            out.push(self.who_reply(ctx, query, entry));
        }
        let mask = &query.mask;
        out.push(self.numeric(ctx, RPL_ENDOFWHO, &[mask, "End of /WHO list."]));
    }
}
