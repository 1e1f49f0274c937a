//! Tidy checks over the workspace's source, in the spirit of rust-analyzer's tidy
//! tests: every `.rs` file says what it is for on its first line, the lower modules of
//! `confab-server` never import the connection loop or the server, its front-ends
//! never lock the core or touch what sits behind their handle, and no production
//! file or function grows past the sizes ARCHITECTURE.md asks for.
//!
//! Each check has an allow-list of today's exceptions. The lists may only shrink: an
//! entry that is no longer needed fails the test until it is removed, and a listed
//! size is a ceiling that the file or function may not grow past.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

/// A production file longer than this wants splitting (ARCHITECTURE.md's rule of thumb).
const MAX_FILE_LINES: usize = 900;
/// A production function longer than this wants splitting.
const MAX_FN_LINES: usize = 120;

/// The modules of `confab-server` below the connection loop and the server: they are
/// used by those two and must not use them back (issue 19's layering).
const LOWER_MODULES: &[&str] = &[
    "accounts",
    "history",
    "cluster",
    "outbox",
    "metrics",
    "admission",
    "config",
    "deadlines",
    "flood",
    "tls",
    "logins",
    "chat",
    "frontend",
    "transport",
    "write_queue",
    "shared",
    "ctx",
    "protocol",
];

/// Lower modules that import the connection loop or the server, as (file, imported
/// module). Empty since the layering was fixed; it stays empty.
const LAYERING_ALLOWED: &[(&str, &str)] = &[];

/// Production files over `MAX_FILE_LINES` today, with their length in lines (not
/// counting a trailing `#[cfg(test)]` module). A file may shrink, never grow; this list
/// must only shrink.
const LONG_FILES_ALLOWED: &[(&str, usize)] = &[("crates/confab-server/src/irc/commands.rs", 910)];

/// Production functions over `MAX_FN_LINES` today, as (file, function, lines). A
/// function may shrink, never grow; this list must only shrink.
const LONG_FNS_ALLOWED: &[(&str, &str, usize)] = &[
    ("crates/confab-bench/src/flood.rs", "combine", 125),
    (
        "crates/confab-bench/src/messaging.rs",
        "exchange_messages",
        127,
    ),
    ("crates/confab-client/src/pipe.rs", "session", 135),
    ("crates/confab-server/src/web/session.rs", "on_request", 149),
    ("crates/confab-wire/src/line.rs", "encode_event", 131),
];

/// The workspace root: this crate is `crates/confab`.
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Every `.rs` file under the given top folders of the workspace, as paths relative to
/// the root with `/` separators, sorted.
fn rust_files(tops: &[&str]) -> Vec<String> {
    fn walk(dir: &Path, root: &Path, out: &mut Vec<String>) {
        let Ok(entries) = fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if path.is_dir() {
                if !(name.starts_with('.') || name == "target" || name == "node_modules") {
                    walk(&path, root, out);
                }
            } else if name.ends_with(".rs") {
                let relative = path.strip_prefix(root).expect("under the root");
                let parts: Vec<_> = relative
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy().into_owned())
                    .collect();
                out.push(parts.join("/"));
            }
        }
    }
    let root = root();
    let mut files = Vec::new();
    for top in tops {
        walk(&root.join(top), &root, &mut files);
    }
    files.sort();
    files
}

fn read(file: &str) -> String {
    fs::read_to_string(root().join(file)).unwrap_or_else(|e| panic!("reading {file}: {e}"))
}

/// Whether a file is test code as a whole: integration tests, their helpers, and the
/// unit-test files that a crate includes under `#[cfg(test)]`.
fn is_test_file(file: &str) -> bool {
    let name = file.rsplit('/').next().unwrap_or(file);
    file.contains("/tests/")
        || name == "tests.rs"
        || name.ends_with("_tests.rs")
        || name == "test_support.rs"
}

/// A file's production lines: all of them up to a top-level `#[cfg(test)]` module.
fn production_lines(text: &str) -> Vec<&str> {
    let lines: Vec<&str> = text.lines().collect();
    let end = lines
        .windows(2)
        .position(|w| w[0] == "#[cfg(test)]" && w[1].starts_with("mod "))
        .unwrap_or(lines.len());
    lines[..end].to_vec()
}

/// The functions in rustfmt-formatted source, as (name, lines from `fn` to its closing
/// brace). A body ends at the first `}` alone on a line at the `fn` line's indentation.
fn functions(lines: &[&str]) -> Vec<(String, usize)> {
    let mut found = Vec::new();
    for (start, line) in lines.iter().enumerate() {
        let trimmed = line.trim_start();
        let Some(at) = fn_keyword(trimmed) else {
            continue;
        };
        let name: String = trimmed[at + 3..]
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        let indent = &line[..line.len() - trimmed.len()];
        let closing = format!("{indent}}}");
        // The signature ends at the first line ending in `{` (a body) or `;` (none).
        let Some(open) = (start..lines.len()).find(|&i| {
            let l = lines[i].trim_end();
            l.ends_with('{') || l.ends_with(';') || (i == start && l.ends_with('}'))
        }) else {
            continue;
        };
        let opened = lines[open].trim_end();
        if !opened.ends_with('{') {
            continue;
        }
        if let Some(end) = (open + 1..lines.len()).find(|&i| lines[i].trim_end() == closing) {
            found.push((name, end - start + 1));
        }
    }
    found
}

/// Where `fn ` starts in a trimmed line that declares a function, after its
/// qualifiers (`pub(crate)`, `const`, `async`, `unsafe`, `extern "C"`).
fn fn_keyword(trimmed: &str) -> Option<usize> {
    let mut rest = trimmed;
    loop {
        if rest.starts_with("fn ") {
            return Some(trimmed.len() - rest.len());
        }
        let word_end = rest.find(' ')?;
        let word = &rest[..word_end];
        let qualifier = word.starts_with("pub")
            || matches!(word, "const" | "async" | "unsafe" | "extern" | "default")
            || (word.len() > 1 && word.starts_with('"') && word.ends_with('"'));
        if !qualifier {
            return None;
        }
        rest = &rest[word_end + 1..];
    }
}

#[test]
fn every_rust_file_opens_with_its_purpose() {
    let missing: Vec<String> = rust_files(&["crates", "fuzz"])
        .into_iter()
        .filter(|file| !read(file).starts_with("//!"))
        .collect();
    assert!(
        missing.is_empty(),
        "these files must open with a `//!` line saying what they are for:\n{}",
        missing.join("\n")
    );
}

#[test]
fn lower_server_modules_do_not_import_the_connection_loop_or_the_server() {
    let prefix = "crates/confab-server/src/";
    let mut found = Vec::new();
    for file in rust_files(&["crates/confab-server/src"]) {
        let module = &file[prefix.len()..];
        let top = module.split(['/', '.']).next().unwrap_or(module);
        if !LOWER_MODULES.contains(&top) {
            continue;
        }
        let text = read(&file);
        for higher in ["connection", "server"] {
            let direct = format!("crate::{higher}");
            let imports = text.match_indices(&direct).any(|(at, _)| {
                // `crate::server` but not `crate::server_name`.
                !text[at + direct.len()..].starts_with(|c: char| c.is_alphanumeric() || c == '_')
            }) || text.match_indices("crate::{").any(|(at, _)| {
                let group = &text[at..];
                let group = &group[..group.find('}').unwrap_or(group.len())];
                group
                    .split(|c: char| !(c.is_alphanumeric() || c == '_'))
                    .any(|word| word == higher)
            });
            if imports {
                found.push((file.clone(), higher));
            }
        }
    }
    let new: Vec<String> = found
        .iter()
        .filter(|(file, higher)| !LAYERING_ALLOWED.contains(&(file.as_str(), *higher)))
        .map(|(file, higher)| format!("{file} imports crate::{higher}"))
        .collect();
    let stale: Vec<String> = LAYERING_ALLOWED
        .iter()
        .filter(|(file, higher)| !found.iter().any(|(f, h)| f == file && h == higher))
        .map(|(file, higher)| format!("({file:?}, {higher:?})"))
        .collect();
    assert!(
        new.is_empty(),
        "a lower module of confab-server must not import the connection loop or the server:\n{}",
        new.join("\n")
    );
    assert!(
        stale.is_empty(),
        "fixed, so remove these from LAYERING_ALLOWED in {}:\n{}",
        file!(),
        stale.join("\n")
    );
}

/// The front-ends of `confab-server`: they reach the server only through the handle
/// (`Ctx` and `Shared`'s methods), never the core's lock, the store thread, the metrics
/// or the cluster themselves (issue 19's narrow API).
const FRONT_ENDS: &[&str] = &[
    "crates/confab-server/src/line.rs",
    "crates/confab-server/src/irc/",
    "crates/confab-server/src/web/",
    "crates/confab-server/src/web.rs",
];

/// What a front-end may not name: the core's lock and the fields behind the handle.
const BEHIND_THE_HANDLE: &[&str] = &[
    "lock_core(",
    "shared.history",
    "shared.metrics",
    "shared.cluster",
    "shared.durability",
    "shared.next_id",
    "shared.core",
    // The whole handle handed on, which would reach all of the above.
    "ctx.shared,",
    "ctx.shared)",
    "ctx.shared.clone()",
];

#[test]
fn front_ends_reach_the_server_only_through_its_handle() {
    let files: Vec<String> = rust_files(&["crates/confab-server/src"])
        .into_iter()
        .filter(|file| FRONT_ENDS.iter().any(|f| file.starts_with(f)))
        .collect();
    // A front-end that moved would otherwise leave the check looking at nothing.
    for front_end in FRONT_ENDS {
        assert!(
            files.iter().any(|file| file.starts_with(front_end)),
            "no file under {front_end}: update FRONT_ENDS in {}",
            file!()
        );
    }
    let mut found = Vec::new();
    for file in files {
        for (n, line) in read(&file).lines().enumerate() {
            for name in BEHIND_THE_HANDLE {
                if line.contains(name) {
                    found.push(format!("{file}:{}: {name}", n + 1));
                }
            }
        }
    }
    assert!(
        found.is_empty(),
        "a front-end must go through Ctx or Shared's methods, not name these:\n{}",
        found.join("\n")
    );
}

#[test]
fn production_files_and_functions_stay_small() {
    let mut problems = Vec::new();
    let mut long_files = BTreeMap::new();
    let mut long_fns = BTreeMap::new();
    for file in rust_files(&["crates"]) {
        if is_test_file(&file) {
            continue;
        }
        let text = read(&file);
        let lines = production_lines(&text);
        if lines.len() > MAX_FILE_LINES {
            long_files.insert(file.clone(), lines.len());
        }
        for (name, length) in functions(&lines) {
            if length > MAX_FN_LINES {
                let longest = long_fns.entry((file.clone(), name)).or_insert(0);
                *longest = length.max(*longest);
            }
        }
    }
    for (file, &length) in &long_files {
        match LONG_FILES_ALLOWED.iter().find(|(f, _)| f == file) {
            None => problems.push(format!(
                "{file} has {length} lines (more than {MAX_FILE_LINES}): split it"
            )),
            Some(&(_, ceiling)) if length > ceiling => problems.push(format!(
                "{file} has grown to {length} lines (allowed {ceiling}, while it is split)"
            )),
            Some(_) => {}
        }
    }
    for ((file, name), &length) in &long_fns {
        match LONG_FNS_ALLOWED.iter().find(|(f, n, _)| f == file && n == name) {
            None => problems.push(format!(
                "{file}: fn {name} has {length} lines (more than {MAX_FN_LINES}): split it"
            )),
            Some(&(_, _, ceiling)) if length > ceiling => problems.push(format!(
                "{file}: fn {name} has grown to {length} lines (allowed {ceiling}, while it is split)"
            )),
            Some(_) => {}
        }
    }
    for (file, _) in LONG_FILES_ALLOWED {
        if !long_files.contains_key(*file) {
            problems.push(format!(
                "remove {file} from LONG_FILES_ALLOWED: it is short enough now"
            ));
        }
    }
    for (file, name, _) in LONG_FNS_ALLOWED {
        if !long_fns.contains_key(&(file.to_string(), name.to_string())) {
            problems.push(format!(
                "remove {file}: fn {name} from LONG_FNS_ALLOWED: it is short enough now (or gone)"
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// The function finder must see a function's whole body and skip bodiless ones.
#[test]
fn the_function_finder_measures_bodies() {
    let source = "\
fn one() {
    let x = { 1 };
}
pub(crate) async fn two(a: u8) -> u8 {
    a
}
trait T {
    fn decl(&self);
    fn provided(&self) {}
}
";
    let lines: Vec<&str> = source.lines().collect();
    assert_eq!(
        functions(&lines),
        [("one".to_string(), 3), ("two".to_string(), 3)]
    );
}
