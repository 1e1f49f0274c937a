//! The IRC message codec: parsing client lines (with IRCv3 tags, source and trailing
//! parameters) and building server lines. Pure and allocation-light; the IRC front-end
//! and the fuzz target use it. The core's events as IRC lines are in [`encode`], the
//! splitting of a message too long for one line in [`split`].
//!
//! Limits follow the modern IRC documents: at most 8191 bytes of tags (the leading `@`
//! and the space after included) and 512 bytes for the rest, CR LF included.

use std::borrow::Cow;

use bytes::{BufMut, BytesMut};

pub mod encode;
pub mod numerics;
pub mod reply;
pub mod split;

/// Bytes allowed for the tag section, `@` and the trailing space included.
pub const MAX_TAGS: usize = 8191;
/// Bytes of tag data (between the `@` and the space) a client may send: the rest of
/// [`MAX_TAGS`] is for the tags a server adds when it relays the message.
pub const MAX_CLIENT_TAG_DATA: usize = 4094;
/// Bytes allowed for source, command and parameters, CR LF included.
pub const MAX_MESSAGE: usize = 512;
/// The longest line a server must accept before parsing: both sections together.
pub const MAX_LINE: usize = MAX_TAGS + MAX_MESSAGE;
/// Parameters kept; any further ones are folded into the last, as RFC 1459 does.
pub const MAX_PARAMS: usize = 15;

/// One parsed message, borrowing from its line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message<'a> {
    /// The raw tag section without its `@`; unescape values with [`Message::tags`].
    pub raw_tags: Option<&'a str>,
    /// The source without its leading `:`.
    pub source: Option<&'a str>,
    /// The command or numeric, as sent (compare case-insensitively).
    pub command: &'a str,
    pub params: Vec<&'a str>,
}

/// Why a line is not a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("empty message")]
    Empty,
    #[error("the tags are longer than {MAX_TAGS} bytes")]
    TagsTooLong,
    #[error("the message is longer than {MAX_MESSAGE} bytes")]
    TooLong,
    #[error("no command")]
    NoCommand,
}

fn skip_spaces(s: &str) -> &str {
    s.trim_start_matches(' ')
}

/// Parses one line (without CR LF).
pub fn parse(line: &str) -> Result<Message<'_>, ParseError> {
    let mut rest = line.trim_end_matches(['\r', '\n']);
    let mut raw_tags = None;
    if let Some(tagged) = rest.strip_prefix('@') {
        let (tags, after) = tagged.split_once(' ').unwrap_or((tagged, ""));
        if tags.len() + 2 > MAX_TAGS {
            return Err(ParseError::TagsTooLong);
        }
        raw_tags = Some(tags);
        rest = skip_spaces(after);
    } else {
        rest = skip_spaces(rest);
    }
    if rest.len() + 2 > MAX_MESSAGE {
        return Err(ParseError::TooLong);
    }
    if rest.is_empty() {
        return Err(if raw_tags.is_some() {
            ParseError::NoCommand
        } else {
            ParseError::Empty
        });
    }
    let mut source = None;
    if let Some(sourced) = rest.strip_prefix(':') {
        let (src, after) = sourced.split_once(' ').unwrap_or((sourced, ""));
        source = Some(src);
        rest = skip_spaces(after);
    }
    let (command, after) = rest.split_once(' ').unwrap_or((rest, ""));
    if command.is_empty() {
        return Err(ParseError::NoCommand);
    }
    rest = skip_spaces(after);
    let mut params = Vec::new();
    while !rest.is_empty() {
        if let Some(trailing) = rest.strip_prefix(':') {
            params.push(trailing);
            break;
        }
        if params.len() == MAX_PARAMS - 1 {
            params.push(rest);
            break;
        }
        let (param, after) = rest.split_once(' ').unwrap_or((rest, ""));
        params.push(param);
        rest = skip_spaces(after);
    }
    Ok(Message {
        raw_tags,
        source,
        command,
        params,
    })
}

impl<'a> Message<'a> {
    /// Each tag's key and unescaped value (empty when it has none).
    pub fn tags(&self) -> impl Iterator<Item = (&'a str, Cow<'a, str>)> {
        self.raw_tags
            .into_iter()
            .flat_map(|raw| raw.split(';'))
            .filter(|tag| !tag.is_empty())
            .map(|tag| match tag.split_once('=') {
                Some((key, value)) => (key, unescape_tag(value)),
                None => (tag, Cow::Borrowed("")),
            })
    }

    /// The value of tag `key`, if present.
    pub fn tag(&self, key: &str) -> Option<Cow<'a, str>> {
        self.tags().find(|(k, _)| *k == key).map(|(_, v)| v)
    }
}

/// Undoes IRCv3 tag value escaping.
pub fn unescape_tag(value: &str) -> Cow<'_, str> {
    if !value.contains('\\') {
        return Cow::Borrowed(value);
    }
    let mut out = String::with_capacity(value.len());
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some(':') => out.push(';'),
            Some('s') => out.push(' '),
            Some('r') => out.push('\r'),
            Some('n') => out.push('\n'),
            Some(other) => out.push(other),
            None => {}
        }
    }
    Cow::Owned(out)
}

/// Applies IRCv3 tag value escaping.
pub fn escape_tag(value: &str, out: &mut BytesMut) {
    for c in value.chars() {
        match c {
            ';' => out.put_slice(b"\\:"),
            ' ' => out.put_slice(b"\\s"),
            '\\' => out.put_slice(b"\\\\"),
            '\r' => out.put_slice(b"\\r"),
            '\n' => out.put_slice(b"\\n"),
            c => {
                let mut buf = [0; 4];
                out.put_slice(c.encode_utf8(&mut buf).as_bytes());
            }
        }
    }
}

/// Builds one outgoing line: `[@tags ][:source ]COMMAND params... [:trailing]\r\n`.
///
/// The last parameter is sent as a trailing one when it must be (empty, contains a
/// space or starts with `:`) or when `force_trailing` asks for it. Tags are given as
/// (key, value) pairs and escaped here.
pub fn write_message(
    out: &mut BytesMut,
    tags: &[(&str, &str)],
    source: Option<&str>,
    command: &str,
    params: &[&str],
    force_trailing: bool,
) {
    if !tags.is_empty() {
        out.put_u8(b'@');
        for (i, (key, value)) in tags.iter().enumerate() {
            if i > 0 {
                out.put_u8(b';');
            }
            out.put_slice(key.as_bytes());
            if !value.is_empty() {
                out.put_u8(b'=');
                escape_tag(value, out);
            }
        }
        out.put_u8(b' ');
    }
    if let Some(source) = source {
        out.put_u8(b':');
        out.put_slice(source.as_bytes());
        out.put_u8(b' ');
    }
    out.put_slice(command.as_bytes());
    for (i, param) in params.iter().enumerate() {
        out.put_u8(b' ');
        let last = i + 1 == params.len();
        if last && (force_trailing || needs_trailing(param)) {
            out.put_u8(b':');
        }
        out.put_slice(param.as_bytes());
    }
    out.put_slice(b"\r\n");
}

fn needs_trailing(param: &str) -> bool {
    param.is_empty() || param.contains(' ') || param.starts_with(':')
}

/// Mode changes as IRC writes them: `+o-v` and their arguments in order.
pub fn mode_string(changes: &[confab_core::ModeChange]) -> (String, Vec<&str>) {
    let mut modes = String::new();
    let mut args = Vec::new();
    let mut sign = None;
    for change in changes {
        if sign != Some(change.add) {
            modes.push(if change.add { '+' } else { '-' });
            sign = Some(change.add);
        }
        modes.push(change.mode);
        if let Some(arg) = &change.arg {
            args.push(arg.as_str());
        }
    }
    (modes, args)
}

/// A room's modes as IRC writes them (`+ntk key`). The key is shown only to members.
pub fn room_modes_string(modes: &confab_core::RoomModes, show_key: bool) -> (String, Vec<String>) {
    let mut flags = String::from("+");
    let mut args = Vec::new();
    for (on, c) in [
        (modes.invite_only, 'i'),
        (modes.moderated, 'm'),
        (modes.no_external, 'n'),
        (modes.secret, 's'),
        (modes.topic_ops, 't'),
    ] {
        if on {
            flags.push(c);
        }
    }
    if let Some(key) = &modes.key {
        flags.push('k');
        args.push(if show_key {
            key.to_string()
        } else {
            "*".into()
        });
    }
    if let Some(limit) = modes.limit {
        flags.push('l');
        args.push(limit.to_string());
    }
    (flags, args)
}

/// Splits `nick!user@host` into its parts; missing parts are empty.
pub fn split_userhost(source: &str) -> (&str, &str, &str) {
    let (rest, host) = source.split_once('@').unwrap_or((source, ""));
    let (nick, user) = rest.split_once('!').unwrap_or((rest, ""));
    (nick, user, host)
}

/// IRC masks (`*`, `?`, ASCII case ignored) are matched by the core's one matcher, the
/// one bans use; this name stays for the fuzz target, which links the codec alone.
pub use confab_core::glob_match as mask_matches;

#[cfg(test)]
mod tests;
