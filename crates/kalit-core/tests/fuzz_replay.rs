//! The `session_flow` fuzz harness (fuzz/fuzz_targets/session_flow_logic.rs) in every test run: its
//! committed seeds, then a stream of pseudo-random programs from a fixed seed (the same programs each
//! run, so a failure here reproduces; libFuzzer's coverage-guided search stays a manual step, see
//! fuzz/README.md). Each program runs a whole paired session and asserts the session's invariants.

#![allow(clippy::unwrap_used)]

#[path = "../../../fuzz/fuzz_targets/session_flow_logic.rs"]
mod session_flow_logic;

use std::path::Path;

#[test]
fn the_session_flow_seeds_hold_their_invariants() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/seeds/session_flow");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let data = std::fs::read(entry.unwrap().path()).unwrap();
        session_flow_logic::run(&data);
        n += 1;
    }
    assert!(n >= 5, "the committed seeds are read ({n})");
}

#[test]
fn pseudo_random_session_programs_hold_their_invariants() {
    // xorshift64*: no dependency, the same stream on every machine.
    let mut state: u64 = 0x6b61_6c69_7421_2026;
    let mut next = || {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        state.wrapping_mul(0x2545_f491_4f6c_dd1d)
    };
    for _ in 0..400 {
        let len = (next() % 96) as usize;
        let program: Vec<u8> = (0..len).map(|_| (next() >> 32) as u8).collect();
        session_flow_logic::run(&program);
    }
}
