//! Any bytes as a PFX imported into a real (temporary) vault: an error or an import, never a panic, and
//! the vault stays whole. The password is the one of the seed `seeds/pfx_import/demo.pfx` (written by
//! `kalit demo`), so mutations get past the MAC into the bag parsing.
#![no_main]
use libfuzzer_sys::fuzz_target;

mod pfx_import_logic;

fuzz_target!(|data: &[u8]| pfx_import_logic::run(data));
