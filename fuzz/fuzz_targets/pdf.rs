//! Any bytes as a PDF to verify, inspect or prepare: never a panic or a hang.
#![no_main]
use libfuzzer_sys::fuzz_target;

mod pdf_logic;

fuzz_target!(|data: &[u8]| pdf_logic::run(data));
