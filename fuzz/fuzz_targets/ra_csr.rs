//! Any text as the CSR of an issuance request: the RA's checks (PEM, PKCS#10, proof of possession, key
//! policy) must answer with an error or a public key, never panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

mod ra_csr_logic;

fuzz_target!(|data: &[u8]| ra_csr_logic::run(data));
