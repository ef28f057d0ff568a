//! End-to-end tests of the `kalit` binary as a real process, with OpenSSL's command line as the
//! independent judge of every format. One test binary for the crate (links once).

#![allow(clippy::unwrap_used)]

mod attacks;
mod browser;
mod burst;
mod cli;
mod cluster;
mod common;
mod crash;
mod faults;
mod fuzz_seeds;
mod large;
mod network;
mod openssl;
mod pades;
mod phone_app;
mod purpose;
mod signing;
