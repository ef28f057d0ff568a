//! Issue 9's attacks, as processes: one key, many purposes (a document that is a protocol statement or a
//! structure signed elsewhere), whose computer this is (an attacker's own agent on another address that
//! claims a trusted origin), and what the phone shows (hostile names, media types, previews, reasons).
//! Each of these worked against the code before the fix.

use kalit_proto::Base64;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use kalit_core::session::{ComputerKey, Qr, agent_respond};
use kalit_core::statement::Statement;
use kalit_proto::session::{ChannelMessage, DocFormat, SignAnswer, TunnelEvent};
use kalit_transport::{Incoming, connect_from, next_frame, next_incoming, next_message, send, send_message, ws_url};
use tokio_tungstenite::tungstenite::Message;

use crate::common::{PIN, s};
use crate::signing::{Page, finish, pair, stack};

/// The bytes of the first element of a DER SEQUENCE (the "to be signed" part of a CSR or certificate).
fn tbs_of(der: &[u8]) -> Vec<u8> {
    kalit_core::der::first_element(der).unwrap().to_vec()
}

fn pem_body(pem: &str) -> Vec<u8> {
    pem::parse(pem).unwrap().contents().to_vec()
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[test]
fn documents_that_are_statements_or_signed_structures_are_refused_everywhere() {
    let origin = "https://portal.example";
    let st = stack(&[origin]);
    let v = st.phone("phone", "p-256", "ali");
    let work = st.root.path().join("purpose");
    std::fs::create_dir_all(&work).unwrap();

    // What an attacker would have the person sign: a registration statement for his own device, the
    // body of a CSR for the victim's key in his name, the body of the victim's certificate, and CMS
    // signed attributes.
    let stmt = Statement::register("relay-id", &[7; 32], "ali", &[9; 32], "fingerprint");
    let csr = v.run(&["csr", "main", "--subject", "CN=Mallory,C=UZ"], &[PIN]).ok().stdout;
    let cri = tbs_of(&pem_body(&csr));
    let chain = kalit_vault::Vault::open(&v.dir).unwrap().certificate_chain("main").unwrap();
    let tbs_cert = tbs_of(&chain[0]);
    let attrs = kalit_core::cms::PreparedCms::new(
        &chain,
        kalit_core::SignScheme::EcdsaP256Sha256,
        &kalit_core::digest::HashAlg::Sha256.digest(b"some document"),
        time::OffsetDateTime::now_utc(),
    )
    .unwrap()
    .to_be_signed();
    // The statement the attack of issue 9 used (the retired login-proof layout) is refused by its prefix.
    let login_proof = b"kalit/v1/login-proof\0\0\0\0\x08relay-id".to_vec();
    let cases: [(&str, &[u8]); 5] = [
        ("statement", stmt.as_bytes()),
        ("login-proof", &login_proof),
        ("cri", &cri),
        ("tbs-cert", &tbs_cert),
        ("signed-attrs", &attrs),
    ];

    // Through the command line: refused before any question, in raw; the statement in CMS too.
    for (name, bytes) in cases {
        let f = work.join(format!("{name}.bin"));
        std::fs::write(&f, bytes).unwrap();
        let r = v.run(&["sign", "main", "--file", s(&f), "--format", "raw"], &[]).fails(7, "refused_by_policy");
        assert!(!r.stderr.contains("PIN"), "{name}: refused before the PIN: {}", r.stderr);
    }
    let f = work.join("statement.bin");
    v.run(&["sign", "main", "--file", s(&f), "--format", "cms"], &[]).fails(7, "refused_by_policy");
    // A binary file signed raw needs the separate confirmation: answering no to it signs nothing.
    let bin = work.join("photo.bin");
    std::fs::write(&bin, [0x89, b'P', b'N', b'G', 0, 1, 2, 3]).unwrap();
    v.run(&["sign", "main", "--file", s(&bin), "--format", "raw"], &["y", "n"]).fails(10, "declined");
    v.run(&["sign", "main", "--file", s(&bin), "--format", "raw"], &["y", "y", PIN]).ok();

    // Through a page: the phone refuses each without asking anything, the page gets refused_by_policy.
    let page = Page::new(&st.agent.url, origin);
    let c = page.start(None);
    let phone = pair(&v, &c.qr, &[PIN]);
    assert_eq!(page.wait(&c, "connected")["phase"], "connected");
    for (name, bytes) in cases {
        let (code, r) = page.sign(&c, bytes, "raw", false);
        assert_eq!((code, r["error"]["code"].as_str()), (403, Some("refused_by_policy")), "{name}: {r}");
    }
    let (code, r) = page.sign(&c, stmt.as_bytes(), "cms", false);
    assert_eq!(r["error"]["code"], "refused_by_policy", "{code} {r}");
    page.end(&c);
    let (code, out, err) = finish(phone);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("Refused a request"), "{out}");
    let history = v.run(&["history", "--json"], &[]).ok().stdout;
    assert_eq!(history.matches("\"document\"").count(), 1, "only the confirmed binary file was signed: {history}");

    // The RA refuses to certify the phone's key to another person (its CSR carries a valid proof of
    // possession); the code stays usable.
    let code_for_mallory = st.ra.code("CN=Mallory,C=UZ");
    let client = reqwest::blocking::Client::new();
    let r: serde_json::Value = client
        .post(format!("{}/v1/certificates", st.ra_url))
        .json(&serde_json::json!({ "csr": csr, "code": code_for_mallory }))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(r["error"]["code"], "refused_by_policy", "{r}");
    let mallory = crate::common::V::init(st.root.path(), "mallory", 10);
    mallory.generate("ed25519", "own");
    mallory
        .run(&["enrol", "own", "--ra", &st.ra_url, "--code", &code_for_mallory, "--ca", s(&st.ra.ca())], &[PIN])
        .ok();

    // Databases and data directories are the owner's only.
    assert_eq!(mode(&st.ra.dir), 0o700);
    assert_eq!(mode(&st.ra.dir.join("ra.db")), 0o600);
    assert_eq!(mode(&st.relay_data), 0o700);
    assert_eq!(mode(&st.relay_data.join("relay.db")), 0o600);
    for f in std::fs::read_dir(&st.relay_data).unwrap() {
        let p = f.unwrap().path();
        assert_eq!(mode(&p) & 0o077, 0, "{} is readable by others", p.display());
    }
}

/// An attacker's own agent: a computer key the phone never saw, connecting to the relay from another
/// address (127.0.0.2), claiming a trusted origin, and sending hostile strings.
struct HostileAgent {
    rt: tokio::runtime::Runtime,
    key: ComputerKey,
    relay: String,
    relay_id: String,
}

impl HostileAgent {
    fn new(relay: &str) -> HostileAgent {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        let id: serde_json::Value =
            reqwest::blocking::get(format!("{relay}/.well-known/kalit-relay")).unwrap().json().unwrap();
        HostileAgent {
            rt,
            key: ComputerKey::generate().unwrap(),
            relay: relay.to_string(),
            relay_id: id["relay_id"].as_str().unwrap().to_string(),
        }
    }

    /// Opens a tunnel for a QR claiming `origin`; returns the QR text and the task that plays `script`
    /// once a phone joined (each message is sent, then the phone's answer read, when `await_answer`).
    fn session(
        &self,
        origin: &str,
        script: Vec<(ChannelMessage, bool)>,
    ) -> (String, tokio::task::JoinHandle<Vec<ChannelMessage>>) {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
        let (qr, secrets) = Qr::for_computer(&self.key, &self.relay, &self.relay_id, origin, 120, now).unwrap();
        let url = ws_url(&self.relay, &format!("/v1/tunnel/{}/wait?ttl=120", secrets.tunnel_id().unwrap())).unwrap();
        let mut ws = self.rt.block_on(connect_from(&url, Some("127.0.0.2".parse().unwrap()))).unwrap();
        assert!(matches!(
            self.rt.block_on(next_incoming(&mut ws)).unwrap(),
            Incoming::Event(TunnelEvent::Ready { .. })
        ));
        let text = qr.text().to_string();
        let task = self.rt.spawn(async move {
            let mut answers = vec![];
            let Ok(Incoming::Event(TunnelEvent::Peer { .. })) = next_incoming(&mut ws).await else { return answers };
            let msg1 = next_frame(&mut ws).await.unwrap();
            let (msg2, mut ch) = agent_respond(&qr, &secrets, &msg1).unwrap();
            send(&mut ws, Message::Binary(msg2.into())).await.unwrap();
            let hello = next_message(&mut ws, &mut ch).await.unwrap();
            answers.push(hello);
            for (m, await_answer) in script {
                if send_message(&mut ws, &mut ch, &m).await.is_err() {
                    break;
                }
                if await_answer {
                    match tokio::time::timeout(Duration::from_secs(60), next_message(&mut ws, &mut ch)).await {
                        Ok(Ok(a)) => answers.push(a),
                        _ => break,
                    }
                }
            }
            answers
        });
        (text, task)
    }
}

/// A web page's side of a tunnel as a browser opens it: the relay reads `origin` from the Origin header
/// (what a browser sends for the page; scripts cannot change it). Returns the QR, claiming `qr_origin`,
/// and the socket.
fn page_tunnel(evil: &HostileAgent, qr: Qr, tunnel: &str, origin: &str) -> (String, kalit_transport::Ws) {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let url = ws_url(&evil.relay, &format!("/v1/tunnel/{tunnel}/wait?ttl=120")).unwrap();
    let mut req = url.into_client_request().unwrap();
    req.headers_mut().insert("origin", origin.parse().unwrap());
    let (mut ws, _) = evil.rt.block_on(tokio_tungstenite::connect_async(req)).unwrap();
    assert!(matches!(evil.rt.block_on(next_incoming(&mut ws)).unwrap(), Incoming::Event(TunnelEvent::Ready { .. })));
    (qr.text().to_string(), ws)
}

#[test]
fn a_page_that_writes_another_origin_into_its_qr_is_refused_by_the_phone() {
    let st = stack(&["https://portal.example"]);
    let v = st.phone("phone", "p-256", "ali");
    let evil = HostileAgent::new(&st.relay_url);
    let claimed = "https://my.gov.example";
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    // 1. A page on http://127.0.0.1:4444 (origin B) in direct mode writes origin A into its QR: the relay
    // vouches for B, the phone sees A in the QR, and stops before the handshake; nothing is asked or signed.
    let (qr, secrets) = Qr::for_page(&evil.relay, &evil.relay_id, claimed, 120, now).unwrap();
    let (text, mut page) = page_tunnel(&evil, qr, &secrets.tunnel_id().unwrap(), "http://127.0.0.1:4444");
    let (code, out, err) = finish(pair_exact(&v, &text, &[PIN]));
    assert_eq!(code, 7, "refused_by_policy: {out}{err}");
    assert!(
        err.contains("the page that made this QR is http://127.0.0.1:4444, but the QR claims https://my.gov.example; nothing was signed"),
        "{err}"
    );
    assert!(!out.contains("NEVER SEEN") && !out.contains("Sign request"), "{out}");
    // The page got the phone's arrival, then the end: not one handshake frame.
    let mut got = vec![];
    while let Ok(Ok(i)) =
        evil.rt.block_on(async { tokio::time::timeout(Duration::from_secs(5), next_incoming(&mut page)).await })
    {
        got.push(i);
    }
    assert!(got.iter().all(|i| matches!(i, Incoming::Event(_))), "no frame reached the page: {got:?}");

    // 2. An agent's kind of QR (no mode) opened from a page of another origin: the relay's statement is
    // checked all the same (after the name a new computer needs).
    let (qr, secrets) = Qr::for_computer(&evil.key, &evil.relay, &evil.relay_id, claimed, 120, now).unwrap();
    let (text, _page) = page_tunnel(&evil, qr, &secrets.tunnel_id().unwrap(), "http://localhost:4444");
    let (code, _, err) = finish(pair_exact(&v, &text, &["my laptop", PIN]));
    assert_eq!(code, 7, "{err}");
    assert!(err.contains("the page that made this QR is http://localhost:4444"), "{err}");

    // 3. A page whose browser sends `Origin: null` (a sandboxed frame, a file) gets no tunnel at all.
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let url = ws_url(&evil.relay, &format!("/v1/tunnel/{}/wait", "cd".repeat(32))).unwrap();
    let mut req = url.into_client_request().unwrap();
    req.headers_mut().insert("origin", "null".parse().unwrap());
    match evil.rt.block_on(tokio_tungstenite::connect_async(req)) {
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => assert_eq!(r.status(), 403),
        other => panic!("{:?}", other.map(|_| ())),
    }
}

/// `kalit vault pair QR` with exactly these answers (no name added for a new computer).
fn pair_exact(v: &crate::common::V, qr: &str, answers: &[&str]) -> std::process::Child {
    let mut child = crate::common::kalit_cmd(&["vault", "--vault", s(&v.dir), "pair", qr]).spawn().unwrap();
    crate::common::feed(&mut child, answers);
    child
}

fn request(id: u32, origin: &str, name: &str, media_type: &str, data: &[u8], format: DocFormat) -> ChannelMessage {
    ChannelMessage::SignRequest {
        id,
        origin: origin.into(),
        name: name.into(),
        media_type: media_type.into(),
        data: Base64::of(data),
        format,
        pss: false,
    }
}

#[test]
fn an_attackers_computer_is_named_first_and_cannot_draw_on_the_phone() {
    let st = stack(&["https://portal.example"]);
    let v = st.phone("phone", "p-256", "ali");
    let evil = HostileAgent::new(&st.relay_url);
    let claimed = "https://my.gov.example";

    // 0. A QR whose origin is not an origin (here with a screen-clearing escape) is refused outright.
    let (qr, task) = evil.session("https://my.gov.example\x1b[2J", vec![]);
    let (code, out, err) = finish(pair_exact(&v, &qr, &["my laptop", PIN]));
    assert_eq!(code, 8, "{out}{err}");
    assert!(!out.contains('\x1b') && !err.contains('\x1b') && err.contains("is not a web origin"), "{err:?}");
    task.abort();

    // 1. A computer never seen: the full warning, a name asked before the PIN; no name, nothing happens.
    let (qr, task) = evil.session(claimed, vec![]);
    let (code, out, err) = finish(pair_exact(&v, &qr, &[""]));
    assert_eq!(code, 10, "{out}{err}");
    assert!(out.contains("A COMPUTER THIS PHONE HAS NEVER SEEN"), "{out}");
    assert!(out.contains("Is this the computer in front of you?"), "{out}");
    assert!(!err.contains("PIN"), "the PIN is not asked before the computer is named: {err}");
    task.abort();

    // 2. Named: every screen says which computer and that it is on another network; hostile strings in
    // the name and preview are shown escaped and marked; a media type that is not a token ends the
    // session before anything is shown.
    let hidden = format!("I agree to pay 100 som.{}and also to sell my house.\n\x1b]0;evil\x07\x1b[2J", " ".repeat(70));
    let script = vec![
        (
            request(
                1,
                claimed,
                "invoice\u{202e}fdp.exe\n\x1b[1A\x1b[2KSigned by the bank",
                "text/plain",
                hidden.as_bytes(),
                DocFormat::Cms,
            ),
            true,
        ),
        (request(2, claimed, "x.txt", "text/plain\n  Preview:\n    | all good\x1b[0m", b"swap", DocFormat::Cms), true),
    ];
    let (qr, task) = evil.session(claimed, script);
    let (code, out, err) = finish(pair_exact(&v, &qr, &["my laptop", PIN, "y", PIN]));
    let answers = evil.rt.block_on(task).unwrap();
    println!("PHONE SCREEN:\n{out}\n{err}");
    assert_eq!(code, 8, "the bad media type ends the session: {out}{err}");
    assert!(!out.contains('\x1b') && !err.contains('\x1b'), "no escape sequence reaches the terminal: {out:?}");
    assert!(!out.contains('\u{202e}') && !err.contains('\u{202e}'), "no bidi override reaches the terminal");
    assert!(out.contains("invoice\\u{202e}fdp.exe\\u{a}\\u{1b}[1A"), "the name, escaped: {out}");
    assert!(out.contains("[70 spaces]") && out.contains("sell my house"), "the hidden clause is shown: {out}");
    assert!(out.contains("Computer:   my laptop (first time)"), "{out}");
    assert!(out.contains("another network: 127.0.0.2"), "{out}");
    assert!(out.contains("as the computer says"), "{out}");
    assert!(!out.contains("all good"), "the fake preview in the media type is never drawn: {out}");
    assert!(matches!(answers.get(1), Some(ChannelMessage::SignResponse { answer: SignAnswer::Approved { .. }, .. })));
    assert!(matches!(
        answers.get(2),
        Some(ChannelMessage::Bye { code: Some(kalit_proto::ErrorCode::InvalidInput), .. })
    ));

    // 3. The same computer again: known by its name and count; its bye reason cannot draw either.
    let bye = ChannelMessage::Bye { reason: "done\x1b]52;c;cGF5bG9hZA==\x07\n\x1b[2J".into(), code: None };
    let (qr, task) = evil.session(claimed, vec![(bye, false)]);
    let (code, out, err) = finish(pair(&v, &qr, &[PIN]));
    let _ = evil.rt.block_on(task);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("my laptop (used once before)"), "{out}");
    assert!(!out.contains('\x1b'), "{out:?}");
    assert!(out.contains("done\\u{1b}]52"), "{out}");

    // 4. The person's real agent on 127.0.0.1 is another computer: named separately, same network.
    let page = Page::new(&st.agent.url, "https://portal.example");
    let c = page.start(None);
    let phone = pair(&v, &c.qr, &[PIN, "y", PIN]);
    assert_eq!(page.wait(&c, "connected")["phase"], "connected");
    assert_eq!(page.sign(&c, b"a real contract", "cms", false).0, 200);
    page.end(&c);
    let (code, out, err) = finish(phone);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("test computer (first time)") && out.contains("same network as this phone"), "{out}");
    let known = kalit_vault::Vault::open(&v.dir).unwrap().computers().unwrap();
    assert_eq!(known.len(), 2, "{known:?}");
}
