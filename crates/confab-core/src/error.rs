//! The errors a chat command can end in. Each one becomes a reply in every front-end:
//! a `! ` line in the line protocol, a numeric in IRC, an error event on the web.

use serde::{Deserialize, Serialize};

use crate::name::{Name, NameError};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum ChatError {
    #[error("You must register first")]
    NotRegistered,
    #[error("You are already registered as {0}")]
    AlreadyRegistered(Name),
    #[error("Invalid name {name:?}: {reason}")]
    InvalidName { name: String, reason: NameError },
    #[error("The name {0} is taken; try another")]
    NameInUse(String),
    #[error("No such user: {0} is not online")]
    NoSuchUser(String),
    #[error("There was no user called {0}")]
    WasNoSuchUser(String),
    #[error("Invalid room name {name:?}: {reason}")]
    InvalidRoom { name: String, reason: NameError },
    #[error("No such room: {0}")]
    NoSuchRoom(String),
    #[error("You are not in room {0}")]
    NotInRoom(String),
    #[error("{name} is not in room {room}")]
    UserNotInRoom { name: String, room: String },
    #[error("{name} is already in room {room}")]
    AlreadyInRoom { name: String, room: String },
    #[error("You cannot send to room {0}")]
    CannotSend(String),
    #[error("You need to be a room operator of {0} to do that")]
    OperatorNeeded(String),
    #[error("You are banned from room {0}")]
    Banned(String),
    #[error("Room {0} is invite-only")]
    InviteOnly(String),
    #[error("Room {0} needs the right key")]
    BadKey(String),
    #[error("Room {0} is full")]
    RoomFull(String),
    #[error("You cannot join {room}: you are in {limit} rooms, the most allowed; leave one first")]
    TooManyRooms { room: String, limit: usize },
    #[error("Room {room} is full: it has {limit} members, the most the server allows")]
    TooManyMembers { room: String, limit: usize },
    #[error("The ban list of {0} is full")]
    BanListFull(String),
    #[error("Unknown mode {0:?}")]
    UnknownMode(char),
    #[error("Mode {0} needs a parameter")]
    ModeNeedsParameter(char),
    #[error("Permission denied: you are not a server operator")]
    NoPrivileges,
    #[error("The name {0} is registered; log in with /login {0} PASSWORD or pick another")]
    NameRegistered(String),
    #[error("{0} is already logged in elsewhere")]
    AlreadyLoggedIn(String),
    #[error("Wrong name or password")]
    LoginFailed,
    #[error("Too many failed logins; try again in {0} seconds")]
    LoginThrottled(u64),
    #[error("The name {0} is already registered")]
    AccountExists(String),
    #[error("Accounts need a server with a data directory")]
    NoAccounts,
    #[error("The server is busy; try again in a moment")]
    Busy,
    #[error("Your message to {0} may not have reached users on other servers of the cluster")]
    NotDelivered(String),
    #[error("Messages cannot be empty")]
    EmptyMessage,
    #[error("Messages cannot contain control characters such as NUL, CR or LF")]
    ControlCharacter,
}
