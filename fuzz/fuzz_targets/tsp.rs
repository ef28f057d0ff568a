//! Any bytes as an RFC 3161 request, answer or token: never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

mod tsp_logic;

fuzz_target!(|data: &[u8]| tsp_logic::run(data));
