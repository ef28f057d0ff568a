//! Reading and writing user files with limits and clear errors.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
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

/// Writes a file atomically (temp + fsync + rename); `private` makes it 0600.
pub fn write_atomic(path: &Path, bytes: &[u8], private: bool) -> CliResult {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("out");
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let res = (|| -> std::io::Result<()> {
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(if private { 0o600 } else { 0o644 })
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, path)
    })();
    res.map_err(|e| {
        let _ = fs::remove_file(&tmp);
        CliError::io(format!("cannot write {}", path.display()))(e)
    })
}
