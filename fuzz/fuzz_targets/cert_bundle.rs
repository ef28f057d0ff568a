//! Any bytes as a PEM/DER certificate bundle; what parses is summarised and chain-checked against itself.
#![no_main]
use libfuzzer_sys::fuzz_target;

mod cert_bundle_logic;

fuzz_target!(|data: &[u8]| cert_bundle_logic::run(data));
