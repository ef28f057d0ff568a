//! Any bytes as a CMS SignedData: an error or a verdict, never a panic or a hang.
#![no_main]
use libfuzzer_sys::fuzz_target;

mod cms_verify_logic;

fuzz_target!(|data: &[u8]| cms_verify_logic::run(data));
