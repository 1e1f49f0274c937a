//! IRCv3 `CHATHISTORY` (the `draft/chathistory` specification): LATEST, BEFORE, AFTER,
//! AROUND, BETWEEN and TARGETS, answered from the store thread in a `chathistory` batch
//! with server-time and msgid tags.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use confab_core::MessageKind;
use confab_store::{Conversation, Range, StoredMessage};
use confab_wire::irc::encode::{put_server_line, server_line};
use confab_wire::irc::{write_message, Message};
use confab_wire::time::{iso_time, parse_iso_time};

use super::{labeled_response, split, IrcSession};
use crate::ctx::{Ctx, Later};
use crate::history::{other_name, room_conversation, History, Thread};
use crate::outbox::Outgoing;
use crate::protocol::Flow;

/// The most messages one request returns (ISUPPORT `CHATHISTORY`).
pub(super) const MAX_LIMIT: usize = 100;

/// What a request is told when the store thread's queue is full (nothing was asked).
const BUSY: &str = "The server is busy; ask again in a moment";

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
    let line = server_line(&ctx.shared.irc.server_name, "FAIL", &all, true);
    session.send(ctx, line);
}

pub(super) fn chathistory(session: &mut IrcSession, m: &Message<'_>, ctx: &Ctx) -> Flow {
    let sub = m.params[0].to_ascii_uppercase();
    let Some(history) = ctx.history() else {
        let text = "This server keeps no history";
        fail(session, ctx, "MESSAGE_ERROR", &[&sub, text]);
        return Flow::Continue;
    };
    if sub == "TARGETS" {
        targets(session, m, ctx, history);
        return Flow::Continue;
    }
    let Some(target) = m.params.get(1).copied() else {
        fail(session, ctx, "INVALID_PARAMS", &[&sub, "Missing target"]);
        return Flow::Continue;
    };
    let Some((conversation, shown_target)) = thread_of(session, ctx, &sub, target) else {
        return Flow::Continue;
    };
    let (Some((after, range)), Some(limit)) = (
        parse_range(&sub, &m.params[2..]),
        limit_at(m, m.params.len() - 1),
    ) else {
        fail(
            session,
            ctx,
            "INVALID_PARAMS",
            &[&sub, "Invalid parameters"],
        );
        return Flow::Continue;
    };
    let server = ctx.shared.irc.server_name.clone();
    let batch = session.next_batch();
    let with_batch = session.caps.batch;
    let problem = history.write_problem();
    let answer = Answer::new(session, ctx);
    let what = sub.clone();
    let queued = history.run(move |store| match conversation.read(store, range, limit) {
        Ok(mut messages) => {
            let mut out = BytesMut::new();
            if let Some(problem) = &problem {
                out.extend_from_slice(&warning_line(&server, &sub, problem));
            }
            // LATEST with a reference: the newest messages, but only those after it.
            messages.retain(|m| match after {
                Ref::Any => true,
                Ref::Time(t) => m.time_ms > t,
                Ref::Id(id) => m.id > id,
            });
            out.extend_from_slice(&encode_batch(
                &server,
                &batch,
                with_batch,
                &shown_target,
                &messages,
            ));
            answer.send(out);
        }
        Err(e) => answer.send(error_line(&server, &sub, &e.to_string())),
    });
    if !queued {
        fail(session, ctx, "MESSAGE_ERROR", &[&what, BUSY]);
    }
    Flow::Continue
}

/// The limit at parameter `i`, within what one request may return.
fn limit_at(m: &Message<'_>, i: usize) -> Option<usize> {
    m.params
        .get(i)
        .and_then(|l| l.parse::<usize>().ok())
        .map(|l| l.clamp(1, MAX_LIMIT))
}

/// What `target` names for this client: a channel it is on, or its direct
/// conversations with a nick (see [`Thread::direct`]), with the target as the batch
/// shows it. `None` after telling the client why not.
fn thread_of(
    session: &mut IrcSession,
    ctx: &Ctx,
    sub: &str,
    target: &str,
) -> Option<(Thread, String)> {
    match target.strip_prefix('#') {
        Some(room) => {
            let found = session
                .channels
                .iter()
                .find(|r| r.as_str().eq_ignore_ascii_case(room))
                .map(|room| {
                    (
                        Thread::Room(room_conversation(room.as_str())),
                        format!("#{room}"),
                    )
                });
            if found.is_none() {
                let text = "You are not on that channel";
                fail(session, ctx, "INVALID_TARGET", &[sub, target, text]);
            }
            found
        }
        None if !ctx.may_read_direct() => {
            let text = "Log in to read this nick's direct messages";
            fail(session, ctx, "INVALID_TARGET", &[sub, target, text]);
            None
        }
        None => ctx.direct_thread(target).map(|t| (t, target.to_string())),
    }
}

/// The slice a subcommand asks for, from its references, and for LATEST the point
/// after which messages count; `None` when the references do not fit the subcommand.
fn parse_range(sub: &str, params: &[&str]) -> Option<(Ref, Range)> {
    let refs: Vec<Option<Ref>> = params.iter().map(|r| parse_ref(r)).collect();
    match (sub, refs.as_slice()) {
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
    }
}

/// `CHATHISTORY TARGETS`: the channels this client is on and its direct conversations
/// with activity between two times, newest first, in a `draft/chathistory-targets` batch.
fn targets(session: &mut IrcSession, m: &Message<'_>, ctx: &Ctx, history: &History) {
    let (Some(Ref::Time(a)), Some(Ref::Time(b)), Some(limit)) = (
        m.params.get(1).and_then(|r| parse_ref(r)),
        m.params.get(2).and_then(|r| parse_ref(r)),
        limit_at(m, 3),
    ) else {
        let text = "TARGETS takes two timestamps and a limit";
        fail(session, ctx, "INVALID_PARAMS", &["TARGETS", text]);
        return;
    };
    let mut rooms: Vec<String> = session
        .channels
        .iter()
        .map(|r| room_conversation(r.as_str()))
        .collect();
    let mut names: Vec<String> = session.channels.iter().map(|r| format!("#{r}")).collect();
    // Direct conversations count too: those of this user's party (never of a name's
    // earlier holders), and not for an impostor of a registered name.
    let (parties, me) = if ctx.may_read_direct() {
        let (me, parties) = ctx.name_and_parties();
        (parties, me)
    } else {
        (Vec::new(), String::new())
    };
    let name_of_party = ctx.party_names();
    let server = ctx.shared.irc.server_name.clone();
    let batch = session.next_batch();
    let answer = Answer::new(session, ctx);
    let queued = history.run(move |store| {
        let found = direct_targets(&*store, &name_of_party, &parties, &me).and_then(|direct| {
            for (conversation, name) in direct {
                rooms.push(conversation);
                names.push(name);
            }
            store.active_conversations(&rooms, a, b, limit)
        });
        match found {
            Ok(found) => {
                let mut out = BytesMut::new();
                let start = format!("+{batch}");
                let params = [start.as_str(), "draft/chathistory-targets"];
                put_server_line(&mut out, &server, "BATCH", &params, false);
                // An impostor waiting out the login grace shows under the same name as
                // the account: the newest of the two is listed.
                let mut shown = std::collections::HashSet::new();
                for summary in found {
                    let i = rooms
                        .iter()
                        .position(|r| *r == summary.conversation)
                        .unwrap_or(0);
                    if !shown.insert(confab_core::Key::of(&names[i])) {
                        continue;
                    }
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
                let end = format!("-{batch}");
                put_server_line(&mut out, &server, "BATCH", &[&end], false);
                answer.send(out);
            }
            Err(e) => answer.send(error_line(&server, "TARGETS", &e.to_string())),
        }
    });
    if !queued {
        fail(session, ctx, "MESSAGE_ERROR", &["TARGETS", BUSY]);
    }
}

/// Where a CHATHISTORY answer goes: the client's outbox, labeled there when the
/// command had a label (its response is made on the store thread, after the session
/// has moved on, so the label goes with it; see `IrcSession::take_label`).
struct Answer {
    outbox: Later,
    server: Arc<str>,
    label: Option<(String, Option<String>)>,
}

impl Answer {
    fn new(session: &mut IrcSession, ctx: &Ctx) -> Answer {
        Answer {
            outbox: ctx.outbox(),
            server: ctx.shared.irc.server_name.as_str().into(),
            label: session.take_label(),
        }
    }

    fn send(&self, out: BytesMut) {
        let bytes = match &self.label {
            Some((label, batch)) => labeled_response(&self.server, label, &out, batch.as_deref()),
            None => out.freeze(),
        };
        self.outbox.push(Outgoing::Raw(bytes));
    }
}

/// Every direct conversation of `parties` (the asker's, called `me`) with the name the
/// other side goes by: an account's name, a connected user's name now, or, for a
/// connection that ended, the name it last used (asking for that name finds it again,
/// see [`Thread::direct`]).
fn direct_targets(
    store: &dyn confab_store::Store,
    name_of_party: &impl Fn(&str) -> Option<String>,
    parties: &[String],
    me: &str,
) -> Result<Vec<(String, String)>, confab_store::StoreError> {
    let mut found = Vec::new();
    for party in parties {
        for conversation in store.direct_conversations(party)? {
            let Some(other) = Conversation::other_party(&conversation, party) else {
                continue;
            };
            let now = name_of_party(other);
            let name = match now {
                Some(name) => Some(name),
                None => other_name(store, &conversation, me)?,
            };
            if let Some(name) = name {
                found.push((conversation, name));
            }
        }
    }
    Ok(found)
}

/// Says, before a batch, that history is missing recent messages because writes fail
/// (a standard-replies `WARN`: the answer that follows is still good).
fn warning_line(server: &str, sub: &str, problem: &str) -> BytesMut {
    let mut out = BytesMut::new();
    let params = ["CHATHISTORY", "HISTORY_NOT_SAVED", sub, problem];
    put_server_line(&mut out, server, "WARN", &params, true);
    out
}

fn error_line(server: &str, sub: &str, error: &str) -> BytesMut {
    tracing::error!("chathistory failed: {error}");
    let mut out = BytesMut::new();
    let text = "History is unavailable right now";
    let params = ["CHATHISTORY", "MESSAGE_ERROR", sub, text];
    put_server_line(&mut out, server, "FAIL", &params, true);
    out
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
        let start = format!("+{batch}");
        let params = [start.as_str(), "chathistory", target];
        put_server_line(&mut out, server, "BATCH", &params, false);
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
        let action = m.kind == MessageKind::Action;
        let command = match m.kind {
            MessageKind::Notice => "NOTICE",
            MessageKind::Normal | MessageKind::Action => "PRIVMSG",
            // Never stored, so never replayed.
            MessageKind::Tags => continue,
        };
        // A message longer than one line is replayed as it was delivered live: in
        // parts, each with the message's time and batch, the first with its msgid.
        let overhead = 1 + m.sender_mask.len() + 1 + command.len() + 1 + to.len() + 2 + 2;
        let overhead = overhead + if action { 9 } else { 0 };
        let parts: Vec<&str> = if split::fits(overhead, m.text.len()) {
            vec![&m.text]
        } else {
            split::parts(&m.text, split::budget(overhead)).collect()
        };
        for (i, part) in parts.into_iter().enumerate() {
            // The msgid names the message on its first line only (see `put_message_with`).
            if i == 1 {
                tags.retain(|(key, _)| *key != "msgid");
            }
            let text = if action {
                format!("\x01ACTION {part}\x01")
            } else {
                part.to_string()
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
    }
    if with_batch {
        put_server_line(&mut out, server, "BATCH", &[&format!("-{batch}")], false);
    }
    out.freeze()
}
