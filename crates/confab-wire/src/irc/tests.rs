//! Tests of the IRC codec: hand-written edge cases, and the public `irc-parser-tests`
//! vectors read from the installed PyPI package.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;

use bytes::BytesMut;
use serde::Deserialize;

use super::*;
use confab_core::glob_match;

#[test]
fn parses_tags_source_and_trailing() {
    let m = parse("@a=b\\sc;d :nick!u@h PRIVMSG #chan :hello  world").unwrap();
    assert_eq!(m.source, Some("nick!u@h"));
    assert_eq!(m.command, "PRIVMSG");
    assert_eq!(m.params, ["#chan", "hello  world"]);
    assert_eq!(m.tag("a").as_deref(), Some("b c"));
    assert_eq!(m.tag("d").as_deref(), Some(""));
    assert_eq!(m.tag("e"), None);
}

#[test]
fn refuses_what_is_not_a_message() {
    assert_eq!(parse(""), Err(ParseError::Empty));
    assert_eq!(parse("   "), Err(ParseError::Empty));
    assert_eq!(parse("@a=b "), Err(ParseError::NoCommand));
    assert_eq!(parse(":src"), Err(ParseError::NoCommand));
    assert_eq!(parse(&"A".repeat(511)), Err(ParseError::TooLong));
    assert!(parse(&"A".repeat(510)).is_ok());
    let tags = format!("@{} CMD", "t".repeat(8190));
    assert_eq!(parse(&tags), Err(ParseError::TagsTooLong));
}

#[test]
fn folds_parameters_past_fifteen() {
    let line = format!("CMD {}", vec!["p"; 20].join(" "));
    let m = parse(&line).unwrap();
    assert_eq!(m.params.len(), MAX_PARAMS);
    assert_eq!(m.params[14], "p p p p p p");
}

#[test]
fn writes_trailing_only_when_needed() {
    let mut out = BytesMut::new();
    write_message(
        &mut out,
        &[("time", "x y")],
        Some("srv"),
        "001",
        &["nick", "Welcome here"],
        false,
    );
    assert_eq!(&out[..], b"@time=x\\sy :srv 001 nick :Welcome here\r\n");
    out.clear();
    write_message(&mut out, &[], None, "JOIN", &["#c"], false);
    assert_eq!(&out[..], b"JOIN #c\r\n");
    out.clear();
    write_message(&mut out, &[], None, "PRIVMSG", &["#c", "one"], true);
    assert_eq!(&out[..], b"PRIVMSG #c :one\r\n");
}

#[test]
fn masks_match_without_backtracking_blowup() {
    assert!(glob_match("*!*@127.0.0.1", "Nick!user@127.0.0.1"));
    assert!(!glob_match("a*a*a*a*a*a*a*b", &"a".repeat(5000)));
}

// The public vectors. `.ci/run` installs them with `pip install irc-parser-tests`; the
// tests ask python3 where the package lives and read its YAML files.

fn vectors(file: &str) -> String {
    let dir = std::env::var("IRC_PARSER_TESTS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            let out = Command::new("python3")
                .args([
                    "-c",
                    "import parser_tests, os; print(os.path.dirname(parser_tests.__file__))",
                ])
                .output()
                .expect("python3 runs");
            assert!(
                out.status.success(),
                "the irc-parser-tests package is missing: pip install irc-parser-tests"
            );
            PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
        });
    std::fs::read_to_string(dir.join("data").join(file)).expect("vector file")
}

#[derive(Deserialize)]
struct Suite<T> {
    tests: Vec<T>,
}

#[derive(Deserialize, Default, Debug, PartialEq)]
struct Atoms {
    #[serde(default)]
    tags: Option<BTreeMap<String, Option<String>>>,
    #[serde(default)]
    source: Option<String>,
    #[serde(default)]
    verb: Option<String>,
    #[serde(default)]
    params: Option<Vec<String>>,
}

#[derive(Deserialize)]
struct SplitCase {
    input: String,
    atoms: Atoms,
}

#[test]
fn passes_the_msg_split_vectors() {
    let suite: Suite<SplitCase> = serde_yaml::from_str(&vectors("msg-split.yaml")).unwrap();
    assert!(suite.tests.len() > 20);
    for case in suite.tests {
        let m = parse(&case.input).unwrap_or_else(|e| panic!("{:?}: {e}", case.input));
        let tags: BTreeMap<String, String> = m
            .tags()
            .map(|(k, v)| (k.to_string(), v.into_owned()))
            .collect();
        let expected_tags: BTreeMap<String, String> = case
            .atoms
            .tags
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| (k, v.unwrap_or_default()))
            .collect();
        assert_eq!(tags, expected_tags, "tags of {:?}", case.input);
        assert_eq!(
            m.source.map(str::to_string),
            case.atoms.source,
            "{:?}",
            case.input
        );
        assert_eq!(
            Some(m.command.to_string()),
            case.atoms.verb,
            "{:?}",
            case.input
        );
        let params: Vec<String> = m.params.iter().map(|p| p.to_string()).collect();
        assert_eq!(
            params,
            case.atoms.params.unwrap_or_default(),
            "{:?}",
            case.input
        );
    }
}

#[derive(Deserialize)]
struct JoinCase {
    atoms: Atoms,
    matches: Vec<String>,
}

#[test]
fn passes_the_msg_join_vectors() {
    let suite: Suite<JoinCase> = serde_yaml::from_str(&vectors("msg-join.yaml")).unwrap();
    for case in suite.tests {
        let tags: Vec<(String, String)> = case
            .atoms
            .tags
            .clone()
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| (k, v.unwrap_or_default()))
            .collect();
        let tag_refs: Vec<(&str, &str)> =
            tags.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let params = case.atoms.params.clone().unwrap_or_default();
        let param_refs: Vec<&str> = params.iter().map(String::as_str).collect();
        let mut out = BytesMut::new();
        write_message(
            &mut out,
            &tag_refs,
            case.atoms.source.as_deref(),
            case.atoms.verb.as_deref().unwrap(),
            &param_refs,
            false,
        );
        let line = std::str::from_utf8(&out).unwrap().trim_end_matches("\r\n");
        // Tag order is free, so compare parsed forms when the text differs.
        let ok = case.matches.iter().any(|m| {
            m == line || {
                let (a, b) = (parse(m).unwrap(), parse(line).unwrap());
                let ta: BTreeMap<_, _> = a.tags().collect();
                let tb: BTreeMap<_, _> = b.tags().collect();
                ta == tb && a.source == b.source && a.command == b.command && a.params == b.params
            }
        });
        assert!(ok, "{line:?} is none of {:?}", case.matches);
    }
}

#[derive(Deserialize)]
struct UserhostCase {
    source: String,
    atoms: BTreeMap<String, String>,
}

#[test]
fn passes_the_userhost_split_vectors() {
    let suite: Suite<UserhostCase> = serde_yaml::from_str(&vectors("userhost-split.yaml")).unwrap();
    for case in suite.tests {
        let (nick, user, host) = split_userhost(&case.source);
        let get = |k: &str| case.atoms.get(k).cloned().unwrap_or_default();
        assert_eq!(
            (nick, user, host),
            (&*get("nick"), &*get("user"), &*get("host")),
            "{}",
            case.source
        );
    }
}

#[derive(Deserialize)]
struct MaskCase {
    mask: String,
    #[serde(default)]
    matches: Vec<String>,
    #[serde(default)]
    fails: Vec<String>,
}

#[test]
fn passes_the_mask_match_vectors() {
    let suite: Suite<MaskCase> = serde_yaml::from_str(&vectors("mask-match.yaml")).unwrap();
    for case in suite.tests {
        for subject in &case.matches {
            assert!(
                glob_match(&case.mask, subject),
                "{} should match {subject}",
                case.mask
            );
        }
        for subject in &case.fails {
            assert!(
                !glob_match(&case.mask, subject),
                "{} should not match {subject}",
                case.mask
            );
        }
    }
}

mod properties {
    use proptest::prelude::*;

    use super::super::*;
    use confab_core::glob_match;

    proptest! {
        #[test]
        fn parsing_never_panics(line in ".{0,600}") {
            if let Ok(m) = parse(&line) {
                let _ = m.tags().count();
                prop_assert!(m.params.len() <= MAX_PARAMS);
            }
        }

        #[test]
        fn written_messages_parse_back(
            command in "[A-Z]{1,10}",
            middle in proptest::collection::vec("[a-z#0-9]{1,8}", 0..5),
            trailing in "[ -~]{0,40}",
            tag in "[ -~]{0,20}",
        ) {
            let mut params: Vec<&str> = middle.iter().map(String::as_str).collect();
            params.push(&trailing);
            let mut out = BytesMut::new();
            write_message(&mut out, &[("k", &tag)], Some("src"), &command, &params, false);
            let text = std::str::from_utf8(&out).unwrap();
            let m = parse(text).unwrap();
            prop_assert_eq!(m.command, command.as_str());
            let value = m.tag("k").map(|v| v.into_owned()).unwrap_or_default();
            prop_assert_eq!(&m.params, &params);
            prop_assert_eq!(value, tag);
        }

        #[test]
        fn masks_never_panic(mask in "[*?a-c!@.]{0,20}", subject in "[a-c!@.]{0,30}") {
            let _ = glob_match(&mask, &subject);
            prop_assert!(glob_match("*", &subject));
        }
    }
}
