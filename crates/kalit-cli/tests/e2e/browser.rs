//! A real browser: headless Chromium (Debian's package, driven by playwright-core through
//! web/test/browser.mjs) opens the portal of `kalit demo --interactive`, whose page calls kalit.js; the
//! agent and relay carry the request; `kalit vault pair` approves; the page must receive a signature that
//! the agent verified, and OpenSSL verifies it too.
//!
//! Runs when Chromium and web/test/node_modules are present; `KALIT_BROWSER_TEST=1` (set by .ci/run)
//! makes their absence a failure instead of a skip.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use base64::Engine;

use crate::common::{kalit_cmd, openssl, openssl_cms_verify, s};
use crate::signing::finish;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn ready() -> bool {
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    let have = Path::new(&chromium).exists()
        && repo().join("web/test/node_modules/playwright-core").exists()
        && Command::new("node").arg("--version").output().is_ok_and(|o| o.status.success());
    if !have {
        if std::env::var("KALIT_BROWSER_TEST").is_ok_and(|v| v == "1") {
            panic!("KALIT_BROWSER_TEST=1 but Chromium, node or web/test/node_modules is missing (see .ci/run)");
        }
        println!(
            "SKIPPED: browser test needs Debian's chromium and `npm ci` in web/test (apt-get install chromium; cd web/test && npm ci)"
        );
    }
    have
}

fn field(line: &str, label: &str) -> Option<String> {
    line.trim_start().strip_prefix(label).map(|r| r.split_whitespace().next().unwrap_or("").to_string())
}

/// What one signature through the page gave: the page's result, the phone's output, the document.
struct PageRun {
    result: serde_json::Value,
    phone_code: i32,
    phone_out: String,
    doc: Option<String>,
    sas: String,
}

/// Opens `portal` in Chromium, asks for a `format` signature, and answers on the phone (`kalit vault
/// pair` with `vault` and `pin`) when the page shows its QR.
fn sign_on_page(portal: &str, format: &str, vault: &str, pin: &str, shot: &Path) -> PageRun {
    sign_in_browser(portal, format, None, vault, &[pin, "y", pin], shot)
}

/// The same, for the text (`file` None) or a file chosen in the page's file picker, with the phone's
/// answers given up front (the PIN to join, then per request).
fn sign_in_browser(
    portal: &str,
    format: &str,
    file: Option<&Path>,
    vault: &str,
    phone_answers: &[&str],
    shot: &Path,
) -> PageRun {
    let mut cmd = Command::new("node");
    cmd.arg(repo().join("web/test/browser.mjs"))
        .env("PORTAL_URL", portal)
        .env("FORMAT", format)
        .env("SCREENSHOT", shot);
    if let Some(f) = file {
        cmd.env("FILE", f);
    }
    let mut node = cmd.stdout(Stdio::piped()).stderr(Stdio::inherit()).spawn().unwrap();
    let mut phone = None;
    let (mut doc, mut sas, mut result) = (None, None, None);
    for line in BufReader::new(node.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        if let Some(q) = line.strip_prefix("QR ") {
            let answers = crate::common::pair_answers(std::path::Path::new(vault), q, phone_answers);
            let mut child = kalit_cmd(&["vault", "--vault", vault, "pair", q]).spawn().unwrap();
            crate::common::feed(&mut child, &answers.iter().map(String::as_str).collect::<Vec<_>>());
            phone = Some(child);
        } else if let Some(d) = line.strip_prefix("DOC ") {
            doc = Some(serde_json::from_str::<String>(d).unwrap());
        } else if let Some(v) = line.strip_prefix("SAS ") {
            sas = Some(v.to_string());
        } else if let Some(r) = line.strip_prefix("RESULT ") {
            result = Some(serde_json::from_str::<serde_json::Value>(r).unwrap());
        }
    }
    let status = node.wait().unwrap();
    let mut phone = phone.expect("the page showed a QR");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while phone.try_wait().unwrap().is_none() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let _ = phone.kill();
    let (phone_code, pout, perr) = finish(phone);
    let result = result.expect("the page reported a result");
    assert!(status.success(), "{format}: page result {result}\nphone: {pout}{perr}");
    assert_eq!(result["result"], "valid", "{result}");
    assert_eq!(phone_code, 0, "{pout}{perr}");
    let sas = sas.expect("the page showed the SAS");
    assert!(pout.contains(&sas), "phone and page show the same SAS {sas}: {pout}");
    PageRun { result, phone_code, phone_out: pout + &perr, doc, sas }
}

/// OpenSSL judges a raw or CMS signature the browser received (the page's `result`, over `doc`); files
/// named `name.*` in `out`.
fn openssl_judges(result: &serde_json::Value, doc: &str, format: &str, name: &str, out: &Path) {
    let sig = base64::engine::general_purpose::STANDARD.decode(result["signature"].as_str().unwrap()).unwrap();
    let doc_path = out.join(format!("{name}.txt"));
    let sig_path = out.join(format!("{name}.sig"));
    let cert_path = out.join(format!("{name}.pem"));
    std::fs::write(&doc_path, doc).unwrap();
    std::fs::write(&sig_path, &sig).unwrap();
    std::fs::write(&cert_path, result["certificate"].as_str().unwrap()).unwrap();
    if openssl().is_some() {
        if format == "cms" {
            openssl_cms_verify(&sig_path, &doc_path, &out.join("ca.pem"));
        } else {
            crate::common::verify_raw_with_openssl("p-256", false, &cert_path, &doc_path, &sig_path, out);
        }
    }
}

/// `kalit demo --interactive`: its process, the lines still to come, and what the test reads from it.
struct Demo {
    child: std::process::Child,
    portal: String,
    direct: String,
    vault: String,
    pin: String,
    relay: String,
    ra: String,
    /// An enrolment code for the phone app.
    app_code: String,
}

fn interactive_demo(out: &Path) -> Demo {
    let mut child = kalit_cmd(&["demo", "--interactive", "--out", s(out)]).stdin(Stdio::null()).spawn().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let (mut portal, mut direct, mut vault, mut pin) = (None, None, None, None);
    let (mut relay, mut ra, mut app_code) = (None, None, None);
    for line in lines.by_ref() {
        let line = line.unwrap();
        portal = portal.or(field(&line, "portal:").filter(|p| p.starts_with("http")));
        direct = direct.or(field(&line, "direct:").filter(|p| p.starts_with("http")));
        vault = vault.or(field(&line, "phone vault:"));
        pin = pin.or(field(&line, "phone PIN:"));
        if let Some((_, rest)) = line.split_once("   relay: ") {
            let mut w = rest.split_whitespace();
            relay = w.next().map(str::to_string);
            ra = w.nth(1).map(str::to_string);
        }
        if let Some((_, rest)) = line.split_once("with the code ") {
            app_code = Some(rest.trim_end_matches(',').trim().to_string());
        }
        if app_code.is_some() || line.contains("Demo FAILED") {
            break;
        }
    }
    std::thread::spawn(move || for _ in lines {});
    Demo {
        child,
        portal: portal.expect("portal URL"),
        direct: direct.expect("direct portal URL"),
        vault: vault.expect("vault"),
        pin: pin.expect("PIN"),
        relay: relay.expect("relay URL"),
        ra: ra.expect("RA URL"),
        app_code: app_code.expect("an enrolment code for the app"),
    }
}

/// The phone app in an emulated phone, set up on the demo's RA and relay and registered as `login`;
/// screenshots under target/screenshots/`shots`.
fn app_phone(demo: &Demo, login: &str, shots: &str) -> crate::phone_app::TsPhone {
    let shots = repo().join("target/screenshots").join(shots);
    let _ = std::fs::remove_dir_all(&shots);
    let mut cmd = Command::new("node");
    cmd.arg(repo().join("phone/test-browser/app.mjs"))
        .env("APP_URL", format!("{}/app/", demo.relay))
        .env("RA_URL", &demo.ra)
        .env("CODE", &demo.app_code)
        .env("LOGIN", login)
        .env("SHOTS", &shots);
    let mut app = crate::phone_app::TsPhone::spawn(cmd);
    app.say("SETUP");
    assert!(app.expect("REGISTERED").contains(login));
    app
}

/// The portal's file picker signs `file` (as `format` when given) with the phone app `app` as the phone:
/// the app scans the QR, waits for the prompt, `check` looks at it (it starts by reading the PROMPT line),
/// and the app approves. Returns the page's result.
fn app_signs_file(
    demo: &Demo,
    app: &mut crate::phone_app::TsPhone,
    file: &Path,
    format: Option<&str>,
    mut check: impl FnMut(&mut crate::phone_app::TsPhone),
) -> serde_json::Value {
    let mut cmd = Command::new("node");
    cmd.arg(repo().join("web/test/browser.mjs")).env("PORTAL_URL", &demo.portal).env("FILE", file);
    if let Some(f) = format {
        cmd.env("FORMAT", f);
    }
    let mut node = cmd.stdout(Stdio::piped()).stderr(Stdio::inherit()).spawn().unwrap();
    let mut result = None;
    for line in BufReader::new(node.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        if let Some(q) = line.strip_prefix("QR ") {
            app.say(&format!("QR {q}"));
            app.expect("VOUCH");
            app.expect("SAS");
            app.say("PROMPT");
            check(app);
            app.say("APPROVE");
            assert_eq!(app.expect("ANSWERED"), "", "the app signed");
        } else if let Some(r) = line.strip_prefix("RESULT ") {
            result = Some(serde_json::from_str::<serde_json::Value>(r).unwrap());
        }
    }
    assert!(node.wait().unwrap().success(), "the page received a signature the agent verified");
    result.expect("a result")
}

fn stop(demo: Demo) {
    let _ = Command::new("kill").args(["-INT", &demo.child.id().to_string()]).status();
    let (code, _, _) = finish(demo.child);
    assert_eq!(code, 0, "the interactive demo stops cleanly on Ctrl-C");
}

#[test]
fn a_real_browser_signs_through_kalit_js_agent_relay_and_phone() {
    if !ready() {
        return;
    }
    let out = tempfile::tempdir().unwrap();
    let demo = interactive_demo(out.path());
    let (portal, vault, pin) = (demo.portal.clone(), demo.vault.clone(), demo.pin.clone());
    let shots = repo().join("target/screenshots/portal");
    std::fs::create_dir_all(&shots).unwrap();
    for format in ["cms", "raw", "pades"] {
        let run = sign_on_page(&portal, format, &vault, &pin, &shots.join(format!("{format}.png")));
        assert_eq!(run.result["mode"], "agent", "{}", run.result["text"]);
        if format == "pades" {
            // The signed PDF the page received: OpenSSL over its byte ranges, and `kalit verify`.
            let pdf =
                base64::engine::general_purpose::STANDARD.decode(run.result["document"].as_str().unwrap()).unwrap();
            let pdf_path = out.path().join("browser-pades.pdf");
            std::fs::write(&pdf_path, &pdf).unwrap();
            let sigs = kalit_core::pdf::signatures(&pdf).unwrap();
            // The portal's form has its own "sign here" field, and the signature went into it.
            assert_eq!(sigs.iter().map(|s| s.field.as_str()).collect::<Vec<_>>(), ["Imzo"]);
            let (ranges, cms) = (out.path().join("browser-pades.ranges"), out.path().join("browser-pades.cms"));
            std::fs::write(&ranges, sigs[0].signed_bytes(&pdf)).unwrap();
            std::fs::write(&cms, &sigs[0].contents).unwrap();
            if openssl().is_some() {
                openssl_cms_verify(&cms, &ranges, &out.path().join("ca.pem"));
            }
            let ca = out.path().join("ca.pem");
            let v = kalit_cmd(&["verify", "--file", s(&pdf_path), "--ca", s(&ca), "--json"]).output().unwrap();
            let rep: serde_json::Value = serde_json::from_slice(&v.stdout).unwrap();
            assert_eq!(
                (&rep["valid"], &rep["signatures"][0]["level"]),
                (&serde_json::json!(true), &serde_json::json!("B-T")),
                "{rep}"
            );
            assert!(
                run.phone_out.contains("Pages:      1")
                    && run.phone_out.contains("Ariza")
                    && run.phone_out.contains("Field:      Imzo (page 1)"),
                "the phone showed the PDF: {}",
                run.phone_out
            );
            continue;
        }
        assert!(run.phone_out.contains("as this computer says"), "the agent's origin: {}", run.phone_out);
        openssl_judges(
            &run.result,
            run.doc.as_deref().expect("document"),
            format,
            &format!("browser-{format}"),
            out.path(),
        );
    }
    // The same portal reached as http://localhost:PORT is another origin, not on the agent's list: the
    // browser gets no CORS answer, and kalit.js tells "not allowed" apart from "not running".
    let other = portal.replace("127.0.0.1", "localhost");
    let out = Command::new("node")
        .arg(repo().join("web/test/browser.mjs"))
        .env("PORTAL_URL", &other)
        .env("STATUS_ONLY", "1")
        .stderr(Stdio::inherit())
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("STATUS origin_not_allowed"), "{said}");
    stop(demo);
}

/// A file too large to travel to the phone, chosen in the portal's file picker: kalit.js streams it to the
/// agent (the browser reads the file, the page never holds it) with progress, the agent hashes it and the
/// phone signs its digest after saying it cannot check it; OpenSSL verifies the CMS over the file.
#[test]
fn a_real_browser_signs_a_file_too_large_for_the_phone_through_the_agent() {
    if !ready() {
        return;
    }
    let out = tempfile::tempdir().unwrap();
    let demo = interactive_demo(out.path());
    let file = out.path().join("arxiv-100.txt");
    {
        use std::io::Write;
        let mut f = std::io::BufWriter::new(std::fs::File::create(&file).unwrap());
        for i in 0..(100u64 << 20) / 64 {
            writeln!(f, "{i:012} Shartnoma ilovasi: tomonlar quyidagilarga kelishdilar.").unwrap();
        }
    }
    let shots = repo().join("target/screenshots/portal");
    std::fs::create_dir_all(&shots).unwrap();
    let pin = demo.pin.clone();
    // Join; approve; confirm what the phone cannot check; PIN.
    let run = sign_in_browser(
        &demo.portal,
        "cms",
        Some(&file),
        &demo.vault,
        &[&pin, "y", "y", &pin],
        &shots.join("large-file.png"),
    );
    assert_eq!(run.result["mode"], "agent", "{}", run.result["text"]);
    assert!(run.result["progress"].as_str().unwrap_or("").contains("upload"), "the page saw progress: {}", run.result);
    assert!(run.phone_out.contains("CANNOT CHECK THE REST"), "{}", run.phone_out);
    let bytes = std::fs::read(&file).unwrap();
    assert_eq!(run.result["sha256"], hex::encode(kalit_core::digest::HashAlg::Sha256.digest(&bytes)));
    let sig = base64::engine::general_purpose::STANDARD.decode(run.result["signature"].as_str().unwrap()).unwrap();
    let sig_path = out.path().join("arxiv-100.p7s");
    std::fs::write(&sig_path, &sig).unwrap();
    if openssl().is_some() {
        openssl_cms_verify(&sig_path, &file, &out.path().join("ca.pem"));
    }
    // The same file with the phone app as the phone: it warns in the person's language (Uzbek here) and
    // holds Approve back until the separate confirmation is ticked.
    if crate::phone_app::app_browser_ready() {
        let mut app = app_phone(&demo, "app-large", "phone-app-large");
        let result = app_signs_file(&demo, &mut app, &file, None, |app| {
            assert!(app.expect("PROMPT").contains("arxiv-100.txt"));
            app.say("UNCHECKED");
            let shown = app.expect("UNCHECKED");
            assert!(shown.starts_with("held|released|") && shown.contains("tekshira olmaydi"), "{shown}");
        });
        let sig = base64::engine::general_purpose::STANDARD.decode(result["signature"].as_str().unwrap()).unwrap();
        let sig_path = out.path().join("arxiv-100-app.p7s");
        std::fs::write(&sig_path, &sig).unwrap();
        if openssl().is_some() {
            openssl_cms_verify(&sig_path, &file, &out.path().join("ca.pem"));
        }
        app.say("QUIT");
    }
    stop(demo);
}

/// A PDF signature with the phone app as the phone: the portal's file picker sends a PDF with object and
/// cross-reference streams (qpdf rewrote it); the agent prepares it; the app checks the prepared PDF itself
/// (protocol/pdf.ts), draws its pages with pdf.js, and signs the digest of its byte ranges. pdfsig,
/// pyHanko, qpdf and `kalit verify` judge what the page receives.
#[test]
fn the_phone_app_checks_draws_and_signs_a_pdf_from_the_portal() {
    if !ready() || !crate::phone_app::app_browser_ready() {
        return;
    }
    let out = tempfile::tempdir().unwrap();
    let demo = interactive_demo(out.path());
    let hand = out.path().join("hand.pdf");
    std::fs::write(&hand, crate::pades::form_pdf()).unwrap();
    let pdf = out.path().join("ariza.pdf");
    let q = Command::new("qpdf").args(["--object-streams=generate", s(&hand), s(&pdf)]).status();
    assert!(q.is_ok_and(|q| q.success()), "qpdf rewrites the PDF with object streams");
    let mut app = app_phone(&demo, "app-pdf", "phone-app-pdf");
    let result = app_signs_file(&demo, &mut app, &pdf, Some("pades"), |app| {
        assert!(app.expect("PROMPT").contains("ariza.pdf"));
        app.say("PDF");
        let facts = app.expect("PDF");
        let f: Vec<&str> = facts.splitn(6, '|').collect();
        assert_eq!(f[0], "2", "two pages: {facts}");
        assert_eq!(f[1], "Ijara shartnomasi", "the title: {facts}");
        assert!(f[2].contains("KalitSignature1") && f[2].contains('1'), "the field and its page: {facts}");
        assert_eq!(f[3], "2", "both pages drawn: {facts}");
        assert!(f[4].parse::<u64>().unwrap_or(0) > 100, "page 1 has ink on it: {facts}");
        assert!(f[5].contains("Ijara shartnomasi No. 17"), "the first page's text, read by pdf.js: {facts}");
    });
    assert_eq!(result["format"], "pades", "{result}");
    let signed = base64::engine::general_purpose::STANDARD.decode(result["document"].as_str().unwrap()).unwrap();
    let signed_path = out.path().join("ariza-signed.pdf");
    std::fs::write(&signed_path, &signed).unwrap();
    let ca = out.path().join("ca.pem");
    let v = kalit_cmd(&["verify", "--file", s(&signed_path), "--ca", s(&ca), "--json"]).output().unwrap();
    assert!(v.status.success(), "kalit verify: {}", String::from_utf8_lossy(&v.stdout));
    if let Some(j) = crate::pades::judges() {
        let (nssdb, root_pem) = crate::pades::trusting_nss(out.path(), &ca);
        crate::pades::judges_accept(&j, &nssdb, &root_pem, &signed_path, "the app's PAdES", true);
    }
    app.say("QUIT");
    stop(demo);
}

/// Direct mode: the same portal on a computer with no agent. kalit.js makes the session itself through
/// the relay, the relay vouches for the page's origin to the phone, the page checks the signature, and
/// OpenSSL verifies what the page received.
#[test]
fn a_browser_with_no_agent_signs_in_direct_mode_through_the_relay() {
    if !ready() {
        return;
    }
    let out = tempfile::tempdir().unwrap();
    let demo = interactive_demo(out.path());
    let shots = repo().join("target/screenshots/portal");
    std::fs::create_dir_all(&shots).unwrap();
    for format in ["cms", "raw"] {
        let run =
            sign_on_page(&demo.direct, format, &demo.vault, &demo.pin, &shots.join(format!("direct-{format}.png")));
        assert_eq!(run.result["mode"], "direct", "{}", run.result);
        assert_eq!(run.phone_code, 0);
        // The phone shows who vouches for the origin, and asked no name for the page's one-session key.
        let origin = demo.direct.trim_end_matches('/');
        assert!(
            run.phone_out.contains(&format!("Sign request from {origin} (the relay http://127.0.0.1:")),
            "{}",
            run.phone_out
        );
        assert!(run.phone_out.contains("vouches for this origin"), "{}", run.phone_out);
        assert!(!run.phone_out.contains("NEVER SEEN"), "{}", run.phone_out);
        assert!(!run.sas.is_empty());
        let doc = run.doc.as_deref().expect("document");
        openssl_judges(&run.result, doc, format, &format!("browser-direct-{format}"), out.path());
    }
    // A PDF signature needs the agent: the page is told so, with a stable code.
    let page = Command::new("node")
        .arg(repo().join("web/test/browser.mjs"))
        .env("PORTAL_URL", &demo.direct)
        .env("FORMAT", "pades")
        .env("EXPECT_ERROR", "1")
        .stderr(Stdio::inherit())
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&page.stdout);
    assert!(said.contains("RESULT ") && said.contains("error:invalid_input"), "{said}");
    stop(demo);
}

/// Direct mode with the phone app as the phone: desktop Chromium on the portal with no agent, the app in
/// an emulated phone; the app shows that the relay vouches for the origin, the page gets a CMS signature
/// that OpenSSL verifies.
#[test]
fn a_browser_with_no_agent_signs_with_the_phone_app_in_direct_mode() {
    if !ready() || !crate::phone_app::app_browser_ready() {
        return;
    }
    let out = tempfile::tempdir().unwrap();
    let demo = interactive_demo(out.path());
    let mut app = app_phone(&demo, "app-direct", "phone-app-direct");
    let mut node = Command::new("node")
        .arg(repo().join("web/test/browser.mjs"))
        .env("PORTAL_URL", &demo.direct)
        .env("FORMAT", "cms")
        .env("SCREENSHOT", out.path().join("page.png"))
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let (mut doc, mut result, mut sas) = (None, None, None);
    for line in BufReader::new(node.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        if let Some(q) = line.strip_prefix("QR ") {
            app.say(&format!("QR {q}"));
            let vouch = app.expect("VOUCH");
            // In the app's language (Uzbek here): the relay's address is in it, the agent's words are not.
            let relay_host = demo.relay.trim_start_matches("http://");
            assert!(vouch.contains(relay_host) && vouch.contains("relayi tasdiqlaydi"), "{vouch}");
            sas = Some(app.expect("SAS"));
            app.say("PROMPT");
            let shown = app.expect("PROMPT");
            assert!(
                shown.starts_with(&format!("{}|application.txt|Ariza", demo.direct.trim_end_matches('/'))),
                "{shown}"
            );
            app.say("APPROVE");
        } else if let Some(d) = line.strip_prefix("DOC ") {
            doc = Some(serde_json::from_str::<String>(d).unwrap());
        } else if let Some(r) = line.strip_prefix("RESULT ") {
            result = Some(serde_json::from_str::<serde_json::Value>(r).unwrap());
        } else if let Some(v) = line.strip_prefix("SAS ") {
            assert_eq!(Some(v), sas.as_deref(), "the page and the app show the same code");
        }
    }
    assert!(node.wait().unwrap().success());
    let result = result.expect("the page's result");
    assert_eq!(
        (&result["result"], &result["mode"]),
        (&serde_json::json!("valid"), &serde_json::json!("direct")),
        "{result}"
    );
    openssl_judges(&result, &doc.expect("the document"), "cms", "app-direct", out.path());
    app.say("QUIT");
    stop(demo);
}

/// Same device: the portal (no agent) in a tab of an emulated phone offers "Sign with Kalit on this
/// phone"; the app opens in a new tab, the portal's tab is frozen meanwhile (`Page.setWebLifecycleState`)
/// and drops its socket; the app approves and closes its tab; the portal wakes up, takes its session back
/// from the relay with its resume secret, and receives the signature, which OpenSSL verifies.
#[test]
fn a_portal_on_the_phone_signs_with_the_app_on_the_same_phone_across_a_frozen_tab() {
    if !ready() || !crate::phone_app::app_browser_ready() {
        return;
    }
    let out = tempfile::tempdir().unwrap();
    let demo = interactive_demo(out.path());
    let mut app = app_phone(&demo, "same-device", "same-device");
    app.say(&format!("SAMEDEVICE {}", demo.direct));
    assert_eq!(app.expect("MODE"), "direct");
    let doc: String = serde_json::from_str(&app.expect("DOC")).unwrap();
    let shown = app.expect("PROMPT");
    assert!(shown.starts_with(&format!("{}|application.txt|Ariza", demo.direct.trim_end_matches('/'))), "{shown}");
    let result: serde_json::Value = serde_json::from_str(&app.expect("SAMEDEVICE")).unwrap();
    assert_eq!(
        (&result["result"], &result["mode"]),
        (&serde_json::json!("valid"), &serde_json::json!("direct")),
        "{result}"
    );
    // The portal's socket did drop and come back (the relay counted it).
    let metrics = reqwest::blocking::get(format!("{}/metrics", demo.relay)).unwrap().text().unwrap();
    assert!(metrics.contains("kalit_relay_tunnel_total{result=\"resumed\"} 1"), "{metrics}");
    openssl_judges(&result, &doc, "cms", "same-device", out.path());
    // With the agent too: a portal can offer the link to a person whose phone is their only device.
    app.say(&format!("SAMEDEVICE {}", demo.portal));
    assert_eq!(app.expect("MODE"), "agent");
    let result: serde_json::Value = serde_json::from_str(&app.expect("SAMEDEVICE")).unwrap();
    assert_eq!(
        (&result["result"], &result["mode"]),
        (&serde_json::json!("valid"), &serde_json::json!("agent")),
        "{result}"
    );
    app.say("QUIT");
    stop(demo);
}
