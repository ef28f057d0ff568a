//! Conformance vectors of the vault's sealing (`crates/kalit-core/vectors/vault-v1.json`): the PIN and
//! passphrase KDF (Argon2id at the floor parameters), AES-256-GCM with the header as associated data, and
//! a whole backup file made from a fixed salt and nonce, which `kalit vault restore` (here
//! `kalit_vault::restore`) must open. The phone app's vault follows the same rules and replays them.
//!
//! Fails when the committed file differs from what this code generates; `KALIT_WRITE_VECTORS=1`
//! rewrites it.

#![allow(clippy::unwrap_used)]

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use kalit_core::keys::PrivateKey;
use kalit_core::seal::{KdfParams, SealedBox, hazmat, open};
use kalit_core::{SecretBytes, SecretString};
use serde_json::{Value, json};

fn path() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../kalit-core/vectors/vault-v1.json")
}

fn fixed<const N: usize>(start: u8) -> [u8; N] {
    std::array::from_fn(|i| start.wrapping_add(i as u8))
}

const PASSPHRASE: &str = "correct horse battery staple";
const LABEL: &str = "vector key";

fn ed25519_pkcs8() -> Vec<u8> {
    let mut der = hex::decode("302e020100300506032b657004220420").unwrap();
    der.extend_from_slice(&fixed::<32>(77));
    der
}

fn generate() -> Value {
    let kdf = KdfParams::DEFAULT;
    let salt: [u8; 16] = fixed(11);
    let key = kdf.derive(&SecretString::new(PASSPHRASE.into()), &salt).unwrap();
    // A backup: header (its exact bytes are the associated data), then the sealed contents.
    let header = json!({
        "format": kalit_vault::BACKUP_FORMAT,
        "kdf": kdf,
        "salt": B64.encode(salt),
        "created": "2026-12-01T00:00:00Z",
    });
    let header_json = serde_json::to_vec(&header).unwrap();
    let contents = json!({
        "policy": {"max_attempts": 10, "delay_base_ms": 1000},
        "keys": [{
            "label": LABEL,
            "no_export": false,
            "origin": "generated",
            "created": "2026-12-01T00:00:00Z",
            "pkcs8": B64.encode(ed25519_pkcs8()),
            "certificates": [],
        }],
        "history": [],
    });
    let plaintext = serde_json::to_vec(&contents).unwrap();
    let nonce: [u8; 12] = fixed(200);
    let payload = hazmat::danger_seal_with_nonce(&key, nonce, &header_json, &plaintext).unwrap();
    let backup =
        serde_json::to_string_pretty(&json!({"header": B64.encode(&header_json), "payload": payload})).unwrap();
    let public = PrivateKey::from_pkcs8(&SecretBytes::new(ed25519_pkcs8())).unwrap().public_key_raw().to_vec();
    json!({
        "description": "The vault's sealing with fixed inputs (keys here protect nothing). kdf: Argon2id (RFC 9106, version 0x13) of the UTF-8 secret with the salt, 32-byte output; every vault file and backup refuses parameters below m_kib 65536, t 3, p 1. aead: AES-256-GCM, 12-byte nonce, ciphertext followed by the 16-byte tag; the associated data is the exact bytes of the file's header. backup: a whole `kalit vault backup` file (header = base64 of the header JSON; payload = {nonce, ciphertext} in base64) whose key is the kdf vector's; restoring it with the passphrase gives one Ed25519 key.",
        "kdf": {
            "secret": PASSPHRASE,
            "salt": hex::encode(salt),
            "params": kdf,
            "key": hex::encode(key.expose_secret()),
        },
        "aead": {
            "key": hex::encode(key.expose_secret()),
            "nonce": hex::encode(nonce),
            "aad": hex::encode(&header_json),
            "plaintext": hex::encode(&plaintext),
            "ciphertext_and_tag": hex::encode(B64.decode(&payload.ciphertext).unwrap()),
        },
        "backup": {
            "passphrase": PASSPHRASE,
            "file": backup,
            "keys": [{"label": LABEL, "algorithm": "ed25519", "public_key": hex::encode(public)}],
        },
    })
}

#[test]
fn committed_vault_vectors_are_what_the_code_generates() {
    let text = serde_json::to_string_pretty(&generate()).unwrap() + "\n";
    if std::env::var_os("KALIT_WRITE_VECTORS").is_some() {
        let tmp = path().with_extension("json.tmp");
        std::fs::write(&tmp, &text).unwrap();
        std::fs::rename(&tmp, path()).unwrap();
    }
    let committed = std::fs::read_to_string(path()).unwrap();
    assert!(
        committed == text,
        "vault-v1.json differs from what the code generates (KALIT_WRITE_VECTORS=1 rewrites it)"
    );
}

/// From the committed file alone, as another implementation would: derive, open, restore.
#[test]
fn the_committed_vault_vectors_replay() {
    let v: Value = serde_json::from_str(&std::fs::read_to_string(path()).unwrap()).unwrap();
    let h = |x: &Value| hex::decode(x.as_str().unwrap()).unwrap();
    let kdf: KdfParams = serde_json::from_value(v["kdf"]["params"].clone()).unwrap();
    kdf.check().unwrap();
    let key =
        kdf.derive(&SecretString::new(v["kdf"]["secret"].as_str().unwrap().into()), &h(&v["kdf"]["salt"])).unwrap();
    assert_eq!(key.expose_secret(), h(&v["kdf"]["key"]).as_slice());
    let a = &v["aead"];
    let sealed = SealedBox { nonce: B64.encode(h(&a["nonce"])), ciphertext: B64.encode(h(&a["ciphertext_and_tag"])) };
    let opened = open(&SecretBytes::new(h(&a["key"])), &h(&a["aad"]), &sealed).unwrap().unwrap();
    assert_eq!(opened.expose_secret(), h(&a["plaintext"]).as_slice());
    // Another associated data (a changed header) does not open.
    let mut aad = h(&a["aad"]);
    aad[0] ^= 1;
    assert!(open(&SecretBytes::new(h(&a["key"])), &aad, &sealed).unwrap().is_none());
    // The backup restores into a new vault with the key it names.
    let dir = tempfile::tempdir().unwrap();
    let b = &v["backup"];
    let pin = SecretString::new("654321-vectors".into());
    let (vault, summary) = kalit_vault::restore(
        &dir.path().join("v"),
        b["file"].as_str().unwrap().as_bytes(),
        &SecretString::new(b["passphrase"].as_str().unwrap().into()),
        &pin,
    )
    .unwrap();
    assert_eq!(summary.keys, vec![LABEL.to_string()]);
    let want = &b["keys"][0];
    let info = vault.key(want["label"].as_str().unwrap()).unwrap();
    let spki = hex::decode(format!("302a300506032b6570032100{}", want["public_key"].as_str().unwrap())).unwrap();
    assert_eq!(info.fingerprint, kalit_core::x509::fingerprint(&spki));
    // A wrong passphrase is a wrong passphrase, not a crash.
    let e = kalit_vault::restore(
        &dir.path().join("w"),
        b["file"].as_str().unwrap().as_bytes(),
        &SecretString::new("another passphrase!".into()),
        &pin,
    )
    .unwrap_err();
    assert_eq!(e.code(), kalit_proto::ErrorCode::WrongPassword);
}
