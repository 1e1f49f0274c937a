//! IRC commands as one table: name, minimum parameters, whether it works before
//! registration, whether a server parameter may send it elsewhere, and its handler.
//! `dispatch` checks all of that before any handler runs, so handlers only do their own
//! job. The line protocol's table (`crate::line`) has the same shape.

use std::sync::Arc;

use bytes::BytesMut;
use confab_core::{Command, MessageKind, ModeChange, Recipient};
use confab_wire::irc::encode::server_line;
use confab_wire::irc::{write_message, Message};

use super::numerics::*;
use super::{Context, IrcSession};
use crate::ctx::Ctx;
use crate::protocol::{Close, Flow};

type Handler = fn(&mut IrcSession, &Message<'_>, &Ctx) -> Flow;

/// One IRC command: its name, the parameters it needs, whether it works before
/// registration, whether its first parameter may name the server that is to answer
/// (402 and nothing else when that is another server), and its handler.
struct Spec {
    name: &'static str,
    min_params: usize,
    before_registration: bool,
    server_target: bool,
    handler: Handler,
}

const fn spec(
    name: &'static str,
    min_params: usize,
    before_registration: bool,
    handler: Handler,
) -> Spec {
    Spec {
        name,
        min_params,
        before_registration,
        server_target: false,
        handler,
    }
}

/// A command that a server parameter may send elsewhere, as `VERSION [server]`.
const fn to_server(name: &'static str, handler: Handler) -> Spec {
    Spec {
        server_target: true,
        ..spec(name, 0, false, handler)
    }
}

const COMMANDS: &[Spec] = &[
    spec("CAP", 1, true, cap),
    spec("PASS", 1, true, pass),
    spec("NICK", 0, true, nick),
    spec("USER", 4, true, user),
    spec("PING", 0, true, ping),
    spec("PONG", 0, true, pong),
    spec("QUIT", 0, true, quit),
    spec("JOIN", 1, false, join),
    spec("PART", 1, false, part),
    spec("PRIVMSG", 0, false, privmsg),
    spec("NOTICE", 0, false, notice),
    spec("TAGMSG", 0, false, tagmsg),
    spec("TOPIC", 1, false, topic),
    spec("NAMES", 0, false, names),
    spec("LIST", 0, false, list),
    spec("WHO", 0, false, who),
    spec("WHOIS", 1, false, whois),
    spec("WHOWAS", 1, false, whowas),
    spec("MODE", 1, false, mode),
    spec("KICK", 2, false, kick),
    spec("INVITE", 2, false, invite),
    spec("AWAY", 0, false, away),
    spec("ISON", 1, false, ison),
    spec("USERHOST", 1, false, userhost),
    spec("OPER", 2, false, oper),
    spec("KILL", 2, false, kill),
    to_server("VERSION", version),
    to_server("TIME", time),
    to_server("MOTD", motd),
    spec("LUSERS", 0, false, lusers),
    to_server("INFO", info),
    spec("WALLOPS", 1, false, wallops),
    spec("CHATHISTORY", 1, false, super::history::chathistory),
    spec("AUTHENTICATE", 1, true, super::auth::authenticate),
    spec("REGISTER", 3, false, super::auth::register),
];

/// Checks registration, arity and the server a command is for, then runs the
/// command's handler.
pub(super) fn dispatch(session: &mut IrcSession, message: &Message<'_>, ctx: &Ctx) -> Flow {
    let command = message.command;
    let spec = COMMANDS
        .iter()
        .find(|s| s.name.eq_ignore_ascii_case(command));
    if session.name.is_none() && !spec.is_some_and(|s| s.before_registration) {
        session.reply(ctx, ERR_NOTREGISTERED, &["You have not registered"]);
        return Flow::Continue;
    }
    let Some(spec) = spec else {
        session.reply(ctx, ERR_UNKNOWNCOMMAND, &[command, "Unknown command"]);
        return Flow::Continue;
    };
    if message.params.len() < spec.min_params {
        let params = [spec.name, "Not enough parameters"];
        session.reply(ctx, ERR_NEEDMOREPARAMS, &params);
        return Flow::Continue;
    }
    if spec.server_target && other_server(session, message, ctx) {
        return Flow::Continue;
    }
    (spec.handler)(session, message, ctx)
}

/// A channel parameter as a room name, or `None` (and 403 sent) when it is not one.
fn room_of<'a>(session: &mut IrcSession, ctx: &Ctx, chan: &'a str) -> Option<&'a str> {
    match chan.strip_prefix('#') {
        Some(room) if !room.is_empty() => Some(room),
        _ => {
            session.reply(ctx, ERR_NOSUCHCHANNEL, &[chan, "No such channel"]);
            None
        }
    }
}

fn cap(session: &mut IrcSession, m: &Message<'_>, ctx: &Ctx) -> Flow {
    let target = session.target().to_string();
    let sub = m.params[0].to_ascii_uppercase();
    let line = |params: &[&str]| {
        let mut all = vec![target.as_str()];
        all.extend_from_slice(params);
        server_line(&ctx.shared.irc.server_name, "CAP", &all, true)
    };
    match sub.as_str() {
        "LS" => {
            if session.name.is_none() {
                session.negotiating = true;
            }
            // Version 302 implies cap-notify.
            if m.params
                .get(1)
                .and_then(|v| v.parse::<u32>().ok())
                .is_some_and(|v| v >= 302)
            {
                session.caps.cap_notify = true;
            }
            let version_302 = m
                .params
                .get(1)
                .and_then(|v| v.parse::<u32>().ok())
                .is_some_and(|v| v >= 302);
            let mut caps: Vec<&str> = super::CAPS.to_vec();
            if ctx.keeps_history() {
                caps.extend(super::HISTORY_CAPS.iter().map(|c| match *c {
                    "sasl" if version_302 => "sasl=PLAIN",
                    other => other,
                }));
            }
            caps.sort_unstable();
            session.send(ctx, line(&["LS", &caps.join(" ")]));
        }
        "LIST" => {
            let enabled = session.caps.enabled().join(" ");
            session.send(ctx, line(&["LIST", &enabled]));
        }
        "REQ" => {
            if session.name.is_none() {
                session.negotiating = true;
            }
            let wanted = m.params.get(1).copied().unwrap_or("");
            let mut caps = session.caps;
            let ok = wanted.split_whitespace().all(|item| {
                let (on, name) = match item.strip_prefix('-') {
                    Some(name) => (false, name),
                    None => (true, item),
                };
                let offered = !super::HISTORY_CAPS.contains(&name) || ctx.keeps_history();
                match caps.flag(name).filter(|_| offered) {
                    Some(flag) => {
                        *flag = on;
                        true
                    }
                    None => false,
                }
            });
            if ok {
                let echo_changed = caps.echo_message != session.caps.echo_message;
                session.caps = caps;
                if echo_changed && session.name.is_some() {
                    ctx.set_echo(caps.echo_message);
                }
                session.send(ctx, line(&["ACK", wanted]));
            } else {
                session.send(ctx, line(&["NAK", wanted]));
            }
        }
        "END" => {
            session.negotiating = false;
            session.try_register(ctx);
        }
        _ => session.reply(
            ctx,
            ERR_INVALIDCAPCMD,
            &[m.params[0], "Invalid CAP command"],
        ),
    }
    Flow::Continue
}

fn pass(session: &mut IrcSession, _m: &Message<'_>, ctx: &Ctx) -> Flow {
    // No server password is configured; PASS is accepted and ignored before
    // registration, as clients send it by habit.
    if session.name.is_some() {
        session.reply(ctx, ERR_ALREADYREGISTERED, &["You may not reregister"]);
    }
    Flow::Continue
}

fn nick(session: &mut IrcSession, m: &Message<'_>, ctx: &Ctx) -> Flow {
    let Some(wanted) = m.params.first().filter(|n| !n.is_empty()) else {
        session.reply(ctx, ERR_NONICKNAMEGIVEN, &["No nickname given"]);
        return Flow::Continue;
    };
    if session.name.is_some() {
        session.context = Context::Nick;
        ctx.command(Command::Nick {
            name: wanted.to_string(),
        });
    } else if !session.registering {
        if let Err(reason) = confab_core::Name::parse(wanted) {
            session.reply(
                ctx,
                ERR_ERRONEUSNICKNAME,
                &[wanted, &format!("Erroneous nickname: {reason}")],
            );
            return Flow::Continue;
        }
        // A nick in use is refused now, as servers do, not only once USER arrives.
        if ctx.is_online(wanted) {
            session.reply(
                ctx,
                ERR_NICKNAMEINUSE,
                &[wanted, "Nickname is already in use"],
            );
            return Flow::Continue;
        }
        session.nick = Some(Box::new((*wanted).into()));
        session.try_register(ctx);
    }
    Flow::Continue
}

fn user(session: &mut IrcSession, m: &Message<'_>, ctx: &Ctx) -> Flow {
    if session.name.is_some() || session.user.is_some() {
        session.reply(ctx, ERR_ALREADYREGISTERED, &["You may not reregister"]);
        return Flow::Continue;
    }
    // Both names must be there: an empty one is a missing parameter.
    if m.params[0].is_empty() || m.params[3].is_empty() {
        session.reply(ctx, ERR_NEEDMOREPARAMS, &["USER", "Not enough parameters"]);
        return Flow::Continue;
    }
    // The user name is not verified by ident, hence the conventional `~`; only safe
    // characters are kept so that it cannot break prefixes.
    let clean: String = m.params[0]
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || "._-".contains(*c))
        .take(10)
        .collect();
    let user = if clean.is_empty() {
        "~user".to_string()
    } else {
        format!("~{clean}")
    };
    let realname: String = m.params[3].chars().filter(|c| !c.is_control()).collect();
    session.user = Some(Box::new((user, realname)));
    session.try_register(ctx);
    Flow::Continue
}

fn ping(session: &mut IrcSession, m: &Message<'_>, ctx: &Ctx) -> Flow {
    let token = m.params.first().copied().unwrap_or_default();
    if token.is_empty() {
        session.reply(ctx, ERR_NOORIGIN, &["No origin specified"]);
        return Flow::Continue;
    }
    let server = ctx.shared.irc.server_name.clone();
    let pong = session.server_line(ctx, "PONG", &[&server, token]);
    session.send(ctx, pong);
    Flow::Continue
}

fn pong(_session: &mut IrcSession, _m: &Message<'_>, _ctx: &Ctx) -> Flow {
    // Any input counts as liveness; the connection loop already noted it.
    Flow::Continue
}

fn quit(_session: &mut IrcSession, m: &Message<'_>, _ctx: &Ctx) -> Flow {
    let reason = match m.params.first() {
        Some(reason) if !reason.is_empty() => format!("Quit: {reason}"),
        _ => "Quit".to_string(),
    };
    Flow::Close(Close::Quit(reason))
}

fn join(session: &mut IrcSession, m: &Message<'_>, ctx: &Ctx) -> Flow {
    if m.params[0] == "0" {
        session.context = Context::Part;
        for room in session.channels.clone() {
            ctx.command(Command::Part {
                room: room.to_string(),
                reason: None,
            });
        }
        return Flow::Continue;
    }
    session.context = Context::Join;
    let keys: Vec<&str> = m
        .params
        .get(1)
        .map_or(Vec::new(), |k| k.split(',').collect());
    for (i, chan) in m.params[0].split(',').enumerate() {
        if let Some(room) = room_of(session, ctx, chan) {
            ctx.command(Command::Join {
                room: room.to_string(),
                key: keys.get(i).filter(|k| !k.is_empty()).map(|k| k.to_string()),
            });
        }
    }
    Flow::Continue
}

fn part(session: &mut IrcSession, m: &Message<'_>, ctx: &Ctx) -> Flow {
    session.context = Context::Part;
    let reason = m
        .params
        .get(1)
        .filter(|r| !r.is_empty())
        .map(|r| r.to_string());
    for chan in m.params[0].split(',') {
        if let Some(room) = room_of(session, ctx, chan) {
            ctx.command(Command::Part {
                room: room.to_string(),
                reason: reason.clone(),
            });
        }
    }
    Flow::Continue
}

/// The most targets one PRIVMSG or NOTICE may name (ISUPPORT MAXTARGETS).
const MAX_TARGETS: usize = 4;

/// A message's client-only tags (`+name=value`), kept escaped as they came, for a
/// sender that negotiated message-tags; any other tag is the server's business and is
/// not relayed.
fn client_tags(session: &IrcSession, m: &Message<'_>) -> Option<Arc<str>> {
    if !session.caps.message_tags {
        return None;
    }
    let mut kept = String::new();
    let tags = m.raw_tags.into_iter().flat_map(|raw| raw.split(';'));
    for tag in tags.filter(|t| t.len() > 1 && t.starts_with('+') && !t.contains('\0')) {
        if !kept.is_empty() {
            kept.push(';');
        }
        kept.push_str(tag);
    }
    (!kept.is_empty()).then(|| kept.into())
}

fn send(session: &mut IrcSession, m: &Message<'_>, ctx: &Ctx, command: &str) -> Flow {
    let notice = command == "NOTICE";
    let tagmsg = command == "TAGMSG";
    session.context = if notice {
        Context::Silent
    } else {
        Context::Send
    };
    let Some(targets) = m.params.first().filter(|t| !t.is_empty()) else {
        if !notice {
            session.reply(
                ctx,
                ERR_NORECIPIENT,
                &[&format!("No recipient given ({command})")],
            );
        }
        return Flow::Continue;
    };
    let text = match m.params.get(1).filter(|t| !t.is_empty()) {
        _ if tagmsg => "",
        Some(text) => text,
        None => {
            if !notice {
                session.reply(ctx, ERR_NOTEXTTOSEND, &["No text to send"]);
            }
            return Flow::Continue;
        }
    };
    let (kind, text) = match text.strip_prefix("\x01ACTION ") {
        _ if tagmsg => (MessageKind::Tags, text),
        Some(action) if !notice => (MessageKind::Action, action.trim_end_matches('\x01')),
        _ if notice => (MessageKind::Notice, text),
        _ => (MessageKind::Normal, text),
    };
    let tags = client_tags(session, m);
    if targets.eq_ignore_ascii_case("NickServ") && !tagmsg {
        super::auth::nickserv(session, text, ctx);
        return Flow::Continue;
    }
    for (i, target) in targets.split(',').enumerate() {
        if i == MAX_TARGETS {
            if !notice {
                session.reply(
                    ctx,
                    ERR_TOOMANYTARGETS,
                    &[
                        target,
                        &format!("Too many recipients; at most {MAX_TARGETS}"),
                    ],
                );
            }
            break;
        }
        let to = match target.strip_prefix('#') {
            Some(room) => Recipient::Room(room.to_string()),
            None => Recipient::User(target.to_string()),
        };
        // Plain PRIVMSGs are collected into batches; a NOTICE's failures are never
        // answered, a labeled command's replies belong to its label, and tags belong
        // to their one message, so those go one by one.
        if notice || tagmsg || tags.is_some() || session.labeled.is_some() {
            ctx.command(Command::Send {
                to,
                kind,
                text: text.to_string(),
                tags: tags.clone(),
            });
        } else {
            ctx.say(to, kind, text.to_string());
        }
    }
    Flow::Continue
}

fn privmsg(session: &mut IrcSession, m: &Message<'_>, ctx: &Ctx) -> Flow {
    send(session, m, ctx, "PRIVMSG")
}

fn notice(session: &mut IrcSession, m: &Message<'_>, ctx: &Ctx) -> Flow {
    send(session, m, ctx, "NOTICE")
}

/// A tag-only message (message-tags): delivered as PRIVMSG is, with the same checks
/// (membership, bans, moderation), to recipients that negotiated message-tags.
fn tagmsg(session: &mut IrcSession, m: &Message<'_>, ctx: &Ctx) -> Flow {
    send(session, m, ctx, "TAGMSG")
}

fn topic(session: &mut IrcSession, m: &Message<'_>, ctx: &Ctx) -> Flow {
    session.context = Context::Topic;
    if let Some(room) = room_of(session, ctx, m.params[0]) {
        ctx.command(Command::Topic {
            room: room.to_string(),
            text: m.params.get(1).map(|t| t.to_string()),
        });
    }
    Flow::Continue
}

fn names(session: &mut IrcSession, m: &Message<'_>, ctx: &Ctx) -> Flow {
    session.context = Context::Names;
    let Some(chans) = m.params.first() else {
        session.reply(ctx, RPL_ENDOFNAMES, &["*", "End of /NAMES list."]);
        return Flow::Continue;
    };
    for chan in chans.split(',') {
        match chan.strip_prefix('#') {
            Some(room) => ctx.command(Command::Who {
                room: room.to_string(),
            }),
            None => session.reply(ctx, RPL_ENDOFNAMES, &[chan, "End of /NAMES list."]),
        }
    }
    Flow::Continue
}

fn list(session: &mut IrcSession, m: &Message<'_>, ctx: &Ctx) -> Flow {
    let wanted = m.params.first().map(|chans| {
        chans
            .split(',')
            .map(|c| c.trim_start_matches('#').to_string())
            .collect()
    });
    session.context = Context::List(wanted.map(Box::new));
    ctx.command(Command::Rooms);
    Flow::Continue
}

fn who(session: &mut IrcSession, m: &Message<'_>, ctx: &Ctx) -> Flow {
    let mask = m.params.first().copied().unwrap_or("*").to_string();
    // WHOX: `WHO mask %fields[,token]` asks for 354 lines with just those fields.
    let whox = m
        .params
        .get(1)
        .and_then(|p| p.split_once('%'))
        .map(|(_, spec)| super::Whox::parse(spec));
    // The `o` flag (before any `%`) asks for server operators only.
    let opers_only = m
        .params
        .get(1)
        .is_some_and(|p| p.split('%').next().unwrap_or_default().contains('o'));
    let query = super::WhoQuery {
        mask: mask.clone(),
        whox,
        opers_only,
    };
    session.context = Context::Who(Box::new(query));
    if let Some(room) = mask.strip_prefix('#') {
        ctx.command(Command::Who {
            room: room.to_string(),
        });
    } else if !mask.contains(['*', '?']) && ctx.is_online(&mask) {
        // The nick of someone online names that one user, as WHOIS would, invisible
        // or not; anything else is a mask over nicks, user names, hosts and names.
        ctx.command(Command::Lookup { names: vec![mask] });
    } else {
        ctx.command(Command::WhoMask { mask });
    }
    Flow::Continue
}

fn whois(session: &mut IrcSession, m: &Message<'_>, ctx: &Ctx) -> Flow {
    // `WHOIS server nick` and `WHOIS nick` both name the nick last.
    let nick = m.params.last().copied().unwrap_or_default();
    let nick = nick.split(',').next().unwrap_or_default().to_string();
    session.context = Context::Whois;
    ctx.command(Command::Whois { name: nick });
    Flow::Continue
}

fn whowas(session: &mut IrcSession, m: &Message<'_>, ctx: &Ctx) -> Flow {
    let nick = m.params[0]
        .split(',')
        .next()
        .unwrap_or_default()
        .to_string();
    // A count of zero or less, or none, means every entry kept.
    let count = m
        .params
        .get(1)
        .and_then(|c| c.parse::<i64>().ok())
        .filter(|&c| c > 0)
        .map_or(usize::MAX, |c| usize::try_from(c).unwrap_or(usize::MAX));
    session.context = Context::WhoWas(Box::new((nick.clone(), count)));
    ctx.command(Command::WhoWas { name: nick });
    Flow::Continue
}

/// The most mode changes with a parameter in one MODE (ISUPPORT MODES).
const MAX_MODES: usize = 4;

fn mode(session: &mut IrcSession, m: &Message<'_>, ctx: &Ctx) -> Flow {
    session.context = Context::Mode;
    let target = m.params[0];
    let Some(room) = target.strip_prefix('#') else {
        return user_mode(session, m, ctx);
    };
    let mut changes = Vec::new();
    // Whether a change was refused here for a malformed parameter: if nothing is left,
    // the MODE must not turn into a query.
    let mut refused = false;
    if let Some(modes) = m.params.get(1) {
        let mut args = m.params[2..].iter();
        let mut add = true;
        let mut with_params = 0;
        for c in modes.chars() {
            match c {
                '+' => add = true,
                '-' => add = false,
                'o' | 'v' | 'b' | 'k' | 'l' => {
                    let takes_arg =
                        matches!(c, 'o' | 'v' | 'b') || (add && matches!(c, 'k' | 'l')) || c == 'k';
                    let arg = if takes_arg {
                        args.next().map(|a| a.to_string())
                    } else {
                        None
                    };
                    if arg.is_some() {
                        with_params += 1;
                        if with_params > MAX_MODES {
                            break;
                        }
                    }
                    if add && !valid_mode_arg(session, ctx, target, c, arg.as_deref()) {
                        refused = true;
                        continue;
                    }
                    changes.push(ModeChange { add, mode: c, arg });
                }
                c => changes.push(ModeChange {
                    add,
                    mode: c,
                    arg: None,
                }),
            }
        }
    }
    if refused && changes.is_empty() {
        return Flow::Continue;
    }
    ctx.command(Command::Mode {
        room: room.to_string(),
        changes,
    });
    Flow::Continue
}

/// Whether the parameter of `+k` or `+l` is well formed, answering 696
/// (ERR_INVALIDMODEPARAM) when it is not. A missing parameter is left to the core (461).
fn valid_mode_arg(
    session: &mut IrcSession,
    ctx: &Ctx,
    chan: &str,
    mode: char,
    arg: Option<&str>,
) -> bool {
    let Some(arg) = arg else {
        return true;
    };
    match mode {
        // A key with a space or a comma could never be given to JOIN. The modern
        // documents ask for 696 with the key itself left out.
        'k' if arg.is_empty() || arg.contains([' ', ',']) => {
            session.reply(
                ctx,
                ERR_INVALIDMODEPARAM,
                &[chan, "k", "*", "Key is not well-formed"],
            );
            false
        }
        'l' if !arg.parse::<usize>().is_ok_and(|limit| limit > 0) => {
            session.reply(
                ctx,
                ERR_INVALIDMODEPARAM,
                &[
                    chan,
                    "l",
                    if arg.is_empty() { "*" } else { arg },
                    "Invalid limit: a number above 0",
                ],
            );
            false
        }
        _ => true,
    }
}

fn user_mode(session: &mut IrcSession, m: &Message<'_>, ctx: &Ctx) -> Flow {
    let target = m.params[0];
    let me = session.target().to_string();
    if !target.eq_ignore_ascii_case(&me) {
        let online = ctx.is_online(target);
        if online {
            session.reply(
                ctx,
                ERR_USERSDONTMATCH,
                &["Can't change mode for other users"],
            );
        } else {
            session.reply(ctx, ERR_NOSUCHNICK, &[target, "No such nick/channel"]);
        }
        return Flow::Continue;
    }
    if let Some(modes) = m.params.get(1) {
        let mut add = true;
        let mut applied = String::new();
        for c in modes.chars() {
            match c {
                '+' => add = true,
                '-' => add = false,
                'i' => {
                    if session.invisible != add {
                        session.invisible = add;
                        ctx.set_invisible(add);
                        applied.push(if add { '+' } else { '-' });
                        applied.push('i');
                    }
                }
                // Operator status comes from OPER only; it can be dropped here.
                'o' if !add && session.oper => {
                    session.oper = false;
                    ctx.set_oper(false);
                    applied.push_str("-o");
                }
                'o' => {}
                // Bot mode (ISUPPORT BOT=B): the core marks the user's messages.
                'B' => {
                    if ctx.set_bot(add) {
                        applied.push(if add { '+' } else { '-' });
                        applied.push('B');
                    }
                }
                _ => session.reply(ctx, ERR_UMODEUNKNOWNFLAG, &["Unknown MODE flag"]),
            }
        }
        if !applied.is_empty() {
            let mut out = BytesMut::new();
            write_message(&mut out, &[], Some(&me), "MODE", &[&me, &applied], false);
            session.send(ctx, out.freeze());
        }
        return Flow::Continue;
    }
    let mut modes = String::from("+");
    if ctx.is_bot() {
        modes.push('B');
    }
    if session.invisible {
        modes.push('i');
    }
    if session.oper {
        modes.push('o');
    }
    session.reply(ctx, RPL_UMODEIS, &[&modes]);
    Flow::Continue
}

fn kick(session: &mut IrcSession, m: &Message<'_>, ctx: &Ctx) -> Flow {
    session.context = Context::Kick;
    let Some(room) = room_of(session, ctx, m.params[0]) else {
        return Flow::Continue;
    };
    let reason = m
        .params
        .get(2)
        .filter(|r| !r.is_empty())
        .map(|r| r.to_string());
    for name in m.params[1].split(',') {
        ctx.command(Command::Kick {
            room: room.to_string(),
            name: name.to_string(),
            reason: reason.clone(),
        });
    }
    Flow::Continue
}

fn invite(session: &mut IrcSession, m: &Message<'_>, ctx: &Ctx) -> Flow {
    session.context = Context::Invite;
    if let Some(room) = room_of(session, ctx, m.params[1]) {
        ctx.command(Command::Invite {
            name: m.params[0].to_string(),
            room: room.to_string(),
        });
    }
    Flow::Continue
}

fn away(_session: &mut IrcSession, m: &Message<'_>, ctx: &Ctx) -> Flow {
    ctx.command(Command::Away {
        message: m
            .params
            .first()
            .filter(|t| !t.is_empty())
            .map(|t| t.to_string()),
    });
    Flow::Continue
}

fn ison(session: &mut IrcSession, m: &Message<'_>, ctx: &Ctx) -> Flow {
    session.context = Context::Ison;
    let names = m
        .params
        .iter()
        .flat_map(|p| p.split_whitespace())
        .take(64)
        .map(str::to_string)
        .collect();
    ctx.command(Command::Lookup { names });
    Flow::Continue
}

fn userhost(session: &mut IrcSession, m: &Message<'_>, ctx: &Ctx) -> Flow {
    session.context = Context::Userhost;
    let names = m.params.iter().take(5).map(|n| n.to_string()).collect();
    ctx.command(Command::Lookup { names });
    Flow::Continue
}

fn oper(session: &mut IrcSession, m: &Message<'_>, ctx: &Ctx) -> Flow {
    let opers = &ctx.shared.irc.opers;
    if opers.is_empty() {
        session.reply(ctx, ERR_NOOPERHOST, &["No O-lines for your host"]);
        return Flow::Continue;
    }
    let ok = opers.iter().any(|(name, password)| {
        name == m.params[0] && constant_time_eq(password.as_bytes(), m.params[1].as_bytes())
    });
    if !ok {
        tracing::warn!(peer = %session.peer, "failed OPER attempt");
        session.reply(ctx, ERR_PASSWDMISMATCH, &["Password incorrect"]);
        return Flow::Continue;
    }
    session.oper = true;
    ctx.set_oper(true);
    session.reply(ctx, RPL_YOUREOPER, &["You are now an IRC operator"]);
    let me = session.target().to_string();
    let mut out = BytesMut::new();
    write_message(&mut out, &[], Some(&me), "MODE", &[&me, "+o"], false);
    session.send(ctx, out.freeze());
    Flow::Continue
}

/// Compares secrets in time that does not depend on where they differ.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn kill(_session: &mut IrcSession, m: &Message<'_>, ctx: &Ctx) -> Flow {
    ctx.command(Command::Kill {
        name: m.params[0].to_string(),
        reason: m.params[1].to_string(),
    });
    Flow::Continue
}

/// Whether a command's optional server parameter names another server: then 402 is
/// sent and the command does nothing. This server answers to its name, a mask that
/// matches it, and the nick of anyone online (who is on this server, or one it speaks
/// for).
fn other_server(session: &mut IrcSession, m: &Message<'_>, ctx: &Ctx) -> bool {
    let Some(target) = m.params.first().filter(|t| !t.is_empty()) else {
        return false;
    };
    let server = &ctx.shared.irc.server_name;
    if confab_core::glob_match(target, server) || ctx.is_online(target) {
        return false;
    }
    session.reply(ctx, ERR_NOSUCHSERVER, &[target, "No such server"]);
    true
}

fn version(session: &mut IrcSession, _m: &Message<'_>, ctx: &Ctx) -> Flow {
    let server = ctx.shared.irc.server_name.clone();
    session.reply(
        ctx,
        RPL_VERSION,
        &[super::VERSION, &server, "confab chat server"],
    );
    for line in session.isupport(ctx) {
        session.send(ctx, line);
    }
    Flow::Continue
}

fn time(session: &mut IrcSession, _m: &Message<'_>, ctx: &Ctx) -> Flow {
    let server = ctx.shared.irc.server_name.clone();
    session.reply(ctx, RPL_TIME, &[&server, &super::iso_time(super::now_ms())]);
    Flow::Continue
}

fn motd(session: &mut IrcSession, _m: &Message<'_>, ctx: &Ctx) -> Flow {
    for line in session.motd(ctx) {
        session.send(ctx, line);
    }
    Flow::Continue
}

fn lusers(session: &mut IrcSession, _m: &Message<'_>, ctx: &Ctx) -> Flow {
    for line in session.lusers(ctx) {
        session.send(ctx, line);
    }
    Flow::Continue
}

fn info(session: &mut IrcSession, _m: &Message<'_>, ctx: &Ctx) -> Flow {
    let started = super::iso_time(
        ctx.shared
            .started
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64),
    );
    let lines = [
        format!("{} ({})", super::VERSION, ctx.shared.irc.server_name),
        "confab: one chat for nc, IRC and the web".to_string(),
        format!("Running since {started}"),
    ];
    for line in &lines {
        session.reply(ctx, RPL_INFO, &[line]);
    }
    session.reply(ctx, RPL_ENDOFINFO, &["End of INFO list"]);
    Flow::Continue
}

/// WALLOPS goes to users with user mode `+w`; confab has no such mode, so an
/// operator's WALLOPS reaches nobody. Anyone else is refused.
fn wallops(session: &mut IrcSession, _m: &Message<'_>, ctx: &Ctx) -> Flow {
    if !session.oper {
        session.reply(
            ctx,
            ERR_NOPRIVILEGES,
            &["Permission Denied- You're not an IRC operator"],
        );
    }
    Flow::Continue
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_has_each_command_once() {
        let mut names: Vec<&str> = COMMANDS.iter().map(|s| s.name).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), COMMANDS.len());
    }

    #[test]
    fn secrets_compare_by_content() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}
