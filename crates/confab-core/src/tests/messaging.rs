//! Tests of messaging: rooms and direct messages, echo, shared envelopes, counts, and
//! bursts delivered as one batch (with their refusals and a full journal).

use super::*;

#[test]
fn room_messages_reach_every_other_member_once() {
    let mut chat = Chat::with(&["alice", "bob", "carol"]);
    chat.run(0, say("lobby", "hello"));
    assert!(chat.take(0).is_empty(), "no echo without echo-message");
    for id in [1, 2] {
        match &chat.take(id)[..] {
            [Event::Message(m)] => {
                assert_eq!(m.from.name.as_str(), "alice");
                assert_eq!(&*m.text, "hello");
                assert_eq!(m.to, Target::Room(RoomName::parse("lobby").unwrap()));
            }
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn echo_message_sends_the_sender_a_copy() {
    let mut chat = Chat::with(&["alice", "bob"]);
    chat.core.set_echo(0, true);
    chat.run(0, dm("bob", "psst"));
    assert_eq!(chat.take(0).len(), 1);
    assert_eq!(chat.take(1).len(), 1);
}

#[test]
fn direct_messages_go_to_one_user_and_fail_for_unknown_ones() {
    let mut chat = Chat::with(&["alice", "bob", "carol"]);
    chat.run(0, dm("BOB", "psst"));
    assert!(chat.take(2).is_empty());
    match &chat.take(1)[..] {
        [Event::Message(m)] => {
            assert_eq!(m.from.name.as_str(), "alice");
            assert_eq!(m.to, Target::User(Name::parse("bob").unwrap()));
        }
        other => panic!("{other:?}"),
    }
    chat.run(0, dm("dave", "hello?"));
    assert_eq!(error(&chat.take(0)), &ChatError::NoSuchUser("dave".into()));
    chat.run(0, dm("bob", ""));
    assert_eq!(error(&chat.take(0)), &ChatError::EmptyMessage);
    chat.run(0, dm("bob", "a\0b"));
    assert_eq!(error(&chat.take(0)), &ChatError::ControlCharacter);
}

#[test]
fn events_round_trip_through_serde() {
    let mut chat = Chat::with(&["alice", "bob"]);
    chat.run(0, say("lobby", "hi"));
    for event in chat.take(1) {
        let json = serde_json::to_string(&event).unwrap();
        let back: Event = serde_json::from_str(&json).unwrap();
        assert_eq!(back, event);
    }
}

#[test]
fn one_envelope_is_shared_by_every_recipient() {
    let mut chat = Chat::with(&["alice", "bob", "carol"]);
    chat.run(0, say("lobby", "shared"));
    let b = chat.inboxes[1].0.borrow()[0].clone();
    let c = chat.inboxes[2].0.borrow()[0].clone();
    assert!(Arc::ptr_eq(&b, &c));
    let mut encodings = 0;
    for envelope in [&b, &c] {
        envelope.encoded(0, |_| {
            encodings += 1;
            bytes::Bytes::from_static(b"x")
        });
    }
    assert_eq!(encodings, 1);
}

#[test]
fn messages_and_deliveries_are_counted() {
    let mut chat = Chat::with(&["alice", "bob", "carol"]);
    chat.run(0, say("lobby", "hi"));
    chat.run(0, dm("bob", "psst"));
    chat.run(0, dm("nobody", "lost"));
    let stats = chat.core.stats();
    assert_eq!((stats.messages, stats.deliveries), (2, 3));
}

#[test]
fn a_burst_to_a_room_reaches_each_member_as_one_batch_in_order() {
    let mut chat = Chat::with(&["alice", "bob", "carol"]);
    chat.run(
        0,
        say_many(Recipient::Room("LOBBY".into()), &["1", "2", "3"]),
    );
    for member in [1, 2] {
        assert_eq!(chat.inboxes[member].batches(), 1);
        assert_eq!(texts(&chat.take(member)), ["1", "2", "3"]);
    }
    assert!(chat.take(0).is_empty(), "no echo without echo-message");
    assert_eq!(chat.inboxes[0].batches(), 0);
    chat.run(0, say("lobby", "4"));
    match &chat.take(1)[..] {
        [Event::Message(m)] => assert_eq!(&*m.text, "4"),
        other => panic!("{other:?}"),
    }
    assert_eq!(chat.core.stats().messages, 4);
    assert_eq!(chat.core.stats().deliveries, 8);
}

#[test]
fn batched_messages_get_increasing_ids_and_echo_when_asked() {
    let mut chat = Chat::with(&["alice", "bob"]);
    chat.core.set_echo(0, true);
    chat.run(0, say_many(Recipient::User("bob".into()), &["a", "b"]));
    let ids: Vec<u64> = chat
        .take(1)
        .iter()
        .map(|e| match e {
            Event::Message(m) => m.id,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(ids.len(), 2);
    assert!(ids[0] < ids[1]);
    assert_eq!(texts(&chat.take(0)), ["a", "b"], "the echo");
}

#[test]
fn a_burst_with_a_bad_message_goes_one_by_one_with_its_error_in_place() {
    let mut chat = Chat::with(&["alice", "bob"]);
    chat.run(
        0,
        say_many(Recipient::Room("lobby".into()), &["1", "", "3"]),
    );
    assert_eq!(texts(&chat.take(1)), ["1", "3"]);
    assert_eq!(texts(&chat.take(0)), ["error: Messages cannot be empty"]);
    assert_eq!(chat.inboxes[1].batches(), 0);
    chat.run(0, say_many(Recipient::User("nobody".into()), &["x", "y"]));
    assert_eq!(
        chat.take(0).len(),
        2,
        "one error per message, as one by one"
    );
    chat.run(
        0,
        say_many(Recipient::Room("elsewhere".into()), &["x", "y"]),
    );
    assert_eq!(chat.take(0).len(), 2);
}

#[test]
fn a_burst_into_a_room_one_may_not_speak_in_is_refused_message_by_message() {
    let mut chat = Chat::with(&["alice", "bob"]);
    chat.run(
        0,
        Command::Mode {
            room: "lobby".into(),
            changes: vec![ModeChange {
                add: true,
                mode: 'm',
                arg: None,
            }],
        },
    );
    chat.take(0);
    chat.take(1);
    chat.run(1, say_many(Recipient::Room("lobby".into()), &["x", "y"]));
    assert!(chat.take(0).is_empty());
    assert!(matches!(
        &chat.take(1)[..],
        [
            Event::Error(ChatError::CannotSend(_)),
            Event::Error(ChatError::CannotSend(_))
        ]
    ));
}

/// A journal that takes `room` more messages, then refuses.
struct Limited {
    room: std::sync::atomic::AtomicUsize,
}

impl Journal for Limited {
    fn record(&self, _message: &Message, _recipient: Option<&Source>) -> bool {
        use std::sync::atomic::Ordering::Relaxed;
        self.room
            .fetch_update(Relaxed, Relaxed, |left| left.checked_sub(1))
            .is_ok()
    }
    fn record_offline(&self, _message: &Message, _recipient: &str) -> bool {
        false
    }
}

#[test]
fn a_full_journal_refuses_the_rest_of_a_burst_and_delivers_what_it_kept() {
    let mut chat = Chat::with(&["alice", "bob"]);
    let journal = Limited { room: 2.into() };
    let mut core = Core::with_journal(Box::new(journal), 0);
    for (id, name) in ["alice", "bob"].iter().enumerate() {
        core.connect(id as u64, chat.inboxes[id].clone(), "h");
        core.handle(
            id as u64,
            Command::Register {
                name: name.to_string(),
            },
            1,
        );
        let join = Command::Join {
            room: "r".into(),
            key: None,
        };
        core.handle(id as u64, join, 1);
    }
    chat.core = core;
    chat.take(0);
    chat.take(1);
    chat.run(
        0,
        say_many(Recipient::Room("r".into()), &["1", "2", "3", "4"]),
    );
    assert_eq!(texts(&chat.take(1)), ["1", "2"]);
    assert!(matches!(
        &chat.take(0)[..],
        [Event::Error(ChatError::Busy), Event::Error(ChatError::Busy)]
    ));
}
