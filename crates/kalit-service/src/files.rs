//! Durable file writes for service data directories: temp file, fsync, rename, fsync of the directory,
//! mode 0600; and fsynced appends for logs that must survive a crash.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::Path;

/// Writes `bytes` to `path` atomically: a crash leaves the old file or the new one.
pub fn atomic_write(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    atomic_write_mode(path, bytes, 0o600)
}

/// [`atomic_write`] with a given file mode (0644 for files meant to be shared, such as a signature).
///
/// The temporary file has a random name and is created with `O_CREAT | O_EXCL` (`create_new`), which
/// never follows a symlink and never opens a file someone else created: a pre-created file or a symlink
/// planted in a shared directory cannot capture the bytes.
pub fn atomic_write_mode(path: &Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let rand = kalit_core::seal::random::<8>().map_err(|e| std::io::Error::other(e.to_string()))?;
    let tmp = dir.join(format!(".{name}.tmp-{}", hex::encode(rand)));
    let write = || -> std::io::Result<()> {
        let mut o = OpenOptions::new();
        o.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut o, mode);
        let mut f = o.open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, path)?;
        fs::File::open(dir)?.sync_all()
    };
    write().inspect_err(|e| {
        // Never remove what we did not create.
        if e.kind() != std::io::ErrorKind::AlreadyExists {
            let _ = fs::remove_file(&tmp);
        }
    })
}

/// Creates a directory (and parents) and makes it owner-only (0700).
pub fn private_dir(dir: &Path) -> std::io::Result<()> {
    fs::create_dir_all(dir)?;
    #[cfg(unix)]
    fs::set_permissions(dir, std::os::unix::fs::PermissionsExt::from_mode(0o700))?;
    Ok(())
}

/// Makes sure a file exists and is owner-only (0600), creating it empty if needed (a database file must
/// exist with that mode before SQLite opens it, so that its journal files inherit the mode).
pub fn private_file(path: &Path) -> std::io::Result<()> {
    let mut o = OpenOptions::new();
    o.write(true).create(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o600);
    drop(o.open(path)?);
    #[cfg(unix)]
    fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
    Ok(())
}

/// Appends one line and syncs it to disk before returning.
pub fn append_line(path: &Path, line: &str) -> std::io::Result<()> {
    let mut o = OpenOptions::new();
    o.append(true).create(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o600);
    let mut f = o.open(path)?;
    let mut buf = line.as_bytes().to_vec();
    buf.push(b'\n');
    f.write_all(&buf)?;
    f.sync_data()
}
