//! `kalit demo`: a walk-through on throw-away directories, printing each step of the paper as it runs.
//!
//! It runs a real Registration Authority and relay on loopback (in this process, SQLite in a temporary
//! directory), enrols and registers two phones, signs on the phone and verifies. Until the agent exists
//! (signing issue) the signing request is made on the phone itself. It exits 0 only when every step
//! succeeded and every signature verified.

use std::path::{Path, PathBuf};

use clap::Args;
use kalit_core::{KeyAlgorithm, SecretString, x509};
use kalit_proto::ErrorCode;
use kalit_vault::{DocumentToSign, PinPolicy, SignFormat, Vault};
use time::OffsetDateTime;

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

/// The RA and the relay, served on loopback by a background runtime for the length of the demo.
struct Services {
    rt: tokio::runtime::Runtime,
    ra_url: String,
    relay_url: String,
    ca_pem: Vec<u8>,
}

fn serve_on_loopback(rt: &tokio::runtime::Runtime, app: axum::Router) -> CliResult<String> {
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .map_err(CliError::io("cannot listen on 127.0.0.1"))?;
    let addr = listener.local_addr().map_err(CliError::io("cannot listen on 127.0.0.1"))?;
    let svc = app.into_make_service_with_connect_info::<std::net::SocketAddr>();
    rt.spawn(async move { axum::serve(listener, svc).await });
    Ok(format!("http://{addr}"))
}

fn start_services(tmp: &Path, secret: &str) -> CliResult<(Services, String)> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| internal(format!("async runtime: {e}")))?;
    let ra_dir = tmp.join("ra");
    let pass = SecretString::new(format!("demo RA passphrase {secret}"));
    let summary = kalit_ra::ca::init(&ra_dir, "Kalit Demo", KeyAlgorithm::P256, true, 365, &pass)?;
    let ca = kalit_ra::ca::open(&ra_dir, &pass)?;
    let code = rt.block_on(kalit_ra::enrol(
        &ra_dir,
        "CN=Demo Citizen,SERIALNUMBER=00000000000000,C=UZ",
        std::time::Duration::from_secs(600),
    ))?;
    let ra_state = rt.block_on(kalit_ra::RaState::open(&ra_dir, ca, 0))?;
    let ra_url = serve_on_loopback(&rt, kalit_ra::app(ra_state))?;
    println!("  RA: {ra_url}  (root CA SHA-256 {})", &summary.root_fingerprint[..16]);
    let cfg = kalit_relay::RelayConfig {
        data: Some(tmp.join("relay")),
        trust: vec![ra_dir.join("ca.pem")],
        name: "Kalit demo relay".into(),
        ..Default::default()
    };
    let state = rt.block_on(kalit_relay::build(&cfg))?;
    let relay_url = serve_on_loopback(&rt, kalit_relay::app(state))?;
    println!("  relay: {relay_url}  (SQLite in {})", tmp.join("relay").display());
    let ca_pem = std::fs::read(ra_dir.join("ca.pem")).map_err(CliError::io("cannot read the demo CA"))?;
    Ok((Services { rt, ra_url, relay_url, ca_pem }, code))
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
    let _ = std::fs::remove_dir_all(tmp.join("ra"));
    let _ = std::fs::remove_dir_all(tmp.join("relay"));
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
    step(
        "registration 5-8",
        "Starting a Registration Authority (CA root + issuing, key sealed) and a relay on loopback.",
    );
    let (svc, code) =
        start_services(tmp, &hex::encode(kalit_core::digest::HashAlg::Sha256.digest(pin.expose_secret().as_bytes())))?;
    println!("  the operator verified \"Demo Citizen\" and handed out the one-time enrolment code {code}");
    let ra = crate::client::Client::new(&svc.ra_url, "RA")?;
    let anchors = x509::parse_cert_bundle(&svc.ca_pem)?;
    let (cert, serial, csr) = crate::vault_net::enrol_with(&vault, &u, &ra, "demo", &code, Some(anchors.clone()))?;
    files::write_atomic(&out.join("demo.csr.pem"), csr.as_bytes(), false)?;
    println!("  installed: {}  serial {serial}  issued by {}", cert.subject, cert.issuer);
    let bundle = {
        let mut b = String::new();
        for c in vault.certificate_chain("demo")? {
            b.push_str(&x509::cert_pem(&c));
        }
        b
    };
    files::write_atomic(&out.join("chain.pem"), bundle.as_bytes(), false)?;
    files::write_atomic(&out.join("ca.pem"), &svc.ca_pem, false)?;
    let leaf = vault.certificate_chain("demo")?.remove(0);
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
        "Both phones register the login demo.citizen at the relay (nonce, certificate proof, device key).",
    );
    let relay = crate::client::Client::new(&svc.relay_url, "relay")?;
    crate::vault_net::register_with(&vault, &u, &relay, "demo", "demo.citizen", None, Some("first phone"))?;
    let u2 = vault2.unlock(&pin)?;
    crate::vault_net::register_with(&vault2, &u2, &relay, "imported", "demo.citizen", None, Some("second phone"))?;
    drop(u2);
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
    let chain =
        x509::check_chain(&v.signer_cert, &v.certificates, &anchors[anchors.len() - 1..], OffsetDateTime::now_utc())?;
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
    drop(svc.rt);
    Ok(())
}
