//! The relay's identity: its root Ed25519 key (whose id is the relay id) and the short-lived signing keys
//! the root key endorsed (identity rotation).
//!
//! A relay starts with one key, `relay-identity.pk8`, made on first start, and signs its attestations with
//! it. `kalit relay rotate-key` ([`rotate_key`]) turns that key into a root key: it makes a signing key,
//! endorses it (`kalit/v1/relay-key`: relay id, key, validity) and lists it in `relay-keys.json` with the
//! root's public key. From then on the relay signs with the newest endorsed key valid at the time and
//! attaches the endorsement to each attestation, so phones and agents that know only the relay id (the
//! root key's) check it without asking anyone. The root key can then leave the node: the relay needs only
//! `relay-keys.json` and the signing keys' files. Rotating again before the current key's validity ends
//! lets attestations signed by the old key keep verifying through the overlap; the nodes reload the list
//! by themselves ([`Identity::reload`], every `limits.key_reload_secs`). Every node of a relay shares
//! these files.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock, Weak};
use std::time::{Duration, SystemTime};

use kalit_core::keys::{self, PrivateKey};
use kalit_core::statement::{self, Statement};
use kalit_core::{KeyAlgorithm, SecretBytes};
use kalit_proto::relay::{API_VERSION, Attestation, EndorsedRelayKey, RelayIdentity, RelayKey, SignedAttestation};
use kalit_proto::session::{OriginAttestation, SignedOriginAttestation};
use kalit_proto::{Base64, ErrorCode};
use kalit_service::ServiceError;
use serde::{Deserialize, Serialize};

/// File name of the root key in the data directory.
pub const KEY_FILE: &str = "relay-identity.pk8";
/// File name of the list of endorsed signing keys in the data directory.
pub const KEYS_FILE: &str = "relay-keys.json";
/// Shortest and longest validity of a signing key, in days.
pub const VALID_DAYS: std::ops::RangeInclusive<u32> = 1..=366;

/// `relay-keys.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeysFile {
    version: u32,
    relay_id: String,
    /// The root key's raw public key: a node without the root key still publishes it.
    root_public_key: Base64,
    keys: Vec<KeyEntry>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyEntry {
    /// The signing key's PKCS#8 file, in the same directory.
    file: String,
    endorsed: EndorsedRelayKey,
}

#[derive(Debug)]
struct SigningKey {
    key: PrivateKey,
    endorsed: EndorsedRelayKey,
}

#[derive(Debug, Default)]
struct KeySet {
    keys: Vec<Arc<SigningKey>>,
    /// When `relay-keys.json` was modified as loaded (`None`: no file).
    modified: Option<SystemTime>,
}

/// The relay's signing identity.
#[derive(Debug)]
pub struct Identity {
    dir: PathBuf,
    name: String,
    relay_id: String,
    root_public: Vec<u8>,
    /// Absent once the operator moved the root key off the node.
    root: Option<PrivateKey>,
    keys: RwLock<KeySet>,
}

fn io_error(path: &Path, what: &str, e: std::io::Error) -> ServiceError {
    ServiceError::new(ErrorCode::Io, format!("{what} {}: {e}", path.display()))
}

fn corrupt(path: &Path, why: impl std::fmt::Display) -> ServiceError {
    ServiceError::new(ErrorCode::Corrupt, format!("{}: {why}", path.display()))
}

/// Reads an Ed25519 PKCS#8 key file; `None` when it does not exist.
fn read_key(path: &Path) -> Result<Option<PrivateKey>, ServiceError> {
    let pkcs8 = match std::fs::read(path) {
        Ok(b) => SecretBytes::new(b),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_error(path, "cannot read", e)),
    };
    let key = PrivateKey::from_pkcs8(&pkcs8).map_err(|e| corrupt(path, format!("not a relay key: {e}")))?;
    if key.algorithm() != KeyAlgorithm::Ed25519 {
        return Err(corrupt(path, "not an Ed25519 key"));
    }
    Ok(Some(key))
}

fn read_keys_file(path: &Path) -> Result<Option<(KeysFile, Option<SystemTime>)>, ServiceError> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_error(path, "cannot read", e)),
    };
    let modified = std::fs::metadata(path).and_then(|m| m.modified()).ok();
    let f: KeysFile = serde_json::from_slice(&bytes).map_err(|e| corrupt(path, e))?;
    if f.version != 1 {
        return Err(corrupt(path, format!("version {} is not known to this relay", f.version)));
    }
    Ok(Some((f, modified)))
}

/// A signing key's file name: `relay-key-ID.pk8`, nothing that leaves the directory.
fn key_file_name(id: &str) -> String {
    format!("relay-key-{id}.pk8")
}

/// Loads and checks every signing key a keys file lists: endorsed by the root key for this relay, its
/// file holding the endorsed key.
fn load_keys(dir: &Path, root_public: &[u8], f: &KeysFile) -> Result<Vec<Arc<SigningKey>>, ServiceError> {
    let list = dir.join(KEYS_FILE);
    let mut out = Vec::with_capacity(f.keys.len());
    for entry in &f.keys {
        let e = &entry.endorsed;
        statement::relay_signing_key(root_public, Some(e), e.key.not_before, e.key.not_before)
            .map_err(|err| corrupt(&list, format!("{}: {err}", entry.file)))?;
        if entry.file != key_file_name(&statement::key_id(e.key.public_key.as_slice())) {
            return Err(corrupt(&list, format!("{} is not the file name of its key", entry.file)));
        }
        let path = dir.join(&entry.file);
        let key = read_key(&path)?.ok_or_else(|| corrupt(&path, "missing (it is listed in relay-keys.json)"))?;
        if key.public_key_raw() != e.key.public_key.as_slice() {
            return Err(corrupt(&path, "holds another key than relay-keys.json endorses"));
        }
        out.push(Arc::new(SigningKey { key, endorsed: e.clone() }));
    }
    Ok(out)
}

impl Identity {
    /// Loads the identity from `dir`: the root key (created, atomically and 0600, on a relay's first
    /// start) and the endorsed signing keys of `relay-keys.json`, if any. A node whose root key was moved
    /// away starts from `relay-keys.json` alone; it never makes a new root key then.
    pub fn load_or_create(dir: &Path, name: &str) -> Result<Identity, ServiceError> {
        let root_path = dir.join(KEY_FILE);
        let list_path = dir.join(KEYS_FILE);
        let listed = read_keys_file(&list_path)?;
        let root = read_key(&root_path)?;
        let (root, root_public) = match (root, &listed) {
            (Some(k), Some((f, _))) => {
                if f.root_public_key.as_slice() != k.public_key_raw() {
                    return Err(corrupt(
                        &list_path,
                        format!("belongs to another root key than {}", root_path.display()),
                    ));
                }
                let pk = k.public_key_raw().to_vec();
                (Some(k), pk)
            }
            (Some(k), None) => {
                let pk = k.public_key_raw().to_vec();
                (Some(k), pk)
            }
            (None, Some((f, _))) => (None, f.root_public_key.as_slice().to_vec()),
            (None, None) => {
                std::fs::create_dir_all(dir).map_err(|e| io_error(dir, "cannot create the directory", e))?;
                let k = keys::generate(KeyAlgorithm::Ed25519)?;
                kalit_service::files::atomic_write(&root_path, k.expose_secret())
                    .map_err(|e| io_error(&root_path, "cannot write", e))?;
                let key = PrivateKey::from_pkcs8(&k)?;
                let pk = key.public_key_raw().to_vec();
                (Some(key), pk)
            }
        };
        if root_public.len() != 32 {
            return Err(corrupt(&list_path, "the root public key is not 32 bytes"));
        }
        let relay_id = statement::key_id(&root_public);
        let set = match &listed {
            Some((f, modified)) => {
                if f.relay_id != relay_id {
                    return Err(corrupt(&list_path, "names another relay id than its root key"));
                }
                KeySet { keys: load_keys(dir, &root_public, f)?, modified: *modified }
            }
            None => KeySet::default(),
        };
        Ok(Identity {
            dir: dir.to_path_buf(),
            name: name.to_string(),
            relay_id,
            root_public,
            root,
            keys: RwLock::new(set),
        })
    }

    /// The relay id (the root key's id).
    pub fn id(&self) -> &str {
        &self.relay_id
    }

    /// The root key's raw Ed25519 public key, which phones and agents check every attestation against.
    pub fn root_public_key(&self) -> &[u8] {
        &self.root_public
    }

    /// Whether this node holds the root key.
    pub fn has_root(&self) -> bool {
        self.root.is_some()
    }

    /// The public identity as published at `/.well-known/kalit-relay`: the root key, and the signing keys
    /// valid at `now_secs`, newest first.
    pub fn public(&self, now_secs: i64) -> RelayIdentity {
        let mut signing_keys: Vec<EndorsedRelayKey> = self
            .current_keys()
            .iter()
            // The list is oldest first: reversed, a stable sort keeps the newest first among equal times.
            .rev()
            .filter(|k| k.endorsed.key.not_before <= now_secs && now_secs < k.endorsed.key.not_after)
            .map(|k| k.endorsed.clone())
            .collect();
        signing_keys.sort_by_key(|k| std::cmp::Reverse(k.key.not_before));
        RelayIdentity {
            version: API_VERSION,
            relay_id: self.relay_id.as_str().into(),
            public_key: self.root_public.as_slice().into(),
            name: self.name.clone(),
            signing_keys,
        }
    }

    /// When the newest endorsed signing key stops signing (Unix seconds); `None` while the root key signs.
    pub fn signing_keys_not_after(&self) -> Option<i64> {
        self.current_keys().iter().map(|k| k.endorsed.key.not_after).max()
    }

    fn current_keys(&self) -> Vec<Arc<SigningKey>> {
        self.keys.read().map(|s| s.keys.clone()).unwrap_or_else(|p| p.into_inner().keys.clone())
    }

    /// The key that signs a statement issued at `issued_at`: the newest endorsed key valid then, or the
    /// root key when no endorsed key is (a relay that never rotated), with the expiry capped at the
    /// signing key's validity.
    fn signer(&self, issued_at: i64, expires_at: i64) -> Result<(Signer, i64), ServiceError> {
        let newest = self
            .current_keys()
            .into_iter()
            .filter(|k| k.endorsed.key.not_before <= issued_at && issued_at < k.endorsed.key.not_after)
            // The last of equal times is the newest (the list is in rotation order).
            .max_by_key(|k| k.endorsed.key.not_before);
        match (newest, &self.root) {
            (Some(k), _) => {
                let expires = expires_at.min(k.endorsed.key.not_after);
                Ok((Signer::Endorsed(k), expires))
            }
            (None, Some(_)) => Ok((Signer::Root, expires_at)),
            (None, None) => Err(ServiceError::new(
                ErrorCode::Unavailable,
                "no relay signing key is valid now and the root key is not on this node: endorse a new one with `kalit relay rotate-key`",
            )),
        }
    }

    fn sign(&self, signer: &Signer, st: &Statement) -> Result<(Base64, Option<Box<EndorsedRelayKey>>), ServiceError> {
        match signer {
            Signer::Endorsed(k) => Ok((st.sign(&k.key)?.into(), Some(Box::new(k.endorsed.clone())))),
            Signer::Root => {
                let root = self.root.as_ref().ok_or_else(|| ServiceError::internal("the root key is not loaded"))?;
                Ok((st.sign(root)?.into(), None))
            }
        }
    }

    /// Signs an attestation (its expiry is capped at the signing key's validity).
    pub fn attest(&self, mut a: Attestation) -> Result<SignedAttestation, ServiceError> {
        let (signer, expires_at) = self.signer(a.issued_at, a.expires_at)?;
        a.expires_at = expires_at;
        let (signature, relay_key) = self.sign(&signer, &Statement::attestation(&a))?;
        Ok(SignedAttestation { attestation: a, signature, relay_key })
    }

    /// Signs the statement of a page's origin for a tunnel (direct mode), as [`Identity::attest`] does.
    pub fn attest_origin(&self, mut a: OriginAttestation) -> Result<SignedOriginAttestation, ServiceError> {
        let (signer, expires_at) = self.signer(a.issued_at, a.expires_at)?;
        a.expires_at = expires_at;
        let (signature, relay_key) = self.sign(&signer, &Statement::origin(&a))?;
        Ok(SignedOriginAttestation { attestation: a, signature, relay_key })
    }

    /// Reads `relay-keys.json` again when it changed since it was loaded (another node, or the operator,
    /// rotated the key). Returns whether the set changed. A list that does not load leaves the keys as
    /// they were.
    pub fn reload(&self) -> Result<bool, ServiceError> {
        let path = self.dir.join(KEYS_FILE);
        let modified = std::fs::metadata(&path).and_then(|m| m.modified()).ok();
        let loaded = self.keys.read().map(|s| s.modified).unwrap_or(None);
        if modified == loaded {
            return Ok(false);
        }
        let Some((f, modified)) = read_keys_file(&path)? else {
            return Ok(false);
        };
        if f.root_public_key.as_slice() != self.root_public.as_slice() || f.relay_id != self.relay_id {
            return Err(corrupt(&path, "belongs to another relay; the keys in use stay"));
        }
        let keys = load_keys(&self.dir, &self.root_public, &f)?;
        let mut set = self.keys.write().unwrap_or_else(|p| p.into_inner());
        *set = KeySet { keys, modified };
        Ok(true)
    }

    /// Reloads the signing keys every `every` while the identity lives (a task of the relay's runtime).
    pub fn watch(identity: &Arc<Identity>, every: Duration) {
        let weak: Weak<Identity> = Arc::downgrade(identity);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            loop {
                tick.tick().await;
                let Some(id) = weak.upgrade() else { return };
                match tokio::task::spawn_blocking(move || id.reload()).await {
                    Ok(Ok(true)) => tracing::info!("relay signing keys reloaded from {KEYS_FILE}"),
                    Ok(Ok(false)) => {}
                    Ok(Err(e)) => tracing::error!(error = %e.message, "relay signing keys not reloaded"),
                    Err(e) => tracing::error!(error = %e, "relay signing key reload failed"),
                }
            }
        });
    }
}

enum Signer {
    Endorsed(Arc<SigningKey>),
    Root,
}

/// Gives `file` the owner of `dir` when they differ: an operator who rotates as root (`sudo kalit relay
/// rotate-key`) leaves files the relay's own user can read (they are 0600), instead of a list the running
/// relay cannot load. As any other user the files are already the writer's, who owns the directory.
#[cfg(unix)]
fn owned_like_dir(dir: &Path, file: &Path) -> Result<(), ServiceError> {
    use std::os::unix::fs::MetadataExt;
    let d = std::fs::metadata(dir).map_err(|e| io_error(dir, "cannot read", e))?;
    let f = std::fs::metadata(file).map_err(|e| io_error(file, "cannot read", e))?;
    if (f.uid(), f.gid()) != (d.uid(), d.gid()) {
        std::os::unix::fs::chown(file, Some(d.uid()), Some(d.gid()))
            .map_err(|e| io_error(file, "cannot give the data directory's owner", e))?;
    }
    Ok(())
}

#[cfg(not(unix))]
fn owned_like_dir(_dir: &Path, _file: &Path) -> Result<(), ServiceError> {
    Ok(())
}

/// What [`rotate_key`] did.
#[derive(Debug, Clone)]
pub struct Rotated {
    /// The relay id (unchanged).
    pub relay_id: String,
    /// The new signing key's endorsement.
    pub new_key: EndorsedRelayKey,
    /// The new key's file.
    pub new_file: PathBuf,
    /// Endorsed keys still valid (they keep verifying until their `not_after`), newest first.
    pub still_valid: Vec<EndorsedRelayKey>,
    /// Expired keys taken off the list (and their files removed).
    pub removed: usize,
}

/// Makes a new signing key in `dir`, endorses it with the root key in `root_file` from `now_secs` for
/// `valid_secs`, and lists it in `relay-keys.json` beside the keys still valid (expired ones leave the
/// list, and their files are removed). Every write is atomic: the key file first, then the list, so a
/// crash leaves the old list or the new one, never a list naming a missing key. The running nodes pick
/// the new key up within `limits.key_reload_secs` and sign with it at once; attestations signed by the
/// previous key keep verifying until that key's validity ends.
pub fn rotate_key(dir: &Path, root_file: &Path, valid_secs: i64, now_secs: i64) -> Result<Rotated, ServiceError> {
    if valid_secs < 3600 {
        return Err(ServiceError::invalid("a signing key is valid for at least an hour"));
    }
    let root = read_key(root_file)?.ok_or_else(|| {
        ServiceError::new(
            ErrorCode::NotFound,
            format!(
                "no root key at {}: pass the relay's root key (the {KEY_FILE} it made on its first start) with --root",
                root_file.display()
            ),
        )
    })?;
    let root_public = root.public_key_raw().to_vec();
    let relay_id = statement::key_id(&root_public);
    let list_path = dir.join(KEYS_FILE);
    let listed = match read_keys_file(&list_path)? {
        Some((f, _)) => {
            if f.root_public_key.as_slice() != root_public.as_slice() {
                return Err(ServiceError::new(
                    ErrorCode::RefusedByPolicy,
                    format!("{} belongs to another root key than {}", list_path.display(), root_file.display()),
                ));
            }
            // Every listed key must still load: a rotation never papers over a broken list.
            load_keys(dir, &root_public, &f)?;
            f.keys
        }
        None => {
            let own = dir.join(KEY_FILE);
            if read_key(&own)?.is_some_and(|k| k.public_key_raw() != root_public.as_slice()) {
                return Err(ServiceError::new(
                    ErrorCode::RefusedByPolicy,
                    format!("{} is another relay's key than {}", own.display(), root_file.display()),
                ));
            }
            vec![]
        }
    };
    let pkcs8 = keys::generate(KeyAlgorithm::Ed25519)?;
    let key = PrivateKey::from_pkcs8(&pkcs8)?;
    let public = key.public_key_raw().to_vec();
    let file = key_file_name(&statement::key_id(&public));
    let new_file = dir.join(&file);
    kalit_service::files::atomic_write(&new_file, pkcs8.expose_secret())
        .map_err(|e| io_error(&new_file, "cannot write", e))?;
    owned_like_dir(dir, &new_file)?;
    let relay_key = RelayKey {
        relay_id: relay_id.as_str().into(),
        public_key: public.as_slice().into(),
        not_before: now_secs,
        not_after: now_secs.saturating_add(valid_secs),
    };
    let signature = Statement::relay_key(&relay_key).sign(&root)?;
    let new_key = EndorsedRelayKey { key: relay_key, signature: signature.into() };
    let (mut keys, expired): (Vec<KeyEntry>, Vec<KeyEntry>) =
        listed.into_iter().partition(|e| e.endorsed.key.not_after > now_secs);
    // Newest first, as the identity lists them.
    let still_valid: Vec<EndorsedRelayKey> = keys.iter().rev().map(|e| e.endorsed.clone()).collect();
    keys.push(KeyEntry { file, endorsed: new_key.clone() });
    let f = KeysFile { version: 1, relay_id: relay_id.clone(), root_public_key: root_public.as_slice().into(), keys };
    let json = serde_json::to_vec_pretty(&f).map_err(|e| ServiceError::internal(e.to_string()))?;
    kalit_service::files::atomic_write(&list_path, &json).map_err(|e| io_error(&list_path, "cannot write", e))?;
    owned_like_dir(dir, &list_path)?;
    for e in &expired {
        let _ = std::fs::remove_file(dir.join(&e.file));
    }
    Ok(Rotated { relay_id, new_key, new_file, still_valid, removed: expired.len() })
}
