//! IRCv3 `CHATHISTORY` (the `draft/chathistory` specification): LATEST, BEFORE, AFTER,
//! AROUND, BETWEEN and TARGETS, answered from the store thread in a `chathistory` batch
//! with server-time and msgid tags.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use confab_core::MessageKind;
use confab_store::{Range, StoredMessage};
use confab_wire::irc::{write_message, Message};
use confab_wire::time::{iso_time, parse_iso_time};

use super::IrcSession;
use crate::connection::{Ctx, Flow};
use crate::history::{direct_conversation, may_read_direct, room_conversation};
use crate::outbox::{Outbox, Outgoing};

/// The most messages one request returns (ISUPPORT `CHATHISTORY`).
pub(super) const MAX_LIMIT: usize = 100;

/// A message reference: `timestamp=...`, `msgid=...` or `*`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ref {
    Any,
    Time(u64),
    Id(u64),
}

fn parse_ref(text: &str) -> Option<Ref> {
    if text == "*" {
        return Some(Ref::Any);
    }
    if let Some(time) = text.strip_prefix("timestamp=") {
        return parse_iso_time(time).map(Ref::Time);
    }
    text.strip_prefix("msgid=")?.parse().ok().map(Ref::Id)
}

fn fail(session: &mut IrcSession, ctx: &Ctx, code: &str, params: &[&str]) {
    let mut all = vec!["CHATHISTORY", code];
    all.extend_from_slice(params);
    let mut out = BytesMut::new();
    write_message(
        &mut out,
        &[],
        Some(&ctx.shared.irc.server_name),
        "FAIL",
        &all,
        true,
    );
    session.send(ctx, out.freeze());
}

pub(super) fn chathistory(session: &mut IrcSession, m: &Message<'_>, ctx: &Ctx) -> Flow {
    let sub = m.params[0].to_ascii_uppercase();
    let Some(history) = ctx.shared.history.clone() else {
        fail(
            session,
            ctx,
            "MESSAGE_ERROR",
            &[&sub, "This server keeps no history"],
        );
        return Flow::Continue;
    };
    let limit_at = |i: usize| {
        m.params
            .get(i)
            .and_then(|l| l.parse::<usize>().ok())
            .map(|l| l.clamp(1, MAX_LIMIT))
    };
    let me = session.target().to_string();
    if sub == "TARGETS" {
        let (Some(Ref::Time(a)), Some(Ref::Time(b)), Some(limit)) = (
            m.params.get(1).and_then(|r| parse_ref(r)),
            m.params.get(2).and_then(|r| parse_ref(r)),
            limit_at(3),
        ) else {
            fail(
                session,
                ctx,
                "INVALID_PARAMS",
                &[&sub, "TARGETS takes two timestamps and a limit"],
            );
            return Flow::Continue;
        };
        let mut rooms: Vec<String> = session
            .channels
            .iter()
            .map(|r| room_conversation(r.as_str()))
            .collect();
        let mut names: Vec<String> = session.channels.iter().map(|r| format!("#{r}")).collect();
        // Direct conversations count too, but only for the name's real owner.
        let me_key = may_read_direct(ctx.shared, ctx.id)
            .then(|| confab_core::Key::of(&me).as_str().to_string());
        let outbox = ctx.outbox();
        let server = ctx.shared.irc.server_name.clone();
        let batch = session.next_batch();
        history.run(move |store| {
            match me_key
                .map_or(Ok(Vec::new()), |key| store.direct_conversations(&key))
                .and_then(|direct| {
                    for conversation in direct {
                        // `@a@b`: the target shown is the other party.
                        let other = conversation
                            .trim_start_matches('@')
                            .split('@')
                            .find(|n| !n.eq_ignore_ascii_case(&me))
                            .unwrap_or(&me)
                            .to_string();
                        rooms.push(conversation);
                        names.push(other);
                    }
                    store.active_conversations(&rooms, a, b, limit)
                }) {
                Ok(found) => {
                    let mut out = BytesMut::new();
                    write_message(
                        &mut out,
                        &[],
                        Some(&server),
                        "BATCH",
                        &[&format!("+{batch}"), "draft/chathistory-targets"],
                        false,
                    );
                    for summary in found {
                        let i = rooms
                            .iter()
                            .position(|r| *r == summary.conversation)
                            .unwrap_or(0);
                        let time = format!("timestamp={}", iso_time(summary.latest_ms));
                        write_message(
                            &mut out,
                            &[("batch", &batch)],
                            Some(&server),
                            "CHATHISTORY",
                            &["TARGETS", &names[i], &time],
                            false,
                        );
                    }
                    write_message(
                        &mut out,
                        &[],
                        Some(&server),
                        "BATCH",
                        &[&format!("-{batch}")],
                        false,
                    );
                    outbox.push(Outgoing::Raw(out.freeze()));
                }
                Err(e) => push_error(&outbox, &server, "TARGETS", &e.to_string()),
            }
        });
        return Flow::Continue;
    }
    let Some(target) = m.params.get(1).copied() else {
        fail(session, ctx, "INVALID_PARAMS", &[&sub, "Missing target"]);
        return Flow::Continue;
    };
    let (conversation, shown_target) = match target.strip_prefix('#') {
        Some(room) => match session
            .channels
            .iter()
            .find(|r| r.as_str().eq_ignore_ascii_case(room))
        {
            Some(room) => (room_conversation(room.as_str()), format!("#{room}")),
            None => {
                fail(
                    session,
                    ctx,
                    "INVALID_TARGET",
                    &[&sub, target, "You are not on that channel"],
                );
                return Flow::Continue;
            }
        },
        None if !may_read_direct(ctx.shared, ctx.id) => {
            let text = "Log in to read this nick's direct messages";
            fail(session, ctx, "INVALID_TARGET", &[&sub, target, text]);
            return Flow::Continue;
        }
        None => (direct_conversation(&me, target), target.to_string()),
    };
    let refs: Vec<Option<Ref>> = m.params[2..].iter().map(|r| parse_ref(r)).collect();
    let range = match (sub.as_str(), refs.as_slice()) {
        ("LATEST", [Some(r), _]) => Some((*r, Range::Latest)),
        ("BEFORE", [Some(Ref::Time(t)), _]) => Some((Ref::Any, Range::BeforeTime(*t))),
        ("BEFORE", [Some(Ref::Id(id)), _]) => Some((Ref::Any, Range::BeforeId(*id))),
        ("AFTER", [Some(Ref::Time(t)), _]) => Some((Ref::Any, Range::AfterTime(*t))),
        ("AFTER", [Some(Ref::Id(id)), _]) => Some((Ref::Any, Range::AfterId(*id))),
        ("AROUND", [Some(Ref::Time(t)), _]) => Some((Ref::Any, Range::AroundTime(*t))),
        ("AROUND", [Some(Ref::Id(id)), _]) => Some((Ref::Any, Range::AroundId(*id))),
        ("BETWEEN", [Some(Ref::Time(a)), Some(Ref::Time(b)), _]) => {
            Some((Ref::Any, Range::BetweenTimes(*a, *b)))
        }
        ("BETWEEN", [Some(Ref::Id(a)), Some(Ref::Id(b)), _]) => {
            Some((Ref::Any, Range::BetweenIds(*a, *b)))
        }
        _ => None,
    };
    let limit = limit_at(m.params.len() - 1);
    let (Some((after, range)), Some(limit)) = (range, limit) else {
        fail(
            session,
            ctx,
            "INVALID_PARAMS",
            &[&sub, "Invalid parameters"],
        );
        return Flow::Continue;
    };
    let outbox = ctx.outbox();
    let server = ctx.shared.irc.server_name.clone();
    let batch = session.next_batch();
    let with_batch = session.caps.batch;
    let problem = history.write_problem();
    history.run(
        move |store| match store.history(&conversation, range, limit) {
            Ok(mut messages) => {
                if let Some(problem) = &problem {
                    push_warning(&outbox, &server, &sub, problem);
                }
                // LATEST with a reference: the newest messages, but only those after it.
                messages.retain(|m| match after {
                    Ref::Any => true,
                    Ref::Time(t) => m.time_ms > t,
                    Ref::Id(id) => m.id > id,
                });
                outbox.push(Outgoing::Raw(encode_batch(
                    &server,
                    &batch,
                    with_batch,
                    &shown_target,
                    &messages,
                )));
            }
            Err(e) => push_error(&outbox, &server, &sub, &e.to_string()),
        },
    );
    Flow::Continue
}

/// Says, before a batch, that history is missing recent messages because writes fail
/// (a standard-replies `WARN`: the answer that follows is still good).
fn push_warning(outbox: &Arc<Outbox>, server: &str, sub: &str, problem: &str) {
    let mut out = BytesMut::new();
    write_message(
        &mut out,
        &[],
        Some(server),
        "WARN",
        &["CHATHISTORY", "HISTORY_NOT_SAVED", sub, problem],
        true,
    );
    outbox.push(Outgoing::Raw(out.freeze()));
}

fn push_error(outbox: &Arc<Outbox>, server: &str, sub: &str, error: &str) {
    tracing::error!("chathistory failed: {error}");
    let mut out = BytesMut::new();
    write_message(
        &mut out,
        &[],
        Some(server),
        "FAIL",
        &[
            "CHATHISTORY",
            "MESSAGE_ERROR",
            sub,
            "History is unavailable right now",
        ],
        true,
    );
    outbox.push(Outgoing::Raw(out.freeze()));
}

/// The messages as a `chathistory` batch (or bare lines for a client without batch).
fn encode_batch(
    server: &str,
    batch: &str,
    with_batch: bool,
    target: &str,
    messages: &[StoredMessage],
) -> Bytes {
    let mut out = BytesMut::new();
    if with_batch {
        write_message(
            &mut out,
            &[],
            Some(server),
            "BATCH",
            &[&format!("+{batch}"), "chathistory", target],
            false,
        );
    }
    for m in messages {
        let time = iso_time(m.time_ms);
        let id = m.id.to_string();
        let mut tags = vec![("time", time.as_str()), ("msgid", id.as_str())];
        if with_batch {
            tags.push(("batch", batch));
        }
        let to = if m.to_room {
            format!("#{}", m.target)
        } else {
            m.target.clone()
        };
        let (command, text) = match m.kind {
            MessageKind::Normal => ("PRIVMSG", m.text.clone()),
            MessageKind::Notice => ("NOTICE", m.text.clone()),
            MessageKind::Action => ("PRIVMSG", format!("\x01ACTION {}\x01", m.text)),
            // Never stored, so never replayed.
            MessageKind::Tags => ("TAGMSG", String::new()),
        };
        write_message(
            &mut out,
            &tags,
            Some(&m.sender_mask),
            command,
            &[&to, &text],
            true,
        );
    }
    if with_batch {
        write_message(
            &mut out,
            &[],
            Some(server),
            "BATCH",
            &[&format!("-{batch}")],
            false,
        );
    }
    out.freeze()
}
