//! Fuzz target: the WebSocket JSON request parser must answer every text, however
//! deep or malformed, with a request or an error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        confab_server::fuzzing::web_request(text);
    }
});
