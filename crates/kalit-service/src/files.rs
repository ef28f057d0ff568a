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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    /// A symlink planted where the file will be (in a shared directory) is replaced, not followed: the
    /// file it points to is untouched, and the new file is the owner's only.
    #[test]
    fn a_planted_symlink_captures_nothing() {
        let d = tempfile::tempdir().unwrap();
        let victim = d.path().join("victim");
        fs::write(&victim, b"untouched").unwrap();
        let out = d.path().join("export.pfx");
        std::os::unix::fs::symlink(&victim, &out).unwrap();
        atomic_write(&out, b"secret bytes").unwrap();
        assert_eq!(fs::read(&victim).unwrap(), b"untouched");
        assert!(!fs::symlink_metadata(&out).unwrap().file_type().is_symlink());
        assert_eq!(fs::read(&out).unwrap(), b"secret bytes");
        assert_eq!(fs::metadata(&out).unwrap().permissions().mode() & 0o777, 0o600);
        // No temporary file is left, and each write uses a new random temporary name (two writes in a
        // row both succeed even though the first one's name was visible while it ran).
        atomic_write_mode(&out, b"again", 0o644).unwrap();
        let left: Vec<_> = fs::read_dir(d.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(left.len(), 2, "{left:?}");
        assert_eq!(fs::metadata(&out).unwrap().permissions().mode() & 0o777, 0o644);
    }

    #[test]
    fn private_dirs_and_files() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("data");
        private_dir(&dir).unwrap();
        assert_eq!(fs::metadata(&dir).unwrap().permissions().mode() & 0o777, 0o700);
        let f = dir.join("relay.db");
        fs::write(&f, b"x").unwrap();
        fs::set_permissions(&f, fs::Permissions::from_mode(0o644)).unwrap();
        private_file(&f).unwrap();
        assert_eq!(fs::metadata(&f).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(fs::read(&f).unwrap(), b"x", "an existing database is kept");
    }
}
