//! The allow-list of web origins that may call the agent, kept in `DATA/origins.json` and managed with
//! `kalit agent allow|deny|origins`. The running agent rereads the file when it changes.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

use kalit_proto::ErrorCode;
use kalit_service::ServiceError;
use serde::{Deserialize, Serialize};

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct OriginsFile {
    origins: Vec<String>,
}

/// Normalises a web origin: `scheme://host[:port]`, lowercase, default port dropped, no path. Refuses
/// `null`, wildcards, user info, paths and schemes other than http(s).
pub fn normalize_origin(s: &str) -> Result<String, ServiceError> {
    let bad = |why: &str| ServiceError::invalid(format!("origin {s:?}: {why} (expected https://host[:port])"));
    let t = s.trim();
    let (scheme, rest) = t.split_once("://").ok_or_else(|| bad("no scheme"))?;
    let scheme = scheme.to_ascii_lowercase();
    if scheme != "https" && scheme != "http" {
        return Err(bad("only http and https origins exist for web pages"));
    }
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    if rest.is_empty() || rest.contains(['/', '?', '#', '@', '*', ' ', '\\']) || t.len() > 253 {
        return Err(bad("an origin is a scheme, a host and an optional port, nothing else"));
    }
    let rest = rest.to_ascii_lowercase();
    let (host, port) = match rest.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(':') && (!h.starts_with('[') || h.ends_with(']')) => {
            let port: u16 = p.parse().map_err(|_| bad("bad port"))?;
            (h.to_string(), Some(port))
        }
        _ => (rest.clone(), None),
    };
    if host.is_empty() || !host.bytes().all(|b| b.is_ascii_alphanumeric() || b"-.[]:".contains(&b)) {
        return Err(bad("bad host"));
    }
    let default = if scheme == "https" { 443 } else { 80 };
    Ok(match port {
        Some(p) if p != default => format!("{scheme}://{host}:{p}"),
        _ => format!("{scheme}://{host}"),
    })
}

/// The allow-list file.
#[derive(Debug)]
pub struct Origins {
    path: PathBuf,
    cache: Mutex<(Option<SystemTime>, Vec<String>)>,
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> ServiceError + '_ {
    move |e| ServiceError::new(ErrorCode::Io, format!("{}: {e}", path.display()))
}

impl Origins {
    /// The list in `data_dir/origins.json` (missing file: empty list).
    pub fn new(data_dir: &Path) -> Origins {
        Origins { path: data_dir.join("origins.json"), cache: Mutex::new((None, vec![])) }
    }

    fn read(&self) -> Result<Vec<String>, ServiceError> {
        match std::fs::read(&self.path) {
            Ok(b) => {
                let f: OriginsFile = serde_json::from_slice(&b)
                    .map_err(|e| ServiceError::new(ErrorCode::Corrupt, format!("{}: {e}", self.path.display())))?;
                Ok(f.origins)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(vec![]),
            Err(e) => Err(io(&self.path)(e)),
        }
    }

    /// The allowed origins.
    pub fn list(&self) -> Result<Vec<String>, ServiceError> {
        let mtime = std::fs::metadata(&self.path).and_then(|m| m.modified()).ok();
        let mut c = self.cache.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if c.0.is_none() || c.0 != mtime {
            c.1 = self.read()?;
            c.0 = mtime;
        }
        Ok(c.1.clone())
    }

    /// Whether `origin` (as the browser sent it) is allowed. A file that cannot be read allows nothing.
    pub fn allowed(&self, origin: &str) -> bool {
        match (normalize_origin(origin), self.list()) {
            (Ok(o), Ok(list)) => o == origin && list.contains(&o),
            _ => false,
        }
    }

    fn write(&self, origins: &[String]) -> Result<(), ServiceError> {
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir).map_err(io(dir))?;
        }
        let json = serde_json::to_vec_pretty(&OriginsFile { origins: origins.to_vec() })
            .map_err(|e| ServiceError::internal(e.to_string()))?;
        kalit_service::files::atomic_write(&self.path, &json).map_err(io(&self.path))
    }

    /// Adds an origin; returns the normalised form and whether it was new.
    pub fn allow(&self, origin: &str) -> Result<(String, bool), ServiceError> {
        let o = normalize_origin(origin)?;
        let mut list = self.read()?;
        if list.contains(&o) {
            return Ok((o, false));
        }
        list.push(o.clone());
        self.write(&list)?;
        Ok((o, true))
    }

    /// Removes an origin; returns whether it was there.
    pub fn deny(&self, origin: &str) -> Result<bool, ServiceError> {
        let o = normalize_origin(origin)?;
        let mut list = self.read()?;
        let before = list.len();
        list.retain(|x| *x != o);
        if list.len() == before {
            return Ok(false);
        }
        self.write(&list)?;
        Ok(true)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn origins_normalise_and_refuse_non_origins() {
        assert_eq!(normalize_origin("HTTPS://Portal.Example:443/").unwrap(), "https://portal.example");
        assert_eq!(normalize_origin("http://127.0.0.1:8080").unwrap(), "http://127.0.0.1:8080");
        assert_eq!(normalize_origin("http://[::1]:81").unwrap(), "http://[::1]:81");
        for bad in [
            "null",
            "*",
            "https://*.example",
            "file:///x",
            "https://a/b",
            "https://u@a",
            "portal.example",
            "https://",
            "https://a:99999",
        ] {
            assert!(normalize_origin(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn allow_deny_list_and_exact_match() {
        let d = tempfile::tempdir().unwrap();
        let o = Origins::new(d.path());
        assert!(!o.allowed("https://portal.example"));
        assert_eq!(o.allow("https://Portal.example/").unwrap(), ("https://portal.example".into(), true));
        assert!(!o.allow("https://portal.example").unwrap().1);
        assert!(o.allowed("https://portal.example"));
        assert!(!o.allowed("https://PORTAL.example"), "browsers send origins lowercase; anything else is not exact");
        assert!(!o.allowed("https://portal.example.evil.example"));
        assert!(!o.allowed("http://portal.example"));
        assert!(o.deny("https://portal.example").unwrap());
        assert!(!o.allowed("https://portal.example"));
        std::fs::write(d.path().join("origins.json"), b"{broken").unwrap();
        assert!(!o.allowed("https://portal.example"));
    }
}
