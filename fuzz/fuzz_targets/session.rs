//! Any text as a QR (parse + freshness), and any bytes as frames into an established channel (split at
//! 0xff bytes, so one input can be several frames). Never a panic; a bad frame breaks the channel.
#![no_main]
use libfuzzer_sys::fuzz_target;

mod session_logic;

fuzz_target!(|data: &[u8]| session_logic::run(data));
