//! Fuzz target: any datagram, of any size and content, must classify and decode
//! without a panic.
#![no_main]

use confab_wire::peer::frame::{classify, Body};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = classify(data);
    let _ = Body::decode(data);
});
