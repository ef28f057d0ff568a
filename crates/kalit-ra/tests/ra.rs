//! The RA in process: CA creation, enrolment codes, the fixed profile, proof of possession, weak keys,
//! single use under races, revocation and a CRL that OpenSSL reads.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use kalit_core::keys::{self, PrivateKey};
use kalit_core::{KeyAlgorithm, SecretString, x509};
use kalit_ra::{RaState, app, ca, enrol, revoke};
use serde_json::{Value, json};
use tower::ServiceExt;

const PASS: &str = "correct horse battery";

fn openssl() -> bool {
    let ok = Command::new("openssl").arg("version").output().is_ok_and(|o| o.status.success());
    if !ok {
        assert!(std::env::var("KALIT_REQUIRE_OPENSSL").is_err(), "openssl is required (KALIT_REQUIRE_OPENSSL)");
        eprintln!("openssl not found: OpenSSL cross-checks skipped");
    }
    ok
}

fn run(cmd: &mut Command) -> String {
    let o = cmd.output().unwrap();
    assert!(o.status.success(), "{cmd:?}: {}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

async fn setup(dir: &Path, two_tier: bool) -> RaState {
    ca::init(dir, "Test Agency", KeyAlgorithm::P256, two_tier, 365, &SecretString::new(PASS.into())).unwrap();
    let ca = ca::open(dir, &SecretString::new(PASS.into())).unwrap();
    RaState::open(dir, ca, 0).await.unwrap()
}

async fn post(s: &RaState, body: Value) -> (StatusCode, Value) {
    let req = Request::post("/v1/certificates")
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .unwrap();
    let resp = app(s.clone()).oneshot(req).await.unwrap();
    let status = resp.status();
    let b = axum::body::to_bytes(resp.into_body(), 1 << 20).await.unwrap();
    (status, serde_json::from_slice(&b).unwrap_or(Value::Null))
}

async fn get(s: &RaState, path: &str) -> (StatusCode, Vec<u8>) {
    let resp = app(s.clone()).oneshot(Request::get(path).body(Body::empty()).unwrap()).await.unwrap();
    let status = resp.status();
    (status, axum::body::to_bytes(resp.into_body(), 1 << 20).await.unwrap().to_vec())
}

fn csr(alg: KeyAlgorithm, subject: &str) -> (PrivateKey, String) {
    let k = PrivateKey::from_pkcs8(&keys::generate(alg).unwrap()).unwrap();
    let pem = kalit_core::csr::build_csr_pem(&k, kalit_core::csr::parse_subject(subject).unwrap()).unwrap();
    (k, pem)
}

fn code_of(v: &Value) -> &str {
    v["error"]["code"].as_str().unwrap_or("<none>")
}

#[tokio::test]
async fn issues_the_fixed_profile_for_the_recorded_subject() {
    for two_tier in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let s = setup(dir.path(), two_tier).await;
        let subject = "CN=Dilnoza Karimova,SERIALNUMBER=12345678901234,C=UZ";
        for alg in [KeyAlgorithm::P256, KeyAlgorithm::Rsa2048, KeyAlgorithm::Ed25519] {
            let code = enrol(dir.path(), subject, Duration::from_secs(600)).await.unwrap();
            assert_eq!(code.len(), 29, "{code}");
            // The CSR asks for another name: the RA's record wins.
            let (k, pem) = csr(alg, "CN=Somebody Else,O=Evil");
            let (st, v) = post(&s, json!({"code": code.to_lowercase(), "csr": pem})).await;
            assert_eq!(st, StatusCode::CREATED, "{alg}: {v}");
            let chain = x509::parse_cert_bundle(v["chain"].as_str().unwrap().as_bytes()).unwrap();
            assert_eq!(chain.len(), if two_tier { 3 } else { 2 });
            let leaf = x509::parse(&chain[0]).unwrap();
            assert_eq!(leaf.subject().to_string(), "CN=Dilnoza Karimova, serialNumber=12345678901234, C=UZ");
            assert_eq!(x509::cert_spki(&chain[0]).unwrap(), k.spki_der(), "the certificate is for the CSR's key");
            assert!(!leaf.is_ca());
            let ku = leaf.key_usage().unwrap().unwrap().value;
            assert!(ku.digital_signature() && ku.non_repudiation() && !ku.key_cert_sign());
            assert_eq!(leaf.raw_serial().len(), 16);
            assert!(
                leaf.get_extension_unique(&x509_parser::oid_registry::OID_X509_EXT_AUTHORITY_KEY_IDENTIFIER)
                    .unwrap()
                    .is_some()
            );
            let days = (leaf.validity().not_after.timestamp() - leaf.validity().not_before.timestamp()) / 86400;
            assert_eq!(days, 365);
            x509::check_chain(&chain[0], &chain[1..], &chain[chain.len() - 1..], time::OffsetDateTime::now_utc())
                .unwrap();
            // The same code again: used.
            let (st, v) = post(&s, json!({"code": code, "csr": csr(alg, "CN=x").1})).await;
            assert_eq!((st, code_of(&v)), (StatusCode::GONE, "expired"));
            if openssl() {
                let d = dir.path();
                std::fs::write(d.join("leaf.pem"), x509::cert_pem(&chain[0])).unwrap();
                let mut cmd = Command::new("openssl");
                cmd.arg("verify").arg("-CAfile").arg(d.join("ca.pem"));
                if two_tier {
                    // The issuing CA is an untrusted intermediate; only the root is an anchor.
                    std::fs::write(d.join("root.pem"), x509::cert_pem(&chain[2])).unwrap();
                    std::fs::write(d.join("inter.pem"), x509::cert_pem(&chain[1])).unwrap();
                    cmd = Command::new("openssl");
                    cmd.arg("verify").arg("-CAfile").arg(d.join("root.pem")).arg("-untrusted").arg(d.join("inter.pem"));
                }
                let out = run(cmd.arg(d.join("leaf.pem")));
                assert!(out.contains(": OK"), "{out}");
            }
        }
        let log = std::fs::read_to_string(dir.path().join("issued.log")).unwrap();
        assert_eq!(log.lines().count(), 3);
        assert_eq!(s.store.issued_count().await.unwrap(), 3);
    }
}

#[tokio::test]
async fn refuses_bad_csrs_and_weak_keys_without_burning_the_code() {
    let dir = tempfile::tempdir().unwrap();
    let s = setup(dir.path(), false).await;
    let code = enrol(dir.path(), "CN=Alice,C=UZ", Duration::from_secs(600)).await.unwrap();
    let (_, good) = csr(KeyAlgorithm::P256, "CN=Alice");
    // A CSR whose signature does not verify: flip a byte inside the signature.
    let der = pem::parse(&good).unwrap().into_contents();
    let mut bad = der.clone();
    let n = bad.len() - 3;
    bad[n] ^= 1;
    let bad_pem = pem::encode(&pem::Pem::new("CERTIFICATE REQUEST", bad));
    let mut cases = vec![
        (bad_pem, "invalid_signature"),
        ("not a csr".to_string(), "invalid_input"),
        (pem::encode(&pem::Pem::new("CERTIFICATE REQUEST", vec![0x30, 0x03, 0x02, 0x01, 0x00])), "invalid_input"),
        (pem::encode(&pem::Pem::new("CERTIFICATE", der.clone())), "invalid_input"),
        ("A".repeat(20_000), "too_large"),
    ];
    if openssl() {
        let d = dir.path();
        for (name, args) in [
            ("rsa1024", vec!["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:1024"]),
            (
                "rsa-e3",
                vec!["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-pkeyopt", "rsa_keygen_pubexp:3"],
            ),
            ("p384", vec!["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-384"]),
        ] {
            let key = d.join(format!("{name}.key"));
            run(Command::new("openssl").arg("genpkey").args(&args).arg("-out").arg(&key));
            let csr = run(Command::new("openssl").args(["req", "-new", "-subj", "/CN=weak", "-key"]).arg(&key));
            cases.push((csr, "invalid_input"));
        }
        // A CSR asking for CA rights and odd extensions: the profile ignores them.
        let key = d.join("ca-ask.key");
        run(Command::new("openssl")
            .args(["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out"])
            .arg(&key));
        let ask = run(Command::new("openssl")
            .args(["req", "-new", "-subj", "/CN=I am a CA", "-addext", "basicConstraints=critical,CA:TRUE"])
            .args([
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
                "-addext",
                "certificatePolicies=1.2.3.4",
                "-key",
            ])
            .arg(&key));
        for (csr, want) in &cases {
            let (st, v) = post(&s, json!({"code": code, "csr": csr})).await;
            assert_eq!(code_of(&v), *want, "{st} {v}");
        }
        let (st, v) = post(&s, json!({"code": code, "csr": ask})).await;
        assert_eq!(st, StatusCode::CREATED, "the code survived every refused request: {v}");
        let chain = x509::parse_cert_bundle(v["chain"].as_str().unwrap().as_bytes()).unwrap();
        let leaf = x509::parse(&chain[0]).unwrap();
        assert!(!leaf.is_ca());
        assert!(!leaf.key_usage().unwrap().unwrap().value.key_cert_sign());
        assert_eq!(leaf.subject().to_string(), "CN=Alice, C=UZ");
    }
    for (body, want) in [
        (json!({"code": "x"}), "invalid_input"),
        (json!({"code": "x", "csr": good, "extra": 1}), "invalid_input"),
        (json!({"code": "NOPE-NOPE", "csr": good}), "expired"),
        (json!({"code": "A".repeat(100), "csr": good}), "invalid_input"),
    ] {
        assert_eq!(code_of(&post(&s, body).await.1), want);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_code_is_used_once_under_races_and_expires() {
    let dir = tempfile::tempdir().unwrap();
    let mut state = setup(dir.path(), false).await;
    state.clock = kalit_service::Clock::manual(time::OffsetDateTime::now_utc());
    let s = Arc::new(state);
    let code = enrol(dir.path(), "CN=Racer", Duration::from_secs(600)).await.unwrap();
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let (s, code) = (s.clone(), code.clone());
            let pem = csr(KeyAlgorithm::P256, "CN=x").1;
            tokio::spawn(async move { post(&s, json!({"code": code, "csr": pem})).await.0 })
        })
        .collect();
    let mut won = 0;
    for t in tasks {
        if t.await.unwrap() == StatusCode::CREATED {
            won += 1;
        }
    }
    assert_eq!(won, 1);
    // A code for a day, presented a minute after it expired (the RA's clock moves; the test does not
    // sleep); a minute before, it works.
    let short = enrol(dir.path(), "CN=Late", Duration::from_secs(86400)).await.unwrap();
    let early = enrol(dir.path(), "CN=Early", Duration::from_secs(86400)).await.unwrap();
    s.clock.advance(Duration::from_secs(86400 - 60));
    let (st, _) = post(&s, json!({"code": early, "csr": csr(KeyAlgorithm::P256, "CN=x").1})).await;
    assert_eq!(st, StatusCode::CREATED);
    s.clock.advance(Duration::from_secs(120));
    let (st, v) = post(&s, json!({"code": short, "csr": csr(KeyAlgorithm::P256, "CN=x").1})).await;
    assert_eq!((st, code_of(&v)), (StatusCode::GONE, "expired"));
    assert!(enrol(dir.path(), "no equals sign", Duration::from_secs(60)).await.is_err());
    assert!(enrol(dir.path(), "CN=x", Duration::from_secs(91 * 86400)).await.is_err());
}

#[tokio::test]
async fn revocation_and_crl_read_by_openssl() {
    let dir = tempfile::tempdir().unwrap();
    let s = setup(dir.path(), true).await;
    let code = enrol(dir.path(), "CN=Soon Revoked", Duration::from_secs(600)).await.unwrap();
    let (_, v) = post(&s, json!({"code": code, "csr": csr(KeyAlgorithm::P256, "CN=x").1})).await;
    let serial = v["serial"].as_str().unwrap().to_string();
    revoke(dir.path(), &serial.to_uppercase(), Some("keyCompromise")).await.unwrap();
    assert_eq!(revoke(dir.path(), &serial, None).await.unwrap_err().code, kalit_proto::ErrorCode::NotFound);
    assert!(revoke(dir.path(), &serial, Some("boredom")).await.is_err());
    let (st, crl) = get(&s, "/v1/crl").await;
    assert_eq!(st, StatusCode::OK);
    let (_, ca_pem) = get(&s, "/v1/ca.pem").await;
    assert_eq!(ca_pem, std::fs::read(dir.path().join("ca.pem")).unwrap());
    if openssl() {
        let d = dir.path();
        std::fs::write(d.join("crl.der"), &crl).unwrap();
        let chain = x509::parse_cert_bundle(&ca_pem).unwrap();
        std::fs::write(d.join("issuing.pem"), x509::cert_pem(&chain[0])).unwrap();
        let out = Command::new("openssl")
            .args(["crl", "-inform", "DER", "-noout", "-text", "-in"])
            .arg(d.join("crl.der"))
            .arg("-CAfile")
            .arg(d.join("issuing.pem"))
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_uppercase();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{err}");
        assert!(err.contains("verify OK"), "OpenSSL checked the CRL's signature: {err}");
        assert!(text.contains(&serial.to_uppercase()), "{text}");
        assert!(text.contains("KEY COMPROMISE"), "{text}");
    }
}

#[test]
fn ca_passphrase_and_files() {
    let dir = tempfile::tempdir().unwrap();
    let weak = ca::init(dir.path(), "X", KeyAlgorithm::P256, false, 365, &SecretString::new("short".into()));
    assert_eq!(weak.unwrap_err().code, kalit_proto::ErrorCode::WeakSecret);
    ca::init(dir.path(), "X", KeyAlgorithm::Rsa3072, false, 365, &SecretString::new(PASS.into())).unwrap();
    let again = ca::init(dir.path(), "X", KeyAlgorithm::P256, false, 365, &SecretString::new(PASS.into()));
    assert_eq!(again.unwrap_err().code, kalit_proto::ErrorCode::AlreadyExists);
    let wrong = ca::open(dir.path(), &SecretString::new("not the passphrase".into()));
    assert_eq!(wrong.unwrap_err().code, kalit_proto::ErrorCode::WrongPassword);
    let json = std::fs::read_to_string(dir.path().join("ca.json")).unwrap();
    assert!(!json.contains("PRIVATE"), "no clear private key in ca.json");
    // A tampered certificate in ca.json no longer opens (it is associated data of the sealed key).
    let v: Value = serde_json::from_str(&json).unwrap();
    let mut t = v.clone();
    let cert = t["root"]["cert"].as_str().unwrap().to_string();
    let other = if cert.ends_with('A') { "B" } else { "A" };
    t["root"]["cert"] = json!(format!("{}{}", &cert[..cert.len() - 4], other.repeat(4)));
    std::fs::write(dir.path().join("ca.json"), t.to_string()).unwrap();
    assert!(ca::open(dir.path(), &SecretString::new(PASS.into())).is_err());
}

#[tokio::test]
async fn openapi_lists_routes_and_codes() {
    let dir = tempfile::tempdir().unwrap();
    let s = setup(dir.path(), false).await;
    let (_, spec) = get(&s, "/openapi.json").await;
    let spec: Value = serde_json::from_slice(&spec).unwrap();
    for p in ["/v1/certificates", "/v1/ca.pem", "/v1/crl", "/healthz", "/metrics", "/openapi.json"] {
        assert!(spec["paths"].get(p).is_some(), "{p}");
        let (st, _) = get(&s, p).await;
        assert!(st == StatusCode::OK || p == "/v1/certificates", "{p}: {st}");
    }
    let n = spec["components"]["schemas"]["ErrorCode"]["enum"].as_array().unwrap().len();
    assert_eq!(n, kalit_proto::ErrorCode::ALL.len());
}

/// `/metrics` tells how many enrol, revoke and are refused: this machine and the `--metrics-from`
/// addresses read it, anyone else gets 403 `unauthorized`.
#[tokio::test]
async fn metrics_only_for_this_machine_and_the_named_scrapers() {
    let dir = tempfile::tempdir().unwrap();
    let s = setup(dir.path(), false).await;
    let from = |s: &RaState, peer: &str| {
        let mut r = Request::get("/metrics").body(Body::empty()).unwrap();
        r.extensions_mut().insert(axum::extract::ConnectInfo(peer.parse::<std::net::SocketAddr>().unwrap()));
        app(s.clone()).oneshot(r)
    };
    for (peer, status) in
        [("127.0.0.1:4000", StatusCode::OK), ("[::1]:4000", StatusCode::OK), ("192.0.2.7:4000", StatusCode::FORBIDDEN)]
    {
        let resp = from(&s, peer).await.unwrap();
        assert_eq!(resp.status(), status, "{peer}");
        let body = axum::body::to_bytes(resp.into_body(), 1 << 20).await.unwrap();
        let text = String::from_utf8_lossy(&body);
        assert_eq!(text.contains("kalit_ra_http_requests_total"), status == StatusCode::OK, "{peer}: {text}");
        if status != StatusCode::OK {
            assert!(text.contains("\"unauthorized\"") && text.contains("metrics_from"), "{text}");
        }
    }
    let s = s.with_metrics_from(&["192.0.2.7".parse().unwrap()]);
    assert_eq!(from(&s, "192.0.2.7:4000").await.unwrap().status(), StatusCode::OK);
    assert_eq!(from(&s, "192.0.2.8:4000").await.unwrap().status(), StatusCode::FORBIDDEN);
}

/// CORS only for the phone apps' exact origins: their preflight is answered and their answers readable;
/// any other origin (or none configured) gets no CORS header; a bad `--app-origin` is refused at start.
#[tokio::test]
async fn cors_only_for_the_configured_phone_app_origins() {
    let dir = tempfile::tempdir().unwrap();
    let app_origin = "https://relay.example";
    let s = setup(dir.path(), false).await.with_app_origins(&[format!("{app_origin}/")]).unwrap();
    let call = |method: &str, origin: &str| {
        let mut r = Request::builder().method(method).uri("/v1/certificates").header("origin", origin);
        if method == "OPTIONS" {
            r = r
                .header("access-control-request-method", "POST")
                .header("access-control-request-headers", "content-type");
        } else {
            r = r.header("content-type", "application/json");
        }
        let body =
            if method == "POST" { Body::from(json!({"code": "x", "csr": "y"}).to_string()) } else { Body::empty() };
        let s = s.clone();
        async move { app(s).oneshot(r.body(body).unwrap()).await.unwrap() }
    };
    let pre = call("OPTIONS", app_origin).await;
    assert_eq!(pre.status(), StatusCode::NO_CONTENT);
    assert_eq!(pre.headers()["access-control-allow-origin"], app_origin);
    assert_eq!(pre.headers()["access-control-allow-headers"], "content-type");
    let post = call("POST", app_origin).await;
    assert_eq!(post.headers()["access-control-allow-origin"], app_origin, "an error answer is readable too");
    assert!(post.headers()["vary"].to_str().unwrap().contains("Origin"));
    for other in ["https://evil.example", "https://relay.example.evil", "null"] {
        for method in ["OPTIONS", "POST"] {
            let r = call(method, other).await;
            assert!(r.headers().get("access-control-allow-origin").is_none(), "{method} from {other}");
        }
    }
    // Without --app-origin nobody gets CORS headers.
    let plain_dir = tempfile::tempdir().unwrap();
    let plain = setup(plain_dir.path(), false).await;
    let r = app(plain)
        .oneshot(
            Request::builder()
                .method("OPTIONS")
                .uri("/v1/certificates")
                .header("origin", app_origin)
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert!(r.headers().get("access-control-allow-origin").is_none());
    for bad in ["relay.example", "https://relay.example/app/", "https://Relay.example", "*"] {
        let d = tempfile::tempdir().unwrap();
        assert!(setup(d.path(), false).await.with_app_origins(&[bad.to_string()]).is_err(), "{bad}");
    }
}
