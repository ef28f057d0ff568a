//! Reading and writing user files with limits and clear errors.

use std::fs;
use std::path::Path;

use kalit_proto::ErrorCode;

use crate::error::{CliError, CliResult};

/// Documents larger than this are refused by `sign` (they are held in memory).
pub const MAX_DOCUMENT: u64 = 512 << 20;

/// Reads a whole file, refusing files over `limit` bytes before reading them.
pub fn read_limited(path: &Path, limit: u64, what: &str) -> CliResult<Vec<u8>> {
    let meta = fs::metadata(path).map_err(CliError::io(format!("cannot read {what} {}", path.display())))?;
    if !meta.is_file() {
        return Err(CliError::new(ErrorCode::InvalidInput, format!("{what} {} is not a regular file", path.display())));
    }
    if meta.len() > limit {
        return Err(CliError::new(
            ErrorCode::InvalidInput,
            format!("{what} {} is {} bytes; the limit is {limit}", path.display(), meta.len()),
        ));
    }
    fs::read(path).map_err(CliError::io(format!("cannot read {what} {}", path.display())))
}

/// Writes a file atomically (random temp name created with O_EXCL, fsync, rename, fsync of the
/// directory); `private` makes it 0600.
pub fn write_atomic(path: &Path, bytes: &[u8], private: bool) -> CliResult {
    kalit_service::files::atomic_write_mode(path, bytes, if private { 0o600 } else { 0o644 })
        .map_err(CliError::io(format!("cannot write {}", path.display())))
}
