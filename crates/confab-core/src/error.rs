//! The errors a chat command can end in. Each one becomes a reply in every front-end:
//! a `! ` line in the line protocol, a numeric in IRC.

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
    #[error("Invalid room name {name:?}: {reason}")]
    InvalidRoom { name: String, reason: NameError },
    #[error("No such room: {0}")]
    NoSuchRoom(String),
    #[error("You are not in room {0}")]
    NotInRoom(String),
    #[error("Messages cannot be empty")]
    EmptyMessage,
    #[error("Messages cannot contain control characters such as NUL, CR or LF")]
    ControlCharacter,
}
