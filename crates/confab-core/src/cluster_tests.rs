//! Unit tests of clustering in the core: several cores joined by an in-memory bus that
//! carries each replica where its route says, in one global order.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use crate::test_support::Inbox;
use crate::*;

type Queue = Arc<Mutex<VecDeque<(usize, Replica, Route)>>>;

struct Wire {
    from: usize,
    queue: Queue,
}

impl Link for Wire {
    fn publish(&self, replica: Replica, route: Route) -> bool {
        self.queue
            .lock()
            .unwrap()
            .push_back((self.from, replica, route));
        true
    }
}

struct Cluster {
    nodes: Vec<Core<Inbox>>,
    queue: Queue,
    inboxes: Vec<(usize, Inbox)>,
}

const NAMES: [&str; 3] = ["a", "b", "c"];

impl Cluster {
    fn new(n: usize) -> Cluster {
        let queue = Queue::default();
        let nodes = (0..n)
            .map(|i| {
                let mut core = Core::new();
                let wire = Wire {
                    from: i,
                    queue: queue.clone(),
                };
                core.join_cluster(NAMES[i], i as u16, Box::new(wire));
                core
            })
            .collect();
        Cluster {
            nodes,
            queue,
            inboxes: Vec::new(),
        }
    }

    /// Connects and registers a user on `node`; returns its client index.
    fn user(&mut self, node: usize, name: &str) -> usize {
        let index = self.inboxes.len();
        let inbox = Inbox::default();
        let id = (node as u64) << 48 | index as u64;
        self.nodes[node].connect(id, inbox.clone(), "127.0.0.1");
        self.inboxes.push((node, inbox));
        self.run(
            index,
            Command::Register {
                name: name.to_string(),
            },
        );
        index
    }

    fn id(&self, user: usize) -> ClientId {
        (self.inboxes[user].0 as u64) << 48 | user as u64
    }

    fn run(&mut self, user: usize, command: Command) {
        let node = self.inboxes[user].0;
        let id = self.id(user);
        self.nodes[node].handle(id, command, 1_800_000_000_000);
        self.pump();
    }

    /// Carries every queued replica: state to every other node, room messages to
    /// every node (the origin too: it delivers what the bus hands back).
    fn pump(&mut self) {
        loop {
            let Some((from, replica, route)) = self.queue.lock().unwrap().pop_front() else {
                return;
            };
            for (i, node) in self.nodes.iter_mut().enumerate() {
                let wanted = match &route {
                    Route::Everyone => i != from,
                    Route::Room(_) => true,
                    Route::Node(name) => &**name == NAMES[i],
                };
                if wanted {
                    node.apply(NAMES[from], replica.clone());
                }
            }
        }
    }

    fn take(&self, user: usize) -> Vec<Event> {
        self.inboxes[user].1.take()
    }

    fn texts(&self, user: usize) -> Vec<String> {
        self.take(user)
            .into_iter()
            .filter_map(|e| match e {
                Event::Message(m) => Some(m.text.to_string()),
                _ => None,
            })
            .collect()
    }
}

fn join(room: &str) -> Command {
    Command::Join {
        room: room.into(),
        key: None,
    }
}

fn say(to: Recipient, text: &str) -> Command {
    Command::Send {
        to,
        kind: MessageKind::Normal,
        text: text.into(),
        tags: None,
    }
}

#[test]
fn users_on_different_nodes_share_rooms_names_and_direct_messages() {
    let mut c = Cluster::new(3);
    let ann = c.user(0, "ann");
    let bob = c.user(1, "bob");
    let cy = c.user(2, "cy");
    for u in [ann, bob, cy] {
        c.run(u, join("hall"));
    }
    // Bob on node 1 sees Cy (node 2) join.
    let joined: Vec<String> = c
        .take(bob)
        .into_iter()
        .filter_map(|e| match e {
            Event::Joined { who, .. } => Some(who.name.to_string()),
            _ => None,
        })
        .collect();
    assert_eq!(joined, ["bob", "cy"]);
    for u in [ann, bob, cy] {
        c.take(u);
    }

    c.run(ann, say(Recipient::Room("hall".into()), "hello from a"));
    c.run(cy, say(Recipient::Room("hall".into()), "hello from c"));
    for u in [bob, cy, ann] {
        let expected: Vec<&str> = ["hello from a", "hello from c"]
            .into_iter()
            .filter(|t| !(u == ann && *t == "hello from a" || u == cy && *t == "hello from c"))
            .collect();
        assert_eq!(c.texts(u), expected, "user {u}");
    }

    // A name taken on one node is taken on all.
    let other = c.user(2, "x");
    c.take(other);
    c.run(other, Command::Nick { name: "ANN".into() });
    assert!(matches!(
        &c.take(other)[..],
        [Event::Error(ChatError::NameInUse(_))]
    ));

    // Direct messages cross nodes and reach only their recipient.
    c.run(bob, say(Recipient::User("ann".into()), "psst"));
    assert_eq!(c.texts(ann), ["psst"]);
    assert!(c.texts(cy).is_empty());

    // Ids from different nodes never collide.
    let ids: Vec<u64> = {
        c.run(ann, say(Recipient::Room("hall".into()), "1"));
        c.run(bob, say(Recipient::Room("hall".into()), "2"));
        c.take(cy)
            .into_iter()
            .filter_map(|e| match e {
                Event::Message(m) => Some(m.id),
                _ => None,
            })
            .collect()
    };
    assert_eq!(ids.len(), 2);
    assert_ne!(ids[0], ids[1]);
}

#[test]
fn topic_modes_kicks_and_quits_reach_other_nodes() {
    let mut c = Cluster::new(2);
    let ann = c.user(0, "ann");
    let bob = c.user(1, "bob");
    c.run(ann, join("r"));
    c.run(bob, join("r"));
    c.take(bob);
    c.run(
        ann,
        Command::Topic {
            room: "r".into(),
            text: Some("plans".into()),
        },
    );
    assert!(matches!(&c.take(bob)[..], [Event::TopicChanged { text, .. }] if &**text == "plans"));
    // Bob is not an operator anywhere: node 1 refuses his topic change itself.
    c.run(
        bob,
        Command::Topic {
            room: "r".into(),
            text: Some("mine".into()),
        },
    );
    assert!(matches!(
        &c.take(bob)[..],
        [Event::Error(ChatError::OperatorNeeded(_))]
    ));
    c.run(
        ann,
        Command::Mode {
            room: "r".into(),
            changes: vec![ModeChange {
                add: true,
                mode: 'o',
                arg: Some("bob".into()),
            }],
        },
    );
    c.take(bob);
    c.take(ann);
    c.run(
        bob,
        Command::Topic {
            room: "r".into(),
            text: Some("mine".into()),
        },
    );
    assert!(matches!(&c.take(ann)[..], [Event::TopicChanged { text, .. }] if &**text == "mine"));
    c.run(
        bob,
        Command::Kick {
            room: "r".into(),
            name: "ann".into(),
            reason: None,
        },
    );
    assert!(matches!(&c.take(ann)[..], [Event::Kicked { target, .. }] if target.as_str() == "ann"));
    c.run(ann, say(Recipient::Room("r".into()), "still here?"));
    assert!(matches!(
        &c.take(ann)[..],
        [Event::Error(ChatError::CannotSend(_))]
    ));
    c.run(ann, join("r"));
    c.take(bob);
    c.take(ann);
    let id = c.id(bob);
    c.nodes[1].disconnect(id, "bye");
    c.pump();
    assert!(matches!(&c.take(ann)[..], [Event::Quit { reason, .. }] if &**reason == "bye"));
    assert!(!c.nodes[0].is_online("bob"));
}

#[test]
fn a_dead_node_takes_its_users_and_a_snapshot_brings_them_back() {
    let mut c = Cluster::new(2);
    let ann = c.user(0, "ann");
    let bob = c.user(1, "bob");
    c.run(ann, join("r"));
    c.run(bob, join("r"));
    c.take(ann);
    c.nodes[0].drop_node("b", "b.confab split");
    assert!(matches!(&c.take(ann)[..], [Event::Quit { who, .. }] if who.name.as_str() == "bob"));
    assert!(!c.nodes[0].is_online("bob"));

    let snapshot = c.nodes[1].snapshot();
    c.nodes[0].apply_snapshot("b", snapshot);
    assert!(c.nodes[0].is_online("bob"));
    assert!(matches!(&c.take(ann)[..], [Event::Joined { who, .. }] if who.name.as_str() == "bob"));
    c.run(bob, say(Recipient::Room("r".into()), "back"));
    assert_eq!(c.texts(ann), ["back"]);

    // A snapshot without a user removes it; one without a membership parts it.
    let id = c.id(bob);
    c.nodes[1].disconnect(id, "gone");
    c.queue.lock().unwrap().clear();
    let snapshot = c.nodes[1].snapshot();
    c.nodes[0].apply_snapshot("b", snapshot);
    assert!(!c.nodes[0].is_online("bob"));
}

/// Client tags, tag-only messages, bot mode and a joiner's away message reach users on
/// other nodes as they reach local ones.
#[test]
fn tags_bots_and_away_joiners_cross_nodes() {
    let mut c = Cluster::new(2);
    let ann = c.user(0, "ann");
    let bob = c.user(1, "bob");
    c.run(ann, join("r"));
    let id = c.id(bob);
    c.nodes[1].set_bot(id, true);
    c.pump();
    c.run(
        bob,
        Command::Away {
            message: Some("out".into()),
        },
    );
    c.run(bob, join("r"));
    let joined = c.take(ann).into_iter().find_map(|e| match e {
        Event::Joined { who, away, .. } if who.name.as_str() == "bob" => Some((who.bot, away)),
        _ => None,
    });
    assert_eq!(joined, Some((true, Some("out".into()))));
    c.run(
        bob,
        Command::Send {
            to: Recipient::Room("r".into()),
            kind: MessageKind::Tags,
            text: String::new(),
            tags: Some("+typing=active".into()),
        },
    );
    let got: Vec<_> = c
        .take(ann)
        .into_iter()
        .filter_map(|e| match e {
            Event::Message(m) => Some((m.kind, m.tags, m.from.bot)),
            _ => None,
        })
        .collect();
    assert_eq!(
        got,
        [(MessageKind::Tags, Some("+typing=active".into()), true)]
    );
}
