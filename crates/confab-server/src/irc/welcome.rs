//! The IRC session's welcome burst (001 to 004, then 005, LUSERS and the MOTD), also
//! sent alone by VERSION, LUSERS and MOTD.

use std::time::UNIX_EPOCH;

use bytes::Bytes;
use confab_wire::irc::encode;
use confab_wire::irc::numerics::*;
use confab_wire::time::iso_time;

use super::{history, IrcSession, VERSION};
use crate::ctx::Ctx;
use crate::write_queue::WriteQueue;

impl IrcSession {
    pub(super) fn welcome(&self, ctx: &Ctx, out: &mut WriteQueue) {
        let irc = &ctx.shared.irc;
        let me = self.name.as_ref().expect("registered");
        let mask = format!(
            "{me}!{}@{}",
            self.user.as_ref().map_or("", |u| &u.0),
            self.peer.ip()
        );
        let created = iso_time(
            ctx.shared
                .started
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64),
        );
        let lines = [
            self.numeric(
                ctx,
                RPL_WELCOME,
                &[&format!(
                    "Welcome to the {} IRC Network {mask}",
                    irc.network
                )],
            ),
            self.numeric(
                ctx,
                RPL_YOURHOST,
                &[&format!(
                    "Your host is {}, running version {VERSION}",
                    irc.server_name
                )],
            ),
            self.numeric(
                ctx,
                RPL_CREATED,
                &[&format!("This server was created {created}")],
            ),
        ];
        for line in lines {
            out.push(line);
        }
        let myinfo = encode::server_line(
            &irc.server_name,
            RPL_MYINFO,
            &[
                me.as_str(),
                &irc.server_name,
                VERSION,
                "Bio",
                "biklmnostv",
                "bklov",
            ],
            false,
        );
        out.push(myinfo);
        for line in self.isupport(ctx) {
            out.push(line);
        }
        for line in self.lusers(ctx) {
            out.push(line);
        }
        for line in self.motd(ctx) {
            out.push(line);
        }
    }

    /// The 005 lines. Every token is true of this server.
    pub(super) fn isupport(&self, ctx: &Ctx) -> Vec<Bytes> {
        let network = format!("NETWORK={}", ctx.shared.irc.network);
        // No number after the colon means no limit.
        let max_rooms = ctx.shared.limits.max_rooms_per_user;
        let chanlimit = match max_rooms {
            0 => "CHANLIMIT=#:".to_string(),
            n => format!("CHANLIMIT=#:{n}"),
        };
        let tokens = [
            "AWAYLEN=390",
            "BOT=B",
            "CASEMAPPING=ascii",
            &chanlimit,
            "CHANMODES=b,k,l,imnst",
            "CHANNELLEN=51",
            "CHANTYPES=#",
            "KICKLEN=390",
            "MAXLIST=b:100",
            "MAXTARGETS=4",
            "MODES=4",
            &network,
            "NICKLEN=32",
            "PREFIX=(ov)@+",
            "TARGMAX=JOIN:,KICK:1,NAMES:1,NOTICE:4,PART:,PRIVMSG:4,TAGMSG:4,WHOIS:1",
            "TOPICLEN=390",
            "UTF8ONLY",
            "WHOX",
        ];
        let mut tokens: Vec<&str> = tokens.to_vec();
        // MAXCHANNELS is CHANLIMIT's older spelling, still read by some clients.
        let maxchannels = format!("MAXCHANNELS={max_rooms}");
        if max_rooms > 0 {
            let at = tokens.iter().position(|t| t.starts_with("MAXLIST"));
            tokens.insert(at.unwrap_or(tokens.len()), &maxchannels);
        }
        let history_limit = format!("CHATHISTORY={}", history::MAX_LIMIT);
        if ctx.keeps_history() {
            tokens.push(&history_limit);
            tokens.push("MSGREFTYPES=timestamp,msgid");
        }
        tokens
            .chunks(12)
            .map(|chunk| {
                let mut params: Vec<&str> = chunk.to_vec();
                params.push("are supported by this server");
                self.numeric(ctx, RPL_ISUPPORT, &params)
            })
            .collect()
    }

    /// The LUSERS lines, from one set of counts so that they agree: 251's users and
    /// invisible add up to 266's current global users, 255's clients are 265's local
    /// users, and 253 counts connections still registering.
    pub(super) fn lusers(&self, ctx: &Ctx) -> Vec<Bytes> {
        let c = ctx.lusers();
        let (local, max_local) = (c.local.to_string(), c.max_local.to_string());
        let (global, max_global) = (c.global.to_string(), c.max_global.to_string());
        let lines = [
            (
                RPL_LUSERCLIENT,
                vec![format!(
                    "There are {} users and {} invisible on 1 servers",
                    c.visible, c.invisible
                )],
            ),
            (
                RPL_LUSEROP,
                vec![c.opers.to_string(), "operator(s) online".into()],
            ),
            (
                RPL_LUSERUNKNOWN,
                vec![c.unknown.to_string(), "unknown connection(s)".into()],
            ),
            (
                RPL_LUSERCHANNELS,
                vec![c.rooms.to_string(), "channels formed".into()],
            ),
            (
                RPL_LUSERME,
                vec![format!("I have {} clients and 0 servers", c.local)],
            ),
            (
                RPL_LOCALUSERS,
                vec![
                    local.clone(),
                    max_local.clone(),
                    format!("Current local users {local}, max {max_local}"),
                ],
            ),
            (
                RPL_GLOBALUSERS,
                vec![
                    global.clone(),
                    max_global.clone(),
                    format!("Current global users {global}, max {max_global}"),
                ],
            ),
        ];
        lines
            .iter()
            .map(|(code, params)| {
                let params: Vec<&str> = params.iter().map(String::as_str).collect();
                self.numeric(ctx, code, &params)
            })
            .collect()
    }

    pub(super) fn motd(&self, ctx: &Ctx) -> Vec<Bytes> {
        let irc = &ctx.shared.irc;
        if irc.motd.is_empty() {
            return vec![self.numeric(ctx, ERR_NOMOTD, &["MOTD File is missing"])];
        }
        let mut lines = vec![self.numeric(
            ctx,
            RPL_MOTDSTART,
            &[&format!("- {} Message of the day - ", irc.server_name)],
        )];
        for line in &irc.motd {
            lines.push(self.numeric(ctx, RPL_MOTD, &[&format!("- {line}")]));
        }
        lines.push(self.numeric(ctx, RPL_ENDOFMOTD, &["End of /MOTD command."]));
        lines
    }
}
