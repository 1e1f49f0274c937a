//! Fuzz target: the line decoder and the line protocol's input parser must never panic,
//! and no decoded line may exceed the limit.
#![no_main]

use confab_wire::framing::{Frame, LineDecoder};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut decoder = LineDecoder::new(64);
    for chunk in data.chunks(7) {
        decoder.feed(chunk, |frame| {
            if let Frame::Line(line) = frame {
                assert!(line.len() <= 64);
                if let Ok(text) = std::str::from_utf8(line) {
                    let _ = confab_wire::line::parse_input(text);
                    let _ = confab_wire::line::parse_server_line(text);
                }
            }
        });
    }
});
