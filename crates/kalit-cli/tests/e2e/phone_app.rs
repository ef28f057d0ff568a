//! The TypeScript phone (phone/, the protocol code the phone app is built on) against the Rust agent and
//! relay: it opens a key from a `kalit vault backup` file, registers a device key of its own at the relay
//! (the certificate key's statement signature made by WebCrypto or, for Ed25519ph, @noble, and checked by
//! the relay), joins the tunnel with the QR a page got from the agent, runs the Noise handshake (the same
//! SAS on both sides), shows the request and answers it. The agent checks each signature before the page
//! gets it, and OpenSSL checks it again (raw and CMS; Ed25519 CMS by parts, as OpenSSL 3.0 cannot).
//!
//! Runs when node and the built TypeScript (`cd phone && npm ci && npm run build:test`) are present;
//! `KALIT_PHONE_APP_TEST=1` (set by .ci/run) makes their absence a failure instead of a skip.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;

use crate::common::{PIN, openssl, s, verify_raw_with_openssl};
use crate::network::enrolled_phone;
use crate::signing::{Page, stack};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn live_phone() -> Option<PathBuf> {
    let script = repo().join("phone/build/tools/live-phone.js");
    let have = script.exists()
        && repo().join("phone/node_modules/ws").exists()
        && Command::new("node").arg("--version").output().is_ok_and(|o| o.status.success());
    if have {
        return Some(script);
    }
    if std::env::var("KALIT_PHONE_APP_TEST").is_ok_and(|v| v == "1") {
        panic!(
            "KALIT_PHONE_APP_TEST=1 but node or the built phone code is missing (cd phone && npm ci && npm run build:test)"
        );
    }
    println!("SKIPPED: the TypeScript phone test needs node and `cd phone && npm ci && npm run build:test`");
    None
}

/// The TypeScript phone as a process: lines in, lines out.
pub(crate) struct TsPhone {
    child: Child,
    stdin: ChildStdin,
    lines: mpsc::Receiver<String>,
}

impl TsPhone {
    fn start(script: &Path, relay_url: &str, backup: &Path, passphrase: &str, login: &str) -> TsPhone {
        let mut cmd = Command::new("node");
        cmd.arg(script)
            .env("BACKUP_OUT", backup.with_extension("from-app"))
            .env("RELAY_URL", relay_url)
            .env("BACKUP_FILE", backup)
            .env("BACKUP_PASSPHRASE", passphrase)
            .env("LOGIN", login);
        TsPhone::spawn(cmd)
    }

    /// Runs `cmd` with piped standard input and output, its lines read on a thread of their own.
    pub(crate) fn spawn(mut cmd: Command) -> TsPhone {
        let mut child = cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::inherit()).spawn().unwrap();
        let stdin = child.stdin.take().unwrap();
        let out = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        TsPhone { child, stdin, lines }
    }

    /// The next line starting with `prefix` (a FAILED or PAGEERROR line fails the test).
    pub(crate) fn expect(&self, prefix: &str) -> String {
        loop {
            let line = self.lines.recv_timeout(Duration::from_secs(120)).expect("the TypeScript phone went quiet");
            assert!(!line.starts_with("FAILED") && !line.starts_with("PAGEERROR"), "the TypeScript phone: {line}");
            if let Some(rest) = line.strip_prefix(prefix) {
                return rest.trim().to_string();
            }
        }
    }

    pub(crate) fn say(&mut self, line: &str) {
        writeln!(self.stdin, "{line}").unwrap();
        self.stdin.flush().unwrap();
    }
}

/// The page asks for a signature while `phone` answers on the other side; the page's answer.
fn sign_while(
    page: &Page,
    c: &crate::signing::Created,
    doc: &[u8],
    format: &str,
    phone: impl FnOnce(),
) -> (u16, serde_json::Value) {
    std::thread::scope(|sc| {
        let pending = sc.spawn(|| page.sign(c, doc, format, false));
        phone();
        pending.join().unwrap()
    })
}

/// The app shows the request and the person answers (`APPROVE`, `DECLINE`, `WRONGPIN`); what it showed.
fn answer_in_app(app: &mut TsPhone, answer: &str) -> String {
    app.say("PROMPT");
    let shown = app.expect("PROMPT");
    app.say(answer);
    app.expect("ANSWERED");
    shown
}

impl Drop for TsPhone {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn the_typescript_phone_registers_pairs_and_signs_through_the_rust_agent_and_relay() {
    let Some(script) = live_phone() else { return };
    let origin = "https://portal.example";
    let stack = stack(&[origin]);
    let page = Page::new(&stack.agent.url, origin);
    for (alg, login) in [("p-256", "ts-ali"), ("ed25519", "ts-vali"), ("rsa-2048", "ts-guli")] {
        // A key enrolled at the RA by the command-line vault, carried to the TypeScript phone in a backup
        // (not registered at the relay: the TypeScript phone does that itself, with its own device key).
        let v = enrolled_phone(
            stack.root.path(),
            &format!("cli-{alg}"),
            alg,
            &stack.ra,
            &stack.ra_url,
            &format!("CN={login},C=UZ"),
        );
        let backup = stack.root.path().join(format!("{alg}.backup"));
        v.run(&["backup", "--out", s(&backup)], &[PIN, "backup-pass-1", "backup-pass-1"]).ok();
        let mut phone = TsPhone::start(&script, &stack.relay_url, &backup, "backup-pass-1", login);
        // The app's code wrote the same key into a backup of its own: the command line restores it.
        let from_app = phone.expect("BACKUP");
        let restored = crate::common::V { dir: stack.root.path().join(format!("restored-{alg}")) };
        restored.run(&["restore", &from_app], &["backup-pass-1", "135790", "135790"]).ok();
        let listed = restored.run(&["list", "--json"], &[]).ok().stdout;
        let original = v.run(&["list", "--json"], &[]).ok().stdout;
        let fp = |json: &str| serde_json::from_str::<serde_json::Value>(json).unwrap()[0]["fingerprint"].clone();
        assert!(fp(&original).is_string(), "{original}");
        assert_eq!(fp(&listed), fp(&original), "the same key came back: {listed}");
        let device_id = phone.expect("REGISTERED");
        assert_eq!(device_id.len(), 32, "{device_id}");

        let c = page.start(None);
        phone.say(&format!("QR {}", c.qr));
        let sas = phone.expect("SAS");
        let st = page.wait(&c, "connected");
        assert_eq!(st["phase"], "connected", "{st}");
        assert_eq!(st["sas"], sas.as_str(), "both screens show the same code");
        assert_eq!(st["login"], login);

        // Approved: a raw signature the agent checked, and OpenSSL checks again.
        let doc = format!("Shartnoma {alg} / Договор / Contract\n");
        let (code, r) = sign_while(&page, &c, doc.as_bytes(), "raw", || {
            let prompt = phone.expect("PROMPT");
            assert!(prompt.contains("contract.txt") && prompt.ends_with(origin), "{prompt}");
            phone.say("approve");
        });
        assert_eq!(code, 200, "{r}");
        assert_eq!(r["login"], login);
        if openssl().is_some() {
            let work = stack.root.path().join(format!("check-{alg}"));
            std::fs::create_dir_all(&work).unwrap();
            let (cert, d, sig) = (work.join("cert.pem"), work.join("doc.txt"), work.join("doc.sig"));
            std::fs::write(&cert, r["certificate_pem"].as_str().unwrap()).unwrap();
            std::fs::write(&d, &doc).unwrap();
            std::fs::write(&sig, B64.decode(r["signature"].as_str().unwrap()).unwrap()).unwrap();
            let openssl_alg = if alg.starts_with("rsa") { "rsa" } else { alg };
            verify_raw_with_openssl(openssl_alg, false, &cert, &d, &sig, &work);
        }

        // CMS (what kalit.js asks for by default): the agent checks it, and OpenSSL (Ed25519 by parts).
        let (code, r) = sign_while(&page, &c, doc.as_bytes(), "cms", || {
            phone.expect("PROMPT");
            phone.say("approve");
        });
        assert_eq!(code, 200, "{r}");
        if openssl().is_some() {
            let work = stack.root.path().join(format!("cms-{alg}"));
            std::fs::create_dir_all(&work).unwrap();
            let (d, sig) = (work.join("doc.txt"), work.join("doc.p7s"));
            std::fs::write(&d, &doc).unwrap();
            std::fs::write(&sig, B64.decode(r["signature"].as_str().unwrap()).unwrap()).unwrap();
            crate::common::openssl_cms_verify(&sig, &d, &stack.ra.ca());
        }

        // Declined: the page learns it, the session stays usable.
        let (code, r) = sign_while(&page, &c, b"no, thank you", "raw", || {
            phone.expect("PROMPT");
            phone.say("decline");
        });
        assert_eq!((code, r["error"]["code"].as_str()), (403, Some("declined")), "{r}");

        // A Kalit statement as a document is refused by the TypeScript phone before anyone is asked.
        let (code, r) = page.sign(&c, b"kalit/v1/register\0forged", "raw", false);
        assert_eq!((code, r["error"]["code"].as_str()), (403, Some("refused_by_policy")), "{r}");

        page.end(&c);
        assert_eq!(phone.expect("DONE"), "2 1 0");
    }
}

pub(crate) fn app_browser_ready() -> bool {
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    let have = Path::new(&chromium).exists()
        && repo().join("phone/node_modules/playwright-core").exists()
        && Command::new("node").arg("--version").output().is_ok_and(|o| o.status.success());
    if have {
        return true;
    }
    if std::env::var("KALIT_PHONE_APP_TEST").is_ok_and(|v| v == "1") {
        panic!("KALIT_PHONE_APP_TEST=1 but Chromium, node or phone/node_modules is missing (see .ci/run)");
    }
    println!("SKIPPED: the phone app browser test needs Debian's chromium and `cd phone && npm ci`");
    false
}

/// The relay serves the app with its security headers and exact content types, and nothing else.
fn check_app_headers(relay: &str) {
    let http = reqwest::blocking::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let r = http.get(format!("{relay}/app")).send().unwrap();
    assert_eq!((r.status().as_u16(), r.headers()["location"].to_str().unwrap()), (308, "/app/"));
    for (path, ctype) in [
        ("/app/", "text/html; charset=utf-8"),
        ("/app/app.js", "text/javascript; charset=utf-8"),
        ("/app/sw.js", "text/javascript; charset=utf-8"),
        ("/app/manifest.webmanifest", "application/manifest+json"),
        ("/app/icon-512.png", "image/png"),
        ("/app/zxing_reader.wasm", "application/wasm"),
    ] {
        let r = http.get(format!("{relay}{path}")).send().unwrap();
        assert_eq!(r.status(), 200, "{path}");
        let h = r.headers();
        assert_eq!(h["content-type"], ctype, "{path}");
        assert_eq!(h["x-content-type-options"], "nosniff");
        let csp = h["content-security-policy"].to_str().unwrap();
        assert!(
            csp.contains("script-src 'self' 'wasm-unsafe-eval';") && csp.contains("frame-ancestors 'none'"),
            "{csp}"
        );
        assert!(!csp.contains("unsafe-inline"), "{csp}");
        let etag = h["etag"].clone();
        let again = http.get(format!("{relay}{path}")).header("if-none-match", etag).send().unwrap();
        assert_eq!(again.status(), 304, "{path}");
    }
    for missing in ["/app/nope.js", "/app/..%2f..%2fetc%2fpasswd", "/app/%2e%2e/Cargo.toml"] {
        let r = http.get(format!("{relay}{missing}")).send().unwrap();
        assert_eq!(r.status(), 404, "{missing}");
    }
}

/// A citizen's path in the phone app, in Chromium as a Pixel 7: first run with a PIN, a key, a
/// certificate from the RA (CORS for the app's origin), registration at the relay that serves the app;
/// then a portal's request through the Rust agent: the link opens the app, the new computer is named,
/// both sides show the same SAS, the app shows origin, name and preview; approve (a CMS signature
/// OpenSSL checks), decline, a wrong PIN (the page learns `wrong_pin`); the session ends; the app opens
/// offline; every language renders; a PIN change; backups both ways between the app and the command
/// line. Screenshots of every screen: target/screenshots/phone-app/.
#[test]
fn the_phone_app_in_chromium_enrols_registers_and_signs() {
    if !app_browser_ready() {
        return;
    }
    let origin = "https://portal.example";
    let root = tempfile::tempdir().unwrap();
    let ra = crate::network::Ra::init(root.path(), "ra");
    let relay = crate::signing::relay_serve(&root.path().join("relay"), &ra.ca(), "127.0.0.1:0");
    let ra_svc = ra.serve_with(&["--app-origin", &relay.url]);
    let agent = crate::signing::agent_serve(&root.path().join("agent"), &[origin], &relay.url, &ra.ca(), &[]);
    check_app_headers(&relay.url);
    let code = ra.code("CN=Dilnoza App,C=UZ");
    let shots = repo().join("target/screenshots/phone-app");
    let _ = std::fs::remove_dir_all(&shots);
    let mut cmd = Command::new("node");
    cmd.arg(repo().join("phone/test-browser/app.mjs"))
        .env("APP_URL", format!("{}/app/", relay.url))
        .env("RA_URL", &ra_svc.url)
        .env("CODE", &code)
        .env("LOGIN", "app-dilnoza")
        .env("SHOTS", &shots);
    let mut app = TsPhone::spawn(cmd);

    app.say("SETUP");
    assert_eq!(app.expect("INSTALLABILITY"), "[]", "Chromium finds the app installable");
    let root_fp = app.expect("ROOT");
    let ca_pem = std::fs::read_to_string(ra.ca()).unwrap();
    let ca_root = pem::parse_many(&ca_pem).unwrap().last().unwrap().contents().to_vec();
    assert_eq!(root_fp, kalit_core::statement::cert_fingerprint(&ca_root), "the app shows the RA root's fingerprint");
    assert!(app.expect("SUBJECT").contains("CN=Dilnoza App"), "the RA's subject, not the CSR's");
    assert!(app.expect("REGISTERED").contains("app-dilnoza"));

    let page = Page::new(&agent.url, origin);
    let c = page.start(None);
    app.say(&format!("QR {}", c.qr));
    assert_eq!(app.expect("ASKING"), origin, "the new-computer warning names the origin the computer claims");
    let sas = app.expect("SAS");
    let st = page.wait(&c, "connected");
    assert_eq!((st["phase"].as_str(), st["sas"].as_str()), (Some("connected"), Some(sas.as_str())), "{st}");

    // Approved, with the PIN, as CMS (kalit.js's default): the agent and OpenSSL check it.
    let doc = "Ariza / Заявление / Application\nI ask for a certificate of residence.\n";
    let mut shown = String::new();
    let (code, r) = sign_while(&page, &c, doc.as_bytes(), "cms", || shown = answer_in_app(&mut app, "APPROVE"));
    assert!(shown.starts_with(&format!("{origin}|contract.txt|Ariza")), "{shown}");
    assert_eq!(code, 200, "{r}");
    assert_eq!(r["login"], "app-dilnoza");
    if openssl().is_some() {
        let work = root.path().join("check");
        std::fs::create_dir_all(&work).unwrap();
        let (d, sig) = (work.join("doc.txt"), work.join("doc.p7s"));
        std::fs::write(&d, doc).unwrap();
        std::fs::write(&sig, B64.decode(r["signature"].as_str().unwrap()).unwrap()).unwrap();
        crate::common::openssl_cms_verify(&sig, &d, &ra.ca());
    }
    // Declined; then a wrong PIN, which the page learns as such.
    for (answer, want) in [("DECLINE", "declined"), ("WRONGPIN", "wrong_pin")] {
        let (code, r) = sign_while(&page, &c, b"second thoughts", "raw", || {
            answer_in_app(&mut app, answer);
        });
        assert_eq!(r["error"]["code"], want, "{code} {r}");
    }
    page.end(&c);
    app.say("ENDED");
    app.expect("ENDED");
    // No camera: refused, then allowed but absent; each said in the person's language (Uzbek here).
    app.say("NOCAMERA");
    let (refused, missing) =
        app.expect("NOCAMERA").split_once('|').map(|(a, b)| (a.to_string(), b.to_string())).unwrap();
    assert!(refused.starts_with("Kameraga ruxsat berilmadi"), "{refused}");
    assert!(missing.starts_with("Bu qurilmada brauzer foydalana oladigan kamera yoʻq"), "{missing}");
    // The camera: Chromium's fake camera shows the QR of a new session (a 640x480 video of it); the app
    // scans it (zxing-wasm from the relay), pairs, and signs.
    let c = page.start(None);
    let y4m = root.path().join("qr.y4m");
    write_qr_video(&c.qr, &y4m);
    app.say(&format!("CAMERA {}", y4m.display()));
    let sas = app.expect("SAS");
    assert_eq!(page.wait(&c, "connected")["sas"], sas.as_str());
    let (code, r) = sign_while(&page, &c, b"scanned with the camera", "raw", || {
        answer_in_app(&mut app, "APPROVE");
    });
    assert_eq!(code, 200, "{r}");

    // A computer that puts markup in its QR's origin: the app shows it as text and makes no element.
    // Its link arrives while the scanned session is still open: the link is in the address bar, its
    // hashchange still queued, when that session ends. The ending screen must leave the newer link alone
    // (it used to clear the address bar whenever its session ended, and the link was lost: once in CI).
    // The origin is refused before the QR's keys are used, so the QR is the scanned one, its origin
    // replaced and its issue time now.
    let mut p = kalit_core::session::Qr::parse(&c.qr).unwrap().payload;
    let hostile_qr = |p: &mut kalit_proto::session::QrPayload, origin: &str| {
        p.origin = origin.into();
        p.iat = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
        format!("kalit:{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(serde_json::to_vec(&p).unwrap()))
    };
    app.say(&format!("LINKLATER {}", hostile_qr(&mut p, "<img src=x onerror=\"document.title='pwned'\">")));
    app.expect("LINKLATER");
    page.end(&c);
    app.say("ENDED");
    app.expect("ENDED");
    app.say("HOSTILE");
    let seen = app.expect("HOSTILE");
    assert!(seen.starts_with("images=0 title=Kalit text=") && seen.contains("<img src=x"), "{seen}");
    // And a link opened by navigation (another one: the same link again is the same screen).
    app.say(&format!("HOSTILE {}", hostile_qr(&mut p, "<img src=y onerror=\"document.title='pwned'\">")));
    let seen = app.expect("HOSTILE");
    assert!(seen.starts_with("images=0 title=Kalit text=") && seen.contains("<img src=y"), "{seen}");
    app.say("OFFLINE");
    app.expect("OFFLINE OK");
    // The network gone when a QR's link is opened: the app (from its cache) says the relay cannot be reached,
    // in the person's language, with the relay's address and what to do; nothing reached the relay, so the
    // same QR pairs once the network is back.
    let c = page.start(None);
    app.say(&format!("UNREACHABLE {}", c.qr));
    let said = app.expect("UNREACHABLE");
    assert!(
        said.starts_with(&format!(
            "{} relayiga ulanib boʻlmadi. Telefonning internet aloqasini tekshiring va qayta urinib koʻring.",
            relay.url
        )),
        "in Uzbek, with the relay's address: {said}"
    );
    assert!(said.ends_with("Kod: unavailable"), "{said}");
    assert!(!said.contains("/v1/tunnel"), "the tunnel's path names the session: {said}");
    app.say(&format!("QR {}", c.qr));
    let sas = app.expect("SAS");
    assert_eq!(page.wait(&c, "connected")["sas"], sas.as_str());
    page.end(&c);
    app.say("ENDED");
    app.expect("ENDED");
    app.say("LANGS");
    app.expect("LANGS OK");
    // A full phone: a new key is refused in plain words and the keys already there stay.
    app.say("FULL");
    let full = app.expect("FULL");
    let parts: Vec<&str> = full.split('|').collect();
    assert!(parts[0].starts_with("Telefon xotirasi saqlashni rad etdi"), "{full}");
    assert_eq!(parts[1], parts[2], "no key lost or half-made: {full}");
    // The registration office hands out a link (and its QR) with its address and the code: the app opens
    // with both filled in, makes a key and installs the certificate.
    let svg = root.path().join("enrol.svg");
    let out = crate::common::kalit(
        &[
            "ra",
            "enrol",
            "--dir",
            s(&ra.dir),
            "--subject",
            "CN=Link Citizen,C=UZ",
            "--ttl",
            "1h",
            "--app-url",
            &format!("{}/app/", relay.url),
            "--ra-url",
            &ra_svc.url,
            "--qr-svg",
            s(&svg),
        ],
        &[],
    )
    .ok()
    .stdout;
    let link = out.lines().find(|l| l.contains("#kalit-enrol:")).expect("an enrolment link").trim().to_string();
    assert!(std::fs::read_to_string(&svg).unwrap().contains("<svg"), "the QR of the link");
    app.say(&format!("ENROLLINK {link}"));
    let enrolled = app.expect("ENROLLED");
    assert!(enrolled.starts_with("CN=Link Citizen") && enrolled.contains(&ra_svc.url), "{enrolled}");

    // A -legacy PFX (3DES/RC2, SHA-1 MAC, a Cyrillic password) of a key the RA certified, as people carry
    // them today: the app imports it (node-forge, loaded only then), registers it under a second login, and
    // signs with it after choosing that login; then it exports its own key as a PFX that OpenSSL reads.
    let holder =
        crate::network::enrolled_phone(root.path(), "pfx-holder", "rsa-2048", &ra, &ra_svc.url, "CN=Gulnora Pfx,C=UZ");
    let modern = root.path().join("holder.pfx");
    holder.run(&["export", "main", "--out", s(&modern)], &[PIN, "pfx-pass-123", "pfx-pass-123"]).ok();
    let legacy = root.path().join("legacy.pfx");
    let converted = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "openssl pkcs12 -in {} -passin pass:pfx-pass-123 -nodes -out {pem} && openssl pkcs12 -export -legacy -in {pem} -passout 'pass:Парол-ўзбек1' -out {}",
            modern.display(),
            legacy.display(),
            pem = root.path().join("holder-all.pem").display()
        ))
        .status()
        .unwrap();
    assert!(converted.success());
    app.say(&format!("IMPORTPFX {} Парол-ўзбек1 gov app-gulnora", legacy.display()));
    assert!(app.expect("IMPORTED").contains("CN=Gulnora Pfx"));
    let c = page.start(None);
    app.say(&format!("QRAS app-gulnora {}", c.qr));
    assert_eq!(app.expect("CHOOSING"), "app-dilnoza,app-gulnora");
    let sas = app.expect("SAS");
    assert_eq!(page.wait(&c, "connected")["sas"], sas.as_str());
    let (code, r) = sign_while(&page, &c, b"signed with the key from the flash drive", "cms", || {
        answer_in_app(&mut app, "APPROVE");
    });
    assert_eq!(code, 200, "{r}");
    assert_eq!(r["login"], "app-gulnora");
    assert!(r["signer"].to_string().contains("Gulnora Pfx"), "{r}");
    page.end(&c);
    app.say("EXPORTPFX export-pass-1");
    let pfx = app.expect("PFX");
    if openssl().is_some() {
        let out = Command::new("sh")
            .arg("-c")
            .arg(format!("openssl pkcs12 -in {pfx} -passin pass:export-pass-1 -nodes 2>&1"))
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success() && text.contains("PRIVATE KEY") && text.contains("Dilnoza App"), "{text}");
    }

    // A new PIN; then a backup made in the app (with it) restores with the command line...
    app.say("CHANGEPIN");
    app.expect("PIN CHANGED");
    app.say("BACKUP app-backup-pass");
    let file = app.expect("BACKUP");
    let cli = crate::common::V { dir: root.path().join("restored-from-app") };
    cli.run(&["restore", &file], &["app-backup-pass", "135790", "135790"]).ok();
    let listed = cli.run(&["list", "--json"], &[]).ok().stdout;
    let keys: Vec<serde_json::Value> = serde_json::from_str(&listed).unwrap();
    let work = keys.iter().find(|k| k["label"] == "work").expect("the app's key");
    assert_eq!(work["algorithm"], "p-256", "{listed}");
    assert!(work["certificate"].to_string().contains("Dilnoza App"), "the certificate came along: {listed}");
    assert!(keys.iter().any(|k| k["label"] == "gov"), "the imported key too: {listed}");
    // ... and a backup made by the command line restores in the app (a fresh browser, in Russian).
    let other =
        crate::network::enrolled_phone(root.path(), "cli-phone", "ed25519", &ra, &ra_svc.url, "CN=Vali Cli,C=UZ");
    let cli_backup = root.path().join("cli.backup");
    other.run(&["backup", "--out", s(&cli_backup)], &[PIN, "cli-backup-pass", "cli-backup-pass"]).ok();
    app.say(&format!("RESTORE {} cli-backup-pass", cli_backup.display()));
    assert!(app.expect("RESTORED").contains("main"), "the CLI's key came back in the app");
    // The login's devices as the relay lists them; then this phone removes itself (as one would remove a
    // lost phone): the relay forgets it and so does the app.
    app.say("DEVICES");
    assert_eq!(app.expect("DEVICES"), "1 1", "one device, marked as this phone");
    app.say("REMOVESELF");
    assert_eq!(app.expect("REMOVED"), "0", "no registration left in the app");
    // Ten wrong PINs lock the vault (the right PIN no longer opens it); the keys are kept, for a backup
    // restore or a later unlock policy, never deleted.
    app.say("LOCK");
    let lock = app.expect("LOCK");
    let parts: Vec<&str> = lock.split('|').collect();
    let locked = "Juda koʻp notoʻgʻri PIN-koddan soʻng xazina qulflandi.";
    assert!(parts[0].starts_with(&format!("PIN-kod notoʻgʻri. / {locked}")), "nine failures, then the lock: {lock}");
    assert!(parts[1].starts_with(locked), "the right PIN is refused once locked: {lock}");
    assert_ne!(parts[2], "0", "the keys are still there: {lock}");
    // A certificate's end is announced 30 days ahead on the key's page, and an ended one is said to sign
    // no more (the page's clock moved to 10 days before its end, then past it).
    app.say("CERTEND");
    let end = app.expect("CERTEND");
    let (ending, ended) = end.split_once('|').unwrap_or((&end, ""));
    assert!(
        ending.starts_with("cert-time warn: Muddati 10 kundan keyin tugaydi ("),
        "10 days before the end, a warning: {end}"
    );
    assert!(
        ended.starts_with("cert-time bad: Muddati ") && ended.contains("bu sertifikat bilan endi imzolab boʻlmaydi"),
        "after the end, it signs no more: {end}"
    );
    app.say("QUIT");
    assert_eq!(app.expect("CONSOLE"), "CLEAN", "no PIN in the browser console");
    assert_eq!(app.expect("FOREIGN"), "none", "nothing fetched from any host but the relay and the RA");
}

/// A two-frame 640x480 Y4M video (what Chromium's fake camera plays) of the QR of `text`.
fn write_qr_video(text: &str, path: &Path) {
    let code = qrcode::QrCode::new(text.as_bytes()).unwrap();
    let img = code.render::<image::Luma<u8>>().quiet_zone(true).module_dimensions(5, 5).build();
    let (w, h) = (640usize, 480usize);
    assert!(img.width() as usize <= w && img.height() as usize <= h, "the QR fits the frame");
    let mut y = vec![255u8; w * h];
    let (ox, oy) = ((w - img.width() as usize) / 2, (h - img.height() as usize) / 2);
    for (x, yy, p) in img.enumerate_pixels() {
        y[(oy + yy as usize) * w + ox + x as usize] = p.0[0];
    }
    let chroma = vec![128u8; w * h / 4];
    let mut out = format!("YUV4MPEG2 W{w} H{h} F30:1 Ip A1:1 C420jpeg\n").into_bytes();
    for _ in 0..2 {
        out.extend_from_slice(b"FRAME\n");
        out.extend_from_slice(&y);
        out.extend_from_slice(&chroma);
        out.extend_from_slice(&chroma);
    }
    std::fs::write(path, out).unwrap();
}
