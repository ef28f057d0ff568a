//! The CA: root (and optionally an issuing CA under it), its keys sealed under the operator's passphrase
//! with Argon2id + AES-256-GCM, its certificates in `ca.pem`.
//!
//! ```text
//! DIR/ca.json     format, KDF parameters and salt, and each CA key sealed (associated data: format|role|cert)
//! DIR/ca.pem      the CA chain: issuing CA first (if any), root last
//! DIR/ra.db       enrolments and issued certificates (SQLite)
//! DIR/issued.log  one JSON line per issued certificate, fsynced before the issuance commits
//! ```

use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use kalit_core::keys::{self, PrivateKey};
use kalit_core::seal::{self, KdfParams, SealedBox};
use kalit_core::{KeyAlgorithm, SecretBytes, SecretString, x509};
use kalit_proto::ErrorCode;
use rcgen::{BasicConstraints, CertificateParams, CustomExtension, IsCa, Issuer, KeyIdMethod, KeyUsagePurpose};
use serde::{Deserialize, Serialize};
use time::{Duration, OffsetDateTime};

use crate::RaError;

/// Format tag of `ca.json`: version 2 authenticates the name and the validity of issued certificates
/// with each sealed key; version 1 files (which did not) are still opened, with a warning.
pub const CA_FORMAT: &str = "kalit-ca/2";
const CA_FORMAT_V1: &str = "kalit-ca/1";
/// Shortest CA passphrase.
pub const MIN_PASSPHRASE_LEN: usize = 12;

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct CaFile {
    format: String,
    name: String,
    kdf: KdfParams,
    salt: String,
    validity_days: u32,
    root: SealedCa,
    issuing: Option<SealedCa>,
    /// The time-stamping key and certificate (issued by the issuing CA, or the root). CAs made before
    /// the TSA existed get one the first time `kalit ra serve` opens them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    tsa: Option<SealedCa>,
    /// The RA's public address given at `init` (certificates name `URL/v1/crl`). Not sealed: whoever can
    /// change it can only point verifiers at a place that withholds the CRL, never forge one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    public_url: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SealedCa {
    cert: String,
    key: SealedBox,
}

/// What `kalit ra init` made.
#[derive(Debug, Clone)]
pub struct CaSummary {
    /// SHA-256 of the root certificate's DER, hex (to tell people who enrol).
    pub root_fingerprint: String,
    /// Subjects, root first.
    pub subjects: Vec<String>,
}

/// An unsealed CA, ready to issue.
pub struct Ca {
    pub(crate) issuer: Issuer<'static, PrivateKey>,
    /// DER certificates: issuing CA (if any) first, root last.
    pub chain: Vec<Vec<u8>>,
    /// Validity of issued certificates.
    pub validity_days: u32,
    /// The time-stamping authority's key.
    pub(crate) tsa_key: PrivateKey,
    /// The TSA certificate, then [`Ca::chain`].
    pub tsa_chain: Vec<Vec<u8>>,
    /// The public address given at `kalit ra init --public-url`.
    pub public_url: Option<String>,
}

/// Years a TSA certificate is valid (never past its issuer).
const TSA_YEARS: i64 = 5;

/// A TSA key and its certificate from `issuer` (RFC 3161 2.3: the extended key usage timeStamping, as
/// the only purpose, critical; key usage digitalSignature).
fn make_tsa(
    name: &str,
    alg: KeyAlgorithm,
    issuer: &Issuer<'_, PrivateKey>,
    issuer_cert: &[u8],
    public_url: Option<&str>,
) -> Result<(SecretBytes, Vec<u8>), RaError> {
    let key_der = keys::generate(alg)?;
    let key = PrivateKey::from_pkcs8(&key_der)?;
    let mut p = CertificateParams::default();
    p.distinguished_name =
        kalit_core::csr::parse_subject(&format!("CN={} Time Stamping,O={}", escape(name), escape(name)))?;
    p.is_ca = IsCa::ExplicitNoCa;
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    p.key_identifier_method = KeyIdMethod::Sha256;
    p.use_authority_key_identifier_extension = true;
    p.serial_number = Some(crate::issue::random_serial()?.into());
    let eku_oid = kalit_core::der::tlv(0x06, kalit_core::tsp::EKU_TIME_STAMPING);
    let mut eku = CustomExtension::from_oid_content(&[2, 5, 29, 37], kalit_core::der::seq(&[&eku_oid]));
    eku.set_criticality(true);
    p.custom_extensions = vec![eku];
    if let Some(url) = public_url {
        p.crl_distribution_points = vec![rcgen::CrlDistributionPoint { uris: vec![format!("{url}/v1/crl")] }];
    }
    let now = OffsetDateTime::now_utc();
    p.not_before = now - Duration::hours(1);
    let issuer_end = x509::parse(issuer_cert)?.validity().not_after.to_datetime();
    p.not_after = (now + Duration::days(365 * TSA_YEARS)).min(issuer_end);
    let cert = p.signed_by(&key, issuer).map_err(RaError::internal)?.der().to_vec();
    Ok((key_der, cert))
}

impl std::fmt::Debug for Ca {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ca").field("validity_days", &self.validity_days).finish_non_exhaustive()
    }
}

/// The associated data of a sealed CA key: everything in `ca.json` that decides what the CA issues.
fn aad(role: &str, name: &str, validity_days: u32, cert_b64: &str) -> Vec<u8> {
    let name_len = name.len();
    format!("{CA_FORMAT}|{role}|{name_len}:{name}|{validity_days}|{cert_b64}").into_bytes()
}

fn aad_v1(role: &str, cert_b64: &str) -> Vec<u8> {
    format!("{CA_FORMAT_V1}|{role}|{cert_b64}").into_bytes()
}

fn ca_params(subject: &str, path_len: Option<u8>, years: i64) -> Result<CertificateParams, RaError> {
    let mut p = CertificateParams::default();
    p.distinguished_name = kalit_core::csr::parse_subject(subject)?;
    p.is_ca = IsCa::Ca(match path_len {
        Some(n) => BasicConstraints::Constrained(n),
        None => BasicConstraints::Unconstrained,
    });
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    p.key_identifier_method = KeyIdMethod::Sha256;
    p.serial_number = Some(crate::issue::random_serial()?.into());
    let now = OffsetDateTime::now_utc();
    p.not_before = now - Duration::hours(1);
    p.not_after = now + Duration::days(365 * years);
    Ok(p)
}

/// Creates the CA in `dir`. Refuses a directory that already holds one.
pub fn init(
    dir: &Path,
    name: &str,
    alg: KeyAlgorithm,
    two_tier: bool,
    validity_days: u32,
    passphrase: &SecretString,
) -> Result<CaSummary, RaError> {
    init_with(dir, name, alg, two_tier, validity_days, passphrase, None)
}

/// [`init`], with the RA's public address (https, or http on loopback): the TSA certificate and every
/// certificate `serve` issues name `URL/v1/crl` as their CRL distribution point.
pub fn init_with(
    dir: &Path,
    name: &str,
    alg: KeyAlgorithm,
    two_tier: bool,
    validity_days: u32,
    passphrase: &SecretString,
    public_url: Option<&str>,
) -> Result<CaSummary, RaError> {
    let public_url = public_url.map(|u| u.trim_end_matches('/'));
    if !matches!(alg, KeyAlgorithm::P256 | KeyAlgorithm::Rsa3072) {
        return Err(RaError::invalid("the CA key is p-256 or rsa-3072"));
    }
    if passphrase.char_count() < MIN_PASSPHRASE_LEN {
        return Err(RaError::new(
            ErrorCode::WeakSecret,
            format!("the CA passphrase needs at least {MIN_PASSPHRASE_LEN} characters"),
        ));
    }
    if !(1..=3650).contains(&validity_days) {
        return Err(RaError::invalid("certificate validity is 1 to 3650 days"));
    }
    if dir.join("ca.json").exists() {
        return Err(RaError::new(ErrorCode::AlreadyExists, format!("{} already holds a CA", dir.display())));
    }
    kalit_service::files::private_dir(dir).map_err(RaError::io(format!("cannot create {}", dir.display())))?;
    let kdf = KdfParams::DEFAULT;
    let salt = seal::random::<16>()?;
    let kek = kdf.derive(passphrase, &salt)?;

    let root_key_der = keys::generate(alg)?;
    let root_key = PrivateKey::from_pkcs8(&root_key_der)?;
    let root_subject = format!("CN={} Root CA,O={}", escape(name), escape(name));
    let root_params = ca_params(&root_subject, Some(u8::from(two_tier)), 20)?;
    let root_cert = root_params.self_signed(&root_key).map_err(RaError::internal)?.der().to_vec();
    let root_b64 = B64.encode(&root_cert);
    let root = SealedCa {
        key: seal::seal(&kek, &aad("root", name, validity_days, &root_b64), root_key_der.expose_secret())?,
        cert: root_b64,
    };
    let mut chain = vec![root_cert.clone()];
    let root_issuer = Issuer::new(root_params, root_key);
    let (issuing, tsa) = if two_tier {
        let k_der = keys::generate(alg)?;
        let k = PrivateKey::from_pkcs8(&k_der)?;
        let mut params = ca_params(&format!("CN={} Issuing CA,O={}", escape(name), escape(name)), Some(0), 10)?;
        if let Some(url) = public_url {
            // The root's CRL, made now (the root key is sealed while serving) and served as a file.
            params.crl_distribution_points =
                vec![rcgen::CrlDistributionPoint { uris: vec![format!("{url}/v1/root.crl")] }];
        }
        let cert = params.signed_by(&k, &root_issuer).map_err(RaError::internal)?.der().to_vec();
        if public_url.is_some() {
            write_root_crl(dir, &root_issuer)?;
        }
        let issuing_issuer = Issuer::from_ca_cert_der(&cert.as_slice().into(), k).map_err(RaError::internal)?;
        let tsa = make_tsa(name, alg, &issuing_issuer, &cert, public_url)?;
        let b64 = B64.encode(&cert);
        chain.insert(0, cert);
        let sealed = SealedCa {
            key: seal::seal(&kek, &aad("issuing", name, validity_days, &b64), k_der.expose_secret())?,
            cert: b64,
        };
        (Some(sealed), tsa)
    } else {
        (None, make_tsa(name, alg, &root_issuer, &root_cert, public_url)?)
    };
    let tsa_b64 = B64.encode(&tsa.1);
    let tsa = SealedCa {
        key: seal::seal(&kek, &aad("tsa", name, validity_days, &tsa_b64), tsa.0.expose_secret())?,
        cert: tsa_b64,
    };
    let file = CaFile {
        format: CA_FORMAT.into(),
        name: name.into(),
        kdf,
        salt: B64.encode(salt),
        validity_days,
        root,
        issuing,
        tsa: Some(tsa),
        public_url: public_url.map(str::to_owned),
    };
    let pem: String = chain.iter().map(|c| x509::cert_pem(c)).collect();
    kalit_service::files::atomic_write(&dir.join("ca.pem"), pem.as_bytes())
        .map_err(RaError::io("cannot write ca.pem"))?;
    let json = serde_json::to_vec_pretty(&file).map_err(RaError::internal)?;
    kalit_service::files::atomic_write(&dir.join("ca.json"), &json).map_err(RaError::io("cannot write ca.json"))?;
    let subjects =
        chain.iter().rev().map(|c| x509::parse(c).map(|p| p.subject().to_string())).collect::<Result<_, _>>()?;
    Ok(CaSummary { root_fingerprint: kalit_core::statement::cert_fingerprint(&root_cert), subjects })
}

/// Days the root's CRL is valid: `kalit ra init` makes the first one; an operator re-signs it with the
/// root key before it runs out.
pub const ROOT_CRL_DAYS: i64 = 365;

/// The root CA's CRL (no revoked issuing CA), valid for [`ROOT_CRL_DAYS`], written to `DIR/root.crl`
/// (atomically: `ra serve` reads the file at each request). Its CRL number is the signing time in Unix
/// seconds, so a later CRL always has a larger one (the first, made at init, has 1).
fn write_root_crl(dir: &Path, root: &Issuer<'_, PrivateKey>) -> Result<OffsetDateTime, RaError> {
    let now = OffsetDateTime::now_utc();
    let next_update = now + Duration::days(ROOT_CRL_DAYS);
    let number = if dir.join("root.crl").exists() { now.unix_timestamp().to_be_bytes() } else { 1i64.to_be_bytes() };
    let first = number.iter().position(|b| *b != 0).unwrap_or(7);
    let params = rcgen::CertificateRevocationListParams {
        this_update: now - Duration::minutes(1),
        next_update,
        crl_number: rcgen::SerialNumber::from_slice(&number[first..]),
        issuing_distribution_point: None,
        revoked_certs: vec![],
        key_identifier_method: KeyIdMethod::Sha256,
    };
    let der = params.signed_by(root).map_err(RaError::internal)?.der().to_vec();
    kalit_service::files::atomic_write(&dir.join("root.crl"), &der).map_err(RaError::io("cannot write root.crl"))?;
    Ok(next_update)
}

/// Signs a new root CRL with the root key (unsealed for this alone, then dropped): the one `init` made
/// runs out after [`ROOT_CRL_DAYS`]. For a CA with an issuing CA under its root; returns when the new CRL
/// runs out.
pub fn resign_root_crl(dir: &Path, passphrase: &SecretString) -> Result<OffsetDateTime, RaError> {
    let f = read_file(dir)?;
    if f.issuing.is_none() {
        return Err(RaError::invalid(
            "this CA has no issuing CA under its root: its one CRL is made by `ra serve` at /v1/crl",
        ));
    }
    let salt = B64.decode(&f.salt).map_err(|_| RaError::new(ErrorCode::Corrupt, "ca.json: bad salt"))?;
    let kek = f.kdf.derive(passphrase, &salt)?;
    let root_cert = B64.decode(&f.root.cert).map_err(|_| RaError::new(ErrorCode::Corrupt, "ca.json: bad root"))?;
    let ad = if f.format == CA_FORMAT_V1 {
        aad_v1("root", &f.root.cert)
    } else {
        aad("root", &f.name, f.validity_days, &f.root.cert)
    };
    let pkcs8 = seal::open(&kek, &ad, &f.root.key)?
        .ok_or_else(|| RaError::new(ErrorCode::WrongPassword, "wrong CA passphrase (or ca.json was tampered with)"))?;
    let key = PrivateKey::from_pkcs8(&pkcs8)?;
    if key.spki_der() != x509::cert_spki(&root_cert)? {
        return Err(RaError::new(ErrorCode::Corrupt, "ca.json: the root key does not match its certificate"));
    }
    let root = Issuer::from_ca_cert_der(&root_cert.as_slice().into(), key).map_err(RaError::internal)?;
    write_root_crl(dir, &root)
}

fn escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace(',', "\\,")
}

fn read_file(dir: &Path) -> Result<CaFile, RaError> {
    let path = dir.join("ca.json");
    let bytes = std::fs::read(&path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => {
            RaError::new(ErrorCode::NotFound, format!("no CA in {} (run kalit ra init first)", dir.display()))
        }
        _ => RaError::io(format!("cannot read {}", path.display()))(e),
    })?;
    let f: CaFile = serde_json::from_slice(&bytes)
        .map_err(|e| RaError::new(ErrorCode::Corrupt, format!("{} is damaged: {e}", path.display())))?;
    if f.format != CA_FORMAT && f.format != CA_FORMAT_V1 {
        return Err(RaError::new(ErrorCode::Corrupt, format!("{} has unknown format {:?}", path.display(), f.format)));
    }
    Ok(f)
}

/// The PEM chain of the CA in `dir`, for `GET /v1/ca.pem`.
pub fn chain_pem(ca: &Ca) -> String {
    ca.chain.iter().map(|c| x509::cert_pem(c)).collect()
}

/// Unseals the issuing key (the root key stays sealed when there is an issuing CA).
pub fn open(dir: &Path, passphrase: &SecretString) -> Result<Ca, RaError> {
    let f = read_file(dir)?;
    let salt = B64.decode(&f.salt).map_err(|_| RaError::new(ErrorCode::Corrupt, "ca.json: bad salt"))?;
    let kek = f.kdf.derive(passphrase, &salt)?;
    let root_cert = B64.decode(&f.root.cert).map_err(|_| RaError::new(ErrorCode::Corrupt, "ca.json: bad root"))?;
    let (role, sealed) = match &f.issuing {
        Some(i) => ("issuing", i),
        None => ("root", &f.root),
    };
    let cert = B64.decode(&sealed.cert).map_err(|_| RaError::new(ErrorCode::Corrupt, "ca.json: bad certificate"))?;
    let ad = if f.format == CA_FORMAT_V1 {
        tracing::warn!(
            "ca.json is format {CA_FORMAT_V1}: its name and certificate validity are not authenticated; re-create the CA with this version to fix that"
        );
        aad_v1(role, &sealed.cert)
    } else {
        aad(role, &f.name, f.validity_days, &sealed.cert)
    };
    let pkcs8 = seal::open(&kek, &ad, &sealed.key)?
        .ok_or_else(|| RaError::new(ErrorCode::WrongPassword, "wrong CA passphrase (or ca.json was tampered with)"))?;
    let key = PrivateKey::from_pkcs8(&pkcs8)?;
    if key.spki_der() != x509::cert_spki(&cert)? {
        return Err(RaError::new(ErrorCode::Corrupt, "ca.json: the CA key does not match its certificate"));
    }
    let alg = key.algorithm();
    let f_has_issuing = f.issuing.is_some();
    let validity_days = f.validity_days;
    let public_url = f.public_url.clone();
    let issuer = Issuer::from_ca_cert_der(&cert.as_slice().into(), key).map_err(RaError::internal)?;
    let (tsa_key, tsa_cert) = match &f.tsa {
        Some(t) if f.format != CA_FORMAT_V1 => {
            let tsa_cert =
                B64.decode(&t.cert).map_err(|_| RaError::new(ErrorCode::Corrupt, "ca.json: bad TSA certificate"))?;
            let pkcs8 = seal::open(&kek, &aad("tsa", &f.name, f.validity_days, &t.cert), &t.key)?
                .ok_or_else(|| RaError::new(ErrorCode::Corrupt, "ca.json: the TSA key fails its integrity check"))?;
            let k = PrivateKey::from_pkcs8(&pkcs8)?;
            if k.spki_der() != x509::cert_spki(&tsa_cert)? {
                return Err(RaError::new(ErrorCode::Corrupt, "ca.json: the TSA key does not match its certificate"));
            }
            (k, tsa_cert)
        }
        _ => add_tsa(dir, f, &kek, alg, &issuer, &cert)?,
    };
    let mut chain = vec![cert];
    if f_has_issuing {
        chain.push(root_cert);
    }
    let mut tsa_chain = vec![tsa_cert];
    tsa_chain.extend(chain.iter().cloned());
    Ok(Ca { issuer, chain, validity_days, tsa_key, tsa_chain, public_url })
}

/// Gives a CA made before Kalit had a TSA its TSA key and certificate, sealed like the CA keys and
/// written to `ca.json` in one atomic replace (a version 1 file stays version 1: its TSA is made anew
/// at each start and never written).
fn add_tsa(
    dir: &Path,
    mut f: CaFile,
    kek: &SecretBytes,
    alg: KeyAlgorithm,
    issuer: &Issuer<'_, PrivateKey>,
    issuer_cert: &[u8],
) -> Result<(PrivateKey, Vec<u8>), RaError> {
    let (key_der, cert) = make_tsa(&f.name, alg, issuer, issuer_cert, f.public_url.as_deref())?;
    if f.format == CA_FORMAT {
        let b64 = B64.encode(&cert);
        f.tsa = Some(SealedCa {
            key: seal::seal(kek, &aad("tsa", &f.name, f.validity_days, &b64), key_der.expose_secret())?,
            cert: b64,
        });
        let json = serde_json::to_vec_pretty(&f).map_err(RaError::internal)?;
        kalit_service::files::atomic_write(&dir.join("ca.json"), &json).map_err(RaError::io("cannot write ca.json"))?;
        tracing::info!("the CA had no time-stamping key: one was made and sealed into ca.json");
    }
    Ok((PrivateKey::from_pkcs8(&key_der)?, cert))
}
