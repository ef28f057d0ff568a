//! The agent's guard and JSON API in process (no relay needed for these): Host and Origin rules, CORS
//! and private-network preflights, simple cross-site requests, hostile bodies, hashing and verifying, and
//! the agent's own check of a phone's signature against the document the page sent.

#![allow(clippy::unwrap_used)]

use kalit_proto::Base64;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use kalit_agent::session::{Doc, check_signature};
use kalit_agent::{AgentState, Origins, app};
use kalit_proto::session::DocFormat;
use tower::ServiceExt;

const ALLOWED: &str = "https://portal.example";
const ADDR: &str = "127.0.0.1:8760";

fn state(dir: &std::path::Path) -> AgentState {
    let origins = Origins::new(dir);
    origins.allow(ALLOWED).unwrap();
    AgentState {
        relay_url: "http://127.0.0.1:1".into(),
        relay_id: "test-relay".into(),
        relay_public_key: Arc::new(vec![0; 32]),
        anchors: Arc::new(vec![]),
        origins: Arc::new(origins),
        sessions: Arc::default(),
        session_limiter: Arc::new(kalit_service::RateLimiter::new(20, 5)),
        approval_timeout_secs: 5,
        print_qr: false,
        computer: Arc::new(kalit_agent::computer_key(dir).unwrap()),
        source_ip: None,
        tsa: None,
    }
}

struct Resp {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: serde_json::Value,
}

async fn send(dir: &std::path::Path, req: Request<Body>) -> Resp {
    let addr: SocketAddr = ADDR.parse().unwrap();
    let r = app(state(dir), addr).oneshot(req).await.unwrap();
    let status = r.status();
    let headers = r.headers().clone();
    let bytes = axum::body::to_bytes(r.into_body(), 64 << 20).await.unwrap();
    Resp { status, headers, body: serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null) }
}

fn req(method: &str, path: &str, host: &str, origin: Option<&str>, ctype: Option<&str>, body: &str) -> Request<Body> {
    let mut b = Request::builder().method(method).uri(path).header(header::HOST, host);
    if let Some(o) = origin {
        b = b.header(header::ORIGIN, o);
    }
    if let Some(c) = ctype {
        b = b.header(header::CONTENT_TYPE, c);
    }
    b.body(Body::from(body.to_string())).unwrap()
}

fn code(r: &Resp) -> &str {
    r.body["error"]["code"].as_str().unwrap_or("")
}

fn no_cors(r: &Resp) {
    assert!(r.headers.get(header::ACCESS_CONTROL_ALLOW_ORIGIN).is_none(), "CORS header leaked: {:?}", r.headers);
}

#[tokio::test]
async fn only_the_exact_loopback_host_is_answered() {
    let d = tempfile::tempdir().unwrap();
    let ok = send(d.path(), req("GET", "/v1/status", ADDR, Some(ALLOWED), None, "")).await;
    assert_eq!(ok.status, StatusCode::OK);
    assert_eq!(ok.body["origin_allowed"], true);
    // DNS rebinding arrives with the attacker's host name; other spellings of loopback are refused too.
    for host in [
        "evil.example",
        "evil.example:8760",
        "localhost:8760",
        "127.0.0.1",
        "127.0.0.1:8761",
        "127.1:8760",
        "0x7f.0.0.1:8760",
        "2130706433:8760",
        "[::1]:8760",
        "127.0.0.1.nip.io:8760",
        "127.0.0.1:8760.evil.example",
        "",
    ] {
        let r = send(d.path(), req("GET", "/v1/status", host, Some(ALLOWED), None, "")).await;
        assert_eq!(r.status, StatusCode::MISDIRECTED_REQUEST, "{host}");
        assert_eq!(code(&r), "refused_by_policy");
        no_cors(&r);
        let r = send(d.path(), req("POST", "/v1/sessions", host, Some(ALLOWED), Some("application/json"), "{}")).await;
        assert_eq!(r.status, StatusCode::MISDIRECTED_REQUEST, "{host}");
    }
}

#[tokio::test]
async fn origins_not_on_the_list_get_403_and_no_cors_headers() {
    let d = tempfile::tempdir().unwrap();
    for origin in [
        "https://evil.example",
        "null",
        "https://portal.example.evil.example",
        "http://portal.example",
        "https://portal.example:444",
        "https://PORTAL.EXAMPLE",
        "file://",
        "https://portal.example/",
    ] {
        for (m, p, c, b) in [
            ("GET", "/v1/status", None, ""),
            ("POST", "/v1/sessions", Some("application/json"), "{}"),
            ("POST", "/v1/hash", Some("application/json"), r#"{"data":""}"#),
            ("DELETE", "/v1/sessions/abc", None, ""),
            ("OPTIONS", "/v1/sessions", None, ""),
        ] {
            let r = send(d.path(), req(m, p, ADDR, Some(origin), c, b)).await;
            assert_eq!(r.status, StatusCode::FORBIDDEN, "{m} {p} from {origin}");
            assert_eq!(code(&r), "refused_by_policy");
            no_cors(&r);
        }
    }
    // A state-changing call without Origin is refused; a GET without it (curl, the agent's page) is not.
    let r = send(d.path(), req("POST", "/v1/hash", ADDR, None, Some("application/json"), r#"{"data":""}"#)).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = send(d.path(), req("DELETE", "/v1/sessions/x", ADDR, None, None, "")).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = send(d.path(), req("GET", "/v1/status", ADDR, None, None, "")).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["origin_allowed"], false);
    // The local page and its data refuse other origins, even allowed ones, and never send CORS headers.
    let r = send(d.path(), req("GET", "/local/sessions", ADDR, Some(ALLOWED), None, "")).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    no_cors(&r);
    let r = send(d.path(), req("GET", "/local/sessions", ADDR, Some("http://127.0.0.1:8760"), None, "")).await;
    assert_eq!(r.status, StatusCode::OK);
    no_cors(&r);
}

#[tokio::test]
async fn allowed_origins_get_exact_cors_and_private_network_preflights() {
    let d = tempfile::tempdir().unwrap();
    let mut pre = req("OPTIONS", "/v1/sessions", ADDR, Some(ALLOWED), None, "");
    pre.headers_mut().insert("access-control-request-method", "POST".parse().unwrap());
    pre.headers_mut().insert("access-control-request-private-network", "true".parse().unwrap());
    let r = send(d.path(), pre).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(r.headers[header::ACCESS_CONTROL_ALLOW_ORIGIN], ALLOWED);
    assert_eq!(r.headers[header::VARY], "Origin");
    assert_eq!(r.headers["access-control-allow-private-network"], "true");
    assert!(r.headers[header::ACCESS_CONTROL_ALLOW_HEADERS].to_str().unwrap().contains("authorization"));
    let r = send(d.path(), req("OPTIONS", "/v1/sessions", ADDR, Some(ALLOWED), None, "")).await;
    assert!(r.headers.get("access-control-allow-private-network").is_none(), "only when asked");
    // A private-network preflight from an unknown origin gets nothing.
    let mut pre = req("OPTIONS", "/v1/sessions", ADDR, Some("https://evil.example"), None, "");
    pre.headers_mut().insert("access-control-request-private-network", "true".parse().unwrap());
    let r = send(d.path(), pre).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(r.headers.get("access-control-allow-private-network").is_none());
    no_cors(&r);
    let r = send(d.path(), req("GET", "/v1/status", ADDR, Some(ALLOWED), None, "")).await;
    assert_eq!(r.headers[header::ACCESS_CONTROL_ALLOW_ORIGIN], ALLOWED);
    assert_eq!(r.headers[header::VARY], "Origin");
}

#[tokio::test]
async fn simple_cross_site_posts_are_refused_before_any_handler() {
    let d = tempfile::tempdir().unwrap();
    for ctype in [
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
        Some("multipart/form-data; boundary=x"),
        Some("application/json-seq"),
        None,
    ] {
        let r = send(d.path(), req("POST", "/v1/sessions", ADDR, Some(ALLOWED), ctype, "{}")).await;
        assert_eq!(r.status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{ctype:?}");
        assert_eq!(code(&r), "invalid_input");
        let r = send(d.path(), req("POST", "/v1/sessions", ADDR, Some("https://evil.example"), ctype, "{}")).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{ctype:?}");
    }
    assert!(d.path().join("origins.json").exists());
}

#[tokio::test]
async fn hostile_bodies_get_stable_codes() {
    let d = tempfile::tempdir().unwrap();
    let deep = format!("{}{}", "[".repeat(5000), "]".repeat(5000));
    let cases: Vec<(&str, String, StatusCode, &str)> = vec![
        ("/v1/hash", "{".into(), StatusCode::BAD_REQUEST, "invalid_input"),
        ("/v1/hash", deep.clone(), StatusCode::BAD_REQUEST, "invalid_input"),
        ("/v1/hash", r#"{"data":"AA==","extra":1}"#.into(), StatusCode::BAD_REQUEST, "invalid_input"),
        ("/v1/hash", r#"{"data":5}"#.into(), StatusCode::BAD_REQUEST, "invalid_input"),
        ("/v1/hash", r#"{"data":"!!!"}"#.into(), StatusCode::BAD_REQUEST, "invalid_input"),
        ("/v1/hash", r#"{"data":"AA==","alg":"sha1"}"#.into(), StatusCode::FORBIDDEN, "refused_by_policy"),
        ("/v1/hash", r#"{"data":"AA==","alg":"md5"}"#.into(), StatusCode::FORBIDDEN, "refused_by_policy"),
        ("/v1/hash", r#"{"data":"AA==","alg":"sha3-999"}"#.into(), StatusCode::BAD_REQUEST, "invalid_input"),
        ("/v1/sessions", r#"{"ttl":0}"#.into(), StatusCode::BAD_REQUEST, "invalid_input"),
        ("/v1/sessions", r#"{"ttl":100000}"#.into(), StatusCode::BAD_REQUEST, "invalid_input"),
        ("/v1/sessions", r#"{"ttl":-1}"#.into(), StatusCode::BAD_REQUEST, "invalid_input"),
        ("/v1/sessions", deep, StatusCode::BAD_REQUEST, "invalid_input"),
        ("/v1/sessions", format!(r#"{{"x":"{}"}}"#, "a".repeat(20_000)), StatusCode::PAYLOAD_TOO_LARGE, "too_large"),
        ("/v1/verify", r#"{"data":"AA==","signature":"AA==","format":"raw"}"#.into(), StatusCode::OK, ""),
        (
            "/v1/verify",
            r#"{"data":"AA==","signature":"AA==","format":"pgp"}"#.into(),
            StatusCode::BAD_REQUEST,
            "invalid_input",
        ),
        ("/v1/sessions/nope/sign", r#"{"data":"AA==","name":"x"}"#.into(), StatusCode::NOT_FOUND, "not_found"),
        ("/v1/nowhere", "{}".into(), StatusCode::NOT_FOUND, "not_found"),
    ];
    for (path, body, status, c) in cases {
        let r = send(d.path(), req("POST", path, ADDR, Some(ALLOWED), Some("application/json"), &body)).await;
        assert_eq!(r.status, status, "{path} {}", &body[..body.len().min(60)]);
        assert_eq!(code(&r), c, "{path}");
    }
    // Oversized documents are refused from Content-Length, before the body is read.
    let mut big = req("POST", "/v1/hash", ADDR, Some(ALLOWED), Some("application/json"), "");
    big.headers_mut().insert(header::CONTENT_LENGTH, (64u64 << 20).to_string().parse().unwrap());
    let r = send(d.path(), big).await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    // Sessions: unknown id, no token, a token for nothing all look the same.
    let mut get = req("GET", "/v1/sessions/abc", ADDR, Some(ALLOWED), None, "");
    get.headers_mut().insert(header::AUTHORIZATION, "Bearer xyz".parse().unwrap());
    let r = send(d.path(), get).await;
    assert_eq!((r.status, code(&r)), (StatusCode::NOT_FOUND, "not_found"));
    // A relay that cannot be reached: a clear 503.
    let r = send(d.path(), req("POST", "/v1/sessions", ADDR, Some(ALLOWED), Some("application/json"), "{}")).await;
    assert_eq!((r.status, code(&r)), (StatusCode::SERVICE_UNAVAILABLE, "unavailable"));
}

#[tokio::test]
async fn hash_matches_known_answers() {
    let d = tempfile::tempdir().unwrap();
    // FIPS 180-2 "abc" vectors.
    for (alg, want) in [
        ("sha256", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"),
        ("sha384", "cb00753f45a35e8bb5a03d699ac65007272c32ab0eded1631a8b605a43ff5bed8086072ba1e7cc2358baeca134c825a7"),
    ] {
        let body = format!(r#"{{"data":"{}","alg":"{alg}"}}"#, B64.encode(b"abc"));
        let r = send(d.path(), req("POST", "/v1/hash", ADDR, Some(ALLOWED), Some("application/json"), &body)).await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(r.body["digest"], want);
    }
}

/// A certificate and its key, made by rcgen (P-256).
fn cert_and_key() -> (Vec<u8>, kalit_core::keys::PrivateKey) {
    let ck = rcgen::generate_simple_self_signed(vec!["signer.example".into()]).unwrap();
    let der = ck.cert.der().to_vec();
    let key = kalit_core::keys::PrivateKey::from_pkcs8(&kalit_core::SecretBytes::new(ck.signing_key.serialize_der()))
        .unwrap();
    (der, key)
}

fn doc(data: &[u8], format: DocFormat) -> Doc {
    Doc {
        data: data.to_vec(),
        name: "a.txt".into(),
        media_type: "text/plain".into(),
        format,
        pss: false,
        byte_range: None,
        digest: None,
    }
}

#[test]
fn the_agent_refuses_a_signature_over_another_document_than_the_page_sent() {
    let (cert, key) = cert_and_key();
    let scheme = key.default_scheme();
    // The phone (or anything between) signed document B while the page asked for A.
    let raw_b = key.sign(scheme, b"document B").unwrap();
    assert!(check_signature(&doc(b"document B", DocFormat::Raw), &raw_b, &cert).is_ok());
    let e = check_signature(&doc(b"document A", DocFormat::Raw), &raw_b, &cert).unwrap_err();
    assert_eq!(e.code, kalit_proto::ErrorCode::InvalidSignature);
    // Asked for PSS padding, got something else.
    let mut pss = doc(b"document B", DocFormat::Raw);
    pss.pss = true;
    assert!(check_signature(&pss, &raw_b, &cert).is_err());
    // CMS over B, for a page that sent A.
    let digest = kalit_core::cms::digest_alg_for(scheme).digest(b"document B");
    let prepared = kalit_core::cms::PreparedCms::new(
        std::slice::from_ref(&cert),
        scheme,
        &digest,
        time::OffsetDateTime::now_utc(),
    )
    .unwrap();
    let sig = key.sign(scheme, &prepared.to_be_signed()).unwrap();
    let cms = prepared.finish(&sig);
    assert!(check_signature(&doc(b"document B", DocFormat::Cms), &cms, &cert).is_ok());
    assert!(check_signature(&doc(b"document A", DocFormat::Cms), &cms, &cert).is_err());
    // A valid CMS by another certificate than the paired one.
    let (other, _) = cert_and_key();
    let e = check_signature(&doc(b"document B", DocFormat::Cms), &cms, &other).unwrap_err();
    assert!(e.message.contains("another certificate"), "{}", e.message);

    // A PDF signature is over the prepared PDF's byte ranges, everything but the hole: a CMS over the
    // ranges passes; one over the whole file, or checked against a byte range that is not the file's,
    // does not.
    let prepared_pdf = b"document<000000>B";
    let cms_over = |bytes: &[u8]| {
        let digest = kalit_core::cms::digest_alg_for(scheme).digest(bytes);
        let p = kalit_core::cms::PreparedCms::new(
            std::slice::from_ref(&cert),
            scheme,
            &digest,
            time::OffsetDateTime::now_utc(),
        )
        .unwrap();
        let sig = key.sign(scheme, &p.to_be_signed()).unwrap();
        p.finish(&sig)
    };
    let pades = |range: [usize; 4]| Doc { byte_range: Some(range), ..doc(prepared_pdf, DocFormat::Pades) };
    let over_ranges = cms_over(b"documentB");
    assert!(check_signature(&pades([0, 8, 16, 1]), &over_ranges, &cert).is_ok());
    assert!(check_signature(&pades([0, 8, 16, 1]), &cms_over(prepared_pdf), &cert).is_err());
    let e = check_signature(&pades([0, 8, 15, 1]), &over_ranges, &cert).unwrap_err();
    assert!(e.message.contains("byte range"), "{}", e.message);
    assert!(check_signature(&pades([1, 8, 16, 1]), &over_ranges, &cert).is_err());
}

#[test]
fn openapi_lists_every_route_and_error_code() {
    let doc: serde_json::Value = serde_json::from_str(kalit_agent::OPENAPI).unwrap();
    for path in [
        "/",
        "/local/sessions",
        "/openapi.json",
        "/v1/status",
        "/v1/hash",
        "/v1/sessions",
        "/v1/sessions/{id}",
        "/v1/sessions/{id}/sign",
        "/v1/verify",
    ] {
        assert!(doc["paths"][path].is_object(), "{path} missing from openapi.json");
    }
    let codes: Vec<&str> = doc["components"]["schemas"]["ErrorCode"]["enum"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    for c in kalit_proto::ErrorCode::ALL {
        assert!(
            codes.contains(&c.as_str()),
            "{c} missing from openapi.json (KALIT_WRITE_CONTRACT=1 cargo test -p kalit-proto --test contract)"
        );
    }
}

#[test]
fn the_terminal_qr_draws_the_qr_text_and_names_the_phone_command() {
    let (qr, _) = kalit_core::session::Qr::new("http://127.0.0.1:1", "relay", ALLOWED, 60, 1_800_000_000).unwrap();
    let out = kalit_agent::session::terminal_qr(qr.text(), ALLOWED).unwrap();
    assert!(out.contains(ALLOWED) && out.contains(&format!("kalit vault pair '{}'", qr.text())), "{out}");
    // The drawing is the QR of that text: each half-block character is two modules.
    let width = qrcode::QrCode::new(qr.text().as_bytes()).unwrap().width() + 8;
    let art: Vec<&str> = out.lines().filter(|l| l.chars().count() == width).collect();
    assert_eq!(art.len(), width.div_ceil(2), "{out}");
    assert!(art.iter().any(|l| l.contains('\u{2588}')), "{out}");
}

#[tokio::test]
async fn the_local_page_is_served_to_its_own_origin_only() {
    let d = tempfile::tempdir().unwrap();
    let r = app(state(d.path()), ADDR.parse().unwrap()).oneshot(req("GET", "/", ADDR, None, None, "")).await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let html = String::from_utf8(axum::body::to_bytes(r.into_body(), 1 << 20).await.unwrap().to_vec()).unwrap();
    assert!(html.contains("/local/sessions") && html.contains("kalit vault pair"), "{html}");
    let r = send(d.path(), req("GET", "/", ADDR, Some(ALLOWED), None, "")).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    no_cors(&r);
    let r = send(d.path(), req("GET", "/local/sessions", ADDR, None, None, "")).await;
    assert_eq!((r.status, &r.body["sessions"]), (StatusCode::OK, &serde_json::json!([])));
}

/// The phone's hello is accepted only with the relay's attestation for the very device the relay let
/// into the tunnel, unexpired: an attestation kept from before a device was removed, or an old one, is
/// worth nothing.
#[test]
fn the_hello_needs_a_fresh_attestation_for_the_device_the_relay_let_in() {
    use kalit_core::keys::{PrivateKey, generate};
    use kalit_core::statement::{self, Statement};
    use kalit_proto::relay::{Attestation, SignedAttestation};
    use kalit_proto::session::ChannelMessage;
    let d = tempfile::tempdir().unwrap();
    let relay_key = PrivateKey::from_pkcs8(&generate(kalit_core::KeyAlgorithm::Ed25519).unwrap()).unwrap();
    let mut st = state(d.path());
    st.relay_public_key = Arc::new(relay_key.public_key_raw().to_vec());
    // A phone certificate (self-signed is enough: this agent has no trust anchors).
    let phone_key = PrivateKey::from_pkcs8(&generate(kalit_core::KeyAlgorithm::P256).unwrap()).unwrap();
    let cert = rcgen::CertificateParams::new(vec![]).unwrap().self_signed(&phone_key).unwrap().der().to_vec();
    let now = 1_900_000_000i64;
    let hello = |a: Attestation| {
        let sig = Statement::attestation(&a).sign(&relay_key).unwrap();
        ChannelMessage::Hello {
            login: "alice".into(),
            device_name: "phone".into(),
            chain: vec![Base64::of(&cert)],
            attestation: SignedAttestation { attestation: a, signature: Base64::of(sig), relay_key: None },
            formats: vec![],
            documents: None,
        }
    };
    let good = Attestation {
        relay_id: "test-relay".into(),
        login: "alice".into(),
        cert_fingerprint: statement::cert_fingerprint(&cert).into(),
        device_id: "d1".into(),
        device_key: Base64::of([1u8; 32]),
        issued_at: now - 5,
        expires_at: now + 595,
    };
    let check = |a: Attestation, device: &str| {
        kalit_agent::session::check_hello(&st, &hello(a), "alice", device, now).map(|_| ()).map_err(|e| e.message)
    };
    check(good.clone(), "d1").unwrap();
    let e = check(good.clone(), "d2").unwrap_err();
    assert!(e.contains("another device"), "{e}");
    let e = check(Attestation { issued_at: now - 700, expires_at: now - 100, ..good.clone() }, "d1").unwrap_err();
    assert!(e.contains("expired"), "{e}");
    let e = check(Attestation { issued_at: now + 100, expires_at: now + 700, ..good.clone() }, "d1").unwrap_err();
    assert!(e.contains("impossible"), "{e}");
    let e = check(Attestation { login: "bob".into(), ..good.clone() }, "d1").unwrap_err();
    assert!(e.contains("another login"), "{e}");
    // A changed expiry breaks the relay's signature (the expiry is signed).
    let mut forged = hello(good.clone());
    if let ChannelMessage::Hello { attestation, .. } = &mut forged {
        attestation.attestation.expires_at += 3600;
    }
    let e = kalit_agent::session::check_hello(&st, &forged, "alice", "d1", now).unwrap_err();
    assert!(e.message.contains("not signed by the relay"), "{}", e.message);
}

/// The agent refuses a phone whose certificate carries an unknown critical extension, even with the
/// relay's valid attestation (the chain checker is the standard one).
#[test]
fn the_agent_refuses_a_certificate_with_an_unknown_critical_extension() {
    use kalit_core::keys::{PrivateKey, generate};
    use kalit_core::statement::{self, Statement};
    use kalit_proto::relay::{Attestation, SignedAttestation};
    use kalit_proto::session::ChannelMessage;
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyUsagePurpose};
    let d = tempfile::tempdir().unwrap();
    let k = |alg| PrivateKey::from_pkcs8(&generate(alg).unwrap()).unwrap();
    let relay_key = k(kalit_core::KeyAlgorithm::Ed25519);
    let ca_key = k(kalit_core::KeyAlgorithm::P256);
    let mut cp = CertificateParams::new(vec![]).unwrap();
    cp.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    cp.key_usages = vec![KeyUsagePurpose::KeyCertSign];
    let ca = cp.self_signed(&ca_key).unwrap().der().to_vec();
    let issuer = Issuer::new(cp, ca_key);
    let mut st = state(d.path());
    st.relay_public_key = Arc::new(relay_key.public_key_raw().to_vec());
    st.anchors = Arc::new(vec![ca.clone()]);
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let hello_for = |critical: bool| {
        let mut p = CertificateParams::new(vec![]).unwrap();
        p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        let mut ext = rcgen::CustomExtension::from_oid_content(&[1, 3, 6, 1, 4, 1, 99999, 1], vec![0x05, 0x00]);
        ext.set_criticality(critical);
        p.custom_extensions.push(ext);
        let cert = p.signed_by(&k(kalit_core::KeyAlgorithm::P256), &issuer).unwrap().der().to_vec();
        let a = Attestation {
            relay_id: "test-relay".into(),
            login: "alice".into(),
            cert_fingerprint: statement::cert_fingerprint(&cert).into(),
            device_id: "d1".into(),
            device_key: Base64::of([1u8; 32]),
            issued_at: now,
            expires_at: now + 600,
        };
        let sig = Statement::attestation(&a).sign(&relay_key).unwrap();
        ChannelMessage::Hello {
            login: "alice".into(),
            device_name: "phone".into(),
            chain: vec![Base64::of(&cert), Base64::of(&ca)],
            attestation: SignedAttestation { attestation: a, signature: Base64::of(sig), relay_key: None },
            formats: vec![],
            documents: None,
        }
    };
    kalit_agent::session::check_hello(&st, &hello_for(false), "alice", "d1", now).unwrap();
    let e = kalit_agent::session::check_hello(&st, &hello_for(true), "alice", "d1", now).unwrap_err();
    assert_eq!(e.code, kalit_proto::ErrorCode::UntrustedCertificate, "{}", e.message);
}
