//! Core events as IRC lines: pure functions from an event (and what the recipient's
//! caps ask for, as plain flags) to bytes. The server caches each result in the event's
//! envelope, one slot per variant, so that an event is written once per variant
//! whatever the number of recipients.
//!
//! A broadcast event is written as a body, the same for every recipient
//! ([`encode_broadcast`]), and a tag section ([`encode_tags`]: server-time alone, or
//! every tag for message-tags), sent before it. A message too long for one line is
//! split ([`super::split`]), and then every line needs its own tags, so the tagged
//! variants carry whole lines. Lines the server says itself (`:server COMMAND ...`)
//! go through [`server_line`].

use bytes::{BufMut, Bytes, BytesMut};
use confab_core::{Event, Message, MessageKind, RoomName, Source, Target};

use super::{escape_tag, mode_string, split, write_message};
use crate::time::iso_time;

/// A room as IRC names it: `#room`.
#[inline]
pub fn channel(room: &RoomName) -> String {
    format!("#{room}")
}

/// A user as a line's source: `nick!user@host`.
#[inline]
pub fn prefix(source: &Source) -> String {
    format!("{}!{}@{}", source.name, source.user, source.host)
}

/// Writes a line the server says itself, `:server COMMAND params...`, at the end of
/// `out`: the last parameter is trailing when it must be, or when `trailing` asks for
/// it (numerics, NOTICE, FAIL and the like always do).
#[inline]
pub fn put_server_line(
    out: &mut BytesMut,
    server: &str,
    command: &str,
    params: &[&str],
    trailing: bool,
) {
    write_message(out, &[], Some(server), command, params, trailing);
}

/// A line the server says itself, as [`put_server_line`] writes it.
pub fn server_line(server: &str, command: &str, params: &[&str], trailing: bool) -> Bytes {
    let mut out = BytesMut::with_capacity(64);
    put_server_line(&mut out, server, command, params, trailing);
    out.freeze()
}

/// A message as IRC writes it, `:nick!user@host PRIVMSG target :text`, straight into
/// one buffer of the right size. Messages are most of what a server writes, and going
/// through `write_message` cost three allocations and two copies of the text each (the
/// `writes_messages_as_write_message_would` property test keeps the two identical).
pub fn encode_message(m: &Message) -> Bytes {
    let size = m.from.name.as_str().len() + m.from.user.len() + m.from.host.len();
    let mut out = BytesMut::with_capacity(size + m.text.len() + 64);
    put_message(&mut out, m);
    out.freeze()
}

/// Writes one message as [`encode_message`] renders it, at the end of `out`.
#[inline]
pub fn put_message(out: &mut BytesMut, m: &Message) {
    put_message_with(out, m, None);
}

/// The bytes of a message's line besides its text: `:nick!user@host PRIVMSG target :`,
/// the CTCP framing of an ACTION and CR LF.
#[inline]
pub fn overhead(m: &Message) -> usize {
    let from = &m.from;
    let target = match &m.to {
        Target::Room(room) => 1 + room.as_str().len(),
        Target::User(name) => name.as_str().len(),
    };
    let command = if m.kind == MessageKind::Notice { 6 } else { 7 };
    let action = if m.kind == MessageKind::Action { 9 } else { 0 };
    let source = 1 + from.name.as_str().len() + 1 + from.user.len() + 1 + from.host.len();
    source + 1 + command + 1 + target + 2 + action + 2
}

/// Whether a message is too long for one IRC line, and so is sent as several.
#[inline]
pub fn is_split(event: &Event) -> bool {
    matches!(event, Event::Message(m) if !split::fits(overhead(m), m.text.len()))
}

/// Writes message `m`, after its tag section when `tags` is `Some(all)` (all tags, or
/// the time alone): as one line when it fits in 512 bytes, else as several (`split`).
/// Every part has the time (and account) tags; only the first has the `msgid`, as with
/// Ergo, since clients take a msgid to name one line and may drop a second line with
/// the same one as a duplicate. Checking the length is all a message that fits pays.
#[inline]
pub fn put_message_with(out: &mut BytesMut, m: &Message, tags: Option<bool>) {
    let overhead = overhead(m);
    if split::fits(overhead, m.text.len()) {
        if let Some(all) = tags {
            put_message_tags(out, m, all);
        }
        return put_line(out, m, &m.text);
    }
    for (i, part) in split::parts(&m.text, split::budget(overhead)).enumerate() {
        if let Some(all) = tags {
            let id = (i == 0).then_some(m.id);
            put_tags(out, m.time_ms, id, Some(&m.from), m.tags.as_deref(), all);
        }
        put_line(out, m, part);
    }
}

/// Writes one line of message `m` with `text` (the whole text or one part of it).
pub fn put_line(out: &mut BytesMut, m: &Message, text: &str) {
    let from = &m.from;
    let (command, action): (&[u8], bool) = match m.kind {
        MessageKind::Normal => (b"PRIVMSG", false),
        MessageKind::Notice => (b"NOTICE", false),
        MessageKind::Action => (b"PRIVMSG", true),
        MessageKind::Tags => (b"TAGMSG", false),
    };
    let target = match &m.to {
        Target::Room(room) => room.as_str(),
        Target::User(name) => name.as_str(),
    };
    out.put_u8(b':');
    out.put_slice(from.name.as_str().as_bytes());
    out.put_u8(b'!');
    out.put_slice(from.user.as_bytes());
    out.put_u8(b'@');
    out.put_slice(from.host.as_bytes());
    out.put_u8(b' ');
    out.put_slice(command);
    out.put_u8(b' ');
    if matches!(m.to, Target::Room(_)) {
        out.put_u8(b'#');
    }
    out.put_slice(target.as_bytes());
    if m.kind == MessageKind::Tags {
        out.put_slice(b"\r\n");
        return;
    }
    out.put_slice(b" :");
    if action {
        out.put_slice(b"\x01ACTION ");
    }
    out.put_slice(text.as_bytes());
    if action {
        out.put_u8(1);
    }
    out.put_slice(b"\r\n");
}

/// The body of a broadcast event as IRC writes it, the same for every recipient. The
/// recipient-dependent part (tags) is a separate chunk.
pub fn encode_broadcast(event: &Event, extended_join: bool) -> Bytes {
    let mut out = BytesMut::with_capacity(128);
    match event {
        Event::Message(m) => return encode_message(m),
        Event::Joined { room, who, .. } => {
            let chan = channel(room);
            if extended_join {
                let account = who.account.as_deref().unwrap_or("*");
                write_message(
                    &mut out,
                    &[],
                    Some(&prefix(who)),
                    "JOIN",
                    &[&chan, account, &who.realname],
                    true,
                );
            } else {
                write_message(&mut out, &[], Some(&prefix(who)), "JOIN", &[&chan], false);
            }
        }
        Event::Parted { room, who, reason } => {
            let chan = channel(room);
            match reason {
                Some(reason) => write_message(
                    &mut out,
                    &[],
                    Some(&prefix(who)),
                    "PART",
                    &[&chan, reason],
                    true,
                ),
                None => write_message(&mut out, &[], Some(&prefix(who)), "PART", &[&chan], false),
            }
        }
        Event::Quit { who, reason } => {
            write_message(&mut out, &[], Some(&prefix(who)), "QUIT", &[reason], true);
        }
        Event::NickChanged { old, new } => {
            write_message(
                &mut out,
                &[],
                Some(&prefix(old)),
                "NICK",
                &[new.as_str()],
                false,
            );
        }
        Event::TopicChanged { room, by, text } => {
            write_message(
                &mut out,
                &[],
                Some(&prefix(by)),
                "TOPIC",
                &[&channel(room), text],
                true,
            );
        }
        Event::ModeChanged { room, by, changes } => {
            let (modes, args) = mode_string(changes);
            let chan = channel(room);
            let mut params = vec![chan.as_str(), modes.as_str()];
            params.extend(args);
            write_message(&mut out, &[], Some(&prefix(by)), "MODE", &params, false);
        }
        Event::Kicked {
            room,
            by,
            target,
            reason,
        } => {
            write_message(
                &mut out,
                &[],
                Some(&prefix(by)),
                "KICK",
                &[&channel(room), target.as_str(), reason],
                true,
            );
        }
        Event::AwayChanged { who, message } => put_away(&mut out, who, message.as_deref()),
        _ => {}
    }
    out.freeze()
}

/// Writes `:nick!user@host AWAY :message` (away-notify), or `AWAY` alone for a
/// return, at the end of `out`.
pub fn put_away(out: &mut BytesMut, who: &Source, message: Option<&str>) {
    match message {
        Some(message) => write_message(out, &[], Some(&prefix(who)), "AWAY", &[message], true),
        None => write_message(out, &[], Some(&prefix(who)), "AWAY", &[], false),
    }
}

/// The tag section for a broadcast event: server-time always, and with message-tags
/// also the message id, the sender's account, `bot` for a bot, and a message's client
/// tags (last, as the message-tags spec asks of server tags before client ones).
///
/// A message carries its own time; any other event is stamped with the time `now_ms`
/// gives, asked only for such an event (the server passes its clock).
pub fn encode_tags(event: &Event, all: bool, now_ms: impl FnOnce() -> u64) -> Bytes {
    let mut out = BytesMut::new();
    match event {
        Event::Message(m) => {
            // A message split over several lines is written here whole, each line
            // with its tags, since one tag section before the body would tag only
            // the first line (the server then sends no body).
            if split::fits(overhead(m), m.text.len()) {
                put_message_tags(&mut out, m, all);
            } else {
                put_message_with(&mut out, m, Some(all));
            }
        }
        _ => put_tags(&mut out, now_ms(), None, event_source(event), None, all),
    }
    out.freeze()
}

/// Writes a message's tag section, as [`encode_tags`] renders it.
#[inline]
pub fn put_message_tags(out: &mut BytesMut, m: &Message, all: bool) {
    let client_tags = m.tags.as_deref();
    put_tags(out, m.time_ms, Some(m.id), Some(&m.from), client_tags, all);
}

/// Who caused a broadcast event, for the tags that describe them.
pub fn event_source(event: &Event) -> Option<&Source> {
    match event {
        Event::Message(Message { from: who, .. })
        | Event::Joined { who, .. }
        | Event::Parted { who, .. }
        | Event::Quit { who, .. }
        | Event::AwayChanged { who, .. }
        | Event::NickChanged { old: who, .. }
        | Event::TopicChanged { by: who, .. }
        | Event::ModeChanged { by: who, .. }
        | Event::Kicked { by: who, .. } => Some(who),
        _ => None,
    }
}

/// Writes the tag section `encode_tags` renders, at the end of `out`.
pub fn put_tags(
    out: &mut BytesMut,
    time: u64,
    id: Option<u64>,
    from: Option<&Source>,
    client_tags: Option<&str>,
    all: bool,
) {
    let time = iso_time(time);
    let id = id.map(|id| id.to_string());
    let mut tags: Vec<(&str, &str)> = vec![("time", &time)];
    if all {
        if let Some(id) = &id {
            tags.push(("msgid", id));
        }
        if let Some(account) = from.and_then(|f| f.account.as_deref()) {
            tags.push(("account", account));
        }
        // The bot-mode spec: a bare tag, never a value.
        if from.is_some_and(|f| f.bot) {
            tags.push(("bot", ""));
        }
    }
    // `write_message` would add a command; write the tag section alone.
    out.extend_from_slice(b"@");
    for (i, (key, value)) in tags.iter().enumerate() {
        if i > 0 {
            out.extend_from_slice(b";");
        }
        out.extend_from_slice(key.as_bytes());
        if !value.is_empty() {
            out.extend_from_slice(b"=");
            escape_tag(value, out);
        }
    }
    // Client tags are kept escaped as they arrived, so they go out as they are.
    if let (true, Some(client_tags)) = (all, client_tags) {
        out.extend_from_slice(b";");
        out.extend_from_slice(client_tags.as_bytes());
    }
    out.extend_from_slice(b" ");
}

/// A labeled command's response, `bytes` being every line of it: one line gets the
/// label tag, several go in a `labeled-response` batch (`batch` is its reference, when
/// the client has `batch`), none gets an `ACK`.
pub fn labeled_response(server: &str, label: &str, bytes: &[u8], batch: Option<&str>) -> Bytes {
    let text = String::from_utf8_lossy(bytes);
    let lines: Vec<&str> = text.split("\r\n").filter(|l| !l.is_empty()).collect();
    let mut result = BytesMut::new();
    let tag = |line: &str, tag: &str, result: &mut BytesMut| {
        match line.strip_prefix('@') {
            Some(rest) => {
                result.extend_from_slice(b"@");
                result.extend_from_slice(tag.as_bytes());
                result.extend_from_slice(b";");
                result.extend_from_slice(rest.as_bytes());
            }
            None => {
                result.extend_from_slice(b"@");
                result.extend_from_slice(tag.as_bytes());
                result.extend_from_slice(b" ");
                result.extend_from_slice(line.as_bytes());
            }
        }
        result.extend_from_slice(b"\r\n");
    };
    let mut label_tag = BytesMut::new();
    label_tag.extend_from_slice(b"label=");
    escape_tag(label, &mut label_tag);
    let label_tag = String::from_utf8_lossy(&label_tag).into_owned();
    match (lines.len(), batch) {
        (0, _) => tag(&format!(":{server} ACK"), &label_tag, &mut result),
        (1, _) => tag(lines[0], &label_tag, &mut result),
        (_, Some(id)) => {
            tag(
                &format!(":{server} BATCH +{id} labeled-response"),
                &label_tag,
                &mut result,
            );
            for line in lines {
                tag(line, &format!("batch={id}"), &mut result);
            }
            put_server_line(&mut result, server, "BATCH", &[&format!("-{id}")], false);
        }
        (_, None) => {
            for line in lines {
                result.extend_from_slice(line.as_bytes());
                result.extend_from_slice(b"\r\n");
            }
        }
    }
    result.freeze()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use confab_core::Name;
    use proptest::prelude::*;

    use super::*;

    /// The general writer's rendering of a message, as the server wrote it before
    /// `encode_message`.
    fn through_write_message(m: &Message) -> Bytes {
        let mut out = BytesMut::new();
        let target = match &m.to {
            Target::Room(room) => channel(room),
            Target::User(name) => name.to_string(),
        };
        let (command, text) = match m.kind {
            MessageKind::Normal => ("PRIVMSG", m.text.to_string()),
            MessageKind::Notice => ("NOTICE", m.text.to_string()),
            MessageKind::Action => ("PRIVMSG", format!("\x01ACTION {}\x01", m.text)),
            MessageKind::Tags => unreachable!("not generated"),
        };
        let params = [target.as_str(), text.as_str()];
        write_message(
            &mut out,
            &[],
            Some(&prefix(&m.from)),
            command,
            &params,
            true,
        );
        out.freeze()
    }

    #[test]
    fn labeled_responses_are_an_ack_one_tagged_line_or_a_batch() {
        let text = |b: Bytes| String::from_utf8(b.to_vec()).unwrap();
        assert_eq!(
            text(labeled_response("srv", "a b", b"", None)),
            "@label=a\\sb :srv ACK\r\n"
        );
        assert_eq!(
            text(labeled_response(
                "srv",
                "1",
                b"@time=x :srv PONG srv t\r\n",
                None
            )),
            "@label=1;time=x :srv PONG srv t\r\n"
        );
        let two = b":srv 001 me :hi\r\n:srv 002 me :ho\r\n";
        assert_eq!(
            text(labeled_response("srv", "1", two, Some("b1"))),
            "@label=1 :srv BATCH +b1 labeled-response\r\n\
             @batch=b1 :srv 001 me :hi\r\n\
             @batch=b1 :srv 002 me :ho\r\n\
             :srv BATCH -b1\r\n"
        );
        assert_eq!(&labeled_response("srv", "1", two, None)[..], &two[..]);
    }

    #[test]
    fn an_event_without_a_time_of_its_own_is_tagged_with_the_clock() {
        let who = Arc::new(Source {
            name: Name::parse("alice").unwrap(),
            user: "~a".into(),
            host: "h".into(),
            realname: "A".into(),
            account: Some("alice".into()),
            session: 0,
            bot: true,
        });
        let quit = Event::Quit {
            who,
            reason: "bye".into(),
        };
        assert_eq!(
            &encode_tags(&quit, true, || 1_000)[..],
            b"@time=1970-01-01T00:00:01.000Z;account=alice;bot "
        );
        assert_eq!(
            &encode_tags(&quit, false, || 1_000)[..],
            b"@time=1970-01-01T00:00:01.000Z "
        );
        assert_eq!(
            &encode_broadcast(&quit, false)[..],
            b":alice!~a@h QUIT :bye\r\n"
        );
    }

    #[test]
    fn server_lines_have_the_server_as_source() {
        let line = server_line("srv", "FAIL", &["REGISTER", "X", "no way"], true);
        assert_eq!(&line[..], b":srv FAIL REGISTER X :no way\r\n");
        let line = server_line("srv", "CAP", &["*", "LS", "sasl"], false);
        assert_eq!(&line[..], b":srv CAP * LS sasl\r\n");
    }

    proptest! {
        #[test]
        fn writes_messages_as_write_message_would(
            name in "[a-zA-Z_\\[\\]{}|^-][a-zA-Z0-9_\\[\\]{}|^-]{0,15}",
            user in "~?[a-z]{1,10}",
            host in "[0-9a-f.:]{1,39}",
            room in proptest::option::of("[a-z0-9_.-]{1,20}"),
            text in "[^\0\r\n]{1,200}",
            kind in prop::sample::select(vec![
                MessageKind::Normal,
                MessageKind::Notice,
                MessageKind::Action,
            ]),
        ) {
            let to = match room {
                Some(room) => Target::Room(RoomName::parse(&room).unwrap()),
                None => Target::User(Name::parse("bob").unwrap()),
            };
            let m = Message {
                id: 1,
                time_ms: 0,
                from: Arc::new(Source {
                    name: Name::parse(&name).unwrap(),
                    user: user.into(),
                    host: host.into(),
                    realname: "r".into(),
                    account: None,
                    session: 0,
                    bot: false,
                }),
                to,
                kind,
                text: text.into(),
                tags: None,
            };
            prop_assert_eq!(encode_message(&m), through_write_message(&m));
        }
    }
}
