//! Wire and output types of Kalit: everything that crosses a process boundary.
//!
//! Architecture invariant: this crate does no I/O and holds no secrets. A `serde` derive here is a public
//! promise: scripts parse `kalit ... --json`, and later the relay and agent speak these types.

pub mod error;
pub mod namespace;
pub mod ra;
pub mod relay;
pub mod session;
pub mod vault;
pub mod verify;

pub use error::{ApiError, ErrorBody, ErrorCode};

/// Version of the vault-facing JSON outputs (`kalit vault list --json` and friends).
pub const OUTPUT_VERSION: u32 = 1;
