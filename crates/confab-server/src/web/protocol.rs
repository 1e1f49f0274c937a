//! The web front-end's view of its JSON protocol: the codec itself (requests, events,
//! history pages) is `confab_wire::web`; this adds only what needs the store, a page
//! of history made from the store's records.

use bytes::Bytes;
use confab_store::StoredMessage;
use confab_wire::web::{self as wire, HistoryMessage};
pub(crate) use confab_wire::web::{
    closing, encode_event, error_event, hello, history_error, parse_request, pong, room_arg,
    Conversation, Limits, Request, SLOT,
};

/// One stored message as a `history` page shows it.
fn history_message(m: &StoredMessage) -> HistoryMessage<'_> {
    let (room, to) = if m.to_room {
        (Some(m.target.as_str()), None)
    } else {
        (None, Some(m.target.as_str()))
    };
    HistoryMessage {
        id: m.id,
        time: m.time_ms,
        from: &m.sender,
        room,
        to,
        kind: m.kind.into(),
        text: &m.text,
    }
}

/// One page of stored messages, oldest first, in at most `max_bytes` (see
/// [`wire::history_page`]).
pub(crate) fn history_page(
    conversation: &Conversation,
    before: Option<u64>,
    stored: &[StoredMessage],
    more: bool,
    max_bytes: usize,
) -> Bytes {
    let messages: Vec<HistoryMessage> = stored.iter().map(history_message).collect();
    wire::history_page(conversation, before, &messages, more, max_bytes)
}

#[cfg(test)]
mod tests {
    use confab_core::MessageKind;

    use super::*;

    /// A direct message is shown with `to`, a room's with `room`, as a live one is.
    #[test]
    fn stored_messages_show_their_conversation() {
        let dm = StoredMessage {
            id: 7,
            time_ms: 1007,
            conversation: "alice\nbob".into(),
            sender: "alice".into(),
            sender_mask: "alice!alice@127.0.0.1".into(),
            target: "bob".into(),
            to_room: false,
            kind: MessageKind::Action,
            text: "waves".into(),
        };
        let page = history_page(&Conversation::With("bob".into()), None, &[dm], false, 1000);
        assert_eq!(
            std::str::from_utf8(&page).unwrap(),
            r#"{"type":"history","with":"bob","messages":[{"id":7,"time":1007,"from":"alice","to":"bob","kind":"action","text":"waves"}],"more":false}"#
        );
    }
}
