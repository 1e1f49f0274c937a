//! Accounts over IRC: SASL PLAIN (`AUTHENTICATE`), IRCv3 account registration
//! (`REGISTER`), and a small NickServ (`PRIVMSG NickServ :IDENTIFY ...`), all backed by
//! the same accounts as every other front-end.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use bytes::BytesMut;
use confab_wire::irc::encode::server_line;
use confab_wire::irc::{write_message, Message};

use super::numerics::*;
use super::IrcSession;
use crate::accounts;
use crate::ctx::Ctx;
use crate::protocol::Flow;

/// The longest SASL payload accepted, across 400-byte chunks.
const MAX_SASL: usize = 1600;

/// Where a SASL exchange stands.
#[derive(Debug, Default)]
pub(super) enum Sasl {
    #[default]
    Idle,
    /// `AUTHENTICATE PLAIN` was accepted; base64 chunks are being collected. Boxed so
    /// that the state every IRC session carries is 8 bytes smaller; it is there only
    /// during a login.
    #[allow(clippy::box_collection)]
    Plain(Box<String>),
    /// The credentials went to the store; the outcome will follow.
    Checking,
}

pub(super) fn authenticate(session: &mut IrcSession, m: &Message<'_>, ctx: &Ctx) -> Flow {
    let arg = m.params[0];
    if !session.caps.sasl || !ctx.keeps_history() {
        session.reply(ctx, ERR_SASLFAIL, &["SASL authentication failed"]);
        return Flow::Continue;
    }
    if arg == "*" {
        session.sasl = Sasl::Idle;
        session.reply(ctx, ERR_SASLABORTED, &["SASL authentication aborted"]);
        return Flow::Continue;
    }
    match std::mem::take(&mut session.sasl) {
        Sasl::Idle if arg.eq_ignore_ascii_case("PLAIN") => {
            session.sasl = Sasl::Plain(Box::default());
            let mut out = BytesMut::new();
            write_message(&mut out, &[], None, "AUTHENTICATE", &["+"], false);
            session.send(ctx, out.freeze());
        }
        Sasl::Idle => {
            session.reply(
                ctx,
                RPL_SASLMECHS,
                &["PLAIN", "are available SASL mechanisms"],
            );
            session.reply(ctx, ERR_SASLFAIL, &["SASL authentication failed"]);
        }
        Sasl::Plain(mut collected) => {
            if arg != "+" {
                collected.push_str(arg);
            }
            if collected.len() > MAX_SASL {
                session.reply(ctx, ERR_SASLTOOLONG, &["SASL message too long"]);
                return Flow::Continue;
            }
            // A chunk of exactly 400 bytes means more follow.
            if arg.len() == 400 {
                session.sasl = Sasl::Plain(collected);
                return Flow::Continue;
            }
            let decoded = STANDARD.decode(collected.as_bytes()).ok();
            let fields: Option<Vec<String>> = decoded.and_then(|bytes| {
                let text = String::from_utf8(bytes).ok()?;
                Some(text.split('\0').map(str::to_string).collect())
            });
            let Some([_authzid, authcid, password]) = fields.as_deref() else {
                session.reply(ctx, ERR_SASLFAIL, &["SASL authentication failed"]);
                return Flow::Continue;
            };
            session.sasl = Sasl::Checking;
            accounts::login(ctx, session.peer.ip(), authcid, password.clone(), false);
        }
        Sasl::Checking => {
            session.sasl = Sasl::Checking;
            session.reply(ctx, ERR_SASLALREADY, &["You are already authenticating"]);
        }
    }
    Flow::Continue
}

/// `REGISTER <account> <email> <password>` (draft/account-registration): registers the
/// current nick.
pub(super) fn register(session: &mut IrcSession, m: &Message<'_>, ctx: &Ctx) -> Flow {
    let account = m.params[0];
    let me = session.target().to_string();
    let fail = |session: &mut IrcSession, code: &str, text: &str| {
        let params = ["REGISTER", code, account, text];
        let line = server_line(&ctx.shared.irc.server_name, "FAIL", &params, true);
        session.send(ctx, line);
    };
    if account != "*" && !account.eq_ignore_ascii_case(&me) {
        fail(
            session,
            "ACCOUNT_NAME_MUST_BE_NICK",
            "The account name must be your nick",
        );
        return Flow::Continue;
    }
    session.registering_account = true;
    accounts::register(ctx, m.params[2].to_string());
    Flow::Continue
}

/// A message to NickServ: `IDENTIFY [account] password` or `REGISTER password [email]`.
pub(super) fn nickserv(session: &mut IrcSession, text: &str, ctx: &Ctx) {
    let words: Vec<&str> = text.split_whitespace().collect();
    let me = session.target().to_string();
    match words.as_slice() {
        [command, password] if command.eq_ignore_ascii_case("IDENTIFY") => {
            accounts::login(ctx, session.peer.ip(), &me, password.to_string(), false);
        }
        [command, account, password] if command.eq_ignore_ascii_case("IDENTIFY") => {
            accounts::login(ctx, session.peer.ip(), account, password.to_string(), false);
        }
        [command, password, ..] if command.eq_ignore_ascii_case("REGISTER") => {
            accounts::register(ctx, password.to_string());
        }
        _ => {
            let mut out = BytesMut::new();
            write_message(
                &mut out,
                &[],
                Some("NickServ!NickServ@services"),
                "NOTICE",
                &[
                    &me,
                    "Commands: IDENTIFY [account] password, REGISTER password",
                ],
                true,
            );
            session.send(ctx, out.freeze());
        }
    }
}
