//! Any bytes as a PKCS#8 private key, and as an OpenSSL-style subject string.
#![no_main]
use libfuzzer_sys::fuzz_target;

mod pkcs8_and_subject_logic;

fuzz_target!(|data: &[u8]| pkcs8_and_subject_logic::run(data));
