//! Whole sessions through the two state machines (`kalit_core::flow`) with arbitrary event orders: the
//! input is a program of operations (sign, withdraw, end, answer, deliver, drop, reorder or forge frames,
//! relay events) on a paired agent and phone. Never a panic, and the session's promises hold whatever the
//! order: no answer ever reaches the page for a request it withdrew; the phone never sends an answer for a
//! request it saw withdrawn; a closed side does nothing more; the agent pairs only with the phone whose
//! hello it checked.
#![no_main]
use libfuzzer_sys::fuzz_target;

mod session_flow_logic;

fuzz_target!(|data: &[u8]| session_flow_logic::run(data));
