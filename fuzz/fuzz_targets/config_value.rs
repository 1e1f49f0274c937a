//! Fuzz target: every hand-parsed configuration value (operator credentials, times in
//! seconds) must parse or be refused with an error, never panic, and a time must never
//! make a deadline overflow.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        confab_server::fuzzing::config_value(text);
    }
});
