//! `kalit demo`: a walk-through on throw-away directories, printing each step of the paper as it runs.
//!
//! Until the Registration Authority, relay and agent exist (later issues), this demo covers the vault's
//! half of the registration process, the signing on the phone and the verification, with a demo CA in
//! place of the RA. It exits 0 only when every signature verified.

use std::path::{Path, PathBuf};

use clap::Args;
use kalit_core::keys::{self, PrivateKey};
use kalit_core::{KeyAlgorithm, SecretString, x509};
use kalit_proto::ErrorCode;
use kalit_vault::{DocumentToSign, PinPolicy, SignFormat, Vault};
use rcgen::{BasicConstraints, CertificateParams, CertificateSigningRequestParams, IsCa, KeyUsagePurpose};
use time::{Duration, OffsetDateTime};

use crate::error::{CliError, CliResult};
use crate::files;

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Where to write the sample document, signatures and certificates [default: a new temporary directory].
    #[arg(long)]
    out: Option<PathBuf>,
}

fn step(paper: &str, what: &str) {
    println!("\n[{paper}] {what}");
}

fn internal(e: impl std::fmt::Display) -> CliError {
    CliError::new(ErrorCode::Internal, e.to_string())
}

/// A CA for the demo only: the Registration Authority of a later issue replaces it.
pub struct DemoCa {
    pub cert_der: Vec<u8>,
    issuer: rcgen::Issuer<'static, PrivateKey>,
}

impl DemoCa {
    pub fn new(name: &str) -> CliResult<DemoCa> {
        let key = PrivateKey::from_pkcs8(&keys::generate(KeyAlgorithm::P256)?)?;
        let mut params = CertificateParams::new(vec![]).map_err(internal)?;
        params.distinguished_name = kalit_core::csr::parse_subject(&format!("CN={name},O=Kalit demo,C=UZ"))?;
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        params.not_before = OffsetDateTime::now_utc() - Duration::hours(1);
        params.not_after = OffsetDateTime::now_utc() + Duration::days(365);
        let cert = params.self_signed(&key).map_err(internal)?;
        Ok(DemoCa { cert_der: cert.der().to_vec(), issuer: rcgen::Issuer::new(params, key) })
    }

    /// Issues a document-signing certificate for the key in `csr_pem` (signature on the CSR checked).
    pub fn issue(&self, csr_pem: &str) -> CliResult<Vec<u8>> {
        let mut csr = CertificateSigningRequestParams::from_pem(csr_pem)
            .map_err(|e| CliError::new(ErrorCode::InvalidInput, format!("CSR refused: {e}")))?;
        csr.params.is_ca = IsCa::ExplicitNoCa;
        csr.params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::ContentCommitment];
        csr.params.not_before = OffsetDateTime::now_utc() - Duration::minutes(5);
        csr.params.not_after = OffsetDateTime::now_utc() + Duration::days(90);
        csr.params.use_authority_key_identifier_extension = true;
        Ok(csr.signed_by(&self.issuer).map_err(internal)?.der().to_vec())
    }
}

pub fn run(a: DemoArgs) -> CliResult {
    let tmp = tempdir()?;
    let out = match a.out {
        Some(d) => {
            std::fs::create_dir_all(&d).map_err(CliError::io(format!("cannot create {}", d.display())))?;
            d
        }
        None => tmp.join("out"),
    };
    std::fs::create_dir_all(&out).map_err(CliError::io("cannot create the output directory"))?;
    println!("Kalit demo: the phone's vault, certificate enrolment, signing and verification.");
    println!("Working directory: {} (throw-away)\nOutput directory:  {}", tmp.display(), out.display());
    let result = walk(&tmp, &out);
    let _ = std::fs::remove_dir_all(tmp.join("phone"));
    let _ = std::fs::remove_dir_all(tmp.join("phone2"));
    if !out.starts_with(&tmp) {
        let _ = std::fs::remove_dir_all(&tmp);
    }
    match &result {
        Ok(()) => {
            println!("\nDemo complete: every signature verified. Files to check with OpenSSL are in {}", out.display())
        }
        Err(e) => println!("\nDemo FAILED at the step above: {}", e.message),
    }
    result
}

fn tempdir() -> CliResult<PathBuf> {
    let base = std::env::temp_dir().join(format!(
        "kalit-demo-{}-{}",
        std::process::id(),
        OffsetDateTime::now_utc().unix_timestamp()
    ));
    std::fs::create_dir_all(&base).map_err(CliError::io("cannot create a temporary directory"))?;
    Ok(base)
}

fn walk(tmp: &Path, out: &Path) -> CliResult {
    // The demo's PIN is generated and shown: a demo must run unattended. Real commands always ask.
    let pin = SecretString::new(format!(
        "demo-{}",
        &hex::encode(kalit_core::digest::HashAlg::Sha256.digest(tmp.as_os_str().as_encoded_bytes()))[..8]
    ));
    step("registration 1-2", "The phone creates its vault; the PIN key comes from Argon2id (64 MiB), not h(h(PIN)).");
    let vault = Vault::init(&tmp.join("phone"), &pin, PinPolicy::default())?;
    println!("  vault: {} (its PIN is generated for the demo and never shown)", vault.dir().display());
    let u = vault.unlock(&pin)?;
    step("registration 4", "The phone generates a P-256 key pair; the private key is sealed with AES-256-GCM.");
    let info = u.generate(KeyAlgorithm::P256, "demo", false)?;
    println!("  key \"demo\" fingerprint SHA256:{}", info.fingerprint);
    step("registration 5", "The phone makes a CSR signed by the key (proof of possession) and sends it to the RA.");
    let csr = u.csr("demo", "CN=Demo Citizen,SERIALNUMBER=00000000000000,C=UZ")?;
    files::write_atomic(&out.join("demo.csr.pem"), csr.as_bytes(), false)?;
    let ca = DemoCa::new("Kalit Demo CA")?;
    println!("  (a demo CA stands in for the Registration Authority until `kalit ra` exists)");
    let leaf = ca.issue(&csr)?;
    step("registration 6", "The phone checks that the certificate is for its own key and installs it with the chain.");
    let mut bundle = x509::cert_pem(&leaf);
    bundle.push_str(&x509::cert_pem(&ca.cert_der));
    let cert = vault.install_cert("demo", bundle.as_bytes())?;
    println!("  installed: {}  issued by {}", cert.subject, cert.issuer);
    files::write_atomic(&out.join("chain.pem"), bundle.as_bytes(), false)?;
    files::write_atomic(&out.join("ca.pem"), x509::cert_pem(&ca.cert_der).as_bytes(), false)?;
    step("registration 7-8", "PFX: the key is exported and imported into a second phone's vault.");
    let pfx_pass = SecretString::new("demo-pfx-password".into());
    let pfx = u.export_pfx("demo", &pfx_pass)?;
    files::write_atomic(&out.join("demo.pfx"), &pfx, true)?;
    let vault2 = Vault::init(&tmp.join("phone2"), &pin, PinPolicy::default())?;
    let imported = vault2.unlock(&pin)?.import_pfx(&pfx, &pfx_pass, "imported")?;
    if imported.fingerprint != info.fingerprint {
        return Err(CliError::new(ErrorCode::Internal, "the imported key differs from the exported one"));
    }
    println!(
        "  second vault holds the same key: SHA256:{}  (PFX password: {})",
        imported.fingerprint,
        pfx_pass.expose_secret()
    );
    step(
        "registration 9-17",
        "Login registration at the relay: not built yet (issue: Registration Authority and relay).",
    );
    let doc = "Ariza: men, Demo Citizen, ushbu hujjatni imzolayman.\nApplication signed with Kalit.\n";
    files::write_atomic(&out.join("sample.txt"), doc.as_bytes(), false)?;
    step(
        "signature 20-22",
        "The phone shows the document, the person approves (auto-approved in the demo), the PIN unlocks the key.",
    );
    let cms = u.sign(
        "demo",
        &DocumentToSign { name: "sample.txt", data: doc.as_bytes(), format: SignFormat::Cms, pss: false, origin: None },
    )?;
    files::write_atomic(&out.join("sample.txt.p7s"), &cms.bytes, false)?;
    let raw = u.sign(
        "demo",
        &DocumentToSign { name: "sample.txt", data: doc.as_bytes(), format: SignFormat::Raw, pss: false, origin: None },
    )?;
    files::write_atomic(&out.join("sample.txt.sig"), &raw.bytes, false)?;
    println!(
        "  CMS signature: {} bytes; raw ECDSA signature: {} bytes; both recorded in the history",
        cms.bytes.len(),
        raw.bytes.len()
    );
    step("verification 1-5", "The signatures are verified against the document, the certificate and the CA.");
    let v = kalit_core::cms::verify_detached(&cms.bytes, &mut |h| Ok(h.digest(doc.as_bytes())), &[])?;
    let chain = x509::check_chain(
        &v.signer_cert,
        &v.certificates,
        std::slice::from_ref(&ca.cert_der),
        OffsetDateTime::now_utc(),
    )?;
    println!("  CMS: valid ({}), chain: {}", v.scheme, chain.path.join(" <- "));
    let scheme = x509::verify_raw(&x509::cert_spki(&leaf)?, doc.as_bytes(), &raw.bytes)?;
    println!("  raw: valid ({})", scheme.name());
    let tampered = format!("{doc} ");
    if kalit_core::cms::verify_detached(&cms.bytes, &mut |h| Ok(h.digest(tampered.as_bytes())), &[]).is_ok() {
        return Err(CliError::new(ErrorCode::Internal, "a changed document verified"));
    }
    println!("  a document changed by one byte is rejected");
    println!("\nCheck with OpenSSL:");
    println!(
        "  openssl cms -verify -binary -inform DER -in {0}/sample.txt.p7s -content {0}/sample.txt -CAfile {0}/ca.pem -purpose any -out /dev/null",
        out.display()
    );
    println!(
        "  openssl x509 -in {0}/chain.pem -pubkey -noout > {0}/pub.pem && openssl dgst -sha256 -verify {0}/pub.pem -signature {0}/sample.txt.sig {0}/sample.txt",
        out.display()
    );
    Ok(())
}
