//! The hostile-input table: each input is sent to the line protocol and to IRC, and the
//! server must answer with an error or ignore it, keep the connection, and keep serving
//! everyone else. One check per row, so a regression names its input.

mod common;

use common::{Client, TestServer};
use confab_server::Limits;

/// A server without flood control: the table sends more lines than a person would, and
/// what is under test here is the answer to each input, not the rate.
async fn server() -> TestServer {
    TestServer::with_limits(Limits {
        flood_rate: 0,
        ..Limits::default()
    })
    .await
}

/// What an input must produce on the line protocol: the first line of the answer
/// (`None` when it must be ignored silently).
fn line_table() -> Vec<(&'static str, Vec<u8>, Option<&'static str>)> {
    vec![
        (
            "NUL inside a message",
            b"a\0b\n".to_vec(),
            Some("! Messages cannot contain control characters"),
        ),
        (
            "CR without LF",
            b"a\rb\n".to_vec(),
            Some("! Messages cannot contain control characters"),
        ),
        ("lone LF", b"\n".to_vec(), None),
        ("CR LF only", b"\r\n".to_vec(), None),
        (
            "1 MB without newline",
            [vec![b'x'; 1 << 20], b"\n".to_vec()].concat(),
            Some("! Line too long"),
        ),
        (
            "invalid UTF-8",
            b"\xff\xfe\n".to_vec(),
            Some("! Invalid UTF-8"),
        ),
        (
            "overlong UTF-8",
            b"\xc0\xaf\n".to_vec(),
            Some("! Invalid UTF-8"),
        ),
        (
            "surrogate in UTF-8",
            b"\xed\xa0\x80\n".to_vec(),
            Some("! Invalid UTF-8"),
        ),
        (
            "10,000 words",
            [b"w ".repeat(10_000), b"\n".to_vec()].concat(),
            Some("! Line too long"),
        ),
        (
            "empty command",
            b"/\n".to_vec(),
            Some("! Unknown command /"),
        ),
        (
            "unknown command",
            b"/frobnicate now\n".to_vec(),
            Some("! Unknown command /frobnicate"),
        ),
        (
            "name with a control character",
            b"/nick bad\x07name\n".to_vec(),
            Some("! Invalid name"),
        ),
        (
            "look-alike Unicode name",
            "/nick \u{430}lice\n".as_bytes().to_vec(),
            Some("! Invalid name"),
        ),
        (
            "empty name",
            b"/nick \n".to_vec(),
            Some("! Usage: /nick NEW"),
        ),
        (
            "direct message to nobody",
            b"@:hi\n".to_vec(),
            Some("! No such user"),
        ),
        (
            "room with punctuation",
            b"/join a!b\n".to_vec(),
            Some("! Invalid room name"),
        ),
    ]
}

#[tokio::test]
async fn the_line_protocol_survives_every_hostile_input() {
    let server = server().await;
    let mut victim = server.user("victim").await;
    let mut witness = server.user("witness").await;
    victim.expect("* witness joined lobby").await;
    for (what, input, answer) in line_table() {
        victim.send_bytes(&input).await;
        if let Some(answer) = answer {
            let line = victim.line().await;
            assert!(
                line.starts_with(answer),
                "{what}: got {line:?}, wanted {answer:?}"
            );
        }
        // The connection stays and still works, and the others are unaffected.
        victim.send(&format!("still here after {what}")).await;
        let seen = witness.expect("[lobby]").await;
        assert_eq!(
            seen,
            format!("[lobby] victim: still here after {what}"),
            "{what}"
        );
        victim.expect_quiet().await;
    }
    server.stop().await;
}

/// Rows for IRC: input and the numeric (or command) the answer must carry.
fn irc_table() -> Vec<(&'static str, Vec<u8>, Option<&'static str>)> {
    let many_params = format!("PRIVMSG {}\r\n", vec!["p"; 10_000].join(" "));
    vec![
        ("NUL", b"PRIVMSG #lobby :a\0b\r\n".to_vec(), Some(" 412 ")),
        ("lone LF", b"\n".to_vec(), None),
        (
            "1 MB without newline",
            [vec![b'x'; 1 << 20], b"\r\n".to_vec()].concat(),
            Some(" 417 "),
        ),
        (
            "invalid UTF-8",
            b"PRIVMSG #lobby :\xff\r\n".to_vec(),
            Some(" FAIL PRIVMSG INVALID_UTF8 "),
        ),
        ("10,000 parameters", many_params.into_bytes(), Some(" 417 ")),
        ("empty command with tags", b"@a=b \r\n".to_vec(), None),
        ("only a source", b":src\r\n".to_vec(), None),
        ("unknown command", b"FROBNICATE\r\n".to_vec(), Some(" 421 ")),
        (
            "nick with a control character",
            b"NICK bad\x07\r\n".to_vec(),
            Some(" 432 "),
        ),
        (
            "look-alike Unicode nick",
            "NICK \u{430}lice\r\n".as_bytes().to_vec(),
            Some(" 432 "),
        ),
        (
            "tags over 8191 bytes",
            [b"@".to_vec(), vec![b't'; 9000], b" PING x\r\n".to_vec()].concat(),
            Some(" 417 "),
        ),
    ]
}

#[tokio::test]
async fn irc_survives_every_hostile_input() {
    let server = server().await;
    let mut witness = server.user("witness").await;
    let mut irc = Client::connect(server.irc_addr).await;
    irc.send("NICK victim\r\nUSER v 0 * :V\r\nJOIN #lobby\r")
        .await;
    irc.expect(":confab.local 366 victim #lobby").await;
    witness.expect("* victim joined lobby").await;
    for (what, input, answer) in irc_table() {
        irc.send_bytes(&input).await;
        if let Some(answer) = answer {
            let line = irc.line().await;
            assert!(
                line.contains(answer),
                "{what}: got {line:?}, wanted {answer:?}"
            );
        }
        irc.send(&format!("PRIVMSG #lobby :still here after {what}\r"))
            .await;
        let seen = witness.expect("[lobby]").await;
        assert_eq!(
            seen,
            format!("[lobby] victim: still here after {what}"),
            "{what}"
        );
    }
    server.stop().await;
}
