//! The vault itself: opening, PIN handling, and every key operation.

use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use kalit_core::cms::{PreparedCms, digest_alg_for};
use kalit_core::digest::HashAlg;
use kalit_core::keys::{self, PrivateKey};
use kalit_core::{CoreError, KeyAlgorithm, SecretBytes, SecretString, x509};
use kalit_proto::vault::{CertInfo, HistoryEntry, KeyInfo, KeyPolicy};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::crypto::{self, KdfParams, KeyWrap, SealedBox, SoftwareKeyWrap, random};
use crate::storage::{
    self, KEY_FORMAT, KeyFile, KeyHeader, Layout, PinPolicyFile, PinState, VAULT_FORMAT, VaultFile, VaultHeader,
};
use crate::{MIN_PIN_LEN, VaultError};

/// PIN attempt policy, fixed at `init` (and kept by backup/restore).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PinPolicy {
    /// Wrong PINs before the vault locks (3..=100; default 10).
    pub max_attempts: u32,
    /// Base of the growing delay: after the 3rd failure each attempt waits `base * 2^(n-4)`, at most 5
    /// minutes (default 1000 ms; 0 disables delays, for automation).
    pub delay_base_ms: u64,
}

impl Default for PinPolicy {
    fn default() -> Self {
        PinPolicy { max_attempts: 10, delay_base_ms: 1000 }
    }
}

impl PinPolicy {
    fn to_file(self) -> PinPolicyFile {
        PinPolicyFile { max_attempts: self.max_attempts, delay_base_ms: self.delay_base_ms }
    }
    fn from_file(f: PinPolicyFile) -> Self {
        PinPolicy { max_attempts: f.max_attempts, delay_base_ms: f.delay_base_ms }
    }
    /// Delay imposed after `failures` consecutive wrong PINs.
    pub fn delay_after(&self, failures: u32) -> Duration {
        if failures <= 3 || self.delay_base_ms == 0 {
            return Duration::ZERO;
        }
        let exp = (failures - 4).min(20);
        Duration::from_millis(self.delay_base_ms.saturating_mul(1u64 << exp).min(300_000))
    }
    fn validate(&self) -> Result<(), VaultError> {
        if !(3..=100).contains(&self.max_attempts) {
            return Err(VaultError::Core(CoreError::InvalidInput("max PIN attempts must be between 3 and 100".into())));
        }
        if self.delay_base_ms > 60_000 {
            return Err(VaultError::Core(CoreError::InvalidInput("PIN delay base must be at most 60000 ms".into())));
        }
        Ok(())
    }
}

/// Where the PIN counter stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PinStatus {
    /// Consecutive wrong PINs recorded.
    pub failures: u32,
    /// Attempts left before lockout.
    pub remaining: u32,
    /// True when the vault is locked.
    pub locked: bool,
    /// How long to wait before the next attempt is allowed.
    pub wait: Duration,
}

/// Output format of a document signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignFormat {
    /// The bare signature.
    Raw,
    /// DER detached CMS SignedData.
    Cms,
    /// A PDF signature (PAdES): the document is a PDF prepared with a signature hole
    /// ([`kalit_core::pdf::prepare`]); the vault checks it itself ([`kalit_core::pdf::inspect_prepared`]),
    /// signs the digest of its byte ranges, and returns the CMS (PAdES profile) for the hole.
    Pades,
}

/// A document the person approved.
#[derive(Debug)]
pub struct DocumentToSign<'a> {
    /// Name shown and recorded.
    pub name: &'a str,
    /// The document bytes; with `digests`, only its first bytes (what the person saw).
    pub data: &'a [u8],
    /// A document the phone does not hold whole (CMS and PAdES only): the digests to sign over. When the
    /// phone did not compute them itself (the digest path), `blind_confirmed` must say that the person
    /// confirmed, separately, signing what the phone could not check.
    pub digests: Option<Digested<'a>>,
    /// Output format.
    pub format: SignFormat,
    /// RSA-PSS instead of PKCS#1 v1.5.
    pub pss: bool,
    /// Requesting web origin, when known.
    pub origin: Option<&'a str>,
    /// The person confirmed, separately, that they make a raw signature over bytes that cannot be shown
    /// to them as text ([`kalit_core::purpose::needs_blind_confirmation`]). Without it such a raw
    /// signature is refused.
    pub blind_confirmed: bool,
}

/// The digests of a document that is not all here.
#[derive(Debug, Clone, Copy)]
pub struct Digested<'a> {
    /// The document's length in bytes.
    pub size: u64,
    /// SHA-256 of what is signed (32 bytes).
    pub sha256: &'a [u8],
    /// SHA-512 of the same (64 bytes): an Ed25519 key's CMS carries it.
    pub sha512: &'a [u8],
    /// The phone computed them as the document streamed in (`false`: the computer's word).
    pub computed_here: bool,
}

/// A signature and its history record.
#[derive(Debug, Clone)]
pub struct SignOutcome {
    /// Signature bytes (raw) or DER CMS.
    pub bytes: Vec<u8>,
    /// What was appended to the history.
    pub record: HistoryEntry,
}

/// Checks a new PIN against the policy.
pub fn check_new_pin(pin: &SecretString) -> Result<(), VaultError> {
    if pin.char_count() < MIN_PIN_LEN {
        return Err(VaultError::WeakSecret(format!("the PIN must have at least {MIN_PIN_LEN} characters")));
    }
    if pin.expose_secret().chars().any(char::is_control) {
        return Err(VaultError::WeakSecret("the PIN must not contain control characters".into()));
    }
    Ok(())
}

pub(crate) fn now_rfc3339() -> String {
    OffsetDateTime::now_utc().format(&Rfc3339).unwrap_or_default()
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

fn check_label(label: &str) -> Result<(), VaultError> {
    let ok = !label.is_empty()
        && label.chars().count() <= 64
        && label.chars().all(|c| c.is_alphanumeric() || " ._-@".contains(c))
        && !label.starts_with(['.', ' '])
        && !label.ends_with(' ');
    if ok {
        Ok(())
    } else {
        Err(VaultError::Core(CoreError::InvalidInput(format!(
            "label {label:?} must be 1-64 letters, digits, spaces, '.', '_', '-' or '@', not starting with '.' or a space"
        ))))
    }
}

/// A key file that could not be read, and why.
pub type DamagedKey = (PathBuf, VaultError);

/// A loaded key file with its parsed header.
pub(crate) struct StoredKey {
    pub path: PathBuf,
    pub file: KeyFile,
    pub header: KeyHeader,
}

impl StoredKey {
    fn spki(&self) -> Result<Vec<u8>, VaultError> {
        B64.decode(&self.header.spki).map_err(|_| VaultError::corrupt("key header public key is not base64"))
    }
}

/// An open vault directory. Holds an exclusive advisory lock for its lifetime, so two `kalit` processes
/// never interleave writes or PIN attempts.
#[derive(Debug)]
pub struct Vault {
    pub(crate) layout: Layout,
    header: VaultHeader,
    _lock: File,
}

fn take_lock(layout: &Layout) -> Result<File, VaultError> {
    let f = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(layout.lock())
        .map_err(VaultError::io(format!("cannot open lock file in {}", layout.dir.display())))?;
    match f.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            eprintln!("Another kalit process is using the vault in {}; waiting for it...", layout.dir.display());
            f.lock().map_err(VaultError::io("cannot lock the vault"))?;
        }
        Err(std::fs::TryLockError::Error(e)) => {
            return Err(VaultError::Io { context: "cannot lock the vault".into(), source: e });
        }
    }
    Ok(f)
}

impl Vault {
    /// True when `dir` holds a vault.
    pub fn exists(dir: &Path) -> bool {
        dir.join("vault.json").exists()
    }

    /// Creates a new vault in `dir` (created 0700 if missing) protected by `pin`.
    pub fn init(dir: &Path, pin: &SecretString, policy: PinPolicy) -> Result<Vault, VaultError> {
        Self::init_with(dir, pin, policy, KdfParams::DEFAULT, None)
    }

    pub(crate) fn init_with(
        dir: &Path,
        pin: &SecretString,
        policy: PinPolicy,
        kdf: KdfParams,
        master: Option<SecretBytes>,
    ) -> Result<Vault, VaultError> {
        check_new_pin(pin)?;
        policy.validate()?;
        let layout = Layout { dir: dir.to_path_buf() };
        if Self::exists(dir) {
            return Err(VaultError::AlreadyExists(format!("a vault already exists in {}", dir.display())));
        }
        // A vault gets a directory of its own: never chmod or fill a directory that holds other files.
        if let Ok(entries) = fs::read_dir(dir) {
            let foreign = entries.flatten().find(|e| {
                let name = e.file_name();
                let name = name.to_string_lossy();
                !(matches!(name.as_ref(), ".lock" | "pin-state.json" | "keys" | "history.jsonl")
                    || name.contains(".tmp-"))
            });
            if let Some(f) = foreign {
                return Err(VaultError::AlreadyExists(format!(
                    "{} is not empty (it holds {:?}); create the vault in an empty or new directory",
                    dir.display(),
                    f.file_name()
                )));
            }
        }
        storage::create_private_dir(dir)?;
        let lock = take_lock(&layout)?;
        if Self::exists(dir) {
            return Err(VaultError::AlreadyExists(format!("a vault already exists in {}", dir.display())));
        }
        storage::create_private_dir(&layout.keys_dir())?;
        let header = VaultHeader {
            format: VAULT_FORMAT.into(),
            vault_id: hex::encode(random::<16>()?),
            kdf,
            salt: B64.encode(random::<16>()?),
            policy: policy.to_file(),
            created: now_rfc3339(),
        };
        let master = match master {
            Some(m) => m,
            None => SecretBytes::new(random::<32>()?.to_vec()),
        };
        let vault_file = seal_master(&header, pin, &master)?;
        // The counter exists before the vault does: a vault.json never appears without one.
        storage::write_json(&layout.pin_state(), &PinState::default())?;
        storage::write_json(&layout.vault_file(), &vault_file)?;
        Ok(Vault { layout, header, _lock: lock })
    }

    /// Opens an existing vault (no PIN needed for public information).
    pub fn open(dir: &Path) -> Result<Vault, VaultError> {
        let layout = Layout { dir: dir.to_path_buf() };
        if !Self::exists(dir) {
            return Err(VaultError::NotFound(format!(
                "no vault in {} (create one with: kalit vault init --vault {})",
                dir.display(),
                dir.display()
            )));
        }
        let lock = take_lock(&layout)?;
        storage::remove_stale_temps(dir);
        storage::remove_stale_temps(&layout.keys_dir());
        let vault_file: VaultFile = storage::read_json(&layout.vault_file())?;
        let header = vault_file.parse_header()?;
        if !layout.pin_state().exists() {
            return Err(VaultError::corrupt(
                "the PIN attempt counter (pin-state.json) is missing; the vault refuses to run without it. Restore from a backup",
            ));
        }
        Ok(Vault { layout, header, _lock: lock })
    }

    /// The vault directory.
    pub fn dir(&self) -> &Path {
        &self.layout.dir
    }

    /// The PIN policy.
    pub fn policy(&self) -> PinPolicy {
        PinPolicy::from_file(self.header.policy)
    }

    /// The Argon2id parameters of the PIN key.
    pub fn kdf(&self) -> KdfParams {
        self.header.kdf
    }

    fn pin_state(&self) -> Result<PinState, VaultError> {
        storage::read_json(&self.layout.pin_state())
    }

    /// Where the PIN counter stands.
    pub fn pin_status(&self) -> Result<PinStatus, VaultError> {
        let s = self.pin_state()?;
        let max = self.policy().max_attempts;
        let wait = Duration::from_millis(s.not_before_ms.saturating_sub(now_ms()));
        Ok(PinStatus {
            failures: s.failures,
            remaining: max.saturating_sub(s.failures),
            locked: s.failures >= max,
            wait,
        })
    }

    /// Unlocks with the PIN. The attempt counter is incremented on disk *before* the attempt and reset
    /// after a correct PIN; a locked vault refuses even the right PIN.
    pub fn unlock(&self, pin: &SecretString) -> Result<Unlocked<'_>, VaultError> {
        // Read vault.json afresh: a PIN change since `open` must take effect at once.
        let vault_file: VaultFile = storage::read_json(&self.layout.vault_file())?;
        let header = vault_file.parse_header()?;
        let policy = PinPolicy::from_file(header.policy);
        let state = self.pin_state()?;
        if state.failures >= policy.max_attempts {
            return Err(VaultError::Locked { failures: state.failures });
        }
        let now = now_ms();
        if state.not_before_ms > now {
            return Err(VaultError::TryLater { wait_secs: (state.not_before_ms - now).div_ceil(1000) });
        }
        let failures = state.failures + 1;
        let pending = PinState { failures, not_before_ms: now + policy.delay_after(failures).as_millis() as u64 };
        storage::write_json(&self.layout.pin_state(), &pending)?;
        let salt = B64.decode(&header.salt).map_err(|_| VaultError::corrupt("vault salt is not base64"))?;
        let kek = header.kdf.derive(pin, &salt)?;
        match crypto::open(&kek, &vault_file.header_bytes()?, &vault_file.master_key)? {
            Some(master) => {
                storage::write_json(&self.layout.pin_state(), &PinState::default())?;
                Ok(Unlocked { vault: self, wrap: SoftwareKeyWrap::new(master) })
            }
            None if failures >= policy.max_attempts => Err(VaultError::Locked { failures }),
            None => Err(VaultError::WrongPin { remaining: policy.max_attempts - failures }),
        }
    }

    pub(crate) fn stored_keys(&self) -> Result<Vec<Result<StoredKey, DamagedKey>>, VaultError> {
        let dir = self.layout.keys_dir();
        let mut out = Vec::new();
        let rd = match fs::read_dir(&dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(VaultError::Io { context: format!("cannot list {}", dir.display()), source: e }),
        };
        let mut paths: Vec<PathBuf> = rd
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                p.extension().is_some_and(|e| e == "json")
                    && !p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with('.'))
            })
            .collect();
        paths.sort();
        for path in paths {
            let loaded = storage::read_json::<KeyFile>(&path).and_then(|file| {
                let header = file.parse_header()?;
                Ok(StoredKey { path: path.clone(), file, header })
            });
            out.push(loaded.map_err(|e| (path, e)));
        }
        Ok(out)
    }

    /// Keys that could be read, and the files that could not (damaged keys do not hide the others).
    pub fn keys(&self) -> Result<(Vec<KeyInfo>, Vec<DamagedKey>), VaultError> {
        let history = self.history()?;
        let mut good = Vec::new();
        let mut bad = Vec::new();
        for k in self.stored_keys()? {
            match k.and_then(|k| self.info(&k, &history).map_err(|e| (k.path.clone(), e))) {
                Ok(info) => good.push(info),
                Err(e) => bad.push(e),
            }
        }
        good.sort_by(|a, b| a.label.cmp(&b.label));
        Ok((good, bad))
    }

    pub(crate) fn find(&self, label: &str) -> Result<StoredKey, VaultError> {
        for k in self.stored_keys()? {
            match k {
                Ok(k) if k.header.label == label => return Ok(k),
                _ => {}
            }
        }
        Err(VaultError::NotFound(format!("no key labelled {label:?} in this vault (see: kalit vault list)")))
    }

    /// One key by label.
    pub fn key(&self, label: &str) -> Result<KeyInfo, VaultError> {
        let k = self.find(label)?;
        self.info(&k, &self.history()?)
    }

    fn info(&self, k: &StoredKey, history: &[HistoryEntry]) -> Result<KeyInfo, VaultError> {
        let spki = k.spki()?;
        let fingerprint = x509::fingerprint(&spki);
        let certs = k.file.cert_ders()?;
        let certificate = match certs.first() {
            Some(leaf) => {
                Some(x509::cert_info(leaf).map_err(|e| VaultError::corrupt(format!("stored certificate: {e}")))?)
            }
            None => None,
        };
        let last_used = history.iter().rev().find(|h| h.fingerprint == fingerprint).map(|h| h.time.clone());
        Ok(KeyInfo {
            label: k.header.label.clone(),
            id: k.header.key_id.clone(),
            algorithm: k.header.algorithm.clone(),
            fingerprint,
            origin: k.header.origin.clone(),
            created: k.header.created.clone(),
            last_used,
            policy: KeyPolicy { no_export: k.header.no_export },
            certificate,
            chain_len: certs.len().saturating_sub(1),
        })
    }

    /// Parses a certificate bundle for the key `label` and refuses it when the leaf is for another key.
    /// Needs no PIN, so a front end can refuse a wrong certificate before asking for one;
    /// [`Unlocked::install_cert`] runs it again.
    pub fn check_certificate(&self, label: &str, bundle: &[u8]) -> Result<(), VaultError> {
        self.checked_certificate(label, bundle).map(|_| ())
    }

    fn checked_certificate(&self, label: &str, bundle: &[u8]) -> Result<(StoredKey, Vec<Vec<u8>>), VaultError> {
        let k = self.find(label)?;
        let certs = x509::parse_cert_bundle(bundle)?;
        let leaf_spki = x509::cert_spki(&certs[0])?;
        if leaf_spki != k.spki()? {
            return Err(VaultError::Core(CoreError::KeyMismatch(format!(
                "the certificate is for another key (its public key fingerprint is {}, key {label:?} has {})",
                x509::fingerprint(&leaf_spki),
                x509::fingerprint(&k.spki()?)
            ))));
        }
        Ok((k, certs))
    }

    /// The key's certificate chain (DER, leaf first); empty when none is installed.
    pub fn certificate_chain(&self, label: &str) -> Result<Vec<Vec<u8>>, VaultError> {
        self.find(label)?.file.cert_ders()
    }

    /// Every signature made, oldest first. A torn last line (a crash mid-append) is skipped.
    pub fn history(&self) -> Result<Vec<HistoryEntry>, VaultError> {
        let path = self.layout.history();
        let text = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(VaultError::Io { context: format!("cannot read {}", path.display()), source: e }),
        };
        Ok(text.split(|b| *b == b'\n').filter_map(|line| serde_json::from_slice(line).ok()).collect())
    }

    pub(crate) fn append_history(&self, entry: &HistoryEntry) -> Result<(), VaultError> {
        let path = self.layout.history();
        let line = serde_json::to_string(entry).map_err(|e| VaultError::Internal(e.to_string()))?;
        // If a crash tore the previous line, start on a fresh line so this entry stays readable.
        let needs_newline = (|| -> std::io::Result<bool> {
            use std::io::{Read, Seek, SeekFrom};
            let mut f = File::open(&path)?;
            if f.seek(SeekFrom::End(0))? == 0 {
                return Ok(false);
            }
            f.seek(SeekFrom::End(-1))?;
            let mut last = [0u8; 1];
            f.read_exact(&mut last)?;
            Ok(last[0] != b'\n')
        })()
        .unwrap_or(false);
        let line = if needs_newline { format!("\n{line}") } else { line };
        storage::append_line(&path, &line)
    }

    /// Destroys every key and the vault files in `dir`, without a PIN (for a locked vault). The
    /// directory stays; `init` can create a new vault in it.
    pub fn reset(dir: &Path) -> Result<usize, VaultError> {
        let layout = Layout { dir: dir.to_path_buf() };
        if !Self::exists(dir) && !layout.keys_dir().exists() {
            return Err(VaultError::NotFound(format!("no vault in {}", dir.display())));
        }
        let _lock = take_lock(&layout)?;
        // vault.json goes first: a crash part-way leaves no usable vault, never a half-reset one.
        let _ = fs::remove_file(layout.vault_file());
        storage::sync_dir(dir)?;
        let mut n = 0;
        if let Ok(rd) = fs::read_dir(layout.keys_dir()) {
            for e in rd.flatten() {
                fs::remove_file(e.path()).map_err(VaultError::io("cannot remove a key file"))?;
                n += 1;
            }
        }
        let _ = fs::remove_dir(layout.keys_dir());
        for p in [layout.pin_state(), layout.history()] {
            let _ = fs::remove_file(p);
        }
        storage::sync_dir(dir)?;
        Ok(n)
    }
}

fn seal_master(header: &VaultHeader, pin: &SecretString, master: &SecretBytes) -> Result<VaultFile, VaultError> {
    let header_json = serde_json::to_vec(header).map_err(|e| VaultError::Internal(e.to_string()))?;
    let salt = B64.decode(&header.salt).map_err(|_| VaultError::Internal("salt".into()))?;
    let kek = header.kdf.derive(pin, &salt)?;
    let master_key = crypto::seal(&kek, &header_json, master.expose_secret())?;
    Ok(VaultFile::new(B64.encode(header_json), master_key))
}

/// A vault unlocked by its PIN: the only way to private-key operations. Holds the master key in a
/// zeroizing buffer; dropped at the end of each command.
pub struct Unlocked<'v> {
    pub(crate) vault: &'v Vault,
    pub(crate) wrap: SoftwareKeyWrap,
}

impl std::fmt::Debug for Unlocked<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Unlocked").field("dir", &self.vault.layout.dir).finish_non_exhaustive()
    }
}

impl<'v> Unlocked<'v> {
    /// The vault.
    pub fn vault(&self) -> &'v Vault {
        self.vault
    }

    fn ensure_label_free(&self, label: &str) -> Result<(), VaultError> {
        check_label(label)?;
        if self.vault.stored_keys()?.into_iter().flatten().any(|k| k.header.label == label) {
            return Err(VaultError::AlreadyExists(format!("a key labelled {label:?} already exists")));
        }
        Ok(())
    }

    /// Stores a private key (PKCS#8) under a new label. Used by generate, import and restore.
    pub(crate) fn store_key(
        &self,
        pkcs8: &SecretBytes,
        label: &str,
        no_export: bool,
        origin: &str,
        certs: &[Vec<u8>],
        created: Option<String>,
    ) -> Result<KeyInfo, VaultError> {
        self.ensure_label_free(label)?;
        let key = PrivateKey::from_pkcs8(pkcs8)?;
        let key_id = hex::encode(random::<16>()?);
        let header = KeyHeader {
            format: KEY_FORMAT.into(),
            key_id: key_id.clone(),
            label: label.into(),
            algorithm: key.algorithm().name().into(),
            spki: B64.encode(key.spki_der()),
            no_export,
            origin: origin.into(),
            created: created.unwrap_or_else(now_rfc3339),
            wrap: self.wrap.id().into(),
        };
        let header_json = serde_json::to_vec(&header).map_err(|e| VaultError::Internal(e.to_string()))?;
        let private_key = self.wrap.wrap(&header_json, pkcs8.expose_secret())?;
        let header_b64 = B64.encode(&header_json);
        let certificates: Vec<String> = certs.iter().map(|c| B64.encode(c)).collect();
        let certificates_seal = self.seal_certificates(&header_b64, &certificates)?;
        let file = KeyFile { header: header_b64, private_key, certificates, certificates_seal };
        let path = self.vault.layout.key_file(&key_id);
        storage::write_json(&path, &file)?;
        self.vault.info(&StoredKey { path, file, header }, &[])
    }

    fn seal_certificates(&self, header_b64: &str, certs: &[String]) -> Result<Option<SealedBox>, VaultError> {
        if certs.is_empty() {
            return Ok(None);
        }
        Ok(Some(self.wrap.wrap(&storage::certificates_aad(header_b64, certs), &[])?))
    }

    /// A key's certificate chain (DER, leaf first), after checking that it is the one the person
    /// installed: its seal under the master key must verify.
    pub(crate) fn verified_certs(&self, k: &StoredKey) -> Result<Vec<Vec<u8>>, VaultError> {
        if k.file.certificates.is_empty() {
            return Ok(vec![]);
        }
        let ok = match &k.file.certificates_seal {
            Some(seal) => {
                self.wrap.unwrap(&storage::certificates_aad(&k.file.header, &k.file.certificates), seal)?.is_some()
            }
            None => false,
        };
        if !ok {
            return Err(VaultError::corrupt(format!(
                "the certificates of key {:?} failed their integrity check (changed outside Kalit, or written by an older Kalit): install the certificate again (kalit vault install-cert)",
                k.header.label
            )));
        }
        k.file.cert_ders()
    }

    /// Installs a certificate (PEM or DER, optionally followed by its chain) for the key `label`.
    /// Refused when the certificate's public key is not the key's. Needs the PIN: the chain is sealed
    /// under the master key, so no one can swap it without it.
    pub fn install_cert(&self, label: &str, bundle: &[u8]) -> Result<CertInfo, VaultError> {
        let (mut k, certs) = self.vault.checked_certificate(label, bundle)?;
        let info = x509::cert_info(&certs[0])?;
        k.file.certificates = certs.iter().map(|c| B64.encode(c)).collect();
        k.file.certificates_seal = self.seal_certificates(&k.file.header, &k.file.certificates)?;
        storage::write_json(&k.path, &k.file)?;
        Ok(info)
    }

    /// Decrypts a key's PKCS#8. The header is authenticated by the AEAD, so its flags can be trusted
    /// after this returns.
    pub(crate) fn decrypt(&self, k: &StoredKey) -> Result<SecretBytes, VaultError> {
        let aad = k.file.header_bytes()?;
        self.wrap.unwrap(&aad, &k.file.private_key)?.ok_or_else(|| {
            VaultError::corrupt(format!(
                "key {:?} ({}) failed its integrity check: the file was damaged or tampered with. Other keys are unaffected; restore this one from a backup",
                k.header.label,
                k.path.display()
            ))
        })
    }

    pub(crate) fn load_private(&self, label: &str) -> Result<(StoredKey, PrivateKey), VaultError> {
        let k = self.vault.find(label)?;
        let pkcs8 = self.decrypt(&k)?;
        let key = PrivateKey::from_pkcs8(&pkcs8)?;
        if key.spki_der() != k.spki()? {
            return Err(VaultError::corrupt(format!("key {label:?}: private and public halves differ")));
        }
        Ok((k, key))
    }

    /// Generates a new key pair.
    pub fn generate(&self, alg: KeyAlgorithm, label: &str, no_export: bool) -> Result<KeyInfo, VaultError> {
        self.ensure_label_free(label)?;
        let pkcs8 = keys::generate(alg)?;
        self.store_key(&pkcs8, label, no_export, "generated", &[], None)
    }

    /// A PEM PKCS#10 request for `subject`, signed by the key.
    pub fn csr(&self, label: &str, subject: &str) -> Result<String, VaultError> {
        let dn = kalit_core::csr::parse_subject(subject)?;
        let (_, key) = self.load_private(label)?;
        Ok(kalit_core::csr::build_csr_pem(&key, dn)?)
    }

    /// Signs a document the person approved, and records it in the history.
    pub fn sign(&self, label: &str, doc: &DocumentToSign<'_>) -> Result<SignOutcome, VaultError> {
        // One key, many purposes: a document is never a Kalit statement, and a raw signature is never made
        // over a structure whose signature means something elsewhere. Checked here, before the key is
        // decrypted, so that every front end (command line, phone session, app) inherits it.
        if let Some(d) = &doc.digests {
            return self.sign_digest(label, doc, d);
        }
        let raw = doc.format == SignFormat::Raw;
        kalit_core::purpose::check_document(doc.data, raw)?;
        if raw && !doc.blind_confirmed && kalit_core::purpose::needs_blind_confirmation(doc.data) {
            return Err(VaultError::Policy(
                "a raw signature over bytes that cannot be shown as text needs a separate confirmation that you sign something you cannot read"
                    .into(),
            ));
        }
        let (k, key) = self.load_private(label)?;
        let scheme = key.algorithm().scheme(doc.pss)?;
        let sha256 = HashAlg::Sha256.digest(doc.data);
        let (bytes, format) = match doc.format {
            SignFormat::Raw => (key.sign(scheme, doc.data)?, if doc.pss { "raw-pss" } else { "raw" }),
            SignFormat::Cms => {
                let chain = self.verified_certs(&k)?;
                if chain.is_empty() {
                    return Err(VaultError::Policy(format!(
                        "key {label:?} has no certificate: CMS needs one (kalit vault install-cert), or use --format raw"
                    )));
                }
                let digest = digest_alg_for(scheme).digest(doc.data);
                let prepared = PreparedCms::new(&chain, scheme, &digest, OffsetDateTime::now_utc())?;
                let sig = key.sign(scheme, &prepared.to_be_signed())?;
                (prepared.finish(&sig), "cms")
            }
            SignFormat::Pades => {
                let chain = self.verified_certs(&k)?;
                if chain.is_empty() {
                    return Err(VaultError::Policy(format!(
                        "key {label:?} has no certificate: a PDF signature needs one (kalit vault install-cert)"
                    )));
                }
                // The computer that prepared the PDF may lie: the digest is computed here, over byte
                // ranges checked here, in a revision that may change nothing but the signature field.
                let seen = kalit_core::pdf::inspect_prepared(doc.data)?;
                let digest = seen.digest(doc.data, digest_alg_for(scheme));
                let prepared = PreparedCms::with_profile(
                    &chain,
                    scheme,
                    &digest,
                    kalit_core::cms::Profile::Pades,
                    OffsetDateTime::now_utc(),
                )?;
                let sig = key.sign(scheme, &prepared.to_be_signed())?;
                (prepared.finish(&sig), "pades")
            }
        };
        let record = HistoryEntry {
            time: now_rfc3339(),
            key: label.into(),
            fingerprint: x509::fingerprint(&k.spki()?),
            document: doc.name.into(),
            sha256: hex::encode(sha256),
            size: doc.data.len() as u64,
            format: format.into(),
            origin: doc.origin.map(str::to_owned),
        };
        self.vault.append_history(&record)?;
        Ok(SignOutcome { bytes, record })
    }

    /// Signs a document the phone does not hold whole, by its digests: CMS or PAdES (the CMS over a PDF's
    /// byte ranges), never raw. Recorded as `cms-digest` / `pades-digest` when the digests were the
    /// computer's word.
    fn sign_digest(&self, label: &str, doc: &DocumentToSign<'_>, d: &Digested<'_>) -> Result<SignOutcome, VaultError> {
        let (profile, format) = match doc.format {
            SignFormat::Raw => {
                return Err(VaultError::Policy(
                    "a raw signature is made over the whole document, which is not here; only CMS and PDF signatures can be made from a digest"
                        .into(),
                ));
            }
            SignFormat::Cms => (kalit_core::cms::Profile::Cades, "cms"),
            SignFormat::Pades => (kalit_core::cms::Profile::Pades, "pades"),
        };
        if !d.computed_here && !doc.blind_confirmed {
            return Err(VaultError::Policy(
                "signing a document the phone could not check needs a separate confirmation that you sign what you could not see"
                    .into(),
            ));
        }
        if d.sha256.len() != 32 {
            return Err(VaultError::Core(CoreError::InvalidInput(
                "the document's SHA-256 has the wrong length".into(),
            )));
        }
        let (k, key) = self.load_private(label)?;
        let scheme = key.algorithm().scheme(doc.pss)?;
        let chain = self.verified_certs(&k)?;
        if chain.is_empty() {
            return Err(VaultError::Policy(format!(
                "key {label:?} has no certificate: CMS needs one (kalit vault install-cert)"
            )));
        }
        let digest = match digest_alg_for(scheme) {
            HashAlg::Sha512 if d.sha512.is_empty() => {
                return Err(VaultError::Core(CoreError::InvalidInput(
                    "this key's CMS needs the document's SHA-512".into(),
                )));
            }
            HashAlg::Sha512 => d.sha512,
            _ => d.sha256,
        };
        let prepared = PreparedCms::with_profile(&chain, scheme, digest, profile, OffsetDateTime::now_utc())?;
        let sig = key.sign(scheme, &prepared.to_be_signed())?;
        let format = match d.computed_here {
            true => format.to_string(),
            false => format!("{format}-digest"),
        };
        let record = HistoryEntry {
            time: now_rfc3339(),
            key: label.into(),
            fingerprint: x509::fingerprint(&k.spki()?),
            document: doc.name.into(),
            sha256: hex::encode(d.sha256),
            size: d.size,
            format,
            origin: doc.origin.map(str::to_owned),
        };
        self.vault.append_history(&record)?;
        Ok(SignOutcome { bytes: prepared.finish(&sig), record })
    }

    /// Destroys a key: its one file is removed and the directory synced.
    pub fn destroy(&self, label: &str) -> Result<(), VaultError> {
        let k = self.vault.find(label)?;
        fs::remove_file(&k.path).map_err(VaultError::io(format!("cannot remove {}", k.path.display())))?;
        storage::sync_dir(&self.vault.layout.keys_dir())
    }

    /// Changes the PIN: one atomic rewrite of vault.json with a fresh salt (the keys stay sealed under the
    /// same master key), so a crash leaves either the old PIN or the new one working.
    pub fn change_pin(&self, new_pin: &SecretString) -> Result<(), VaultError> {
        check_new_pin(new_pin)?;
        let mut header = self.vault.header.clone();
        header.salt = B64.encode(random::<16>()?);
        let file = seal_master(&header, new_pin, self.wrap.master())?;
        storage::write_json(&self.vault.layout.vault_file(), &file)
    }
}

/// Restores a backup into `dir`, which must not hold a vault. The new vault gets `new_pin` and a fresh
/// master key; it is built in a sibling temporary directory and renamed into place, so a crash leaves
/// no half-restored vault.
pub fn restore(
    dir: &Path,
    backup: &[u8],
    passphrase: &SecretString,
    new_pin: &SecretString,
) -> Result<(Vault, crate::BackupSummary), VaultError> {
    check_new_pin(new_pin)?;
    if Vault::exists(dir) {
        return Err(VaultError::AlreadyExists(format!(
            "{} already holds a vault; restore into an empty or new directory",
            dir.display()
        )));
    }
    if dir.exists()
        && fs::read_dir(dir).map(|mut d| d.any(|e| e.is_ok_and(|e| e.file_name() != ".lock"))).unwrap_or(true)
    {
        return Err(VaultError::AlreadyExists(format!(
            "{} is not empty; restore into an empty or new directory",
            dir.display()
        )));
    }
    let contents = crate::backup::open_backup(backup, passphrase)?;
    let parent = dir.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    fs::create_dir_all(parent).map_err(VaultError::io(format!("cannot create {}", parent.display())))?;
    let staging = parent.join(format!(".kalit-restore-{}", hex::encode(random::<6>()?)));
    let result = (|| {
        let policy = PinPolicy::from_file(contents.policy);
        let v = Vault::init_with(&staging, new_pin, policy, KdfParams::DEFAULT, None)?;
        let summary = {
            let u = v.unlock(new_pin)?;
            crate::backup::apply(&u, &contents)?
        };
        drop(v);
        let _ = fs::remove_file(staging.join(".lock"));
        if dir.exists() {
            let _ = fs::remove_file(dir.join(".lock"));
            fs::remove_dir(dir).map_err(VaultError::io(format!("cannot replace {}", dir.display())))?;
        }
        fs::rename(&staging, dir)
            .map_err(VaultError::io(format!("cannot move the restored vault to {}", dir.display())))?;
        storage::sync_dir(parent)?;
        Ok(summary)
    })();
    match result {
        Ok(summary) => Ok((Vault::open(dir)?, summary)),
        Err(e) => {
            let _ = fs::remove_dir_all(&staging);
            Err(e)
        }
    }
}
