//! Library-level tests of the vault: PIN counter and lockout, integrity of stored files, policy, history,
//! backup and restore. (The CLI tests drive the same through real processes, with OpenSSL as the judge.)

#![allow(clippy::unwrap_used)]

use kalit_proto::Base64;
use std::fs;
use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use kalit_core::{KeyAlgorithm, SecretString};
use kalit_proto::ErrorCode;
use kalit_vault::{DocumentToSign, PinPolicy, SignFormat, Vault, VaultError};

fn pin(s: &str) -> SecretString {
    SecretString::new(s.into())
}

fn no_delay(max: u32) -> PinPolicy {
    PinPolicy { max_attempts: max, delay_base_ms: 0 }
}

/// A new vault with PIN 123456 and no delays, in a temporary directory kept alive by the first value.
fn new_vault(max_attempts: u32) -> (tempfile::TempDir, std::path::PathBuf, Vault) {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path().join("v");
    let v = Vault::init(&dir, &pin("123456"), no_delay(max_attempts)).unwrap();
    (d, dir, v)
}

fn raw(data: &[u8]) -> DocumentToSign<'_> {
    DocumentToSign {
        name: "doc.txt",
        data,
        digests: None,
        format: SignFormat::Raw,
        pss: false,
        origin: None,
        blind_confirmed: false,
    }
}

fn code<T: std::fmt::Debug>(r: Result<T, VaultError>) -> ErrorCode {
    r.expect_err("expected an error").code()
}

#[test]
fn pin_policy_and_weak_pins() {
    let d = tempfile::tempdir().unwrap();
    assert_eq!(code(Vault::init(&d.path().join("v"), &pin("12345"), PinPolicy::default())), ErrorCode::WeakSecret);
    assert_eq!(
        code(Vault::init(&d.path().join("v"), &pin("123456"), PinPolicy { max_attempts: 1, delay_base_ms: 0 })),
        ErrorCode::InvalidInput
    );
    // A directory holding other files is never taken over (nor chmodded).
    use std::os::unix::fs::PermissionsExt;
    let busy = d.path().join("home");
    fs::create_dir(&busy).unwrap();
    fs::write(busy.join("notes.txt"), "mine").unwrap();
    fs::set_permissions(&busy, fs::Permissions::from_mode(0o755)).unwrap();
    assert_eq!(code(Vault::init(&busy, &pin("123456"), PinPolicy::default())), ErrorCode::AlreadyExists);
    assert_eq!(fs::metadata(&busy).unwrap().permissions().mode() & 0o777, 0o755);
    let v = Vault::init(&d.path().join("v"), &pin("123456"), PinPolicy::default()).unwrap();
    drop(v);
    assert_eq!(code(Vault::init(&d.path().join("v"), &pin("123456"), PinPolicy::default())), ErrorCode::AlreadyExists);
}

#[test]
fn counter_persists_locks_and_refuses_the_right_pin() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path().join("v");
    Vault::init(&dir, &pin("123456"), no_delay(4)).unwrap();
    for remaining in [3, 2, 1] {
        let v = Vault::open(&dir).unwrap(); // a new process each time: the counter lives on disk
        match v.unlock(&pin("000000")) {
            Err(VaultError::WrongPin { remaining: r }) => assert_eq!(r, remaining),
            other => panic!("expected WrongPin, got {other:?}"),
        }
    }
    // A correct PIN resets the counter.
    let v = Vault::open(&dir).unwrap();
    v.unlock(&pin("123456")).unwrap();
    assert_eq!(v.pin_status().unwrap().failures, 0);
    for _ in 0..3 {
        assert_eq!(code(v.unlock(&pin("999999"))), ErrorCode::WrongPin);
    }
    assert_eq!(code(v.unlock(&pin("999999"))), ErrorCode::Locked);
    drop(v);
    let v = Vault::open(&dir).unwrap();
    assert!(v.pin_status().unwrap().locked);
    assert_eq!(code(v.unlock(&pin("123456"))), ErrorCode::Locked, "a locked vault refuses even the right PIN");
    drop(v);
    // Reset destroys everything; a new vault can be made.
    Vault::reset(&dir).unwrap();
    assert!(!Vault::exists(&dir));
    Vault::init(&dir, &pin("654321"), no_delay(4)).unwrap();
}

#[test]
fn delays_grow_and_are_enforced_without_spending_attempts() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path().join("v");
    let policy = PinPolicy { max_attempts: 10, delay_base_ms: 60_000 };
    assert_eq!(policy.delay_after(3).as_secs(), 0);
    assert_eq!(policy.delay_after(4).as_secs(), 60);
    assert_eq!(policy.delay_after(5).as_secs(), 120);
    assert_eq!(policy.delay_after(9).as_secs(), 300, "capped at 5 minutes");
    let v = Vault::init(&dir, &pin("123456"), policy).unwrap();
    for _ in 0..4 {
        assert_eq!(code(v.unlock(&pin("000000"))), ErrorCode::WrongPin);
    }
    let s = v.pin_status().unwrap();
    assert_eq!(s.failures, 4);
    assert!(s.wait.as_secs() > 50);
    // Trying again now is refused *without* counting, and even the right PIN must wait.
    assert_eq!(code(v.unlock(&pin("123456"))), ErrorCode::TryLater);
    assert_eq!(v.pin_status().unwrap().failures, 4);
}

#[test]
fn a_damaged_key_file_leaves_the_other_keys_usable() {
    let (_d, dir, v) = new_vault(100);
    let u = v.unlock(&pin("123456")).unwrap();
    let a = u.generate(KeyAlgorithm::P256, "a", false).unwrap();
    u.generate(KeyAlgorithm::Ed25519, "b", false).unwrap();
    drop(u);
    let path = dir.join("keys").join(format!("{}.json", a.id));
    let original = fs::read(&path).unwrap();
    let mut value: serde_json::Value = serde_json::from_slice(&original).unwrap();
    // Flip one bit in each authenticated part in turn, decoded (so the JSON stays well-formed).
    for field in ["header", "private_key.nonce", "private_key.ciphertext"] {
        for byte in [0usize, 7, 31, usize::MAX] {
            let mut tampered = value.clone();
            let slot = match field.split_once('.') {
                Some((o, f)) => &mut tampered[o][f],
                None => &mut tampered[field],
            };
            let mut bytes = B64.decode(slot.as_str().unwrap()).unwrap();
            let i = byte.min(bytes.len() - 1);
            bytes[i] ^= 0x01;
            *slot = serde_json::Value::String(B64.encode(&bytes));
            fs::write(&path, serde_json::to_vec(&tampered).unwrap()).unwrap();
            let u = v.unlock(&pin("123456")).unwrap();
            let err = u.sign("a", &raw(b"x")).map(|_| ()).unwrap_err();
            assert!(matches!(err.code(), ErrorCode::Corrupt | ErrorCode::NotFound), "{field}[{i}]: {err}");
            u.sign("b", &raw(b"x")).expect("the other key still signs");
            let (good, _) = v.keys().unwrap();
            assert!(good.iter().any(|k| k.label == "b"));
        }
    }
    // A truncated file and a file from a newer format version: clear errors, others fine.
    fs::write(&path, &original[..original.len() / 2]).unwrap();
    let (good, bad) = v.keys().unwrap();
    assert_eq!((good.len(), bad.len()), (1, 1));
    assert_eq!(bad[0].1.code(), ErrorCode::Corrupt);
    let header_json = B64.decode(value["header"].as_str().unwrap()).unwrap();
    let newer = String::from_utf8(header_json).unwrap().replace("kalit-key/1", "kalit-key/9");
    value["header"] = serde_json::Value::String(B64.encode(newer));
    fs::write(&path, serde_json::to_vec(&value).unwrap()).unwrap();
    let (_, bad) = v.keys().unwrap();
    assert!(bad[0].1.to_string().contains("newer Kalit"), "{}", bad[0].1);
    // Restoring the original bytes makes the key whole again.
    fs::write(&path, &original).unwrap();
    v.unlock(&pin("123456")).unwrap().sign("a", &raw(b"x")).unwrap();
}

fn rewrite_vault_header(dir: &Path, f: impl FnOnce(&mut serde_json::Value)) {
    let p = dir.join("vault.json");
    let mut file: serde_json::Value = serde_json::from_slice(&fs::read(&p).unwrap()).unwrap();
    let mut header: serde_json::Value =
        serde_json::from_slice(&B64.decode(file["header"].as_str().unwrap()).unwrap()).unwrap();
    f(&mut header);
    file["header"] = serde_json::Value::String(B64.encode(serde_json::to_vec(&header).unwrap()));
    // A deliberate attacker recomputes the (non-cryptographic) checksum too.
    let text = format!(
        "{}\n{}\n{}",
        file["header"].as_str().unwrap(),
        file["master_key"]["nonce"].as_str().unwrap(),
        file["master_key"]["ciphertext"].as_str().unwrap()
    );
    file["checksum"] = hex::encode(kalit_core::digest::HashAlg::Sha256.digest(text.as_bytes())).into();
    fs::write(&p, serde_json::to_vec(&file).unwrap()).unwrap();
}

#[test]
fn a_damaged_vault_file_is_reported_and_costs_no_pin_attempt() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path().join("v");
    drop(Vault::init(&dir, &pin("123456"), no_delay(5)).unwrap());
    let original = fs::read(dir.join("vault.json")).unwrap();
    let text = String::from_utf8(original.clone()).unwrap();
    // Flip one bit in every base64/hex character position of the file in turn (sampled), as bit rot would.
    let positions: Vec<usize> =
        text.char_indices().filter(|(_, c)| c.is_ascii_alphanumeric()).map(|(i, _)| i).step_by(7).collect();
    let mut refused = 0;
    for i in positions {
        let mut bytes = original.clone();
        bytes[i] ^= 0x01;
        fs::write(dir.join("vault.json"), &bytes).unwrap();
        match Vault::open(&dir) {
            Err(e) => {
                assert_eq!(e.code(), ErrorCode::Corrupt, "byte {i}: {e}");
                refused += 1;
            }
            Ok(v) => {
                // Only a change to a JSON key name's letters could parse; it must still not unlock.
                let r = v.unlock(&pin("123456"));
                assert!(r.is_err(), "byte {i}: a damaged vault.json unlocked");
            }
        }
    }
    assert!(refused > 50);
    fs::write(dir.join("vault.json"), &original).unwrap();
    let v = Vault::open(&dir).unwrap();
    assert_eq!(v.pin_status().unwrap().failures, 0, "damage never cost a PIN attempt");
    v.unlock(&pin("123456")).unwrap();
}

#[test]
fn downgraded_kdf_and_edited_policy_are_refused() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path().join("v");
    drop(Vault::init(&dir, &pin("123456"), no_delay(5)).unwrap());
    let original = fs::read(dir.join("vault.json")).unwrap();
    rewrite_vault_header(&dir, |h| h["kdf"]["m_kib"] = 8.into());
    let err = Vault::open(&dir).unwrap_err();
    assert_eq!(err.code(), ErrorCode::Corrupt);
    assert!(err.to_string().contains("below the floor"), "{err}");
    // Raising the attempt limit in the header breaks the AEAD binding: the right PIN no longer works,
    // so an attacker gains nothing.
    fs::write(dir.join("vault.json"), &original).unwrap();
    rewrite_vault_header(&dir, |h| h["policy"]["max_attempts"] = 100.into());
    let v = Vault::open(&dir).unwrap();
    assert_eq!(code(v.unlock(&pin("123456"))), ErrorCode::WrongPin);
    drop(v);
    fs::write(dir.join("vault.json"), &original).unwrap();
    // A missing counter file is refused rather than silently reset.
    fs::remove_file(dir.join("pin-state.json")).unwrap();
    assert_eq!(Vault::open(&dir).unwrap_err().code(), ErrorCode::Corrupt);
}

#[test]
fn no_export_is_enforced_by_export_and_backup() {
    let d = tempfile::tempdir().unwrap();
    let v = Vault::init(&d.path().join("v"), &pin("123456"), no_delay(10)).unwrap();
    let u = v.unlock(&pin("123456")).unwrap();
    u.generate(KeyAlgorithm::P256, "locked-in", true).unwrap();
    u.generate(KeyAlgorithm::P256, "movable", false).unwrap();
    assert_eq!(code(u.export_pfx("locked-in", &pin("a-long-password"))), ErrorCode::RefusedByPolicy);
    assert!(u.export_pfx("movable", &pin("a-long-password")).is_ok());
    let (backup, summary) = u.backup(&pin("backup-passphrase")).unwrap();
    assert_eq!(summary.keys, vec!["movable".to_string()]);
    assert_eq!(summary.skipped_no_export, vec!["locked-in".to_string()]);
    let (restored, _) =
        kalit_vault::restore(&d.path().join("r"), &backup, &pin("backup-passphrase"), &pin("654321")).unwrap();
    let (keys, _) = restored.keys().unwrap();
    assert_eq!(keys.iter().map(|k| k.label.as_str()).collect::<Vec<_>>(), vec!["movable"]);
}

#[test]
fn backup_restore_round_trip_and_refusals() {
    let d = tempfile::tempdir().unwrap();
    let v = Vault::init(&d.path().join("v"), &pin("123456"), no_delay(7)).unwrap();
    let u = v.unlock(&pin("123456")).unwrap();
    let k = u.generate(KeyAlgorithm::Rsa2048, "rsa", false).unwrap();
    u.sign("rsa", &raw(b"hello")).unwrap();
    assert_eq!(code(u.backup(&pin("short"))), ErrorCode::WeakSecret);
    let (backup, _) = u.backup(&pin("backup-passphrase")).unwrap();
    assert_eq!(
        code(kalit_vault::restore(&d.path().join("r1"), &backup, &pin("wrong-passphrase"), &pin("654321"))),
        ErrorCode::WrongPassword
    );
    assert!(!d.path().join("r1").join("vault.json").exists(), "a failed restore leaves nothing behind");
    assert_eq!(
        code(kalit_vault::restore(&d.path().join("v"), &backup, &pin("backup-passphrase"), &pin("654321"))),
        ErrorCode::AlreadyExists
    );
    let mut damaged = backup.clone();
    let n = damaged.len() / 2;
    damaged[n] ^= 0x04;
    assert!(kalit_vault::restore(&d.path().join("r2"), &damaged, &pin("backup-passphrase"), &pin("654321")).is_err());
    let (r, summary) =
        kalit_vault::restore(&d.path().join("r3"), &backup, &pin("backup-passphrase"), &pin("654321")).unwrap();
    assert_eq!(summary.history_entries, 1);
    assert_eq!(r.policy(), no_delay(7), "the PIN policy travels with the backup");
    let info = r.key("rsa").unwrap();
    assert_eq!(info.fingerprint, k.fingerprint);
    assert_eq!(r.history().unwrap().len(), 1);
    assert!(info.last_used.is_some());
    assert_eq!(code(r.unlock(&pin("123456"))), ErrorCode::WrongPin, "the restored vault has the new PIN");
    r.unlock(&pin("654321")).unwrap().sign("rsa", &raw(b"again")).unwrap();
}

#[test]
fn change_pin_destroy_and_history() {
    let (_d, dir, v) = new_vault(10);
    let u = v.unlock(&pin("123456")).unwrap();
    let k = u.generate(KeyAlgorithm::Ed25519, "ed", false).unwrap();
    assert_eq!(code(u.generate(KeyAlgorithm::Ed25519, "ed", false)), ErrorCode::AlreadyExists);
    assert_eq!(code(u.generate(KeyAlgorithm::Ed25519, "../evil", false)), ErrorCode::InvalidInput);
    let out = u.sign("ed", &DocumentToSign { origin: Some("https://portal.example"), ..raw(b"doc") }).unwrap();
    assert_eq!(out.record.origin.as_deref(), Some("https://portal.example"));
    u.change_pin(&pin("abcdef")).unwrap();
    drop(u);
    assert_eq!(code(v.unlock(&pin("123456"))), ErrorCode::WrongPin);
    drop(v);
    let v = Vault::open(&dir).unwrap();
    let u = v.unlock(&pin("abcdef")).unwrap();
    u.destroy("ed").unwrap();
    assert_eq!(code(u.sign("ed", &raw(b"doc"))), ErrorCode::NotFound);
    // Nothing of the key remains in the key store.
    for e in fs::read_dir(dir.join("keys")).unwrap() {
        let text = fs::read_to_string(e.unwrap().path()).unwrap();
        assert!(!text.contains(&k.id));
    }
    assert!(!dir.join("keys").join(format!("{}.json", k.id)).exists());
    let h = v.history().unwrap();
    assert_eq!(h.len(), 1);
    assert_eq!(h[0].sha256, hex::encode(kalit_core::digest::HashAlg::Sha256.digest(b"doc")));
}

#[test]
fn a_torn_history_line_does_not_hide_later_entries() {
    let (_d, dir, v) = new_vault(10);
    let u = v.unlock(&pin("123456")).unwrap();
    u.generate(KeyAlgorithm::P256, "k", false).unwrap();
    u.sign("k", &raw(b"one")).unwrap();
    let mut f = fs::OpenOptions::new().append(true).open(dir.join("history.jsonl")).unwrap();
    std::io::Write::write_all(&mut f, b"{\"time\":\"2026-").unwrap();
    u.sign("k", &raw(b"two")).unwrap();
    assert_eq!(v.history().unwrap().len(), 2);
}

#[test]
fn key_files_and_directories_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let (_d, dir, v) = new_vault(10);
    let u = v.unlock(&pin("123456")).unwrap();
    u.generate(KeyAlgorithm::P256, "k", false).unwrap();
    u.sign("k", &raw(b"one")).unwrap();
    assert_eq!(fs::metadata(&dir).unwrap().permissions().mode() & 0o777, 0o700);
    assert_eq!(fs::metadata(dir.join("keys")).unwrap().permissions().mode() & 0o777, 0o700);
    for p in ["vault.json", "pin-state.json", "history.jsonl"] {
        assert_eq!(fs::metadata(dir.join(p)).unwrap().permissions().mode() & 0o777, 0o600, "{p}");
    }
    for e in fs::read_dir(dir.join("keys")).unwrap() {
        assert_eq!(e.unwrap().metadata().unwrap().permissions().mode() & 0o777, 0o600);
    }
}

mod pfx_edge_cases {
    use super::*;
    use kalit_core::keys::{PrivateKey, generate};
    use p12_keystore::{Certificate, KeyStore, KeyStoreEntry, PrivateKeyChain};

    fn self_signed(key: &PrivateKey) -> Vec<u8> {
        let mut params = rcgen::CertificateParams::new(vec![]).unwrap();
        params.distinguished_name = kalit_core::csr::parse_subject("CN=PFX test").unwrap();
        params.self_signed(key).unwrap().der().to_vec()
    }

    fn chain(id: u8, pkcs8: &[u8], certs: &[&[u8]]) -> KeyStoreEntry {
        KeyStoreEntry::PrivateKeyChain(PrivateKeyChain::new(
            vec![id; 20],
            p12_keystore::PrivateKey::from_der(pkcs8).unwrap(),
            certs.iter().map(|c| Certificate::from_der(c).unwrap()),
        ))
    }

    fn pfx(entries: Vec<KeyStoreEntry>) -> Vec<u8> {
        let mut ks = KeyStore::new();
        for (i, e) in entries.into_iter().enumerate() {
            ks.add_entry(&format!("e{i}"), e);
        }
        ks.writer("pfx-password").write().unwrap()
    }

    #[test]
    fn several_keys_no_key_other_keys_certificate_and_unsupported_curves_are_refused() {
        let d = tempfile::tempdir().unwrap();
        let v = Vault::init(&d.path().join("v"), &pin("123456"), no_delay(10)).unwrap();
        let u = v.unlock(&pin("123456")).unwrap();
        let a = generate(KeyAlgorithm::P256).unwrap();
        let b = generate(KeyAlgorithm::Ed25519).unwrap();
        let cert_a = self_signed(&PrivateKey::from_pkcs8(&a).unwrap());
        let cert_b = self_signed(&PrivateKey::from_pkcs8(&b).unwrap());
        let pw = pin("pfx-password");

        let two = pfx(vec![chain(1, a.expose_secret(), &[&cert_a]), chain(2, b.expose_secret(), &[&cert_b])]);
        let e = u.import_pfx(&two, &pw, "two").unwrap_err();
        assert_eq!(e.code(), ErrorCode::InvalidInput);
        assert!(e.to_string().contains("2 private keys"), "{e}");

        let none = pfx(vec![KeyStoreEntry::Certificate(Certificate::from_der(&cert_a).unwrap())]);
        let e = u.import_pfx(&none, &pw, "none").unwrap_err();
        assert!(e.to_string().contains("no private key"), "{e}");

        let mismatched = pfx(vec![chain(3, a.expose_secret(), &[&cert_b])]);
        assert_eq!(u.import_pfx(&mismatched, &pw, "mm").unwrap_err().code(), ErrorCode::KeyMismatch);

        let p384 = aws_lc_rs::signature::EcdsaKeyPair::generate(&aws_lc_rs::signature::ECDSA_P384_SHA384_ASN1_SIGNING)
            .unwrap()
            .to_pkcs8v1()
            .unwrap();
        let p384_pfx = pfx(vec![chain(4, p384.as_ref(), &[])]);
        let e = u.import_pfx(&p384_pfx, &pw, "p384").unwrap_err();
        assert_eq!(e.code(), ErrorCode::InvalidInput, "{e}");

        assert_eq!(u.import_pfx(&two, &pin("wrong-password"), "w").unwrap_err().code(), ErrorCode::WrongPassword);

        // A key alone (no certificate) imports; a certificate can be installed later.
        let alone = pfx(vec![chain(5, a.expose_secret(), &[])]);
        let info = u.import_pfx(&alone, &pw, "alone").unwrap();
        assert!(info.certificate.is_none());
        u.install_cert("alone", &cert_a).unwrap();
        // None of the refused files left anything behind.
        let (keys, damaged) = v.keys().unwrap();
        assert!(damaged.is_empty());
        assert_eq!(keys.len(), 1);
    }

    /// Absurd PBKDF2 / MAC iteration counts (8,388,607 instead of 100,000) are refused, not computed.
    #[test]
    fn absurd_iteration_counts_are_refused() {
        let (_d, _dir, v) = new_vault(10);
        let u = v.unlock(&pin("123456")).unwrap();
        u.generate(KeyAlgorithm::P256, "k", false).unwrap();
        let good = u.export_pfx("k", &pin("pfx-password")).unwrap();
        let needle = [0x02, 0x03, 0x01, 0x86, 0xa0]; // INTEGER 100000
        let positions: Vec<usize> = good.windows(5).enumerate().filter(|(_, w)| *w == needle).map(|(i, _)| i).collect();
        assert!(positions.len() >= 2, "expected KDF and MAC iteration counts in the PFX");
        for &at in &positions {
            let mut bad = good.clone();
            bad[at + 2..at + 5].copy_from_slice(&[0x7f, 0xff, 0xff]);
            let e = u.import_pfx(&bad, &pin("pfx-password"), "absurd").unwrap_err();
            assert!(matches!(e.code(), ErrorCode::InvalidInput | ErrorCode::WrongPassword), "{e}");
        }
    }

    /// Random mutations of a valid PFX: every one is an error or a successful import, never a panic, and
    /// the vault stays whole.
    #[test]
    fn mutated_pfx_files_never_panic() {
        let d = tempfile::tempdir().unwrap();
        let v = Vault::init(&d.path().join("v"), &pin("123456"), no_delay(10)).unwrap();
        let u = v.unlock(&pin("123456")).unwrap();
        let a = generate(KeyAlgorithm::P256).unwrap();
        let cert = self_signed(&PrivateKey::from_pkcs8(&a).unwrap());
        let good = pfx(vec![chain(1, a.expose_secret(), &[&cert])]);
        let mut state = 0x9e3779b97f4a7c15u64;
        let mut rnd = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let mut imported = 0;
        for i in 0..300 {
            let mut m = good.clone();
            match rnd() % 3 {
                0 => {
                    let at = (rnd() as usize) % m.len();
                    m[at] ^= 1 << (rnd() % 8);
                }
                1 => m.truncate((rnd() as usize) % m.len()),
                _ => {
                    let at = (rnd() as usize) % m.len();
                    m.insert(at, rnd() as u8);
                }
            }
            if u.import_pfx(&m, &pin("pfx-password"), &format!("m{i}")).is_ok() {
                imported += 1;
            }
        }
        let (keys, damaged) = v.keys().unwrap();
        assert!(damaged.is_empty());
        assert_eq!(keys.len(), imported);
    }
}

/// A certificate for `label`'s key from a throw-away CA, installed.
fn certify(v: &Vault, label: &str) {
    use kalit_core::keys::{PrivateKey, generate};
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyUsagePurpose};
    let ca_key = PrivateKey::from_pkcs8(&generate(KeyAlgorithm::P256).unwrap()).unwrap();
    let mut p = CertificateParams::new(vec![]).unwrap();
    p.distinguished_name = kalit_core::csr::parse_subject("CN=Test CA").unwrap();
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign];
    let ca = p.self_signed(&ca_key).unwrap().der().to_vec();
    let issuer = Issuer::new(p, ca_key);
    let csr = v.unlock(&pin("123456")).unwrap().csr(label, "CN=Holder").unwrap();
    let csr = rcgen::CertificateSigningRequestParams::from_pem(&csr).unwrap();
    let leaf = csr.signed_by(&issuer).unwrap().der().to_vec();
    let bundle = format!("{}{}", kalit_core::x509::cert_pem(&leaf), kalit_core::x509::cert_pem(&ca));
    v.unlock(&pin("123456")).unwrap().install_cert(label, bundle.as_bytes()).unwrap();
}

#[test]
fn statements_only_in_their_namespaces_and_device_keys_sealed() {
    use kalit_core::statement::{self, Statement};
    let (_d, dir, v) = new_vault(10);
    let u = v.unlock(&pin("123456")).unwrap();
    u.generate(KeyAlgorithm::P256, "k", false).unwrap();
    // No certificate yet: no registration statement is signed.
    let reg = Statement::register("relay", &[1; 32], "alice", &[2; 32], "fp");
    assert_eq!(code(u.sign_statement("k", &reg)), ErrorCode::RefusedByPolicy);
    drop(u);
    certify(&v, "k");
    let u = v.unlock(&pin("123456")).unwrap();
    let (sig, chain) = u.sign_statement("k", &reg).unwrap();
    let spki = kalit_core::x509::cert_spki(&chain[0]).unwrap();
    kalit_core::x509::verify_statement(&spki, reg.as_bytes(), &sig).unwrap();
    assert!(kalit_core::x509::verify_raw(&spki, reg.as_bytes(), &sig).is_err(), "a statement is no document");
    // A certificate key does not sign device statements, a device key does not sign registrations.
    let dev_st = Statement::device_request("relay", &[1; 32], "alice", "dev", "list", "");
    assert_eq!(code(u.sign_statement("k", &dev_st)), ErrorCode::RefusedByPolicy);
    let pending = u.new_device().unwrap();
    assert_eq!(code(u.sign_with_pending(&pending, &reg)), ErrorCode::RefusedByPolicy);
    let device_id = pending.device_id();
    let raw_pub = pending.public_key_raw().to_vec();
    let att = kalit_proto::relay::SignedAttestation {
        attestation: kalit_proto::relay::Attestation {
            relay_id: "relay".into(),
            login: "alice".into(),
            cert_fingerprint: "fp".into(),
            device_id: device_id.clone().into(),
            device_key: Base64::of(&raw_pub),
            issued_at: 0,
            expires_at: 600,
        },
        signature: Default::default(),
        relay_key: None,
    };
    let rec = kalit_vault::DeviceRecord {
        format: String::new(),
        device_id: String::new(),
        relay_url: "http://127.0.0.1:1".into(),
        relay_id: "relay".into(),
        relay_public_key: String::new(),
        login: "alice".into(),
        key_label: "k".into(),
        attestation: att,
        created: String::new(),
    };
    u.save_device(pending, rec).unwrap();
    let st = Statement::device_request("relay", &[3; 32], "alice", &device_id, "list", "");
    let sig = u.sign_as_device(&device_id, &st).unwrap();
    statement::verify_ed25519(&raw_pub, st.as_bytes(), &sig).unwrap();
    assert_eq!(code(u.sign_as_device(&device_id, &reg)), ErrorCode::RefusedByPolicy);
    assert_eq!(v.devices().unwrap().len(), 1);
    // The device key is sealed (no raw key bytes on disk), and a changed header is detected.
    let path = dir.join("devices").join(format!("{device_id}.json"));
    let text = fs::read_to_string(&path).unwrap();
    assert!(!text.contains("PRIVATE"));
    let mut f: serde_json::Value = serde_json::from_str(&text).unwrap();
    let mut header: serde_json::Value =
        serde_json::from_slice(&B64.decode(f["header"].as_str().unwrap()).unwrap()).unwrap();
    header["login"] = serde_json::json!("mallory");
    f["header"] = serde_json::json!(B64.encode(serde_json::to_vec(&header).unwrap()));
    fs::write(&path, f.to_string()).unwrap();
    assert_eq!(code(u.sign_as_device(&device_id, &st)), ErrorCode::Corrupt);
    assert_eq!(code(u.sign_as_device("not-a-device", &st)), ErrorCode::NotFound);
    fs::write(&path, text).unwrap();
    u.forget_device(&device_id).unwrap();
    assert!(v.devices().unwrap().is_empty());
}

/// Issue 9: a document is never a Kalit statement or (raw) a structure whose signature means something
/// elsewhere, whatever the front end; raw bytes that cannot be shown need their own confirmation.
#[test]
fn documents_that_are_statements_or_der_structures_are_refused() {
    use kalit_core::statement::Statement;
    let (_d, _dir, v) = new_vault(10);
    let u = v.unlock(&pin("123456")).unwrap();
    u.generate(KeyAlgorithm::Ed25519, "k", false).unwrap();
    drop(u);
    certify(&v, "k");
    let u = v.unlock(&pin("123456")).unwrap();
    let reg = Statement::register("relay", &[1; 32], "alice", &[2; 32], "fp");
    for format in [SignFormat::Raw, SignFormat::Cms] {
        let doc = DocumentToSign { format, blind_confirmed: true, ..raw(reg.as_bytes()) };
        assert_eq!(code(u.sign("k", &doc)), ErrorCode::RefusedByPolicy, "{format:?}");
    }
    // The body of this key's own certificate request and certificate, signed raw: refused.
    let csr = u.csr("k", "CN=Mallory").unwrap();
    let der = pem::parse(&csr).unwrap().contents().to_vec();
    let cri = kalit_core::der::first_element(&der).unwrap();
    let doc = DocumentToSign { blind_confirmed: true, ..raw(cri) };
    assert_eq!(code(u.sign("k", &doc)), ErrorCode::RefusedByPolicy);
    // Binary bytes signed raw: only with the separate confirmation.
    assert_eq!(code(u.sign("k", &raw(&[0, 1, 2, 0xff]))), ErrorCode::RefusedByPolicy);
    u.sign("k", &DocumentToSign { blind_confirmed: true, ..raw(&[0, 1, 2, 0xff]) }).unwrap();
    u.sign("k", &raw(b"plain text needs no extra step")).unwrap();
    assert_eq!(v.history().unwrap().len(), 2, "nothing refused was recorded");
}

/// The certificates stored with a key are sealed with it: swapping the chain (or stripping the seal)
/// outside Kalit makes every use of the chain fail instead of signing under a chain someone else chose.
#[test]
fn certificates_in_a_key_file_are_authenticated() {
    let (_d, dir, v) = new_vault(10);
    let u = v.unlock(&pin("123456")).unwrap();
    u.generate(KeyAlgorithm::P256, "k", false).unwrap();
    drop(u);
    certify(&v, "k");
    let cms = |v: &Vault| {
        let u = v.unlock(&pin("123456")).unwrap();
        u.sign("k", &DocumentToSign { format: SignFormat::Cms, ..raw(b"doc") }).map(|_| ())
    };
    cms(&v).unwrap();
    let key_file = fs::read_dir(dir.join("keys")).unwrap().next().unwrap().unwrap().path();
    let original = fs::read(&key_file).unwrap();
    let mut j: serde_json::Value = serde_json::from_slice(&original).unwrap();
    // Drop the CA certificate from the chain.
    j["certificates"].as_array_mut().unwrap().truncate(1);
    fs::write(&key_file, serde_json::to_vec(&j).unwrap()).unwrap();
    assert_eq!(code(cms(&v)), ErrorCode::Corrupt);
    // Strip the seal instead.
    let mut j: serde_json::Value = serde_json::from_slice(&original).unwrap();
    j.as_object_mut().unwrap().remove("certificates_seal");
    fs::write(&key_file, serde_json::to_vec(&j).unwrap()).unwrap();
    assert_eq!(code(cms(&v)), ErrorCode::Corrupt);
    fs::write(&key_file, &original).unwrap();
    cms(&v).unwrap();
}

/// Large documents: a CMS made from digests is the CMS of the document (SHA-512 for Ed25519, RFC 8419);
/// never raw; the computer's digests only with the separate confirmation; the history says which.
#[test]
fn signing_by_digest_is_cms_only_and_needs_its_confirmation_when_the_phone_did_not_hash() {
    use kalit_core::digest::HashAlg;
    use kalit_vault::Digested;
    let (_d, _dir, v) = new_vault(10);
    let u = v.unlock(&pin("123456")).unwrap();
    u.generate(KeyAlgorithm::Ed25519, "ed", false).unwrap();
    u.generate(KeyAlgorithm::P256, "ec", false).unwrap();
    drop(u);
    certify(&v, "ed");
    certify(&v, "ec");
    let u = v.unlock(&pin("123456")).unwrap();
    let document = b"the whole document, which the phone did not keep".repeat(1000);
    let (sha256, sha512) = (HashAlg::Sha256.digest(&document), HashAlg::Sha512.digest(&document));
    let given = Digested { size: document.len() as u64, sha256: &sha256, sha512: &sha512, computed_here: false };
    fn by_digest(d: Digested<'_>, format: SignFormat, confirmed: bool) -> DocumentToSign<'_> {
        DocumentToSign { format, digests: Some(d), blind_confirmed: confirmed, ..raw(b"the whole document") }
    }
    assert_eq!(code(u.sign("ec", &by_digest(given, SignFormat::Raw, true))), ErrorCode::RefusedByPolicy);
    assert_eq!(code(u.sign("ec", &by_digest(given, SignFormat::Cms, false))), ErrorCode::RefusedByPolicy);
    for key in ["ec", "ed"] {
        let out = u.sign(key, &by_digest(given, SignFormat::Cms, true)).unwrap();
        assert_eq!(out.record.format, "cms-digest");
        assert_eq!(
            (out.record.size, out.record.sha256.as_str()),
            (document.len() as u64, hex::encode(&sha256).as_str())
        );
        let mut digest_of = |h: HashAlg| Ok::<_, kalit_core::CoreError>(h.digest(&document));
        kalit_core::cms::verify_detached(&out.bytes, &mut digest_of, &[]).unwrap();
    }
    // Digests the phone computed itself as the document streamed in: no extra step.
    let own = Digested { computed_here: true, ..given };
    assert_eq!(u.sign("ec", &by_digest(own, SignFormat::Cms, false)).unwrap().record.format, "cms");
    // Digests of a wrong length are refused, never signed.
    let short = Digested { sha256: &[1, 2, 3], ..own };
    assert!(u.sign("ec", &by_digest(short, SignFormat::Cms, false)).is_err());
    assert_eq!(v.history().unwrap().len(), 3, "nothing refused was recorded");
}
