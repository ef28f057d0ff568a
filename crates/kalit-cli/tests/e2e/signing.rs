//! The signature process across real processes: `kalit ra serve`, `kalit relay serve`, `kalit agent serve`
//! and phones answering with `kalit vault pair`, while the test plays the web page (HTTP with an Origin).
//! Every signature is also checked by OpenSSL.

use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::{Value, json};

use crate::common::{PIN, V, feed, kalit, kalit_cmd, openssl, openssl_cms_verify, s, verify_raw_with_openssl};
use crate::network::{Ra, Service, enrolled_phone};

/// RA, relay and agent, with `origins` allowed in the agent.
pub struct Stack {
    pub root: tempfile::TempDir,
    pub ra: Ra,
    _ra_svc: Service,
    pub ra_url: String,
    pub relay: Option<Service>,
    pub relay_url: String,
    pub relay_data: PathBuf,
    pub agent: Service,
}

pub fn relay_serve(data: &Path, ca: &Path, listen: &str) -> Service {
    Service::start(&["relay", "serve", "--data", s(data), "--listen", listen, "--trust", s(ca)], None)
}

/// `kalit agent serve` on a free loopback port with `origins` allowed in `data`.
pub fn agent_serve(data: &Path, origins: &[&str], relay_url: &str, trust: &Path, extra: &[&str]) -> Service {
    for o in origins {
        kalit(&["agent", "--data", s(data), "allow", o], &[]).ok();
    }
    let mut args = vec!["agent", "--data", s(data), "serve", "--listen", "127.0.0.1:0", "--relay", relay_url];
    args.extend(["--trust", s(trust)]);
    args.extend_from_slice(extra);
    Service::start(&args, None)
}

pub fn stack(origins: &[&str]) -> Stack {
    let root = tempfile::tempdir().unwrap();
    let ra = Ra::init(root.path(), "ra");
    let ra_svc = ra.serve();
    let ra_url = ra_svc.url.clone();
    let relay_data = root.path().join("relay");
    let relay = relay_serve(&relay_data, &ra.ca(), "127.0.0.1:0");
    let relay_url = relay.url.clone();
    let agent = agent_serve(&root.path().join("agent"), origins, &relay_url, &ra.ca(), &[]);
    Stack { ra, _ra_svc: ra_svc, ra_url, relay: Some(relay), relay_url, relay_data, agent, root }
}

impl Stack {
    /// A phone with one `alg` key, enrolled and registered under `login`.
    pub fn phone(&self, name: &str, alg: &str, login: &str) -> V {
        let v = enrolled_phone(self.root.path(), name, alg, &self.ra, &self.ra_url, &format!("CN={login},C=UZ"));
        v.run(&["register", "main", "--relay", &self.relay_url, "--login", login], &[PIN]).ok();
        v
    }
}

/// The test's web page: calls the agent with an Origin header, as a browser would.
pub struct Page {
    http: reqwest::blocking::Client,
    agent: String,
    pub origin: String,
}

pub struct Created {
    pub session: String,
    pub token: String,
    pub qr: String,
}

impl Page {
    pub fn new(agent: &str, origin: &str) -> Page {
        let http = reqwest::blocking::Client::builder().timeout(Duration::from_secs(120)).build().unwrap();
        Page { http, agent: agent.to_string(), origin: origin.to_string() }
    }

    pub fn call(&self, method: &str, path: &str, token: Option<&str>, body: Option<Value>) -> (u16, Value) {
        let url = format!("{}{path}", self.agent);
        let mut r = self.http.request(method.parse().unwrap(), url).header("origin", &self.origin);
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        if let Some(b) = body {
            r = r.json(&b);
        }
        let resp = r.send().unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    pub fn start(&self, ttl: Option<u32>) -> Created {
        let body = ttl.map_or(json!({}), |t| json!({ "ttl": t }));
        let (st, v) = self.call("POST", "/v1/sessions", None, Some(body));
        assert_eq!(st, 201, "{v}");
        Created {
            session: v["session"].as_str().unwrap().into(),
            token: v["token"].as_str().unwrap().into(),
            qr: v["qr"].as_str().unwrap().into(),
        }
    }

    pub fn state(&self, c: &Created) -> Value {
        let (st, v) = self.call("GET", &format!("/v1/sessions/{}", c.session), Some(&c.token), None);
        assert_eq!(st, 200, "{v}");
        v
    }

    /// Waits until the session reaches `phase` (or closes); returns its state.
    pub fn wait(&self, c: &Created, phase: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let v = self.state(c);
            if v["phase"] == phase || v["phase"] == "closed" || Instant::now() > deadline {
                return v;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn sign(&self, c: &Created, data: &[u8], format: &str, pss: bool) -> (u16, Value) {
        let body = json!({ "data": B64.encode(data), "name": "contract.txt", "media_type": "text/plain", "format": format, "pss": pss });
        self.call("POST", &format!("/v1/sessions/{}/sign", c.session), Some(&c.token), Some(body))
    }

    pub fn end(&self, c: &Created) {
        let _ = self.call("DELETE", &format!("/v1/sessions/{}", c.session), Some(&c.token), None);
    }
}

/// `kalit vault pair QR` on `v`, with the answers given up front (PIN to join, then per document).
pub fn pair(v: &V, qr: &str, answers: &[&str]) -> Child {
    let answers = crate::common::pair_answers(&v.dir, qr, answers);
    let mut child = kalit_cmd(&["vault", "--vault", s(&v.dir), "pair", qr]).spawn().unwrap();
    feed(&mut child, &answers.iter().map(String::as_str).collect::<Vec<_>>());
    child
}

pub fn finish(child: Child) -> (i32, String, String) {
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn sign_with(stack: &Stack, alg: &str, origin: &str) {
    let login = format!("citizen.{}", alg.replace('-', ""));
    let v = stack.phone(&format!("phone-{alg}"), alg, &login);
    let page = Page::new(&stack.agent.url, origin);
    let c = page.start(None);
    let rsa = alg.starts_with("rsa");
    let mut answers = vec![PIN, "y", PIN, "y", PIN];
    if rsa {
        answers.extend(["y", PIN]);
    }
    let phone = pair(&v, &c.qr, &answers);
    let st = page.wait(&c, "connected");
    assert_eq!(st["phase"], "connected", "{alg}: {st}");
    assert_eq!(st["login"], login.as_str());
    let sas = st["sas"].as_str().unwrap().to_string();
    let doc = format!("Contract for {login}\nsigned through agent, relay and phone ({alg}).\n");
    let work = stack.root.path().join(format!("work-{alg}"));
    std::fs::create_dir_all(&work).unwrap();
    let doc_path = work.join("contract.txt");
    std::fs::write(&doc_path, &doc).unwrap();
    let mut formats = vec![("cms", false), ("raw", false)];
    if rsa {
        formats.push(("raw", true));
    }
    for (format, pss) in formats {
        let (code, r) = page.sign(&c, doc.as_bytes(), format, pss);
        assert_eq!(code, 200, "{alg} {format}: {r}");
        assert_eq!(r["sha256"], hex::encode(kalit_core::digest::HashAlg::Sha256.digest(doc.as_bytes())));
        let sig = B64.decode(r["signature"].as_str().unwrap()).unwrap();
        let sig_path = work.join(format!("sig-{format}-{pss}"));
        std::fs::write(&sig_path, &sig).unwrap();
        let chain = work.join("chain.pem");
        std::fs::write(&chain, r["certificate_pem"].as_str().unwrap()).unwrap();
        if openssl().is_some() {
            match format {
                "cms" => openssl_cms_verify(&sig_path, &doc_path, &stack.ra.ca()),
                _ => verify_raw_with_openssl(alg, pss, &chain, &doc_path, &sig_path, &work),
            }
        }
        // And Kalit's own verifier, through the agent, against its trust anchors.
        let mut body = json!({ "data": B64.encode(doc.as_bytes()), "signature": r["signature"], "format": format });
        if format == "raw" {
            body["certificate"] = r["certificate_pem"].clone();
        }
        let (code, rep) = page.call("POST", "/v1/verify", None, Some(body));
        assert_eq!((code, &rep["valid"]), (200, &json!(true)), "{rep}");
        assert_eq!(rep["chain"]["trusted"], true, "{rep}");
        let (code, rep) = page.call(
            "POST",
            "/v1/verify",
            None,
            Some(json!({ "data": B64.encode(b"another document"), "signature": r["signature"], "format": format, "certificate": r["certificate_pem"] })),
        );
        assert_eq!((code, &rep["valid"]), (200, &json!(false)), "{rep}");
    }
    page.end(&c);
    let (code, out, err) = finish(phone);
    assert_eq!(code, 0, "{alg}: {out}\n{err}");
    assert!(out.contains(&sas), "the phone shows the same SAS {sas}: {out}");
    assert!(out.contains("Sign request from") && out.contains("Preview:") && out.contains("Contract for"), "{out}");
    let history = v.run(&["history", "--json"], &[]).ok().stdout;
    let n = if rsa { 3 } else { 2 };
    assert_eq!(history.matches(&format!("\"origin\": \"{origin}\"")).count(), n, "{history}");
}

#[test]
fn raw_and_cms_signatures_for_every_algorithm_through_agent_relay_and_phone() {
    let algs = ["p-256", "ed25519", "rsa-2048", "rsa-3072"];
    let origins: Vec<String> = (0..algs.len()).map(|i| format!("https://portal{i}.example")).collect();
    let refs: Vec<&str> = origins.iter().map(String::as_str).collect();
    let stack = stack(&refs);
    std::thread::scope(|sc| {
        for (alg, origin) in algs.iter().zip(&origins) {
            let stack = &stack;
            sc.spawn(move || sign_with(stack, alg, origin));
        }
    });
}

#[test]
fn declined_expired_altered_and_foreign_qrs_produce_no_signature() {
    let origin = "https://portal.example";
    let stack = stack(&[origin]);
    let v = stack.phone("phone", "p-256", "ali");
    let page = Page::new(&stack.agent.url, origin);
    // Declined: 403 declined, the session stays usable, nothing in the history.
    let c = page.start(None);
    let phone = pair(&v, &c.qr, &[PIN, "n"]);
    assert_eq!(page.wait(&c, "connected")["phase"], "connected");
    let (code, r) = page.sign(&c, b"please sign", "cms", false);
    assert_eq!((code, r["error"]["code"].as_str()), (403, Some("declined")), "{r}");
    assert!(r.get("signature").is_none());
    page.end(&c);
    let (code, out, err) = finish(phone);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("0 signed, 1 declined"), "{out}");
    assert!(
        !v.run(&["history", "--json"], &[]).ok().stdout.contains("please"),
        "declined requests are not recorded as signed"
    );
    // Signing before a phone paired: a clear error.
    let c = page.start(Some(1));
    let (code, r) = page.sign(&c, b"x", "raw", false);
    assert_eq!((code, r["error"]["code"].as_str()), (410, Some("expired")), "{r}");
    // Expired QR: the agent closes the session when its time is up, and a phone that scans the QR
    // afterwards gets nothing to sign (no computer waits behind it). The phone's own clock check of a QR
    // older than its lifetime is the state machine's, tested with time as an input (kalit-core tests/flow.rs).
    let st = page.wait(&c, "closed");
    assert_eq!((st["phase"].as_str(), st["error"]["code"].as_str()), (Some("closed"), Some("expired")), "{st}");
    let (code, out, err) = finish(pair(&v, &c.qr, &[PIN]));
    assert_eq!(code, 20, "{out}{err}");
    assert!(err.contains("error[expired]"), "{err}");
    assert!(!out.contains("Sign request"), "{out}");
    // An altered field (the origin shown to the person): the handshake fails on the agent's side, the
    // phone shows nothing to sign.
    let c = page.start(None);
    let qr = kalit_core::session::Qr::parse(&c.qr).unwrap();
    let mut p = qr.payload.clone();
    p.origin = "https://evil.example".into();
    let altered =
        format!("kalit:{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(serde_json::to_vec(&p).unwrap()));
    let (code, out, err) = finish(pair(&v, &altered, &[PIN, "y", PIN]));
    assert_ne!(code, 0, "{out}{err}");
    assert!(!out.contains("Sign request"), "{out}");
    let st = page.wait(&c, "closed");
    assert_eq!(st["error"]["code"], "channel", "{st}");
    // A relay the phone is not registered with; damaged, truncated, oversized and unknown-version QRs.
    let mut p = qr.payload.clone();
    p.relay_id = "another-relay".into();
    let foreign =
        format!("kalit:{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(serde_json::to_vec(&p).unwrap()));
    v.run(&["pair", &foreign], &[PIN]).fails(6, "not_found");
    for bad in [&c.qr[..c.qr.len() / 2], "kalit:!!!", "https://evil.example", &"kalit:A".repeat(500)] {
        v.run(&["pair", bad], &[PIN]).fails(8, "invalid_input");
    }
    v.run(&["pair", "kalit:eyJ2Ijo5fQ"], &[PIN]).fails(8, "invalid_input").stderr.contains("version 9");
    assert!(
        v.run(&["history", "--json"], &[]).ok().stdout.trim() == "[]"
            || !v.run(&["history"], &[]).ok().stdout.contains("evil")
    );
}

#[test]
fn two_phones_race_for_one_qr_and_a_second_computer_cannot_wait_on_it() {
    let origin = "https://portal.example";
    let stack = stack(&[origin]);
    let a = stack.phone("phone-a", "p-256", "ali");
    let b = stack.phone("phone-b", "ed25519", "vali");
    let page = Page::new(&stack.agent.url, origin);
    for round in 0..3 {
        let c = page.start(None);
        // A second computer that photographed the QR derives the tunnel id, but cannot wait on it.
        let tunnel = kalit_core::session::Qr::parse(&c.qr).unwrap().tunnel_id().unwrap();
        let url = kalit_transport::ws_url(&stack.relay_url, &format!("/v1/tunnel/{tunnel}/wait")).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let e = rt.block_on(kalit_transport::connect(&url)).expect_err("second waiter refused");
        assert_eq!(e.code, kalit_proto::ErrorCode::AlreadyExists, "{e}");
        let pa = pair(&a, &c.qr, &[PIN]);
        let pb = pair(&b, &c.qr, &[PIN]);
        let st = page.wait(&c, "connected");
        assert_eq!(st["phase"], "connected", "round {round}: {st}");
        page.end(&c);
        let (ca, oa, ea) = finish(pa);
        let (cb, ob, eb) = finish(pb);
        let winners = [ca, cb].iter().filter(|c| **c == 0).count();
        assert_eq!(winners, 1, "round {round}: exactly one phone wins\nA {ca}: {oa}{ea}\nB {cb}: {ob}{eb}");
        let loser_err = if ca == 0 { eb } else { ea };
        assert!(loser_err.contains("error[expired]") && loser_err.contains("another phone"), "{loser_err}");
        let winner = if ca == 0 { "ali" } else { "vali" };
        assert_eq!(st["login"], winner);
    }
}

#[test]
fn a_relay_restart_mid_session_fails_cleanly_and_a_fresh_session_works() {
    let origin = "https://portal.example";
    let mut stack = stack(&[origin]);
    let v = stack.phone("phone", "p-256", "ali");
    let page = Page::new(&stack.agent.url, origin);
    let c = page.start(None);
    let phone = pair(&v, &c.qr, &[PIN, "y", PIN]);
    assert_eq!(page.wait(&c, "connected")["phase"], "connected");
    let listen = stack.relay_url.trim_start_matches("http://").to_string();
    stack.relay.take().unwrap().stop();
    let (code, out, err) = finish(phone);
    assert_eq!(code, 21, "the phone ends with a retryable error: {out}{err}");
    let st = page.wait(&c, "closed");
    assert_eq!(st["phase"], "closed", "{st}");
    let (code, r) = page.sign(&c, b"after the restart", "raw", false);
    assert_eq!((code, r["error"]["code"].as_str()), (410, Some("expired")), "{r}");
    // A phone that scans a QR while its relay is down is told so before it asks for the PIN.
    let r = v.run(&["pair", &c.qr], &[PIN]).fails(21, "unavailable");
    assert!(!r.stderr.contains("Unlock the vault"), "the PIN was asked first: {}", r.stderr);
    assert!(r.stderr.contains(&format!("cannot reach the relay at ws://{listen}")), "{}", r.stderr);
    assert!(!r.stderr.contains("/v1/tunnel/"), "the message names the relay, not the tunnel: {}", r.stderr);
    // Same port, data directory and database: the registration survived and a new session works.
    stack.relay = Some(relay_serve(&stack.relay_data, &stack.ra.ca(), &listen));
    let c = page.start(None);
    let phone = pair(&v, &c.qr, &[PIN, "y", PIN]);
    assert_eq!(page.wait(&c, "connected")["phase"], "connected");
    let (code, r) = page.sign(&c, b"after the restart", "raw", false);
    assert_eq!(code, 200, "{r}");
    page.end(&c);
    assert_eq!(finish(phone).0, 0);
    // A page of another allowed origin cannot use this session's token; an ended session is gone.
    let (code, _) = page.call("GET", &format!("/v1/sessions/{}", c.session), Some("wrong-token"), None);
    assert_eq!(code, 404);
}

/// The relay gathers tunnel joins' audit rows for a moment before it commits them. Stopped (SIGTERM),
/// it writes the rows it still holds before it exits. The test holds SQLite's write lock while a phone
/// joins, so that the join's row is certainly still unwritten when the relay is told to stop: a relay
/// that exits without writing it loses the row.
#[test]
fn a_stopped_relay_writes_the_audit_rows_it_still_held() {
    use sqlx::Connection;
    let origin = "https://portal.example";
    let mut stack = stack(&[origin]);
    let v = stack.phone("phone", "p-256", "ali");
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let db = format!("sqlite://{}", stack.relay_data.join("relay.db").display());
    let mut lock = rt.block_on(sqlx::SqliteConnection::connect(&db)).unwrap();
    let joins = "SELECT COUNT(*) FROM audit WHERE event = 'tunnel_joined' AND login = 'ali'";
    let count = |c: &mut sqlx::SqliteConnection| rt.block_on(sqlx::query_scalar::<_, i64>(joins).fetch_one(c)).unwrap();
    assert_eq!(count(&mut lock), 0);
    // The relay's audit writer now waits for the lock (SQLite's busy timeout, 5 s) with the join's row.
    rt.block_on(sqlx::query("BEGIN IMMEDIATE").execute(&mut lock)).unwrap();
    let page = Page::new(&stack.agent.url, origin);
    let c = page.start(None);
    let phone = pair(&v, &c.qr, &[PIN, "y", PIN]);
    assert_eq!(page.wait(&c, "connected")["phase"], "connected");
    let mut relay = stack.relay.take().unwrap();
    relay.term();
    std::thread::sleep(Duration::from_millis(700));
    assert!(relay.exited().is_none(), "the relay exited with an audit row unwritten");
    rt.block_on(sqlx::query("ROLLBACK").execute(&mut lock)).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while relay.exited().is_none() {
        assert!(Instant::now() < deadline, "the relay did not exit within 20 s of SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(count(&mut lock), 1, "the join's audit row is written before the relay exits");
    page.end(&c);
    let _ = finish(phone);
}

#[test]
fn agent_rules_as_processes_origins_tokens_sessions_trust_and_qr_images() {
    use std::io::{Read, Write};
    use std::net::TcpStream;
    let (a, b) = ("https://a.example", "https://b.example");
    let stack = stack(&[a, b]);
    let v = stack.phone("phone", "p-256", "ali");
    let (pa, pb) = (Page::new(&stack.agent.url, a), Page::new(&stack.agent.url, b));
    // A session's token is useless from another (even allowed) origin.
    let c = pa.start(None);
    let (code, r) = pb.call("GET", &format!("/v1/sessions/{}", c.session), Some(&c.token), None);
    assert_eq!((code, r["error"]["code"].as_str()), (404, Some("not_found")), "{r}");
    let (code, _) = pb.call("DELETE", &format!("/v1/sessions/{}", c.session), Some(&c.token), None);
    assert_eq!(code, 404);
    assert_eq!(pa.state(&c)["phase"], "waiting", "B's attempts changed nothing");
    // One open session per origin: a new one ends the previous.
    let c2 = pa.start(None);
    assert_eq!(pa.wait(&c, "closed")["phase"], "closed");
    // The QR as a photo (PNG rendered here, decoded by the phone with rqrr).
    let png = stack.root.path().join("qr.png");
    qrcode::QrCode::new(c2.qr.as_bytes()).unwrap().render::<image::Luma<u8>>().build().save(&png).unwrap();
    let mut child =
        crate::common::kalit_cmd(&["vault", "--vault", s(&v.dir), "pair", "--qr-image", s(&png)]).spawn().unwrap();
    let answers = crate::common::pair_answers(&v.dir, &c2.qr, &[PIN, "y", PIN]);
    feed(&mut child, &answers.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(pa.wait(&c2, "connected")["phase"], "connected");
    assert_eq!(pa.sign(&c2, b"from a photo", "cms", false).0, 200);
    pa.end(&c2);
    assert_eq!(finish(child).0, 0);
    v.run(&["pair", "--qr-image", s(&stack.root.path().join("agent").join("origins.json"))], &[])
        .fails(8, "invalid_input");
    // A JPEG photo decodes too (this one holds a QR of an unknown version, refused after decoding).
    let jpg = stack.root.path().join("qr.jpg");
    qrcode::QrCode::new(b"kalit:eyJ2Ijo5fQ")
        .unwrap()
        .render::<image::Luma<u8>>()
        .min_dimensions(300, 300)
        .build()
        .save(&jpg)
        .unwrap();
    let r = v.run(&["pair", "--qr-image", s(&jpg)], &[]).fails(8, "invalid_input");
    assert!(r.stderr.contains("version 9"), "{}", r.stderr);
    // Many sessions from one origin in a burst: 429 with a stable code.
    let codes: Vec<u16> = (0..12).map(|_| pb.call("POST", "/v1/sessions", None, Some(json!({}))).0).collect();
    assert!(codes.contains(&429), "{codes:?}");
    // An agent that does not trust the phone's CA refuses its hello: no connected session.
    let other = Ra::init(stack.root.path(), "other-ra");
    let data = stack.root.path().join("agent2");
    let strict = agent_serve(&data, &[a], &stack.relay_url, &other.ca(), &[]);
    let ps = Page::new(&strict.url, a);
    let c = ps.start(None);
    let phone = pair(&v, &c.qr, &[PIN]);
    let st = ps.wait(&c, "connected");
    assert_eq!(
        (st["phase"].as_str(), st["error"]["code"].as_str()),
        (Some("closed"), Some("untrusted_certificate")),
        "{st}"
    );
    assert_ne!(finish(phone).0, 0);
    // Slow clients that trickle headers do not stop the agent from answering others.
    let addr = stack.agent.url.trim_start_matches("http://").to_string();
    let _slow: Vec<TcpStream> = (0..20)
        .map(|_| {
            let mut t = TcpStream::connect(&addr).unwrap();
            t.write_all(b"POST /v1/sessions HTTP/1.1\r\nHost: ").unwrap();
            t
        })
        .collect();
    let mut ok = TcpStream::connect(&addr).unwrap();
    write!(ok, "GET /v1/status HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").unwrap();
    let mut answer = String::new();
    ok.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    // Operator commands and rules.
    let out = kalit(&["agent", "--data", s(&stack.root.path().join("agent")), "origins", "--json"], &[]).ok().stdout;
    assert!(out.contains(a) && out.contains(b), "{out}");
    for bad in ["null", "*", "https://a.example/path", "ftp://x"] {
        kalit(&["agent", "--data", s(&data), "allow", bad], &[]).fails(8, "invalid_input");
    }
    kalit(&["agent", "--data", s(&data), "deny", a], &[]).ok();
    assert!(!kalit(&["agent", "--data", s(&data), "origins"], &[]).ok().stdout.contains(a));
    kalit(&["agent", "--data", s(&data), "serve", "--listen", "0.0.0.0:0", "--relay", &stack.relay_url], &[])
        .fails(7, "refused_by_policy");
    // Without trust anchors the agent does not start, unless told loudly to rely on the relay alone.
    let r = kalit(&["agent", "--data", s(&data), "serve", "--listen", "127.0.0.1:0", "--relay", &stack.relay_url], &[])
        .fails(2, "usage");
    assert!(
        r.stderr.contains("--trust") && r.stderr.contains("--dangerously-trust-relay-attestations-only"),
        "{}",
        r.stderr
    );
}

#[test]
fn agent_trace_logs_hold_no_session_secrets_or_documents() {
    let origin = "https://portal.example";
    let stack = stack(&[]);
    let v = stack.phone("phone", "p-256", "ali");
    let log = stack.root.path().join("agent.log");
    let data = stack.root.path().join("agent-logged");
    kalit(&["agent", "--data", s(&data), "allow", origin], &[]).ok();
    let agent = Service::start_with(
        &[
            "agent",
            "--data",
            s(&data),
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--relay",
            &stack.relay_url,
            "--trust",
            s(&stack.ra.ca()),
            "--log-format",
            "json",
        ],
        None,
        "trace",
        std::process::Stdio::from(std::fs::File::create(&log).unwrap()),
    );
    let page = Page::new(&agent.url, origin);
    let c = page.start(None);
    let phone = pair(&v, &c.qr, &[PIN, "y", PIN]);
    assert_eq!(page.wait(&c, "connected")["phase"], "connected");
    let doc = b"Confidential: salary 12345678 sum";
    let (code, r) = page.sign(&c, doc, "raw", false);
    assert_eq!(code, 200, "{r}");
    page.end(&c);
    assert_eq!(finish(phone).0, 0);
    drop(agent);
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.lines().count() > 5, "trace logs were written: {text}");
    for line in text.lines() {
        serde_json::from_str::<Value>(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
    }
    let secret = kalit_core::session::Qr::parse(&c.qr).unwrap().payload.s.encode();
    let doc_b64 = B64.encode(doc);
    for (what, needle) in [
        ("QR secret", secret.as_str()),
        ("QR", &c.qr[6..40]),
        ("token", &c.token),
        ("PIN", PIN),
        ("document", "salary 12345678"),
        ("document (base64)", &doc_b64[..20]),
    ] {
        assert!(!text.contains(needle), "the agent's log contains the {what}");
    }
}

/// A phone whose answers are typed one by one, when the test says.
struct SlowPhone {
    child: Child,
    stdin: std::process::ChildStdin,
}

impl SlowPhone {
    fn start(v: &V, qr: &str, first: &[&str]) -> SlowPhone {
        // The answers are worked out before the phone starts: the running phone holds the vault's lock.
        let answers = crate::common::pair_answers(&v.dir, qr, first);
        let mut child = kalit_cmd(&["vault", "--vault", s(&v.dir), "pair", qr]).spawn().unwrap();
        let stdin = child.stdin.take().unwrap();
        let mut p = SlowPhone { child, stdin };
        for a in answers {
            p.say(&a);
        }
        p
    }
    fn say(&mut self, line: &str) {
        use std::io::Write;
        // The phone may have exited already (it then needs no more answers).
        let _ = writeln!(self.stdin, "{line}").and_then(|()| self.stdin.flush());
    }
    fn finish(self) -> (i32, String, String) {
        drop(self.stdin);
        finish(self.child)
    }
}

/// Issue 10's two session bugs, as found: the page ends the session while the phone is prompting and the
/// person approves afterwards; a page that drops its sign request. The phone signs nothing it was asked
/// for by a request that was withdrawn, and the session stays usable after a dropped request.
#[test]
fn a_withdrawn_request_is_never_signed_and_a_dropped_one_leaves_the_session_usable() {
    let origin = "https://portal.example";
    let stack = stack(&[origin]);
    let v = stack.phone("phone", "p-256", "ali");
    let page = Page::new(&stack.agent.url, origin);

    // 1. The page ends the session while the phone shows the request; the person then approves.
    let c = page.start(None);
    let mut phone = SlowPhone::start(&v, &c.qr, &[PIN]);
    assert_eq!(page.wait(&c, "connected")["phase"], "connected");
    let waiting = std::thread::scope(|sc| {
        let pending = sc.spawn(|| page.sign(&c, b"a contract the page gave up on", "cms", false));
        // The phone shows the request (its prompt waits on standard input); then the page gives up.
        std::thread::sleep(Duration::from_millis(1500));
        page.end(&c);
        pending.join().unwrap()
    });
    assert_ne!(waiting.0, 200, "the page's request gets no signature: {}", waiting.1);
    assert_eq!(page.wait(&c, "closed")["phase"], "closed");
    // The withdrawal still has to cross the relay to the phone, which looks for it when the person has
    // answered: under a loaded machine it can arrive after the answer, and then the phone signs what it
    // was shown (the signature reaches no page). Give it time to arrive first.
    std::thread::sleep(Duration::from_millis(1000));
    phone.say("y");
    phone.say(PIN);
    let (code, out, err) = phone.finish();
    assert!(out.contains("withdrew") && out.contains("nothing was signed"), "{code}: {out}{err}");
    assert!(!out.contains("Signed \""), "{out}");
    let history = v.run(&["history", "--json"], &[]).ok().stdout;
    assert!(!history.contains("page gave up"), "no signature was recorded: {history}");

    // 2. The page drops its sign request (a client that disconnects); the session stays usable: the next
    // request is signed, the dropped one never is.
    let c = page.start(None);
    let mut phone = SlowPhone::start(&v, &c.qr, &[PIN]);
    assert_eq!(page.wait(&c, "connected")["phase"], "connected");
    // A client that sends its request and then closes the connection (a tab closed mid-request).
    {
        use std::io::{Read, Write};
        let body = json!({ "data": B64.encode(b"dropped"), "name": "dropped.txt", "media_type": "text/plain", "format": "cms" })
            .to_string();
        let addr = stack.agent.url.trim_start_matches("http://").to_string();
        let mut tcp = std::net::TcpStream::connect(&addr).unwrap();
        write!(
            tcp,
            "POST /v1/sessions/{}/sign HTTP/1.1\r\nHost: {addr}\r\nOrigin: {origin}\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            c.session,
            c.token,
            body.len()
        )
        .unwrap();
        // Wait until the phone has the request (its prompt then waits on standard input); nothing comes back.
        tcp.set_read_timeout(Some(Duration::from_millis(1500))).unwrap();
        let mut buf = [0u8; 1];
        assert!(tcp.read(&mut buf).is_err(), "no answer while the phone decides");
        tcp.shutdown(std::net::Shutdown::Both).unwrap();
    }
    let (code, r) = std::thread::scope(|sc| {
        // The agent frees the session once it notices the dropped connection: at once on an idle
        // machine, a moment later on a loaded one. Until then it answers `busy`, never for good.
        let second = sc.spawn(|| {
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            loop {
                let r = page.sign(&c, b"the one that counts", "cms", false);
                if r.0 != 409 || std::time::Instant::now() > deadline {
                    return r;
                }
                std::thread::sleep(Duration::from_millis(200));
            }
        });
        std::thread::sleep(Duration::from_millis(1000));
        phone.say("y"); // the dropped request's prompt: withdrawn, no PIN asked
        std::thread::sleep(Duration::from_millis(500));
        phone.say("y"); // the second request
        phone.say(PIN);
        second.join().unwrap()
    });
    assert_eq!(code, 200, "the session is still usable: {r}");

    // 3. The page gives up while the person types the PIN (approved already): nothing is signed either.
    let waiting = std::thread::scope(|sc| {
        let pending = sc.spawn(|| page.sign(&c, b"given up during the PIN", "cms", false));
        std::thread::sleep(Duration::from_millis(1000));
        phone.say("y"); // approved: the phone now waits for the PIN
        std::thread::sleep(Duration::from_millis(500));
        page.end(&c);
        pending.join().unwrap()
    });
    assert_ne!(waiting.0, 200, "{}", waiting.1);
    // The person finishes typing the PIN a moment later (a person takes seconds; under a loaded CI
    // machine the withdrawal's frame through agent, relay and tunnel can take longer than no time at all).
    std::thread::sleep(Duration::from_millis(2000));
    phone.say(PIN);
    let (code, out, err) = phone.finish();
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("withdrew \"dropped.txt\""), "{out}");
    assert_eq!(out.matches("before you answered; nothing was signed").count(), 2, "{out}");
    let history = v.run(&["history", "--json"], &[]).ok().stdout;
    assert_eq!(history.matches("contract.txt").count(), 1, "only the second request was signed: {history}");
    assert!(!history.contains("dropped.txt"), "{history}");
}

/// A deployment's transport: the relay on TLS with a certificate from a private CA, which the agent and
/// the phone trust through `KALIT_TLS_CA` (one TLS configuration for their HTTP clients and the `wss://`
/// tunnel). Without it the agent refuses to start; with it, a whole session signs over `wss://`.
#[test]
fn a_session_over_a_tls_relay_with_a_private_ca() {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    let root = tempfile::tempdir().unwrap();
    let root = root.path();
    // The private CA and the relay's server certificate.
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(vec![]).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.distinguished_name.push(rcgen::DnType::CommonName, "Private TLS CA");
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let server_key = KeyPair::generate().unwrap();
    let server = CertificateParams::new(vec!["localhost".into()]).unwrap().signed_by(&server_key, &issuer).unwrap();
    let (tls_ca, tls_cert, tls_key) = (root.join("tls-ca.pem"), root.join("tls.pem"), root.join("tls.key"));
    std::fs::write(&tls_ca, ca_cert.pem()).unwrap();
    std::fs::write(&tls_cert, server.pem()).unwrap();
    std::fs::write(&tls_key, server_key.serialize_pem()).unwrap();
    let env = [("KALIT_TLS_CA", s(&tls_ca))];

    let ra = Ra::init(root, "ra");
    let ra_svc = ra.serve();
    let relay = Service::start(
        &[
            "relay",
            "serve",
            "--data",
            s(&root.join("relay")),
            "--listen",
            "127.0.0.1:0",
            "--trust",
            s(&ra.ca()),
            "--tls-cert",
            s(&tls_cert),
            "--tls-key",
            s(&tls_key),
        ],
        None,
    );
    let relay_url = relay.url.replace("127.0.0.1", "localhost");
    assert!(relay_url.starts_with("https://localhost:"), "{relay_url}");

    let agent_data = root.join("agent");
    kalit(&["agent", "--data", s(&agent_data), "allow", "https://portal.example"], &[]).ok();
    let ra_ca = ra.ca();
    let agent_args = [
        "agent",
        "--data",
        s(&agent_data),
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--relay",
        &relay_url,
        "--trust",
        s(&ra_ca),
    ];
    // Without the private CA the agent cannot fetch the relay's identity and does not start.
    let mut child = kalit_cmd(&agent_args).spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        assert!(Instant::now() < deadline, "the agent started although it cannot trust the relay's certificate");
        std::thread::sleep(Duration::from_millis(50));
    };
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(status.code(), Some(21), "{err}");
    assert!(err.contains("error[unavailable]") && err.contains("relay"), "{err}");
    let agent = Service::start_env(&agent_args, None, "info", std::process::Stdio::null(), &env);

    // The phone registers over https with the same CA, then pairs over wss.
    let v = enrolled_phone(root, "phone", "p-256", &ra, &ra_svc.url, "CN=Tls Citizen,C=UZ");
    let run_phone = |args: &[&str], answers: &[String]| -> Child {
        let mut c = kalit_cmd(&[&["vault", "--vault", s(&v.dir)], args].concat());
        c.envs(env);
        let mut child = c.spawn().unwrap();
        feed(&mut child, &answers.iter().map(String::as_str).collect::<Vec<_>>());
        child
    };
    let (code, out, err) =
        finish(run_phone(&["register", "main", "--relay", &relay_url, "--login", "tls.citizen"], &[PIN.into()]));
    assert_eq!(code, 0, "{out}{err}");
    let page = Page::new(&agent.url, "https://portal.example");
    let c = page.start(None);
    let qr = kalit_core::session::Qr::parse(&c.qr).unwrap();
    assert_eq!(qr.payload.relay, relay_url, "the QR names the TLS relay");
    let phone = run_phone(&["pair", &c.qr], &crate::common::pair_answers(&v.dir, &c.qr, &[PIN, "y", PIN]));
    let st = page.wait(&c, "connected");
    assert_eq!(st["login"], "tls.citizen", "{st}");
    let (code, r) = page.sign(&c, b"Signed over wss with a private CA.\n", "raw", false);
    assert_eq!(code, 200, "{r}");
    page.call("DELETE", &format!("/v1/sessions/{}", c.session), Some(&c.token), None);
    let (code, out, err) = finish(phone);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("Signed"), "{out}");
}

/// Identity rotation across real processes: a phone registered while the relay's root key signed, an
/// agent that pinned the relay; `kalit relay rotate-key`, the root key taken off the node, the relay
/// restarted on the same port: the same relay id, and sessions work (the phone and the agent both check
/// the endorsed key). A second rotation while the relay runs is picked up by itself, and a session signed
/// by the first key's attestation era is followed by one with the second's.
#[test]
fn a_rotated_relay_key_keeps_registrations_pins_and_sessions() {
    let origin = "https://portal.example";
    let mut stack = stack(&[origin]);
    let v = stack.phone("phone", "p-256", "ali");
    let page = Page::new(&stack.agent.url, origin);
    let http = reqwest::blocking::Client::new();
    let identity =
        |url: &str| -> Value { http.get(format!("{url}/.well-known/kalit-relay")).send().unwrap().json().unwrap() };
    let before = identity(&stack.relay_url);
    assert!(before.get("signing_keys").is_none(), "{before}");
    let session = |page: &Page, v: &V, doc: &[u8]| {
        let c = page.start(None);
        let phone = pair(v, &c.qr, &[PIN, "y", PIN]);
        let st = page.wait(&c, "connected");
        assert_eq!(st["phase"], "connected", "{st}");
        let (code, r) = page.sign(&c, doc, "raw", false);
        assert_eq!(code, 200, "{r}");
        page.end(&c);
        let (code, out, err) = finish(phone);
        assert_eq!(code, 0, "{out}\n{err}");
    };

    // Rotate with the relay stopped, take the root key offline, start again on the same port with a short
    // reload period.
    let listen = stack.relay_url.trim_start_matches("http://").to_string();
    stack.relay.take().unwrap().stop();
    let data = stack.relay_data.clone();
    let out = kalit(&["relay", "rotate-key", "--data", s(&data)], &[]).ok().stdout;
    assert!(out.contains("new signing key") && out.contains("signs until"), "{out}");
    let offline = stack.root.path().join("offline-root.pk8");
    std::fs::rename(data.join("relay-identity.pk8"), &offline).unwrap();
    let r = kalit(&["relay", "rotate-key", "--data", s(&data)], &[]).fails(6, "not_found");
    assert!(r.stderr.contains("--root"), "the error says how: {}", r.stderr);
    kalit(&["relay", "rotate-key", "--data", s(&data), "--valid-days", "0"], &[]).fails(2, "usage");
    let ca = stack.ra.ca();
    let relay_args = ["relay", "serve", "--data", s(&data), "--listen", &listen, "--trust", s(&ca)];
    let env = [("KALIT_RELAY_LIMITS__KEY_RELOAD_SECS", "1")];
    stack.relay = Some(Service::start_env(&relay_args, None, "warn", std::process::Stdio::inherit(), &env));
    let after = identity(&stack.relay_url);
    assert_eq!((&after["relay_id"], &after["public_key"]), (&before["relay_id"], &before["public_key"]));
    assert_eq!(after["signing_keys"].as_array().unwrap().len(), 1, "{after}");
    assert!(!data.join("relay-identity.pk8").exists());
    session(&page, &v, b"signed under the first endorsed key");

    // The second rotation, the relay running: it switches within its reload period.
    let out = kalit(&["relay", "rotate-key", "--data", s(&data), "--root", s(&offline)], &[]).ok().stdout;
    assert!(out.contains("still valid"), "{out}");
    let deadline = Instant::now() + Duration::from_secs(20);
    let newest = loop {
        let now = identity(&stack.relay_url);
        if now["signing_keys"].as_array().unwrap().len() == 2 {
            break now["signing_keys"][0]["key"]["public_key"].clone();
        }
        assert!(Instant::now() < deadline, "the relay did not reload its keys: {now}");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_ne!(newest, after["signing_keys"][0]["key"]["public_key"]);
    session(&page, &v, b"signed under the second endorsed key");
    // The agent's pin is the root key alone.
    let pin: Value =
        serde_json::from_slice(&std::fs::read(stack.root.path().join("agent/relay.json")).unwrap()).unwrap();
    assert_eq!(pin["public_key"], before["public_key"]);
    assert!(pin.get("signing_keys").is_none(), "{pin}");
}
