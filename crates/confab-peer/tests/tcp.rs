//! TCP mode end to end: two confab peers typing at once, and a raw socket standing in
//! for `nc` or the tutorial's scripts.

mod common;

use common::{args, Peer, WAIT};
use confab_peer::{open, Link};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::timeout;

async fn listener() -> TcpListener {
    TcpListener::bind("127.0.0.1:0").await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_sides_send_at_once_and_nothing_is_lost_or_interleaved() {
    let listener = listener().await;
    let addr = listener.local_addr().unwrap().to_string();
    let mut a = Peer::spawn(args(&["--listen", &addr]), Link::Listener(listener));
    let b_args = args(&["--connect", &addr]);
    let link = open(&b_args).await.unwrap();
    let mut b = Peer::spawn(b_args, link);

    // Every hundredth line is long, so that a line cut by a write in the middle would show.
    let lines = |who: &str| -> Vec<String> {
        (0..1000)
            .map(|i| {
                let pad = if i % 100 == 0 {
                    "=".repeat(20_000)
                } else {
                    String::new()
                };
                format!("{who} line {i} {pad}")
            })
            .collect()
    };
    let (from_a, from_b) = (lines("a"), lines("b"));
    let feed = |peer: &mut Peer, lines: &[String]| {
        let mut input = peer.input.take().unwrap();
        let text = lines.join("\n") + "\n";
        tokio::spawn(async move {
            input.write_all(text.as_bytes()).await.unwrap();
            input
        })
    };
    let (feed_a, feed_b) = (feed(&mut a, &from_a), feed(&mut b, &from_b));
    let (got_b, got_a) = tokio::join!(b.lines(1000), a.lines(1000));
    assert_eq!(got_b, from_a);
    assert_eq!(got_a, from_b);

    // A leaves; b is told and leaves too.
    drop(feed_a.await.unwrap());
    b.notice("the friend left", WAIT).await;
    let _b_input = feed_b.await.unwrap();
    let (ra, rb) = tokio::join!(a.finish(), b.finish());
    let (ra, rb) = (ra.unwrap(), rb.unwrap());
    assert_eq!((ra.sent, ra.received, ra.undelivered), (1000, 1000, 0));
    assert_eq!((rb.sent, rb.received, rb.undelivered), (1000, 1000, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_raw_socket_friend_chats_and_its_exit_word_ends_the_chat() {
    let listener = listener().await;
    let addr = listener.local_addr().unwrap();
    let mut confab = Peer::spawn(
        args(&["--listen", &addr.to_string()]),
        Link::Listener(listener),
    );
    let friend = TcpStream::connect(addr).await.unwrap();
    let (read, mut write) = friend.into_split();
    let mut read = BufReader::new(read).lines();

    write.write_all(b"hello\r\nsecond\n").await.unwrap();
    assert_eq!(confab.lines(2).await, ["hello", "second"]);
    confab.send("hi nc").await;
    let got = timeout(WAIT, read.next_line()).await.unwrap().unwrap();
    assert_eq!(got.as_deref(), Some("hi nc"));

    write.write_all(b"quit\n").await.unwrap();
    confab.notice("the friend left", WAIT).await;
    // confab closes its side in turn.
    let rest = timeout(WAIT, read.next_line()).await.unwrap().unwrap();
    assert_eq!(rest, None);
    let report = confab.finish().await.unwrap();
    assert_eq!((report.sent, report.received), (1, 2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn end_of_input_tells_the_friend_and_closes() {
    let listener = listener().await;
    let addr = listener.local_addr().unwrap().to_string();
    let friend = tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        let mut got = String::new();
        stream.read_to_string(&mut got).await.unwrap();
        // The friend closes after reading everything, as the tutorial's script would.
        drop(stream);
        got
    });
    let b_args = args(&["--connect", &addr]);
    let link = open(&b_args).await.unwrap();
    let mut confab = Peer::spawn(b_args, link);
    confab.send("one").await;
    confab.send("two").await;
    confab.close_input();
    let got = timeout(WAIT, friend).await.unwrap().unwrap();
    assert_eq!(got, "one\ntwo\nbye bye\n");
    let report = confab.finish().await.unwrap();
    assert_eq!((report.sent, report.undelivered), (2, 0));
}
