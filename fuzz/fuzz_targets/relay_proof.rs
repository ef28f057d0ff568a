//! Any bytes as a registration request body: JSON decoding with unknown fields refused, then the relay's
//! proof checks (bounded base64, chain, statement signature) against a fixed anchor. Never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

mod relay_proof_logic;

fuzz_target!(|data: &[u8]| relay_proof_logic::run(data));
