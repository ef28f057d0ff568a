//! `kalit demo`: a walk-through on throw-away directories, printing each step of the paper as it runs.
//!
//! It runs a real Registration Authority, relay (SQLite in a temporary directory), agent and demo portal on
//! loopback in this process, enrols and registers two phones, then the portal asks the agent for raw and
//! CMS signatures that travel through the relay's blind tunnel to a phone that approves by itself, and
//! everything is verified. It exits 0 only when every step succeeded and every signature verified.
//! `--interactive` then leaves everything running for a person with a browser and `kalit vault pair`.

use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use clap::Args;
use kalit_core::{KeyAlgorithm, SecretString, x509};
use kalit_proto::ErrorCode;
use kalit_proto::session::{QR_TTL_SECS, SessionCreated, SessionPhase, SessionState, SignDocResponse};
use kalit_proto::verify::VerifyReport;
use kalit_vault::{PinPolicy, Vault};
use time::OffsetDateTime;

use crate::error::{CliError, CliResult};
use crate::files;

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Where to write the sample document, signatures and certificates [default: a new temporary directory].
    #[arg(long)]
    out: Option<PathBuf>,
    /// Afterwards keep the RA, relay, agent and a demo portal running (until Ctrl-C) and print how to sign
    /// from a browser with `kalit vault pair`.
    #[arg(long)]
    interactive: bool,
}

fn step(paper: &str, what: &str) {
    println!("\n[{paper}] {what}");
}

fn internal(e: impl std::fmt::Display) -> CliError {
    CliError::new(ErrorCode::Internal, e.to_string())
}

/// The RA, relay, agent and portal, served on loopback by a background runtime for the length of the demo.
pub(crate) struct Services {
    pub(crate) rt: tokio::runtime::Runtime,
    pub(crate) ra_url: String,
    pub(crate) relay_url: String,
    /// The RA's directory (the interactive demo hands out one more enrolment code, for the phone app).
    pub(crate) ra_dir: std::path::PathBuf,
    pub(crate) ca_pem: Vec<u8>,
}

fn bind(rt: &tokio::runtime::Runtime) -> CliResult<(tokio::net::TcpListener, std::net::SocketAddr)> {
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .map_err(CliError::io("cannot listen on 127.0.0.1"))?;
    let addr = listener.local_addr().map_err(CliError::io("cannot listen on 127.0.0.1"))?;
    Ok((listener, addr))
}

fn spawn_app(rt: &tokio::runtime::Runtime, listener: tokio::net::TcpListener, app: axum::Router) {
    let svc = app.into_make_service_with_connect_info::<std::net::SocketAddr>();
    rt.spawn(async move { axum::serve(listener, svc).await });
}

/// The demo portal: a page standing for a government portal, `web/kalit.js` with its direct mode
/// (`web/kalit-direct.js`), and where the agent and the relay are.
fn portal(agent_url: &str, relay_url: &str) -> axum::Router {
    use axum::http::header::CONTENT_TYPE;
    use axum::routing::get;
    let config = format!("export const AGENT = {agent_url:?};\nexport const RELAY = {relay_url:?};\n");
    axum::Router::new()
        .route("/", get(|| async { axum::response::Html(include_str!("../../../web/demo/index.html")) }))
        .route(
            "/kalit.js",
            get(|| async { ([(CONTENT_TYPE, "text/javascript")], include_str!("../../../web/kalit.js")) }),
        )
        .route(
            "/kalit-direct.js",
            get(|| async { ([(CONTENT_TYPE, "text/javascript")], include_str!("../../../web/kalit-direct.js")) }),
        )
        .route("/config.js", get(move || async move { ([(CONTENT_TYPE, "text/javascript")], config) }))
        .route("/favicon.ico", get(|| async { axum::http::StatusCode::NO_CONTENT }))
}

/// Starts the agent (allowing the portal's origin) and the portal. Returns (agent URL, portal origin).
pub(crate) fn start_agent(
    svc: &Services,
    tmp: &Path,
    relay_url: &str,
    sessions_per_minute: u32,
) -> CliResult<(String, String)> {
    start_agent_in(svc, tmp, &tmp.join("agent"), relay_url, sessions_per_minute)
}

/// [`start_agent`] with its data directory at `data`.
pub(crate) fn start_agent_in(
    svc: &Services,
    tmp: &Path,
    data: &Path,
    relay_url: &str,
    sessions_per_minute: u32,
) -> CliResult<(String, String)> {
    let (portal_listener, portal_addr) = bind(&svc.rt)?;
    let portal_origin = format!("http://{portal_addr}");
    let data = data.to_path_buf();
    kalit_agent::Origins::new(&data).allow(&portal_origin)?;
    let cfg = kalit_agent::AgentConfig {
        relay: relay_url.to_string(),
        data,
        trust: vec![tmp.join("ra").join("ca.pem")],
        approval_timeout_secs: 300,
        print_qr: false,
        sessions_per_minute,
        dangerously_trust_relay_attestations_only: false,
        // The RA's own TSA: PDF signatures up to B-LTA.
        tsa: Some(format!("{}/v1/timestamp", svc.ra_url)),
    };
    let state = svc.rt.block_on(kalit_agent::build(&cfg))?;
    let (listener, addr) = bind(&svc.rt)?;
    spawn_app(&svc.rt, listener, kalit_agent::app(state, addr));
    let agent_url = format!("http://{addr}");
    spawn_app(&svc.rt, portal_listener, portal(&agent_url, relay_url));
    Ok((agent_url, portal_origin))
}

/// A second demo portal on a computer with no agent: its kalit.js finds none (nothing listens at the
/// agent URL it is given) and signs in direct mode through the relay. Returns its origin.
pub(crate) fn start_direct_portal(svc: &Services, relay_url: &str) -> CliResult<String> {
    // A loopback port nothing listens on any more (browsers refuse the well-known unused ones outright).
    let (closed, closed_addr) = bind(&svc.rt)?;
    drop(closed);
    let (listener, addr) = bind(&svc.rt)?;
    spawn_app(&svc.rt, listener, portal(&format!("http://{closed_addr}"), relay_url));
    Ok(format!("http://{addr}"))
}

pub(crate) fn start_services(tmp: &Path, secret: &str) -> CliResult<(Services, String)> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| internal(format!("async runtime: {e}")))?;
    let ra_dir = tmp.join("ra");
    let pass = SecretString::new(format!("demo RA passphrase {secret}"));
    // As a production RA runs: its address is known at init, so every certificate it issues names its CRL
    // (URL/v1/crl), which the relay checks at registration and at every tunnel join.
    let (ra_listener, ra_addr) = bind(&rt)?;
    let ra_url = format!("http://{ra_addr}");
    let summary = kalit_ra::ca::init_with(&ra_dir, "Kalit Demo", KeyAlgorithm::P256, true, 365, &pass, Some(&ra_url))?;
    let ca = kalit_ra::ca::open(&ra_dir, &pass)?;
    let code = rt.block_on(kalit_ra::enrol(
        &ra_dir,
        "CN=Demo Citizen,SERIALNUMBER=00000000000000,C=UZ",
        std::time::Duration::from_secs(600),
    ))?;
    // The relay's address first: it serves the phone app, whose origin the RA answers CORS for.
    let (relay_listener, relay_addr) = bind(&rt)?;
    let relay_url = format!("http://{relay_addr}");
    let ra_state = rt
        .block_on(kalit_ra::RaState::open(&ra_dir, ca, 0))?
        .with_app_origins(std::slice::from_ref(&relay_url))?
        .with_public_url(Some(&ra_url))?;
    spawn_app(&rt, ra_listener, kalit_ra::app(ra_state));
    println!("  RA: {ra_url}  (root CA SHA-256 {})", &summary.root_fingerprint[..16]);
    let cfg = kalit_relay::RelayConfig {
        data: Some(tmp.join("relay")),
        trust: vec![ra_dir.join("ca.pem")],
        name: "Kalit demo relay".into(),
        ..Default::default()
    };
    // As a production relay runs after its first rotation: its root key (the relay id) endorsed a
    // signing key, which signs every attestation (kalit relay rotate-key; docs/OPERATIONS.md).
    let relay_data = tmp.join("relay");
    kalit_relay::Identity::load_or_create(&relay_data, &cfg.name)?;
    let rotated = kalit_relay::identity::rotate_key(
        &relay_data,
        &relay_data.join(kalit_relay::identity::KEY_FILE),
        86_400,
        kalit_service::now_ms() / 1000,
    )?;
    let state = rt.block_on(kalit_relay::build(&cfg))?;
    spawn_app(&rt, relay_listener, kalit_relay::app(state));
    println!(
        "  relay id {}: its root key endorsed the signing key {} for a day (kalit relay rotate-key)",
        rotated.relay_id,
        kalit_core::statement::key_id(rotated.new_key.key.public_key.as_slice())
    );
    println!("  relay: {relay_url}  (SQLite in {}; the phone app at {relay_url}/app/)", tmp.join("relay").display());
    let ca_pem = std::fs::read(ra_dir.join("ca.pem")).map_err(CliError::io("cannot read the demo CA"))?;
    Ok((Services { rt, ra_url, relay_url, ca_pem, ra_dir }, code))
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
    println!("Kalit demo: the phone's vault, certificate enrolment, registration, signing from a web page through");
    println!("the agent, the relay's blind tunnel and the phone, and verification.");
    println!("Working directory: {} (throw-away)\nOutput directory:  {}", tmp.display(), out.display());
    let result = walk(&tmp, &out, a.interactive);
    let _ = std::fs::remove_dir_all(tmp.join("phone"));
    let _ = std::fs::remove_dir_all(tmp.join("phone2"));
    let _ = std::fs::remove_dir_all(tmp.join("ra"));
    let _ = std::fs::remove_dir_all(tmp.join("relay"));
    let _ = std::fs::remove_dir_all(tmp.join("agent"));
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

pub(crate) fn tempdir() -> CliResult<PathBuf> {
    let base = std::env::temp_dir().join(format!(
        "kalit-demo-{}-{}",
        std::process::id(),
        OffsetDateTime::now_utc().unix_timestamp()
    ));
    std::fs::create_dir_all(&base).map_err(CliError::io("cannot create a temporary directory"))?;
    Ok(base)
}

fn walk(tmp: &Path, out: &Path, interactive: bool) -> CliResult {
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
    let ra = kalit_phone::Client::new(&svc.ra_url, "RA")?;
    let anchors = x509::parse_cert_bundle(&svc.ca_pem)?;
    let kalit_phone::net::Enrolled { cert, serial, csr } =
        kalit_phone::net::enrol(&vault, &u, &ra, "demo", &code, Some(anchors.clone()), &mut kalit_phone::Printed)?;
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
    let relay = kalit_phone::Client::new(&svc.relay_url, "relay")?;
    kalit_phone::net::register(&vault, &u, &relay, "demo", "demo.citizen", "first phone", &mut kalit_phone::Printed)?;
    let u2 = vault2.unlock(&pin)?;
    kalit_phone::net::register(
        &vault2,
        &u2,
        &relay,
        "imported",
        "demo.citizen",
        "second phone",
        &mut kalit_phone::Printed,
    )?;
    drop(u2);
    let doc = "Ariza: men, Demo Citizen, ushbu hujjatni imzolayman.\nApplication signed with Kalit.\n";
    files::write_atomic(&out.join("sample.txt"), doc.as_bytes(), false)?;
    step("signature 18", "Starting the agent (loopback, allow-list) and a demo portal on its own origin.");
    let (agent_url, portal_origin) = start_agent(&svc, tmp, &svc.relay_url, 20)?;
    println!("  agent: {agent_url}  (allows only {portal_origin})\n  portal: {portal_origin}/");
    step(
        "signature 18-19",
        "The portal asks the agent for a session: a QR with a fresh X25519 key and secret, a blind tunnel at the relay.",
    );
    let mut page = kalit_phone::Client::page(&agent_url, &portal_origin)?;
    let created: SessionCreated = page.post("/v1/sessions", Some(&serde_json::json!({})))?;
    page.set_token(Some(created.token.clone()));
    println!("  QR text: {}...  (expires in {} s)", &created.qr[..32], QR_TTL_SECS);
    step(
        "signature 19-20",
        "The phone scans the QR, joins the tunnel with its device key and runs the Noise handshake; both show the SAS.",
    );
    let session_path = format!("/v1/sessions/{}", created.session);
    let (cms, raw) = std::thread::scope(|scope| {
        let phone = scope.spawn(|| {
            let mut ui = kalit_phone::pair::AutoUi { unlocked: &u, verbose: true };
            kalit_phone::pair::pair(&vault, &created.qr, None, &mut ui).map_err(CliError::from)
        });
        let result = (|| {
            let state = wait_connected(&page, &session_path)?;
            println!(
                "  computer | paired with {} ({}); code {}",
                state.login.as_deref().unwrap_or("?"),
                state.certificate.as_ref().map(|c| c.subject.as_str()).unwrap_or("?"),
                state.sas.as_deref().unwrap_or("?")
            );
            step(
                "signature 20-27",
                "The portal sends the document; the phone shows it and signs after approval; the agent checks the \
                 signature against the certificate and its own digest before the page gets it.",
            );
            let sign = |format: &str| -> CliResult<SignDocResponse> {
                Ok(page.post(
                    &format!("{session_path}/sign"),
                    Some(&serde_json::json!({
                        "data": B64.encode(doc.as_bytes()), "name": "sample.txt",
                        "media_type": "text/plain", "format": format,
                    })),
                )?)
            };
            let cms = sign("cms")?;
            let raw = sign("raw")?;
            Ok::<_, CliError>((cms, raw))
        })();
        step(
            "signature 28",
            "The portal ends the session; both ends drop the channel keys, the relay drops the tunnel.",
        );
        let _ = page.delete(&session_path);
        let phone = phone.join().map_err(|_| internal("the phone thread panicked"))?;
        let (cms, raw) = result?;
        let summary = phone?;
        println!("  phone signed {} document(s)", summary.signed);
        Ok::<_, CliError>((cms, raw))
    })?;
    let cms_bytes = cms.signature.to_vec();
    let raw_bytes = raw.signature.to_vec();
    files::write_atomic(&out.join("sample.txt.p7s"), &cms_bytes, false)?;
    files::write_atomic(&out.join("sample.txt.sig"), &raw_bytes, false)?;
    println!(
        "  CMS signature: {} bytes; raw {} signature: {} bytes; the phone's history records origin {portal_origin}",
        cms_bytes.len(),
        raw.scheme,
        raw_bytes.len()
    );
    step("verification 1-5", "The signatures are verified against the document, the certificate and the CA.");
    let report: VerifyReport = page.post(
        "/v1/verify",
        Some(&serde_json::json!({
            "data": B64.encode(doc.as_bytes()), "signature": cms.signature, "format": "cms",
        })),
    )?;
    if !report.valid {
        return Err(CliError::new(ErrorCode::InvalidSignature, format!("the agent's verify: {:?}", report.reason)));
    }
    println!("  agent /v1/verify: valid, chain trusted: {}", report.chain.as_ref().is_some_and(|c| c.trusted));
    let v = kalit_core::cms::verify_detached(&cms_bytes, &mut |h| Ok(h.digest(doc.as_bytes())), &[])?;
    let chain =
        x509::check_chain(&v.signer_cert, &v.certificates, &anchors[anchors.len() - 1..], OffsetDateTime::now_utc())?;
    println!("  CMS: valid ({}), chain: {}", v.scheme, chain.path.join(" <- "));
    let scheme = x509::verify_raw(&x509::cert_spki(&leaf)?, doc.as_bytes(), &raw_bytes)?;
    println!("  raw: valid ({})", scheme.name());
    let tampered = format!("{doc} ");
    if kalit_core::cms::verify_detached(&cms_bytes, &mut |h| Ok(h.digest(tampered.as_bytes())), &[]).is_ok() {
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
    if interactive {
        // The vault's lock must be free for `kalit vault pair`.
        let vault_dir = vault.dir().to_path_buf();
        drop(u);
        drop(vault);
        println!("\nInteractive: the RA, relay, agent and portal keep running until Ctrl-C.");
        println!("  portal:       {portal_origin}/   (open it in a browser and press \"Sign with my phone\")");
        let direct_origin = start_direct_portal(&svc, &svc.relay_url)?;
        println!(
            "  direct:       {direct_origin}/   (the same portal on a computer with no agent: kalit.js signs through the relay)"
        );
        println!("  agent:        {agent_url}   relay: {}   RA: {}", svc.relay_url, svc.ra_url);
        println!("  phone vault:  {}", vault_dir.display());
        println!("  phone PIN:    {}   (a throw-away demo vault)", pin.expose_secret());
        println!(
            "Then copy the text under the QR and answer on the \"phone\":\n  kalit vault pair --vault {} 'kalit:...'",
            vault_dir.display()
        );
        let app_code = svc.rt.block_on(kalit_ra::enrol(
            &svc.ra_dir,
            "CN=Demo App Citizen,SERIALNUMBER=00000000000001,C=UZ",
            std::time::Duration::from_secs(3600),
        ))?;
        println!(
            "Or be the phone in a browser with the phone app (a phone-sized window works best):\n  phone app:    {}/app/\n  \
             in the app: set a PIN, make a key, \"Get a certificate\" from RA {} with the code {app_code},\n  \
             register at the relay, then open the QR's link on the portal page or paste its text under \"Sign\".",
            svc.relay_url, svc.ra_url
        );
        use std::io::Write;
        let _ = std::io::stdout().flush();
        svc.rt.block_on(async {
            let _ = tokio::signal::ctrl_c().await;
        });
    }
    drop(svc.rt);
    Ok(())
}

/// Polls the session until a phone is paired (or the session closed).
pub(crate) fn wait_connected(page: &kalit_phone::Client, path: &str) -> CliResult<SessionState> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(u64::from(QR_TTL_SECS) + 30);
    loop {
        let s: SessionState = page.get(path)?;
        match s.phase {
            SessionPhase::Connected => return Ok(s),
            SessionPhase::Closed => {
                let e =
                    s.error.unwrap_or(kalit_proto::ErrorBody { code: ErrorCode::Expired, message: "closed".into() });
                return Err(CliError::new(e.code, format!("the session closed: {}", e.message)));
            }
            _ if std::time::Instant::now() > deadline => {
                return Err(CliError::new(ErrorCode::Expired, "no phone paired in time"));
            }
            _ => std::thread::sleep(std::time::Duration::from_millis(50)),
        }
    }
}
