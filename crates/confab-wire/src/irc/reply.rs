//! The core's replies to one client as IRC numerics: pure functions from a reply event
//! (and what the command asked for, as plain values) to lines. The IRC front-end's
//! session decides which applies, by the command that caused the reply; the lines
//! themselves depend on nothing else.
//!
//! Every numeric is `:server CODE nick params...` with the last parameter trailing
//! ([`To::numeric`]). A reply of several lines is handed to `push` line by line, so
//! that the caller queues them where it wants without a list in between.

use std::sync::Arc;

use bytes::Bytes;
use confab_core::{
    Ban, ChatError, RoomModes, RoomName, RoomSummary, Source, Topic, UserInfo, UserSummary,
};

use super::encode::{channel, prefix, server_line};
use super::numerics::*;
use super::{room_modes_string, write_message};

/// Who numerics are from and to: the server's name, and the client's nick (`*` until
/// it has one).
#[derive(Debug, Clone, Copy)]
pub struct To<'a> {
    pub server: &'a str,
    pub nick: &'a str,
}

impl To<'_> {
    /// A numeric reply: `:server CODE nick params...`, the last one trailing.
    pub fn numeric(&self, code: &str, params: &[&str]) -> Bytes {
        let mut all = Vec::with_capacity(params.len() + 1);
        all.push(self.nick);
        all.extend_from_slice(params);
        server_line(self.server, code, &all, true)
    }

    /// A NOTICE from the server to the client.
    pub fn notice(&self, text: &str) -> Bytes {
        server_line(self.server, "NOTICE", &[self.nick, text], true)
    }
}

/// An error from the core as its numeric, for a command whose errors have no numeric
/// of their own (the session answers those of WHOIS, NAMES and WHO itself).
pub fn error(to: To<'_>, error: &ChatError, mut push: impl FnMut(Bytes)) {
    let text = error.to_string();
    let n = |code: &str, params: &[&str]| to.numeric(code, params);
    let line = match error {
        ChatError::NameInUse(name) => n(ERR_NICKNAMEINUSE, &[name, "Nickname is already in use"]),
        ChatError::InvalidName { name, .. } => n(ERR_ERRONEUSNICKNAME, &[name, &text]),
        ChatError::NoSuchUser(name) => n(ERR_NOSUCHNICK, &[name, "No such nick/channel"]),
        ChatError::WasNoSuchUser(name) => {
            push(n(ERR_WASNOSUCHNICK, &[name, "There was no such nickname"]));
            n(RPL_ENDOFWHOWAS, &[name, "End of WHOWAS"])
        }
        ChatError::NoSuchRoom(room) | ChatError::InvalidRoom { name: room, .. } => {
            n(ERR_NOSUCHCHANNEL, &[&format!("#{room}"), "No such channel"])
        }
        ChatError::NotInRoom(room) => n(
            ERR_NOTONCHANNEL,
            &[&format!("#{room}"), "You're not on that channel"],
        ),
        ChatError::UserNotInRoom { name, room } => n(
            ERR_USERNOTINCHANNEL,
            &[name, &format!("#{room}"), "They aren't on that channel"],
        ),
        ChatError::AlreadyInRoom { name, room } => n(
            ERR_USERONCHANNEL,
            &[name, &format!("#{room}"), "is already on channel"],
        ),
        _ => return room_error(to, error, &text, push),
    };
    push(line);
}

/// The rest of [`error`]: refusals to join, speak or change modes, and accounts.
fn room_error(to: To<'_>, error: &ChatError, text: &str, mut push: impl FnMut(Bytes)) {
    let n = |code: &str, params: &[&str]| to.numeric(code, params);
    let line = match error {
        ChatError::CannotSend(room) => n(
            ERR_CANNOTSENDTOCHAN,
            &[&format!("#{room}"), "Cannot send to channel"],
        ),
        ChatError::OperatorNeeded(room) => n(
            ERR_CHANOPRIVSNEEDED,
            &[&format!("#{room}"), "You're not channel operator"],
        ),
        ChatError::Banned(room) => n(
            ERR_BANNEDFROMCHAN,
            &[&format!("#{room}"), "Cannot join channel (+b)"],
        ),
        ChatError::InviteOnly(room) => n(
            ERR_INVITEONLYCHAN,
            &[&format!("#{room}"), "Cannot join channel (+i)"],
        ),
        ChatError::BadKey(room) => n(
            ERR_BADCHANNELKEY,
            &[&format!("#{room}"), "Cannot join channel (+k)"],
        ),
        ChatError::RoomFull(room) => n(
            ERR_CHANNELISFULL,
            &[&format!("#{room}"), "Cannot join channel (+l)"],
        ),
        ChatError::TooManyRooms { room, .. } => n(
            ERR_TOOMANYCHANNELS,
            &[&format!("#{room}"), "You have joined too many channels"],
        ),
        ChatError::TooManyMembers { room, .. } => n(
            ERR_CHANNELISFULL,
            &[&format!("#{room}"), "Cannot join channel (channel is full)"],
        ),
        ChatError::BanListFull(room) => n(
            ERR_BANLISTFULL,
            &[&format!("#{room}"), "b", "Channel ban list is full"],
        ),
        ChatError::UnknownMode(c) => n(
            ERR_UNKNOWNMODE,
            &[&c.to_string(), "is unknown mode char to me"],
        ),
        ChatError::ModeNeedsParameter(c) => n(
            ERR_NEEDMOREPARAMS,
            &["MODE", &format!("Mode {c} needs a parameter")],
        ),
        ChatError::NoPrivileges => n(
            ERR_NOPRIVILEGES,
            &["Permission Denied- You're not an IRC operator"],
        ),
        ChatError::EmptyMessage => n(ERR_NOTEXTTOSEND, &["No text to send"]),
        ChatError::ControlCharacter => n(ERR_NOTEXTTOSEND, &["Messages cannot contain NUL"]),
        ChatError::NotRegistered => n(ERR_NOTREGISTERED, &["You have not registered"]),
        ChatError::AlreadyRegistered(_) => n(ERR_ALREADYREGISTERED, &["You may not reregister"]),
        ChatError::Busy => n(ERR_UNKNOWNERROR, &["PRIVMSG", text]),
        ChatError::NotDelivered(target) => n(ERR_CANNOTSENDTOCHAN, &[target, text]),
        ChatError::NameRegistered(name) => n(ERR_NICKNAMEINUSE, &[name, text]),
        ChatError::AlreadyLoggedIn(name) => n(ERR_NICKNAMEINUSE, &[name, text]),
        ChatError::LoginFailed | ChatError::LoginThrottled(_) => n(ERR_SASLFAIL, &[text]),
        ChatError::AccountExists(name) => {
            let params = ["REGISTER", "ACCOUNT_EXISTS", name, text];
            server_line(to.server, "FAIL", &params, true)
        }
        ChatError::NoAccounts => n(ERR_UNKNOWNERROR, &["REGISTER", text]),
        // Answered by `error` itself.
        ChatError::NameInUse(_)
        | ChatError::InvalidName { .. }
        | ChatError::NoSuchUser(_)
        | ChatError::WasNoSuchUser(_)
        | ChatError::NoSuchRoom(_)
        | ChatError::InvalidRoom { .. }
        | ChatError::NotInRoom(_)
        | ChatError::UserNotInRoom { .. }
        | ChatError::AlreadyInRoom { .. } => return,
    };
    push(line);
}

/// LIST: every room, or those named in `wanted` (in any case), between the start and
/// the end of the list.
pub fn list(
    to: To<'_>,
    rooms: &[RoomSummary],
    wanted: Option<&[String]>,
    mut push: impl FnMut(Bytes),
) {
    push(to.numeric(RPL_LISTSTART, &["Channel", "Users  Name"]));
    for room in rooms {
        let listed =
            wanted.is_none_or(|w| w.iter().any(|n| n.eq_ignore_ascii_case(room.name.as_str())));
        if !listed {
            continue;
        }
        push(to.numeric(
            RPL_LIST,
            &[
                &channel(&room.name),
                &room.members.to_string(),
                room.topic.as_deref().unwrap_or(""),
            ],
        ));
    }
    push(to.numeric(RPL_LISTEND, &["End of /LIST"]));
}

/// A room's topic and who set it when; no topic is said only when asked (`joining`
/// says nothing of it).
pub fn topic(
    to: To<'_>,
    room: &RoomName,
    topic: Option<&Topic>,
    joining: bool,
    mut push: impl FnMut(Bytes),
) {
    let chan = channel(room);
    match topic {
        Some(topic) => {
            push(to.numeric(RPL_TOPIC, &[&chan, &topic.text]));
            push(to.numeric(
                RPL_TOPICWHOTIME,
                &[&chan, &topic.by, &(topic.time_ms / 1000).to_string()],
            ));
        }
        None if !joining => push(to.numeric(RPL_NOTOPIC, &[&chan, "No topic is set"])),
        None => {}
    }
}

/// A room's modes and creation time; the key only to a `member`.
pub fn room_modes(
    to: To<'_>,
    room: &RoomName,
    modes: &RoomModes,
    created_ms: u64,
    member: bool,
    mut push: impl FnMut(Bytes),
) {
    let chan = channel(room);
    let (flags, args) = room_modes_string(modes, member);
    let mut params = vec![chan.as_str(), flags.as_str()];
    params.extend(args.iter().map(String::as_str));
    push(to.numeric(RPL_CHANNELMODEIS, &params));
    push(to.numeric(RPL_CREATIONTIME, &[&chan, &(created_ms / 1000).to_string()]));
}

/// A room's ban list.
pub fn ban_list(to: To<'_>, room: &RoomName, bans: &[Ban], mut push: impl FnMut(Bytes)) {
    let chan = channel(room);
    for ban in bans {
        push(to.numeric(
            RPL_BANLIST,
            &[&chan, &ban.mask, &ban.by, &(ban.time_ms / 1000).to_string()],
        ));
    }
    push(to.numeric(RPL_ENDOFBANLIST, &[&chan, "End of channel ban list"]));
}

/// An invitation to `room`, from `by` to the client.
pub fn invite(to: To<'_>, by: &Source, room: &RoomName) -> Bytes {
    let mut line = bytes::BytesMut::new();
    write_message(
        &mut line,
        &[],
        Some(&prefix(by)),
        "INVITE",
        &[to.nick, &channel(room)],
        false,
    );
    line.freeze()
}

/// WHOIS.
pub fn whois(to: To<'_>, info: &UserInfo, mut push: impl FnMut(Bytes)) {
    let nick = info.who.name.as_str();
    let who = &info.who;
    push(to.numeric(
        RPL_WHOISUSER,
        &[nick, &who.user, &who.host, "*", &who.realname],
    ));
    if !info.rooms.is_empty() {
        let rooms: Vec<String> = info.rooms.iter().map(|(p, r)| format!("{p}#{r}")).collect();
        push(to.numeric(RPL_WHOISCHANNELS, &[nick, &rooms.join(" ")]));
    }
    push(to.numeric(RPL_WHOISSERVER, &[nick, to.server, "confab"]));
    if who.bot {
        push(to.numeric(RPL_WHOISBOT, &[nick, "is a bot"]));
    }
    if let Some(away) = &info.away {
        push(to.numeric(RPL_AWAY, &[nick, away]));
    }
    if info.oper {
        push(to.numeric(RPL_WHOISOPERATOR, &[nick, "is an IRC operator"]));
    }
    push(to.numeric(
        RPL_WHOISIDLE,
        &[
            nick,
            &(info.idle_ms / 1000).to_string(),
            &(info.signon_ms / 1000).to_string(),
            "seconds idle, signon time",
        ],
    ));
    push(to.numeric(RPL_ENDOFWHOIS, &[nick, "End of /WHOIS list."]));
}

/// WHOWAS for `name`: at most `count` of the `entries`, newest first.
pub fn whowas(
    to: To<'_>,
    name: &str,
    count: usize,
    entries: &[Arc<Source>],
    mut push: impl FnMut(Bytes),
) {
    for who in entries.iter().take(count) {
        let nick = who.name.as_str();
        push(to.numeric(
            RPL_WHOWASUSER,
            &[nick, &who.user, &who.host, "*", &who.realname],
        ));
        push(to.numeric(RPL_WHOISSERVER, &[nick, to.server, "confab"]));
    }
    push(to.numeric(RPL_ENDOFWHOWAS, &[name, "End of WHOWAS"]));
}

/// ISON: which of the names asked for are online.
pub fn ison(to: To<'_>, users: &[UserSummary]) -> Bytes {
    let names: Vec<&str> = users.iter().map(|u| u.who.name.as_str()).collect();
    to.numeric(RPL_ISON, &[&names.join(" ")])
}

/// USERHOST: `nick[*]=(+|-)user@host` for each user (`*` an operator, `-` away).
pub fn userhost(to: To<'_>, users: &[UserSummary]) -> Bytes {
    let entries: Vec<String> = users
        .iter()
        .map(|u| {
            format!(
                "{}{}={}{}@{}",
                u.who.name,
                if u.oper { "*" } else { "" },
                if u.away { "-" } else { "+" },
                u.who.user,
                u.who.host
            )
        })
        .collect();
    to.numeric(RPL_USERHOST, &[&entries.join(" ")])
}

#[cfg(test)]
mod tests {
    use confab_core::Name;

    use super::*;

    const TO: To<'static> = To {
        server: "srv",
        nick: "me",
    };

    fn lines(f: impl FnOnce(&mut dyn FnMut(Bytes))) -> String {
        let mut out = String::new();
        f(&mut |line: Bytes| out.push_str(std::str::from_utf8(&line).unwrap()));
        out
    }

    fn source(name: &str) -> Arc<Source> {
        Arc::new(Source {
            name: Name::parse(name).unwrap(),
            user: "~u".into(),
            host: "h".into(),
            realname: "Real Name".into(),
            account: None,
            session: 0,
            bot: false,
        })
    }

    #[test]
    fn numerics_go_from_the_server_to_the_nick() {
        assert_eq!(
            &TO.numeric("001", &["Welcome"])[..],
            b":srv 001 me :Welcome\r\n"
        );
        assert_eq!(&TO.notice("hi there")[..], b":srv NOTICE me :hi there\r\n");
    }

    #[test]
    fn errors_are_their_numerics() {
        let got = lines(|push| error(TO, &ChatError::WasNoSuchUser("bob".into()), push));
        assert_eq!(
            got,
            ":srv 406 me bob :There was no such nickname\r\n:srv 369 me bob :End of WHOWAS\r\n"
        );
        let got = lines(|push| error(TO, &ChatError::Banned("rust".into()), push));
        assert_eq!(got, ":srv 474 me #rust :Cannot join channel (+b)\r\n");
        let got = lines(|push| error(TO, &ChatError::AccountExists("bob".into()), push));
        assert!(
            got.starts_with(":srv FAIL REGISTER ACCOUNT_EXISTS bob :"),
            "{got}"
        );
    }

    #[test]
    fn list_shows_only_the_rooms_asked_for() {
        let room = |name: &str, members| RoomSummary {
            name: RoomName::parse(name).unwrap(),
            members,
            topic: None,
        };
        let rooms = [room("rust", 3), room("go", 1)];
        let wanted = ["RUST".to_string()];
        let got = lines(|push| list(TO, &rooms, Some(&wanted), push));
        assert_eq!(
            got,
            ":srv 321 me Channel :Users  Name\r\n:srv 322 me #rust 3 :\r\n:srv 323 me :End of /LIST\r\n"
        );
    }

    #[test]
    fn presence_and_whois_lines() {
        let users = [
            UserSummary {
                who: source("alice"),
                away: true,
                oper: true,
            },
            UserSummary {
                who: source("bob"),
                away: false,
                oper: false,
            },
        ];
        assert_eq!(&ison(TO, &users)[..], b":srv 303 me :alice bob\r\n");
        assert_eq!(
            &userhost(TO, &users)[..],
            b":srv 302 me :alice*=-~u@h bob=+~u@h\r\n"
        );
        let info = UserInfo {
            who: source("alice"),
            rooms: vec![("@".into(), RoomName::parse("rust").unwrap())],
            away: None,
            oper: false,
            signon_ms: 5000,
            idle_ms: 2000,
        };
        let got = lines(|push| whois(TO, &info, push));
        assert_eq!(
            got,
            ":srv 311 me alice ~u h * :Real Name\r\n\
             :srv 319 me alice :@#rust\r\n\
             :srv 312 me alice srv :confab\r\n\
             :srv 317 me alice 2 5 :seconds idle, signon time\r\n\
             :srv 318 me alice :End of /WHOIS list.\r\n"
        );
    }
}
