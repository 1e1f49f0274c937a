//! The command-line options: their rules, their help, and the checks clap cannot make.

use clap::{CommandFactory, Parser};
use confab_peer::{run_with, PeerArgs, SECRET_ENV};

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    args: PeerArgs,
}

fn parse(argv: &[&str]) -> Result<PeerArgs, clap::Error> {
    Cli::try_parse_from(std::iter::once("peer").chain(argv.iter().copied())).map(|cli| cli.args)
}

/// One test, because it sets an environment variable that the other cases read.
#[test]
fn options_follow_their_rules() {
    Cli::command().debug_assert();
    for arg in Cli::command().get_arguments() {
        assert!(arg.get_help().is_some(), "--{} has no help", arg.get_id());
    }

    let ok: &[&[&str]] = &[
        &["--listen", "127.0.0.1:5000"],
        &["--connect", "127.0.0.1:5000"],
        &[
            "--udp",
            "--bind",
            "127.0.0.1:5000",
            "--to",
            "127.0.0.1:5001",
        ],
        &[
            "--udp",
            "--bind",
            "0.0.0.0:1",
            "--to",
            "h:2",
            "--plain",
            "--handshake-timeout",
            "0.5",
        ],
        &[
            "--udp",
            "--bind",
            "a:1",
            "--to",
            "b:2",
            "--reliable",
            "--secret",
            "s",
            "--linger",
            "2",
        ],
    ];
    for argv in ok {
        parse(argv).unwrap_or_else(|e| panic!("{argv:?}: {e}"));
    }
    let bad: &[&[&str]] = &[
        &[],
        &["--listen", "a:1", "--connect", "b:2"],
        &["--listen", "a:1", "--udp", "--bind", "a:1", "--to", "b:2"],
        &["--udp", "--bind", "a:1"],
        &["--udp", "--to", "a:1"],
        &["--listen", "a:1", "--plain"],
        &[
            "--udp",
            "--bind",
            "a:1",
            "--to",
            "b:2",
            "--plain",
            "--reliable",
        ],
        &["--udp", "--bind", "a:1", "--to", "b:2", "--linger", "soon"],
    ];
    for argv in bad {
        assert!(parse(argv).is_err(), "{argv:?} should be refused");
    }

    // The secret stays out of Debug output, and may come from the environment.
    let args = parse(&[
        "--udp", "--bind", "a:1", "--to", "b:2", "--secret", "hunter2",
    ])
    .unwrap();
    assert!(!format!("{args:?}").contains("hunter2"));
    std::env::set_var(SECRET_ENV, "from the environment");
    let args = parse(&["--udp", "--bind", "a:1", "--to", "b:2"]).unwrap();
    assert_eq!(
        args.secret.map(|s| s.0).as_deref(),
        Some("from the environment")
    );
    let tcp = parse(&["--listen", "127.0.0.1:0"]).unwrap();
    std::env::remove_var(SECRET_ENV);

    // A secret cannot protect TCP's plain lines: refused before anything is opened.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let refused = runtime.block_on(async {
        let link = confab_peer::Link::Listener(
            tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap(),
        );
        run_with(
            tcp,
            link,
            tokio::io::empty(),
            tokio::io::sink(),
            tokio::io::sink(),
        )
        .await
    });
    assert!(refused.unwrap_err().to_string().contains("UDP only"));
}
