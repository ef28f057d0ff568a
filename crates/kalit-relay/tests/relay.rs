//! The relay in process, on SQLite and (when `KALIT_TEST_POSTGRES_URL` is set) PostgreSQL: registration
//! flows, races, replay, trust, non-enumeration, hostile requests, restart.
#![allow(clippy::unwrap_used)]

use kalit_proto::Base64;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use kalit_core::KeyAlgorithm;
use kalit_core::keys::{self, PrivateKey};
use kalit_core::statement::{self, Statement};
use kalit_proto::relay::{CertProof, DeviceApproval, DeviceRequest, RegisterRequest, RelayIdentity};
use kalit_relay::config::Limits;
use kalit_relay::{AppState, Identity, Store, app};
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyUsagePurpose};
use serde_json::{Value, json};
use tower::ServiceExt;

struct Ca {
    der: Vec<u8>,
    issuer: Issuer<'static, PrivateKey>,
}

fn key(alg: KeyAlgorithm) -> PrivateKey {
    PrivateKey::from_pkcs8(&keys::generate(alg).unwrap()).unwrap()
}

impl Ca {
    fn new(name: &str) -> Ca {
        let k = key(KeyAlgorithm::P256);
        let mut p = CertificateParams::new(vec![]).unwrap();
        p.distinguished_name = kalit_core::csr::parse_subject(&format!("CN={name}")).unwrap();
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.key_usages = vec![KeyUsagePurpose::KeyCertSign];
        let der = p.self_signed(&k).unwrap().der().to_vec();
        Ca { der, issuer: Issuer::new(p, k) }
    }

    fn person(&self, cn: &str, alg: KeyAlgorithm) -> Person {
        let k = key(alg);
        let mut p = CertificateParams::new(vec![]).unwrap();
        p.distinguished_name = kalit_core::csr::parse_subject(&format!("CN={cn}")).unwrap();
        p.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::ContentCommitment];
        let cert = p.signed_by(&k, &self.issuer).unwrap().der().to_vec();
        Person { key: k, chain: vec![cert, self.der.clone()] }
    }

    /// A person whose certificate carries an extension no one understands, marked critical.
    fn odd_person(&self, cn: &str) -> Person {
        let k = key(KeyAlgorithm::P256);
        let mut p = CertificateParams::new(vec![]).unwrap();
        p.distinguished_name = kalit_core::csr::parse_subject(&format!("CN={cn}")).unwrap();
        p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        let mut ext = rcgen::CustomExtension::from_oid_content(&[1, 3, 6, 1, 4, 1, 99999, 1], vec![0x05, 0x00]);
        ext.set_criticality(true);
        p.custom_extensions.push(ext);
        let cert = p.signed_by(&k, &self.issuer).unwrap().der().to_vec();
        Person { key: k, chain: vec![cert, self.der.clone()] }
    }
}

struct Person {
    key: PrivateKey,
    chain: Vec<Vec<u8>>,
}

struct Device {
    key: PrivateKey,
}

impl Device {
    fn new() -> Device {
        Device { key: key(KeyAlgorithm::Ed25519) }
    }
    fn raw(&self) -> Vec<u8> {
        self.key.public_key_raw().to_vec()
    }
    fn id(&self) -> String {
        statement::key_id(&self.raw())
    }
}

struct Relay {
    state: AppState,
    id: String,
}

impl Relay {
    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        let req = Request::builder().method(method).uri(path);
        let req = match body {
            Some(b) => req.header("content-type", "application/json").body(Body::from(b.to_string())).unwrap(),
            None => req.body(Body::empty()).unwrap(),
        };
        self.raw(req).await
    }

    async fn raw(&self, req: Request<Body>) -> (StatusCode, Value) {
        let resp = app(self.state.clone()).oneshot(req).await.unwrap();
        let status = resp.status();
        let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20).await.unwrap();
        (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
    }

    async fn nonce(&self) -> Vec<u8> {
        let (s, v) = self.call("POST", "/v1/nonce", None).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        B64.decode(v["nonce"].as_str().unwrap()).unwrap()
    }

    /// A complete, valid registration request.
    async fn request(&self, login: &str, who: &Person, dev: &Device, approver: Option<&Device>) -> RegisterRequest {
        let nonce = self.nonce().await;
        self.request_with(login, who, dev, approver, &nonce, &self.id)
    }

    fn request_with(
        &self,
        login: &str,
        who: &Person,
        dev: &Device,
        approver: Option<&Device>,
        nonce: &[u8],
        relay_id: &str,
    ) -> RegisterRequest {
        // The phone signs the canonical login, as the relay checks it.
        let canonical = statement::normalize_login(login).unwrap_or_else(|_| login.to_string());
        let fp = statement::cert_fingerprint(&who.chain[0]);
        let sig =
            Statement::register(relay_id, nonce, &canonical, &dev.raw(), &fp).sign_as_certificate(&who.key).unwrap();
        let approval = approver.map(|a| {
            let target = format!("{fp}/{}", dev.id());
            let st = Statement::device_request(relay_id, nonce, &canonical, &a.id(), "attach", &target);
            DeviceApproval { device_id: a.id().into(), signature: Base64::of(st.sign(&a.key).unwrap()) }
        });
        RegisterRequest {
            login: login.into(),
            device_key: Base64::of(dev.raw()),
            device_name: "test phone".into(),
            nonce: Base64::of(nonce),
            relay_id: relay_id.into(),
            proof: proof(who, sig),
            approval,
        }
    }

    async fn register(&self, r: &RegisterRequest) -> (StatusCode, Value) {
        self.call("POST", "/v1/register", Some(serde_json::to_value(r).unwrap())).await
    }

    async fn device_call(&self, login: &str, dev: &Device, action: &str, target: &str) -> (StatusCode, Value) {
        let nonce = self.nonce().await;
        let sig = Statement::device_request(&self.id, &nonce, login, &dev.id(), action, target).sign(&dev.key).unwrap();
        let req = DeviceRequest {
            login: login.into(),
            device_id: dev.id().into(),
            nonce: Base64::of(&nonce),
            relay_id: self.id.clone().into(),
            target: target.into(),
            signature: Base64::of(sig),
            proof: None,
        };
        let path = match action {
            "list" => "/v1/devices",
            "detach" => "/v1/certificates/detach",
            "cancel-detach" => "/v1/certificates/cancel-detach",
            _ => "/v1/devices/remove",
        };
        self.call("POST", path, Some(serde_json::to_value(req).unwrap())).await
    }
}

fn proof(p: &Person, sig: Vec<u8>) -> CertProof {
    CertProof { chain: p.chain.iter().map(Base64::of).collect(), signature: Base64::of(sig) }
}

fn code(v: &Value) -> &str {
    v["error"]["code"].as_str().unwrap_or("<none>")
}

/// A fresh database per test: a SQLite file, or a new PostgreSQL database.
struct Db {
    url: String,
    _dir: tempfile::TempDir,
    backend: &'static str,
}

async fn databases() -> Vec<Db> {
    let mut out = vec![];
    let dir = tempfile::tempdir().unwrap();
    out.push(Db {
        url: format!("sqlite://{}?mode=rwc", dir.path().join("r.db").display()),
        _dir: dir,
        backend: "sqlite",
    });
    match std::env::var("KALIT_TEST_POSTGRES_URL") {
        Ok(base) => {
            sqlx::any::install_default_drivers();
            let name = format!("kalit_t_{}", hex::encode(kalit_core::seal::random::<6>().unwrap()));
            let admin = sqlx::AnyPool::connect(&base).await.unwrap();
            sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).execute(&admin).await.unwrap();
            admin.close().await;
            let (prefix, _) = base.rsplit_once('/').unwrap();
            out.push(Db { url: format!("{prefix}/{name}"), _dir: tempfile::tempdir().unwrap(), backend: "postgres" });
        }
        Err(_) => eprintln!("PostgreSQL part skipped: KALIT_TEST_POSTGRES_URL is not set (.ci/run sets it)"),
    }
    out
}

async fn relay(db: &Db, anchors: Vec<Vec<u8>>, limits: Limits) -> Relay {
    let store = Store::open(&db.url).await.unwrap();
    let identity = Identity::load_or_create(db._dir.path(), "test relay").unwrap();
    let id = identity.id().to_string();
    Relay { state: AppState::new(store, identity, anchors, limits), id }
}

fn no_limits() -> Limits {
    Limits { per_address_per_minute: 0, per_login_per_minute: 0, ..Limits::default() }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn registration_devices_and_restart() {
    let ca = Ca::new("Test RA");
    for db in databases().await {
        let b = db.backend;
        let r = relay(&db, vec![ca.der.clone()], no_limits()).await;
        let alice = ca.person("Alice", KeyAlgorithm::P256);
        let (phone_a, phone_b, phone_c) = (Device::new(), Device::new(), Device::new());

        let req = r.request("Alice.Uz", &alice, &phone_a, None).await;
        let (s, v) = r.register(&req).await;
        assert_eq!(s, StatusCode::CREATED, "{b}: {v}");
        assert_eq!(v["outcome"], "created");
        // The attestation verifies with the published key and binds login, certificate and device.
        let (_, ident) = r.call("GET", "/.well-known/kalit-relay", None).await;
        let ident: RelayIdentity = serde_json::from_value(ident).unwrap();
        let signed: kalit_proto::relay::SignedAttestation = serde_json::from_value(v["attestation"].clone()).unwrap();
        statement::verify_attestation(&ident.public_key, &signed).unwrap();
        assert_eq!(signed.attestation.login, "alice.uz");
        assert_eq!(signed.attestation.device_id, phone_a.id());
        assert_eq!(signed.attestation.cert_fingerprint, statement::cert_fingerprint(&alice.chain[0]));
        let mut forged = signed.clone();
        forged.attestation.login = "mallory".into();
        assert!(statement::verify_attestation(&ident.public_key, &forged).is_err());

        // The same request again: its nonce is spent.
        let (s, v) = r.register(&req).await;
        assert_eq!((s, code(&v)), (StatusCode::GONE, "expired"), "{b}");

        // A second person with another trusted certificate: login taken.
        let bob = ca.person("Bob", KeyAlgorithm::Ed25519);
        let (s, v) = r.register(&r.request("alice.uz", &bob, &phone_b, None).await).await;
        assert_eq!((s, code(&v)), (StatusCode::CONFLICT, "login_taken"), "{b}: {v}");
        assert!(!v.to_string().contains("Alice"), "the answer names no attached certificate: {v}");

        // Alice's new certificate joins with the approval of her registered phone: added.
        let alice2 = ca.person("Alice", KeyAlgorithm::Rsa2048);
        let (s, v) = r.register(&r.request("alice.uz", &alice2, &phone_b, Some(&phone_a)).await).await;
        assert_eq!(s, StatusCode::CREATED, "{b}: {v}");
        assert_eq!(v["outcome"], "added");
        // The approval of a device that is not the login's does not help, nor does an approval made
        // for another certificate or device.
        let (s, v) = r.register(&r.request("alice.uz", &bob, &phone_c, Some(&Device::new())).await).await;
        assert_eq!(code(&v), "login_taken", "{b}: {s}");
        let mut req = r.request("alice.uz", &bob, &phone_c, Some(&phone_a)).await;
        req.approval = r.request("alice.uz", &alice2, &phone_c, Some(&phone_a)).await.approval;
        let (_, v) = r.register(&req).await;
        assert_eq!(code(&v), "login_taken", "{b}: an approval is bound to the nonce, certificate and device");
        // A third phone with an already attached certificate (an imported PFX): added.
        let (s, v) = r.register(&r.request("alice.uz", &alice, &phone_c, None).await).await;
        assert_eq!((s, v["outcome"].as_str()), (StatusCode::CREATED, Some("added")), "{b}: {v}");
        // The same device key twice: refused.
        let (_, v) = r.register(&r.request("alice.uz", &alice, &phone_c, None).await).await;
        assert_eq!(code(&v), "already_exists", "{b}");

        let (s, v) = r.device_call("alice.uz", &phone_a, "list", "").await;
        assert_eq!(s, StatusCode::OK, "{b}: {v}");
        assert_eq!(v["devices"].as_array().unwrap().len(), 3);
        // A device of another login, or an unknown one, cannot list.
        let stranger = Device::new();
        let (s, v) = r.device_call("alice.uz", &stranger, "list", "").await;
        assert_eq!((s, code(&v)), (StatusCode::FORBIDDEN, "unauthorized"), "{b}");
        let (s, v) = r.device_call("alice.uz", &phone_a, "remove", &phone_c.id()).await;
        assert_eq!(s, StatusCode::OK, "{b}: {v}");
        let (_, v) = r.device_call("alice.uz", &phone_c, "list", "").await;
        assert_eq!(code(&v), "unauthorized", "a removed device is no longer trusted ({b})");
        let (_, v) = r.device_call("alice.uz", &phone_a, "remove", &phone_c.id()).await;
        assert_eq!(code(&v), "not_found", "{b}");

        // Restart: a new process state over the same database and data directory keeps everything.
        let relay_id = r.id.clone();
        r.state.store.close().await;
        drop(r);
        let r = relay(&db, vec![ca.der.clone()], no_limits()).await;
        assert_eq!(r.id, relay_id, "{b}: the relay key survives a restart");
        let (s, v) = r.device_call("alice.uz", &phone_b, "list", "").await;
        assert_eq!(s, StatusCode::OK, "{b}: {v}");
        let names: Vec<&str> =
            v["devices"].as_array().unwrap().iter().map(|d| d["device_id"].as_str().unwrap()).collect();
        assert_eq!(names, vec![phone_a.id(), phone_b.id()], "{b}");
        let (s, v) = r.register(&r.request("alice.uz", &bob, &Device::new(), None).await).await;
        assert_eq!((s, code(&v)), (StatusCode::CONFLICT, "login_taken"), "{b}");
        let (s, v) = r.call("GET", "/healthz", None).await;
        assert_eq!((s, v["database"].as_str()), (StatusCode::OK, Some(b)));
        r.state.store.close().await;
    }
}

/// The signing-oracle attack of issue 9, at the relay: a raw *document* signature over the bytes of a
/// registration statement (what a vault without its refusal would give a page) is not a registration
/// proof, because statements are verified under their own scheme. And a new certificate, even with a
/// valid proof, cannot join someone else's login without a device of that login.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn document_signatures_never_register_and_logins_need_their_devices() {
    let ca = Ca::new("Test RA");
    for db in databases().await {
        let b = db.backend;
        let r = relay(&db, vec![ca.der.clone()], no_limits()).await;
        for alg in [KeyAlgorithm::Rsa2048, KeyAlgorithm::P256, KeyAlgorithm::Ed25519] {
            let victim = ca.person("Victim", alg);
            let attacker_dev = Device::new();
            let login = format!("victim-{}", alg.name());
            let mut req = r.request(&login, &victim, &attacker_dev, None).await;
            let nonce = req.nonce.to_vec();
            let fp = statement::cert_fingerprint(&victim.chain[0]);
            let st = Statement::register(&r.id, &nonce, &login, &attacker_dev.raw(), &fp);
            // What a page would get by asking for a raw signature of these bytes as a "document".
            let doc_sig = victim.key.sign(victim.key.default_scheme(), st.as_bytes()).unwrap();
            req.proof.signature = Base64::of(&doc_sig);
            let (s, v) = r.register(&req).await;
            assert_eq!((s, code(&v)), (StatusCode::BAD_REQUEST, "invalid_signature"), "{b} {alg}: {v}");
            if alg.is_rsa() {
                let pss = victim.key.sign(kalit_core::SignScheme::RsaPssSha256, st.as_bytes()).unwrap();
                req.proof.signature = Base64::of(&pss);
                assert_eq!(code(&r.register(&req).await.1), "invalid_signature", "{b}: PSS");
            }
        }
        // A certificate with an unknown critical extension cannot register (RFC 5280 4.2).
        let odd = ca.odd_person("Odd");
        let (s, v) = r.register(&r.request("odd", &odd, &Device::new(), None).await).await;
        assert_eq!((s, code(&v)), (StatusCode::FORBIDDEN, "untrusted_certificate"), "{b}: {v}");
        // Alice's login; Mallory holds a valid certificate from the same CA and a valid register proof.
        let alice = ca.person("Alice", KeyAlgorithm::P256);
        let alice_phone = Device::new();
        assert_eq!(r.register(&r.request("alice", &alice, &alice_phone, None).await).await.0, StatusCode::CREATED);
        let mallory = ca.person("Mallory", KeyAlgorithm::P256);
        let (s, v) = r.register(&r.request("alice", &mallory, &Device::new(), None).await).await;
        assert_eq!((s, code(&v)), (StatusCode::CONFLICT, "login_taken"), "{b}");
        r.state.store.close().await;
    }
}

/// A way back: a certificate can be detached from a login after a cooling-off period that every device
/// sees and the certificate's own devices can cancel; a device of one certificate cannot remove a device
/// of another without that certificate's proof; a detached device cannot come back.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn detach_with_cooling_off_and_removal_across_certificates() {
    let ca = Ca::new("Test RA");
    for db in databases().await {
        let b = db.backend;
        // The real cooling-off period (72 hours), on a clock the test moves.
        let limits = Limits { detach_cooling_off_secs: 72 * 3600, ..no_limits() };
        let mut r = relay(&db, vec![ca.der.clone()], limits).await;
        r.state.clock = kalit_service::Clock::manual(time::OffsetDateTime::now_utc());
        let alice = ca.person("Alice", KeyAlgorithm::P256);
        let alice_phone = Device::new();
        assert_eq!(r.register(&r.request("alice", &alice, &alice_phone, None).await).await.0, StatusCode::CREATED);
        // A second certificate joins with the approval of Alice's phone (say, a phone later stolen).
        let second = ca.person("Alice work", KeyAlgorithm::Ed25519);
        let second_phone = Device::new();
        let (s, v) = r.register(&r.request("alice", &second, &second_phone, Some(&alice_phone)).await).await;
        assert_eq!(s, StatusCode::CREATED, "{b}: {v}");
        let second_fp = statement::cert_fingerprint(&second.chain[0]);
        let alice_fp = statement::cert_fingerprint(&alice.chain[0]);

        // Removing a device of another certificate without its proof: refused, both ways.
        let (s, v) = r.device_call("alice", &second_phone, "remove", &alice_phone.id()).await;
        assert_eq!((s, code(&v)), (StatusCode::FORBIDDEN, "refused_by_policy"), "{b}: {v}");
        let (_, v) = r.device_call("alice", &alice_phone, "remove", &second_phone.id()).await;
        assert_eq!(code(&v), "refused_by_policy", "{b}");

        // The second certificate asks to detach Alice's; everyone sees it; Alice's phone cancels.
        let (s, v) = r.device_call("alice", &second_phone, "detach", &alice_fp).await;
        assert_eq!(s, StatusCode::OK, "{b}: {v}");
        let (_, v) = r.device_call("alice", &alice_phone, "list", "").await;
        assert_eq!(v["pending_detachments"][0]["cert_fingerprint"], alice_fp.as_str(), "{b}: {v}");
        assert_eq!(v["pending_detachments"][0]["requested_by"], second_phone.id().as_str());
        let (_, v) = r.device_call("alice", &second_phone, "cancel-detach", &alice_fp).await;
        assert_eq!(code(&v), "refused_by_policy", "{b}: only the certificate's own devices cancel");
        let (s, v) = r.device_call("alice", &alice_phone, "cancel-detach", &alice_fp).await;
        assert_eq!(s, StatusCode::OK, "{b}: {v}");

        // Alice detaches the second certificate; after the cooling-off period it and its phone are gone.
        let (s, v) = r.device_call("alice", &alice_phone, "detach", &second_fp).await;
        assert_eq!(s, StatusCode::OK, "{b}: {v}");
        let (_, v) = r.device_call("alice", &second_phone, "list", "").await;
        assert_eq!(v["pending_detachments"].as_array().unwrap().len(), 1, "{b}: announced to that device too");
        // Not before the cooling-off period has passed (the relay's clock moves; the test does not sleep).
        r.state.clock.advance(std::time::Duration::from_secs(72 * 3600 - 60));
        let (s, _) = r.device_call("alice", &second_phone, "list", "").await;
        assert_eq!(s, StatusCode::OK, "{b}: still attached a minute before");
        r.state.clock.advance(std::time::Duration::from_secs(61));
        let (s, v) = r.device_call("alice", &second_phone, "list", "").await;
        assert_eq!((s, code(&v)), (StatusCode::FORBIDDEN, "unauthorized"), "{b}: a detached device is out");
        let (_, v) = r.device_call("alice", &alice_phone, "list", "").await;
        assert_eq!(v["devices"].as_array().unwrap().len(), 1, "{b}: {v}");
        assert!(v["pending_detachments"].as_array().unwrap().is_empty());
        // The detached certificate cannot come back by itself.
        let (s, v) = r.register(&r.request("alice", &second, &Device::new(), None).await).await;
        assert_eq!((s, code(&v)), (StatusCode::CONFLICT, "login_taken"), "{b}: {v}");
        r.state.store.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn trust_replay_other_relay_and_non_enumeration() {
    let ca = Ca::new("Test RA");
    let national = Ca::new("Other national CA");
    for db in databases().await {
        let b = db.backend;
        let r = relay(&db, vec![ca.der.clone()], no_limits()).await;
        let alice = ca.person("Alice", KeyAlgorithm::P256);
        assert_eq!(r.register(&r.request("taken", &alice, &Device::new(), None).await).await.0, StatusCode::CREATED);

        // A certificate from an issuer the relay does not trust cannot register; once the operator adds the
        // CA (a restart with another --trust) it can.
        let carol = national.person("Carol", KeyAlgorithm::P256);
        let (s, v) = r.register(&r.request("carol", &carol, &Device::new(), None).await).await;
        assert_eq!((s, code(&v)), (StatusCode::FORBIDDEN, "untrusted_certificate"), "{b}: {v}");
        let r2 = relay(&db, vec![ca.der.clone(), national.der.clone()], no_limits()).await;
        let (s, v) = r2.register(&r2.request("carol", &carol, &Device::new(), None).await).await;
        assert_eq!(s, StatusCode::CREATED, "{b}: {v}");

        // A proof made for another relay fails, and so does a nonce the relay never issued.
        let nonce = r.nonce().await;
        let (s, v) = r.register(&r.request_with("newbie", &alice, &Device::new(), None, &nonce, "0123abcd")).await;
        assert_eq!((s, code(&v)), (StatusCode::BAD_REQUEST, "invalid_input"), "{b}: {v}");
        let (_, v) = r.register(&r.request_with("newbie", &alice, &Device::new(), None, &[7u8; 32], &r.id)).await;
        assert_eq!(code(&v), "expired", "{b}");

        // A stranger probing logins: each bad proof gets the same status and body, taken or not.
        for mutate in [bad_signature as fn(&mut RegisterRequest), untrusted(&national), swapped_statement] {
            let mut answers = vec![];
            for login in ["taken", "free-login"] {
                let mut req = r.request(login, &alice, &Device::new(), None).await;
                mutate(&mut req);
                answers.push(r.register(&req).await);
            }
            assert_eq!(answers[0], answers[1], "{b}: the answer must not depend on the login existing");
            assert_ne!(answers[0].0, StatusCode::CREATED);
        }
        r.state.store.close().await;
        r2.state.store.close().await;
    }

    fn bad_signature(r: &mut RegisterRequest) {
        let mut sig = r.proof.signature.to_vec();
        let n = sig.len() / 2;
        sig[n] ^= 1;
        r.proof.signature = Base64::of(sig);
    }
    fn swapped_statement(r: &mut RegisterRequest) {
        // A signature over the statement for another device key.
        r.device_key = Base64::of([9u8; 32]);
    }
    fn untrusted(national: &Ca) -> fn(&mut RegisterRequest) {
        // Closures cannot be fn pointers with captures: keep a chain from another CA in a static.
        static CHAIN: std::sync::OnceLock<Vec<Base64>> = std::sync::OnceLock::new();
        let _ = CHAIN.set(national.person("Eve", KeyAlgorithm::P256).chain.iter().map(Base64::of).collect());
        |r| r.proof.chain = CHAIN.get().unwrap().clone()
    }
}

/// Sends the registrations at the same moment (a barrier) and returns their answers in order.
async fn at_once(r: &Arc<Relay>, reqs: Vec<RegisterRequest>) -> Vec<(StatusCode, Value)> {
    let barrier = Arc::new(tokio::sync::Barrier::new(reqs.len()));
    let tasks: Vec<_> = reqs
        .into_iter()
        .map(|req| {
            let (r, barrier) = (r.clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                r.register(&req).await
            })
        })
        .collect();
    let mut out = vec![];
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_registrations_of_one_login_have_one_winner() {
    let ca = Arc::new(Ca::new("Test RA"));
    for db in databases().await {
        let b = db.backend;
        let r = Arc::new(relay(&db, vec![ca.der.clone()], no_limits()).await);
        for round in 0..3 {
            let login = format!("race-{round}");
            let mut reqs = vec![];
            for i in 0..12 {
                let p = ca.person(&format!("Racer {i}"), KeyAlgorithm::P256);
                reqs.push(r.request(&login, &p, &Device::new(), None).await);
            }
            let mut created = 0;
            for (s, v) in at_once(&r, reqs).await {
                match s {
                    StatusCode::CREATED => created += 1,
                    StatusCode::CONFLICT => assert_eq!(code(&v), "login_taken"),
                    other => panic!("{b}: unexpected {other}: {v}"),
                }
            }
            assert_eq!(created, 1, "{b} round {round}: exactly one registration wins");
        }
        // Concurrent use of one nonce: exactly one succeeds.
        let nonce = r.nonce().await;
        let mut tasks = vec![];
        for i in 0..8 {
            let p = ca.person(&format!("N{i}"), KeyAlgorithm::P256);
            let req = r.request_with(&format!("nonce-{i}"), &p, &Device::new(), None, &nonce, &r.id);
            let r = r.clone();
            tasks.push(tokio::spawn(async move { r.register(&req).await.0 }));
        }
        let mut ok = 0;
        for t in tasks {
            if t.await.unwrap() == StatusCode::CREATED {
                ok += 1;
            }
        }
        assert_eq!(ok, 1, "{b}: a nonce is single-use under races");
        // Registrations at once, one of them with a device key registered already: on SQLite they share
        // a group commit, whose failure must cost only the one at fault, and write nothing of it.
        let pk8 = keys::generate(KeyAlgorithm::Ed25519).unwrap();
        let taken_device = Device { key: PrivateKey::from_pkcs8(&pk8).unwrap() };
        let first = ca.person("First", KeyAlgorithm::P256);
        let (s, v) = r.register(&r.request("first", &first, &taken_device, None).await).await;
        assert_eq!(s, StatusCode::CREATED, "{b}: {v}");
        let mut reqs = vec![];
        for i in 0..12 {
            let p = ca.person(&format!("Group {i}"), KeyAlgorithm::P256);
            let dev = if i == 5 { Device { key: PrivateKey::from_pkcs8(&pk8).unwrap() } } else { Device::new() };
            reqs.push(r.request(&format!("group-{i}"), &p, &dev, None).await);
        }
        for (i, (s, v)) in at_once(&r, reqs).await.into_iter().enumerate() {
            if i == 5 {
                assert_eq!(code(&v), "already_exists", "{b}: {s} {v}");
            } else {
                assert_eq!(s, StatusCode::CREATED, "{b} group-{i}: {v}");
            }
        }
        let p = ca.person("Group 5 again", KeyAlgorithm::P256);
        let (s, v) = r.register(&r.request("group-5", &p, &Device::new(), None).await).await;
        assert_eq!((s, v["outcome"].as_str()), (StatusCode::CREATED, Some("created")), "{b}: nothing of it was kept");
        r.state.store.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_requests_get_stable_codes_and_change_nothing() {
    let ca = Ca::new("Test RA");
    for db in databases().await {
        let b = db.backend;
        let r = relay(&db, vec![ca.der.clone()], Limits { body_bytes: 16 * 1024, ..no_limits() }).await;
        let alice = ca.person("Alice", KeyAlgorithm::P256);
        let good = serde_json::to_value(r.request("victim", &alice, &Device::new(), None).await).unwrap();
        let post = |body: String, ctype: &'static str| {
            Request::builder()
                .method("POST")
                .uri("/v1/register")
                .header("content-type", ctype)
                .body(Body::from(body))
                .unwrap()
        };
        let with = |f: &dyn Fn(&mut Value)| {
            let mut v = good.clone();
            f(&mut v);
            v.to_string()
        };
        let nested = format!("{}{}", "[".repeat(5_000), "]".repeat(5_000));
        let cases: Vec<(String, &str, &str)> = vec![
            ("{".into(), "application/json", "invalid_input"),
            ("".into(), "application/json", "invalid_input"),
            (nested, "application/json", "invalid_input"),
            (good.to_string(), "text/plain", "invalid_input"),
            ("login=x&proof=y".into(), "application/x-www-form-urlencoded", "invalid_input"),
            (with(&|v| v["surprise"] = json!(1)), "application/json", "invalid_input"),
            (with(&|v| v["login"] = json!(42)), "application/json", "invalid_input"),
            (with(&|v| v["login"] = json!("a b")), "application/json", "invalid_input"),
            (with(&|v| v["login"] = json!("x".repeat(65))), "application/json", "invalid_input"),
            (with(&|v| v["device_key"] = json!("AAAA")), "application/json", "invalid_input"),
            (with(&|v| v["device_key"] = json!("not base64!")), "application/json", "invalid_input"),
            (with(&|v| v["device_name"] = json!("\u{7}bell")), "application/json", "invalid_input"),
            (with(&|v| v["proof"]["chain"] = json!([])), "application/json", "invalid_input"),
            (with(&|v| v["proof"]["chain"] = json!(vec!["AAAA"; 9])), "application/json", "invalid_input"),
            (with(&|v| v["proof"]["chain"] = json!(["AAAA"])), "application/json", "invalid_input"),
            (with(&|v| v["proof"]["signature"] = json!("A".repeat(5000))), "application/json", "invalid_input"),
            (with(&|v| v["padding"] = json!("x".repeat(20_000))), "application/json", "too_large"),
        ];
        for (i, (body, ctype, want)) in cases.into_iter().enumerate() {
            let (s, v) = r.raw(post(body, ctype)).await;
            assert_eq!(code(&v), want, "{b} case {i}: {s} {v}");
            assert!(s.is_client_error(), "{b} case {i}: {s}");
        }
        let (s, v) = r.call("GET", "/v1/nope", None).await;
        assert_eq!((s, code(&v)), (StatusCode::NOT_FOUND, "not_found"));
        assert_eq!(r.state.store.login_count().await.unwrap(), 0, "{b}: nothing was registered");
        // The untouched original still works: the hostile requests did not burn its nonce.
        let (s, v) = r.call("POST", "/v1/register", Some(good.clone())).await;
        assert_eq!(s, StatusCode::CREATED, "{b}: {v}");
        r.state.store.close().await;
    }
}

#[tokio::test]
async fn rate_limits_answer_429_with_retry_after() {
    let ca = Ca::new("Test RA");
    let db = databases().await.remove(0);
    let limits = Limits { per_login_per_minute: 2, per_login_burst: 2, per_address_per_minute: 0, ..Limits::default() };
    let r = relay(&db, vec![ca.der.clone()], limits).await;
    let alice = ca.person("Alice", KeyAlgorithm::P256);
    let mut statuses = vec![];
    for _ in 0..4 {
        statuses.push(r.register(&r.request("busy", &alice, &Device::new(), None).await).await);
    }
    assert_eq!(code(&statuses[2].1), "rate_limited");
    assert_eq!(statuses[3].0, StatusCode::TOO_MANY_REQUESTS);
    // Another login is not affected.
    assert_eq!(r.register(&r.request("quiet", &alice, &Device::new(), None).await).await.0, StatusCode::CREATED);
    let resp = app(r.state.clone())
        .oneshot(
            Request::post("/v1/register")
                .header("content-type", "application/json")
                .body(Body::from(
                    serde_json::to_string(&r.request("busy", &alice, &Device::new(), None).await).unwrap(),
                ))
                .unwrap(),
        )
        .await
        .unwrap();
    assert!(resp.headers().get("retry-after").is_some());
    let per_addr = Limits { per_address_per_minute: 1, per_address_burst: 3, ..no_limits() };
    let r = relay(&db, vec![ca.der.clone()], per_addr).await;
    let codes: Vec<StatusCode> = {
        let mut v = vec![];
        for _ in 0..5 {
            v.push(r.call("POST", "/v1/nonce", None).await.0);
        }
        v
    };
    assert_eq!(codes[..3], [StatusCode::OK; 3]);
    assert_eq!(codes[3], StatusCode::TOO_MANY_REQUESTS);
    let (s, _) = r.call("GET", "/metrics", None).await;
    assert_eq!(s, StatusCode::OK);
}

/// `/metrics` tells how many register, sign and are refused: this machine and the `metrics_from`
/// addresses read it, anyone else gets 403 `unauthorized`. Behind a trusted proxy the forwarded address
/// is the one that counts, so a proxy on this machine does not make the world local.
#[tokio::test]
async fn metrics_only_for_this_machine_and_the_named_scrapers() {
    let db = databases().await.remove(0);
    let r = relay(&db, vec![], no_limits()).await;
    let call = |s: &AppState, peer: &str, forwarded: Option<&str>| {
        let mut b = Request::get("/metrics");
        if let Some(f) = forwarded {
            b = b.header("x-forwarded-for", f);
        }
        let mut req = b.body(Body::empty()).unwrap();
        req.extensions_mut().insert(axum::extract::ConnectInfo(peer.parse::<std::net::SocketAddr>().unwrap()));
        app(s.clone()).oneshot(req)
    };
    let s = r.state.clone();
    assert_eq!(call(&s, "127.0.0.1:4000", None).await.unwrap().status(), StatusCode::OK);
    assert_eq!(call(&s, "[::1]:4000", None).await.unwrap().status(), StatusCode::OK);
    let resp = call(&s, "192.0.2.7:4000", None).await.unwrap();
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    let text = String::from_utf8(axum::body::to_bytes(resp.into_body(), 1 << 20).await.unwrap().to_vec()).unwrap();
    assert!(text.contains("\"unauthorized\"") && !text.contains("kalit_relay_"), "{text}");
    // A stranger cannot claim to be local through a header: only trusted proxies are believed.
    assert_eq!(call(&s, "192.0.2.7:4000", Some("127.0.0.1")).await.unwrap().status(), StatusCode::FORBIDDEN);
    let proxied = s.clone().with_trusted_proxies(&["127.0.0.1".parse().unwrap()]);
    assert_eq!(call(&proxied, "127.0.0.1:4000", Some("192.0.2.7")).await.unwrap().status(), StatusCode::FORBIDDEN);
    let scraper = proxied.with_metrics_from(&["192.0.2.7".parse().unwrap()]);
    assert_eq!(call(&scraper, "127.0.0.1:4000", Some("192.0.2.7")).await.unwrap().status(), StatusCode::OK);
    assert_eq!(call(&scraper, "192.0.2.7:4000", None).await.unwrap().status(), StatusCode::OK);
    assert_eq!(call(&scraper, "192.0.2.8:4000", None).await.unwrap().status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn metrics_and_openapi_describe_the_api() {
    let db = databases().await.remove(0);
    let r = relay(&db, vec![], no_limits()).await;
    r.nonce().await;
    // Methods a client makes up are one label, `other`: they cannot add series without end.
    for i in 0..50 {
        let req = Request::builder().method(format!("MADEUP{i}").as_str()).uri("/healthz").body(Body::empty()).unwrap();
        let resp = app(r.state.clone()).oneshot(req).await.unwrap();
        assert_eq!(resp.status(), StatusCode::METHOD_NOT_ALLOWED);
    }
    let resp = app(r.state.clone()).oneshot(Request::get("/metrics").body(Body::empty()).unwrap()).await.unwrap();
    let text = String::from_utf8(axum::body::to_bytes(resp.into_body(), 1 << 20).await.unwrap().to_vec()).unwrap();
    assert!(!text.contains("MADEUP"), "{text}");
    assert!(
        text.contains("kalit_relay_http_requests_total{method=\"other\",route=\"/healthz\",status=\"405\"} 50"),
        "{text}"
    );
    assert!(
        text.contains("kalit_relay_http_requests_total{method=\"POST\",route=\"/v1/nonce\",status=\"200\"} 1"),
        "{text}"
    );
    assert!(text.contains("kalit_relay_nonces_total{result=\"issued\"} 1"), "{text}");
    let (s, spec) = r.call("GET", "/openapi.json", None).await;
    assert_eq!(s, StatusCode::OK);
    for path in [
        "/.well-known/kalit-relay",
        "/healthz",
        "/metrics",
        "/v1/nonce",
        "/v1/register",
        "/v1/devices",
        "/v1/devices/remove",
        "/v1/tunnel/{id}/wait",
        "/v1/tunnel/{id}/join",
    ] {
        assert!(spec["paths"].get(path).is_some(), "openapi.json lacks {path}");
    }
    let codes: Vec<&str> = spec["components"]["schemas"]["ErrorCode"]["enum"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    let all: Vec<&str> = kalit_proto::ErrorCode::ALL.iter().map(|c| c.as_str()).collect();
    assert_eq!(codes, all, "openapi.json's ErrorCode enum matches kalit-proto");
    // The database goes away: health and API calls answer 503 `unavailable`, not a hang or a 500.
    r.state.store.close().await;
    let (s, v) = r.call("GET", "/healthz", None).await;
    assert_eq!((s, code(&v)), (StatusCode::SERVICE_UNAVAILABLE, "unavailable"), "{v}");
    // (A one-node relay's nonces are not stored, so it still hands them out; the request that needs the
    // database fails.)
    let (s, v) = r.device_call("ali", &Device::new(), "list", "").await;
    assert_eq!((s, code(&v)), (StatusCode::SERVICE_UNAVAILABLE, "unavailable"), "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rate_limits_hold_across_nodes_on_one_postgresql_database() {
    let Some(db) = databases().await.into_iter().find(|d| d.backend == "postgres") else {
        eprintln!("skipped: needs KALIT_TEST_POSTGRES_URL");
        return;
    };
    // A burst of 6 per address for the whole set, asked of two nodes at once: 6 nonces, not 12.
    let limits = Limits { per_address_per_minute: 1, per_address_burst: 6, ..no_limits() };
    let a = relay(&db, vec![], limits.clone()).await;
    let b = relay(&db, vec![], limits).await;
    let calls = (0..12).map(|i| {
        let node = if i % 2 == 0 { &a } else { &b };
        async move { node.call("POST", "/v1/nonce", None).await.0 }
    });
    let statuses = futures_util::future::join_all(calls).await;
    let ok = statuses.iter().filter(|s| **s == StatusCode::OK).count();
    let limited = statuses.iter().filter(|s| **s == StatusCode::TOO_MANY_REQUESTS).count();
    assert_eq!((ok, limited), (6, 6), "{statuses:?}");
    // With the database gone, a node falls back to its own buckets instead of refusing everyone.
    a.state.store.close().await;
    let (s, v) = a.call("POST", "/v1/nonce", None).await;
    assert_ne!(s, StatusCode::TOO_MANY_REQUESTS, "{v}");
    assert!(a.state.metrics.render().contains("rate_limit_store"), "the fallback is counted");
    b.state.store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_on_one_postgresql_database_share_nonces_and_logins() {
    let ca = Ca::new("Test RA");
    let Some(db) = databases().await.into_iter().find(|d| d.backend == "postgres") else {
        eprintln!("skipped: needs KALIT_TEST_POSTGRES_URL");
        return;
    };
    // Two relay processes' states over one database and one data directory (the shared attestation key).
    let a = relay(&db, vec![ca.der.clone()], no_limits()).await;
    let b = relay(&db, vec![ca.der.clone()], no_limits()).await;
    assert_eq!(a.id, b.id);
    let alice = ca.person("Alice", KeyAlgorithm::P256);
    let phone = Device::new();
    // Nonce from node A, registration on node B.
    let req = a.request("multi", &alice, &phone, None).await;
    let (s, v) = b.register(&req).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    // Replaying on node A fails: the nonce was consumed in the shared database.
    let (_, v) = a.register(&req).await;
    assert_eq!(code(&v), "expired");
    let (s, v) = a.device_call("multi", &phone, "list", "").await;
    assert_eq!(s, StatusCode::OK, "{v}");
    a.state.store.close().await;
    b.state.store.close().await;
}

#[tokio::test]
async fn junk_for_a_login_does_not_use_up_its_limit() {
    let ca = Ca::new("Test RA");
    let db = databases().await.remove(0);
    let limits = Limits { per_login_per_minute: 2, per_login_burst: 2, per_address_per_minute: 0, ..Limits::default() };
    let r = relay(&db, vec![ca.der.clone()], limits).await;
    let alice = ca.person("Alice", KeyAlgorithm::P256);
    for _ in 0..10 {
        let mut req = r.request("victim", &alice, &Device::new(), None).await;
        req.proof.signature = Base64::of([1u8; 64]);
        assert_eq!(code(&r.register(&req).await.1), "invalid_signature");
    }
    let (s, v) = r.register(&r.request("victim", &alice, &Device::new(), None).await).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
}

// ---- The blind tunnel (signing sessions). ----

mod tunnel {
    use super::*;
    use futures_util::{SinkExt, StreamExt};
    use kalit_proto::session::TunnelEvent;
    use kalit_transport::{Ws, connect};
    use tokio_tungstenite::tungstenite::Message;

    async fn serve(r: &Relay) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let svc = app(r.state.clone()).into_make_service_with_connect_info::<std::net::SocketAddr>();
        tokio::spawn(async move { axum::serve(listener, svc).await });
        format!("ws://{addr}")
    }

    async fn event(ws: &mut Ws) -> TunnelEvent {
        loop {
            match tokio::time::timeout(std::time::Duration::from_secs(10), ws.next()).await.unwrap() {
                Some(Ok(Message::Text(t))) => return serde_json::from_str(t.as_str()).unwrap(),
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                other => panic!("expected an event, got {other:?}"),
            }
        }
    }

    async fn binary(ws: &mut Ws) -> Vec<u8> {
        match tokio::time::timeout(std::time::Duration::from_secs(10), ws.next()).await.unwrap() {
            Some(Ok(Message::Binary(b))) => b.to_vec(),
            other => panic!("expected a frame, got {other:?}"),
        }
    }

    fn join_request(r: &Relay, login: &str, dev: &Device, nonce: &[u8], target: &str) -> String {
        let st = Statement::device_request(&r.id, nonce, login, &dev.id(), "tunnel-join", target);
        serde_json::to_string(&DeviceRequest {
            login: login.into(),
            device_id: dev.id().into(),
            nonce: Base64::of(nonce),
            relay_id: r.id.clone().into(),
            target: target.into(),
            signature: Base64::of(st.sign(&dev.key).unwrap()),
            proof: None,
        })
        .unwrap()
    }

    async fn join(r: &Relay, base: &str, tunnel: &str, body: String) -> (Ws, TunnelEvent) {
        let mut ws = connect(&format!("{base}/v1/tunnel/{tunnel}/join")).await.unwrap();
        ws.send(Message::Text(body.into())).await.unwrap();
        let e = event(&mut ws).await;
        let _ = r;
        (ws, e)
    }

    fn tid(n: u8) -> String {
        hex::encode([n; 32])
    }

    fn err_code(e: &TunnelEvent) -> kalit_proto::ErrorCode {
        match e {
            TunnelEvent::Error { code, .. } => *code,
            other => panic!("expected an error event, got {other:?}"),
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn tunnels_pair_one_registered_phone_forward_ciphertext_and_keep_limits() {
        let ca = Ca::new("Test RA");
        for db in databases().await {
            let b = db.backend;
            let mut limits = no_limits();
            limits.tunnel_max_frames = 6;
            let r = relay(&db, vec![ca.der.clone()], limits).await;
            let alice = ca.person("Alice", KeyAlgorithm::P256);
            let (phone, stranger) = (Device::new(), Device::new());
            let (s, v) = r.register(&r.request("alice", &alice, &phone, None).await).await;
            assert_eq!(s, StatusCode::CREATED, "{b}: {v}");
            let base = serve(&r).await;
            let t = tid(1);
            let mut agent = connect(&format!("{base}/v1/tunnel/{t}/wait?ttl=60")).await.unwrap();
            assert!(matches!(event(&mut agent).await, TunnelEvent::Ready { .. }));
            // A second computer cannot wait on the same id; malformed ids are refused.
            let e = connect(&format!("{base}/v1/tunnel/{t}/wait")).await.unwrap_err();
            assert_eq!(e.code, kalit_proto::ErrorCode::AlreadyExists, "{b}");
            let e = connect(&format!("{base}/v1/tunnel/XYZ/wait")).await.unwrap_err();
            assert_eq!(e.code, kalit_proto::ErrorCode::InvalidInput, "{b}");
            // Unregistered devices, forged signatures, another tunnel's request and junk are refused,
            // and the tunnel keeps waiting.
            let n = r.nonce().await;
            let (_, e) = join(&r, &base, &t, join_request(&r, "alice", &stranger, &n, &t)).await;
            assert_eq!(err_code(&e), kalit_proto::ErrorCode::Unauthorized, "{b}");
            let n = r.nonce().await;
            let mut forged: Value = serde_json::from_str(&join_request(&r, "alice", &phone, &n, &t)).unwrap();
            forged["signature"] = json!(B64.encode([7u8; 64]));
            let (_, e) = join(&r, &base, &t, forged.to_string()).await;
            assert_eq!(err_code(&e), kalit_proto::ErrorCode::Unauthorized, "{b}");
            let n = r.nonce().await;
            let (_, e) = join(&r, &base, &t, join_request(&r, "alice", &phone, &n, &tid(2))).await;
            assert_eq!(err_code(&e), kalit_proto::ErrorCode::InvalidInput, "{b}");
            let (_, e) = join(&r, &base, &t, "{\"not\":\"a request\"}".into()).await;
            assert_eq!(err_code(&e), kalit_proto::ErrorCode::InvalidInput, "{b}");
            // The registered phone joins; the agent learns the login.
            let n = r.nonce().await;
            let (mut ph, e) = join(&r, &base, &t, join_request(&r, "alice", &phone, &n, &t)).await;
            match &e {
                TunnelEvent::Joined { attestation, computer_address, same_network, origin } => {
                    assert!(origin.is_none(), "an agent (no Origin header) gets no origin statement");
                    // A fresh attestation for this very device, signed by the relay, short-lived.
                    let relay_key = r.state.identity.root_public_key().to_vec();
                    statement::verify_attestation(&relay_key, attestation).unwrap();
                    let a = &attestation.attestation;
                    assert_eq!((a.device_id.as_str(), a.login.as_str()), (phone.id().as_str(), "alice"));
                    assert_eq!(a.expires_at - a.issued_at, 600, "{b}");
                    assert_eq!(computer_address, "127.0.0.1");
                    assert!(same_network, "both ends on 127.0.0.1");
                }
                other => panic!("{b}: {other:?}"),
            }
            assert_eq!(
                event(&mut agent).await,
                TunnelEvent::Peer { login: "alice".into(), device_id: phone.id().into() }
            );
            // A second phone (even a registered one, with a fresh nonce) finds nothing to join.
            let n = r.nonce().await;
            let (_, e) = join(&r, &base, &t, join_request(&r, "alice", &phone, &n, &t)).await;
            assert_eq!(err_code(&e), kalit_proto::ErrorCode::Expired, "{b}");
            // Opaque frames, both ways, byte for byte.
            for i in 0..2u8 {
                ph.send(Message::Binary(vec![i; 1000].into())).await.unwrap();
                assert_eq!(binary(&mut agent).await, vec![i; 1000]);
                agent.send(Message::Binary(vec![i + 100; 65535].into())).await.unwrap();
                assert_eq!(binary(&mut ph).await, vec![i + 100; 65535]);
            }
            // Beyond the frame limit the relay ends the tunnel for both sides with an error.
            for _ in 0..3 {
                let _ = agent.send(Message::Binary(vec![1; 10].into())).await;
            }
            // (The frames within the limit still arrive first.)
            for _ in 0..2 {
                assert_eq!(binary(&mut ph).await, vec![1; 10]);
            }
            match event(&mut ph).await {
                TunnelEvent::Error { code, message } => {
                    assert_eq!(code, kalit_proto::ErrorCode::Unavailable);
                    assert!(message.contains("more frames"), "{message}");
                }
                other => panic!("{other:?}"),
            }
            // A text frame after pairing (not ciphertext) ends a tunnel too.
            let t3 = tid(3);
            let mut agent = connect(&format!("{base}/v1/tunnel/{t3}/wait")).await.unwrap();
            event(&mut agent).await;
            let n = r.nonce().await;
            let (mut ph, e) = join(&r, &base, &t3, join_request(&r, "alice", &phone, &n, &t3)).await;
            assert!(matches!(e, TunnelEvent::Joined { .. }), "{e:?}");
            event(&mut agent).await;
            ph.send(Message::Text("hello relay".into())).await.unwrap();
            assert_eq!(err_code(&event(&mut agent).await), kalit_proto::ErrorCode::Unavailable);
            // The agent leaving while it waits frees the id.
            let t4 = tid(4);
            let mut agent = connect(&format!("{base}/v1/tunnel/{t4}/wait")).await.unwrap();
            event(&mut agent).await;
            agent.close(None).await.unwrap();
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            assert_eq!(r.state.tunnels.waiting(), 0, "{b}");
        }
    }

    /// A phone that opens its end with `?challenge=1` gets the nonce to sign over on the socket itself, as
    /// its first event; the nonce is single-use like one from `POST /v1/nonce`, and a forged one is refused.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn the_join_socket_sends_the_nonce_a_phone_signs_over_once() {
        let ca = Ca::new("Test RA");
        for db in databases().await {
            let b = db.backend;
            let r = relay(&db, vec![ca.der.clone()], no_limits()).await;
            let alice = ca.person("Alice", KeyAlgorithm::P256);
            let phone = Device::new();
            let (s, v) = r.register(&r.request("alice", &alice, &phone, None).await).await;
            assert_eq!(s, StatusCode::CREATED, "{b}: {v}");
            let base = serve(&r).await;
            let t = tid(1);
            let mut agent = connect(&format!("{base}/v1/tunnel/{t}/wait?ttl=60")).await.unwrap();
            assert!(matches!(event(&mut agent).await, TunnelEvent::Ready { .. }));
            let challenged = |ev: TunnelEvent| match ev {
                TunnelEvent::Challenge { nonce, expires_at } => (nonce.into_vec(), expires_at),
                other => panic!("{b}: expected a challenge, got {other:?}"),
            };
            // A nonce the relay did not issue is refused on a challenge socket as anywhere.
            let mut ph = connect(&format!("{base}/v1/tunnel/{t}/join?challenge=1")).await.unwrap();
            let (n, _) = challenged(event(&mut ph).await);
            let mut other = n.clone();
            other[0] ^= 1;
            ph.send(Message::Text(join_request(&r, "alice", &phone, &other, &t).into())).await.unwrap();
            assert_eq!(err_code(&event(&mut ph).await), kalit_proto::ErrorCode::Expired, "{b}");
            // The challenge's own nonce: joined, and the computer learns who.
            let mut ph = connect(&format!("{base}/v1/tunnel/{t}/join?challenge=1")).await.unwrap();
            let (n, expires_at) = challenged(event(&mut ph).await);
            assert_eq!(n.len(), 32, "{b}");
            let now = time::OffsetDateTime::now_utc().unix_timestamp();
            assert!(expires_at > now && expires_at <= now + 600, "{b}: {expires_at}");
            ph.send(Message::Text(join_request(&r, "alice", &phone, &n, &t).into())).await.unwrap();
            assert!(matches!(event(&mut ph).await, TunnelEvent::Joined { .. }), "{b}");
            assert!(matches!(event(&mut agent).await, TunnelEvent::Peer { .. }), "{b}");
            // The same nonce a second time, on another tunnel: used.
            let t2 = tid(2);
            let mut agent2 = connect(&format!("{base}/v1/tunnel/{t2}/wait?ttl=60")).await.unwrap();
            event(&mut agent2).await;
            let (_, e) = join(&r, &base, &t2, join_request(&r, "alice", &phone, &n, &t2)).await;
            assert_eq!(err_code(&e), kalit_proto::ErrorCode::Expired, "{b}");
            // challenge=0 is the old way (the phone asked for its nonce); anything else is refused.
            let n = r.nonce().await;
            let mut ph = connect(&format!("{base}/v1/tunnel/{t2}/join?challenge=0")).await.unwrap();
            ph.send(Message::Text(join_request(&r, "alice", &phone, &n, &t2).into())).await.unwrap();
            assert!(matches!(event(&mut ph).await, TunnelEvent::Joined { .. }), "{b}");
            for q in ["challenge=2", "challenge=yes", "challenge=1&x=1"] {
                let e = connect(&format!("{base}/v1/tunnel/{}/join?{q}", tid(3))).await.unwrap_err();
                assert_eq!(e.code, kalit_proto::ErrorCode::InvalidInput, "{b}: {q}");
            }
            // A malformed query on the computer's side is the same stable code (not axum's text).
            let e = connect(&format!("{base}/v1/tunnel/{}/wait?ttl=soon", tid(3))).await.unwrap_err();
            assert_eq!(e.code, kalit_proto::ErrorCode::InvalidInput, "{b}: {}", e.message);
            assert!(e.message.contains("malformed query"), "{b}: {}", e.message);
        }
    }

    /// The nonce of a join socket's challenge is valid while that socket waits for its join request (and
    /// a little more), not for a requested nonce's lifetime: afterwards no join can use it, while a nonce
    /// asked for by `POST /v1/nonce` at the same moment still can.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn a_challenge_nonce_lives_as_long_as_its_socket_waits() {
        let ca = Ca::new("Test RA");
        for db in databases().await {
            let b = db.backend;
            let mut r = relay(&db, vec![ca.der.clone()], no_limits()).await;
            r.state.clock = kalit_service::Clock::manual(time::OffsetDateTime::now_utc());
            let alice = ca.person("Alice", KeyAlgorithm::P256);
            let phone = Device::new();
            let (s, v) = r.register(&r.request("alice", &alice, &phone, None).await).await;
            assert_eq!(s, StatusCode::CREATED, "{b}: {v}");
            let base = serve(&r).await;
            let now = r.state.clock.now_ms() / 1000;
            let mut ph = connect(&format!("{base}/v1/tunnel/{}/join?challenge=1", tid(1))).await.unwrap();
            let (challenged, expires_at) = match event(&mut ph).await {
                TunnelEvent::Challenge { nonce, expires_at } => (nonce.into_vec(), expires_at),
                other => panic!("{b}: expected a challenge, got {other:?}"),
            };
            assert_eq!(expires_at, now + kalit_relay::tunnel::CHALLENGE_NONCE_SECS as i64, "{b}");
            let asked = r.nonce().await;
            drop(ph);
            r.state.clock.advance(std::time::Duration::from_secs(kalit_relay::tunnel::CHALLENGE_NONCE_SECS + 1));
            let t = tid(2);
            let mut agent = connect(&format!("{base}/v1/tunnel/{t}/wait?ttl=60")).await.unwrap();
            assert!(matches!(event(&mut agent).await, TunnelEvent::Ready { .. }), "{b}");
            let (_, e) = join(&r, &base, &t, join_request(&r, "alice", &phone, &challenged, &t)).await;
            assert_eq!(err_code(&e), kalit_proto::ErrorCode::Expired, "{b}: the challenge's nonce outlived its socket");
            let (_, e) = join(&r, &base, &t, join_request(&r, "alice", &phone, &asked, &t)).await;
            assert!(matches!(e, TunnelEvent::Joined { .. }), "{b}: a requested nonce lives longer: {e:?}");
        }
    }

    /// Opens the waiting side as a browser page would: with an `Origin` header. `Err(status)` when the
    /// relay refuses the upgrade.
    async fn wait_as_page(base: &str, tunnel: &str, origin: &[u8]) -> Result<Ws, u16> {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        let mut req = format!("{base}/v1/tunnel/{tunnel}/wait").into_client_request().unwrap();
        req.headers_mut().insert("origin", axum::http::HeaderValue::from_bytes(origin).unwrap());
        match tokio_tungstenite::connect_async(req).await {
            Ok((ws, _)) => Ok(ws),
            Err(tokio_tungstenite::tungstenite::Error::Http(r)) => Err(r.status().as_u16()),
            Err(e) => panic!("{e}"),
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_page_s_tunnel_gets_the_phone_a_signed_statement_of_its_origin() {
        let ca = Ca::new("Test RA");
        let db = databases().await.remove(0);
        let r = relay(&db, vec![ca.der.clone()], no_limits()).await;
        let alice = ca.person("Alice", KeyAlgorithm::P256);
        let phone = Device::new();
        let (s, v) = r.register(&r.request("alice", &alice, &phone, None).await).await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        let base = serve(&r).await;
        let t = tid(21);
        let mut page = wait_as_page(&base, &t, b"http://127.0.0.1:8080").await.unwrap();
        assert!(matches!(event(&mut page).await, TunnelEvent::Ready { .. }));
        let n = r.nonce().await;
        let (_ph, e) = join(&r, &base, &t, join_request(&r, "alice", &phone, &n, &t)).await;
        let TunnelEvent::Joined { origin: Some(o), .. } = &e else { panic!("{e:?}") };
        let relay_key = r.state.identity.root_public_key().to_vec();
        statement::verify_origin_attestation(&relay_key, o).unwrap();
        assert_eq!(
            (o.attestation.tunnel.as_str(), o.attestation.origin.as_str()),
            (t.as_str(), "http://127.0.0.1:8080")
        );
        assert_eq!(o.attestation.relay_id.as_str(), r.id.as_str());
        // Origins the relay does not vouch for: no tunnel at all, and nothing waits.
        for (origin, status) in [
            (&b"null"[..], 403),
            (b"http://portal.example", 403),
            (b"https://portal.example/path", 400),
            (b"HTTPS://PORTAL.EXAMPLE", 400),
            (b"\xff", 400),
        ] {
            assert_eq!(wait_as_page(&base, &tid(22), origin).await.err(), Some(status), "{origin:?}");
        }
        let huge = format!("https://{}.example", "a".repeat(5000));
        assert_eq!(wait_as_page(&base, &tid(22), huge.as_bytes()).await.err(), Some(400));
        assert_eq!(r.state.tunnels.waiting(), 0);
    }

    fn sha256(b: &[u8]) -> Vec<u8> {
        kalit_core::digest::HashAlg::Sha256.digest(b)
    }

    /// Takes a page's side back: the secret, and the hash of the next one.
    async fn resume_as(base: &str, tunnel: &str, secret: &[u8], next: &[u8]) -> (Ws, TunnelEvent) {
        let mut ws = connect(&format!("{base}/v1/tunnel/{tunnel}/resume")).await.unwrap();
        let req = json!({"resume": B64.encode(secret), "next": hex::encode(sha256(next))});
        ws.send(Message::Text(req.to_string().into())).await.unwrap();
        let e = event(&mut ws).await;
        (ws, e)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_page_whose_tab_froze_takes_its_side_back_with_its_resume_secret_once() {
        let ca = Ca::new("Test RA");
        let db = databases().await.remove(0);
        let mut limits = no_limits();
        limits.tunnel_resume_secs = 2;
        let r = relay(&db, vec![ca.der.clone()], limits).await;
        let alice = ca.person("Alice", KeyAlgorithm::P256);
        let phone = Device::new();
        let (s, v) = r.register(&r.request("alice", &alice, &phone, None).await).await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        let base = serve(&r).await;
        let t = tid(31);
        let (r1, r2, r3) = ([1u8; 32], [2u8; 32], [3u8; 32]);
        let wait = format!("{base}/v1/tunnel/{t}/wait?resume={}", hex::encode(sha256(&r1)));
        let mut page = connect(&wait).await.unwrap();
        event(&mut page).await;
        let n = r.nonce().await;
        let (mut ph, _) = join(&r, &base, &t, join_request(&r, "alice", &phone, &n, &t)).await;
        event(&mut page).await;
        // The page's tab freezes: its socket closes; the phone goes on and answers.
        page.close(None).await.unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        assert_eq!(r.state.tunnels.parked(), 1);
        ph.send(Message::Binary(vec![7; 100].into())).await.unwrap();
        ph.send(Message::Binary(vec![8; 200].into())).await.unwrap();
        // A secret from another session, or junk: refused, and the tunnel keeps waiting for the right one.
        let (_, e) = resume_as(&base, &t, &[9u8; 32], &r2).await;
        assert_eq!(err_code(&e), kalit_proto::ErrorCode::Unauthorized);
        let (_, e) = resume_as(&base, &tid(32), &r1, &r2).await;
        assert_eq!(err_code(&e), kalit_proto::ErrorCode::Expired, "nothing parked under another id");
        assert_eq!(r.state.tunnels.parked(), 1);
        // The right one: the tunnel is the page's again, with what the phone sent meanwhile, in order.
        let (mut page, e) = resume_as(&base, &t, &r1, &r2).await;
        assert_eq!(e, TunnelEvent::Resumed);
        assert_eq!(binary(&mut page).await, vec![7; 100]);
        assert_eq!(binary(&mut page).await, vec![8; 200]);
        page.send(Message::Binary(vec![5; 10].into())).await.unwrap();
        assert_eq!(binary(&mut ph).await, vec![5; 10], "and both ways again");
        // It leaves again: the used secret is worth nothing now (a replay); the next one works.
        page.close(None).await.unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        let (_, e) = resume_as(&base, &t, &r1, &r3).await;
        assert_eq!(err_code(&e), kalit_proto::ErrorCode::Unauthorized, "a replayed resume");
        let (mut page, e) = resume_as(&base, &t, &r2, &r3).await;
        assert_eq!(e, TunnelEvent::Resumed);
        // Gone past the limit: the phone is told the session timed out, and nothing is left to resume.
        page.close(None).await.unwrap();
        match tokio::time::timeout(std::time::Duration::from_secs(10), event(&mut ph)).await.unwrap() {
            TunnelEvent::Error { code, .. } => assert_eq!(code, kalit_proto::ErrorCode::Expired),
            other => panic!("{other:?}"),
        }
        let (_, e) = resume_as(&base, &t, &r3, &r1).await;
        assert_eq!(err_code(&e), kalit_proto::ErrorCode::Expired);
        assert_eq!(r.state.tunnels.parked(), 0);
        // A wait with a malformed resume hash is refused.
        let e = connect(&format!("{base}/v1/tunnel/{}/wait?resume=XYZ", tid(33))).await.unwrap_err();
        assert_eq!(e.code, kalit_proto::ErrorCode::InvalidInput);
        // An agent (no resume hash) that leaves ends the tunnel at once, as before.
        let t = tid(34);
        let mut agent = connect(&format!("{base}/v1/tunnel/{t}/wait")).await.unwrap();
        event(&mut agent).await;
        let n = r.nonce().await;
        let (mut ph, _) = join(&r, &base, &t, join_request(&r, "alice", &phone, &n, &t)).await;
        event(&mut agent).await;
        agent.close(None).await.unwrap();
        assert_eq!(err_code(&event(&mut ph).await), kalit_proto::ErrorCode::Unavailable);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_flood_of_tunnels_from_one_address_gets_429() {
        let db = databases().await.remove(0);
        let limits = Limits { per_address_per_minute: 60, per_address_burst: 5, ..no_limits() };
        let r = relay(&db, vec![], limits).await;
        let base = serve(&r).await;
        let mut limited = 0;
        for i in 0..20u8 {
            match connect(&format!("{base}/v1/tunnel/{}/join", tid(i))).await {
                Err(e) if e.code == kalit_proto::ErrorCode::RateLimited => limited += 1,
                _ => {}
            }
        }
        assert!(limited >= 14, "only {limited} of 20 limited");
        // Resume floods (direct mode) are held to the same per-address limit.
        let mut limited = 0;
        for i in 0..20u8 {
            match connect(&format!("{base}/v1/tunnel/{}/resume", tid(100 + i))).await {
                Err(e) if e.code == kalit_proto::ErrorCode::RateLimited => limited += 1,
                _ => {}
            }
        }
        assert!(limited >= 18, "the bucket was emptied by the joins: only {limited} of 20 limited");
    }

    // ---- What a stranger can hold: connections, waiting tunnels, a stalled bridge. ----

    mod under_attack {
        use super::*;
        use kalit_transport::connect_from;
        use std::net::SocketAddr;
        use std::time::Duration;
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        use tokio::net::TcpStream;

        /// Serves the relay as `kalit relay serve` does (connection caps and timeouts from the first byte).
        async fn serve_guarded(r: &Relay) -> SocketAddr {
            let listener = kalit_service::serve::bind("127.0.0.1:0".parse().unwrap()).unwrap();
            let addr = listener.local_addr().unwrap();
            let policy = kalit_relay::connection_policy(&r.state, None);
            let router = app(r.state.clone());
            tokio::spawn(kalit_service::serve::serve_bound("test relay", router, listener, None, policy));
            addr
        }

        /// A TCP connection to `to` from the loopback address `src` (127.0.0.0/8 is all loopback).
        async fn tcp_from(src: &str, to: SocketAddr) -> TcpStream {
            let s = tokio::net::TcpSocket::new_v4().unwrap();
            s.bind(format!("{src}:0").parse().unwrap()).unwrap();
            s.connect(to).await.unwrap()
        }

        /// Whether the server closes `s` within `within` (anything it says first is read and ignored).
        async fn closed_within(s: &mut TcpStream, within: Duration) -> bool {
            let mut buf = [0u8; 4096];
            let until = tokio::time::Instant::now() + within;
            loop {
                match tokio::time::timeout_at(until, s.read(&mut buf)).await {
                    Ok(Ok(0) | Err(_)) => return true,
                    Ok(Ok(_)) => {}
                    Err(_) => return false,
                }
            }
        }

        async fn health_from(src: &str, to: SocketAddr) -> String {
            let mut s = tcp_from(src, to).await;
            s.write_all(b"GET /healthz HTTP/1.1\r\nHost: relay\r\nConnection: close\r\n\r\n").await.unwrap();
            let mut out = vec![];
            tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out)).await.unwrap().unwrap();
            String::from_utf8_lossy(&out).into_owned()
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn silent_connections_are_closed_and_one_address_cannot_hold_them_all() {
            let db = databases().await.remove(0);
            let limits =
                Limits { header_timeout_secs: 1, max_connections: 50, max_connections_per_address: 4, ..no_limits() };
            let r = relay(&db, vec![], limits).await;
            let addr = serve_guarded(&r).await;
            let mut silent = vec![];
            for _ in 0..4 {
                silent.push(tcp_from("127.0.0.2", addr).await);
            }
            // One more from the same address is closed at once; another address is served meanwhile.
            let mut fifth = tcp_from("127.0.0.2", addr).await;
            assert!(closed_within(&mut fifth, Duration::from_secs(3)).await, "over the per-address cap");
            assert!(health_from("127.0.0.3", addr).await.starts_with("HTTP/1.1 200"), "health answers");
            // Silence is not a request: each silent socket is closed after the header timeout...
            for s in &mut silent {
                assert!(closed_within(s, Duration::from_secs(10)).await, "a silent socket stays open");
            }
            // ... and its place is free again.
            tokio::time::sleep(Duration::from_millis(200)).await;
            assert!(health_from("127.0.0.2", addr).await.starts_with("HTTP/1.1 200"));
            // A connection that asked once and then fell silent (keep-alive) is closed the same way.
            let mut kept = tcp_from("127.0.0.4", addr).await;
            kept.write_all(b"GET /healthz HTTP/1.1\r\nHost: relay\r\n\r\n").await.unwrap();
            let mut buf = [0u8; 1024];
            let n = tokio::time::timeout(Duration::from_secs(10), kept.read(&mut buf)).await.unwrap().unwrap();
            assert!(buf[..n].starts_with(b"HTTP/1.1 200"), "{}", String::from_utf8_lossy(&buf[..n]));
            assert!(closed_within(&mut kept, Duration::from_secs(10)).await, "an idle keep-alive stays open");
            let metrics = r.state.metrics.render();
            assert!(metrics.contains(r#"result="address""#), "refusals are counted: {metrics}");
        }

        /// The status of `POST /v1/nonce` sent from `src` with `forwarded` as `X-Forwarded-For`.
        async fn nonce_status(src: &str, to: SocketAddr, forwarded: &str) -> u16 {
            let mut s = tcp_from(src, to).await;
            let req = format!(
                "POST /v1/nonce HTTP/1.1\r\nHost: relay\r\nX-Forwarded-For: {forwarded}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            );
            s.write_all(req.as_bytes()).await.unwrap();
            let mut out = vec![];
            tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out)).await.unwrap().unwrap();
            String::from_utf8_lossy(&out)[9..12].parse().unwrap()
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn a_forwarded_address_counts_only_from_a_trusted_proxy() {
            let db = databases().await.remove(0);
            let limits = Limits { per_address_per_minute: 1, per_address_burst: 2, ..no_limits() };
            let mut r = relay(&db, vec![], limits).await;
            r.state = r.state.clone().with_trusted_proxies(&["127.0.0.5".parse().unwrap()]);
            let addr = serve_guarded(&r).await;
            // Behind the trusted proxy, each client has its own bucket (the right-most untrusted hop counts;
            // what the client wrote further left does not).
            for _ in 0..2 {
                assert_eq!(nonce_status("127.0.0.5", addr, "203.0.113.9, 198.51.100.1").await, 200);
            }
            assert_eq!(nonce_status("127.0.0.5", addr, "203.0.113.10, 198.51.100.1").await, 429);
            assert_eq!(nonce_status("127.0.0.5", addr, "198.51.100.2").await, 200, "another client");
            // Anyone else naming addresses in the header is counted as itself.
            for (i, status) in [200, 200, 429].into_iter().enumerate() {
                assert_eq!(nonce_status("127.0.0.6", addr, &format!("198.51.100.{}", 50 + i)).await, status);
            }
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn one_address_cannot_fill_the_waiting_tunnels() {
            let db = databases().await.remove(0);
            let limits = Limits { max_waiting_tunnels_per_address: 3, ..no_limits() };
            let r = relay(&db, vec![], limits).await;
            let base = format!("ws://{}", serve_guarded(&r).await);
            let (a, b) = (Some("127.0.0.2".parse().unwrap()), Some("127.0.0.3".parse().unwrap()));
            let wait = |n: u8| format!("{base}/v1/tunnel/{}/wait", tid(n));
            let mut held = vec![];
            for n in 10..13 {
                let mut ws = connect_from(&wait(n), a).await.unwrap();
                assert!(matches!(event(&mut ws).await, TunnelEvent::Ready { .. }));
                held.push(ws);
            }
            let e = connect_from(&wait(13), a).await.unwrap_err();
            assert_eq!(e.code, kalit_proto::ErrorCode::RateLimited, "{}", e.message);
            // Another computer is not affected.
            let mut other = connect_from(&wait(14), b).await.unwrap();
            assert!(matches!(event(&mut other).await, TunnelEvent::Ready { .. }));
            // A QR taken down frees its place.
            held.pop().unwrap().close(None).await.unwrap();
            tokio::time::sleep(Duration::from_millis(300)).await;
            let mut again = connect_from(&wait(15), a).await.unwrap();
            assert!(matches!(event(&mut again).await, TunnelEvent::Ready { .. }));
            assert_eq!(r.state.tunnels.waiting(), 4);
        }

        /// A relay with `limits` (on the first database) where Alice registered her phone, served: the
        /// relay, her phone and the WebSocket base URL.
        async fn alice_registered_on(limits: Limits) -> (Relay, Device, String) {
            let ca = Ca::new("Test RA");
            let db = databases().await.remove(0);
            let r = relay(&db, vec![ca.der.clone()], limits).await;
            let alice = ca.person("Alice", KeyAlgorithm::P256);
            let phone = Device::new();
            let (s, v) = r.register(&r.request("alice", &alice, &phone, None).await).await;
            assert_eq!(s, StatusCode::CREATED, "{v}");
            let base = format!("ws://{}", serve_guarded(&r).await);
            (r, phone, base)
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn a_side_that_stops_reading_ends_its_tunnel_by_the_limits() {
            let limits = Limits { tunnel_idle_secs: 1, max_paired_tunnels: 1, ..no_limits() };
            let (r, phone, base) = alice_registered_on(limits).await;
            let pair = |t: String| {
                let (r, base, phone) = (&r, base.clone(), &phone);
                async move {
                    let mut agent = connect(&format!("{base}/v1/tunnel/{t}/wait")).await.unwrap();
                    assert!(matches!(event(&mut agent).await, TunnelEvent::Ready { .. }));
                    let n = r.nonce().await;
                    let (ph, e) = join(r, &base, &t, join_request(r, "alice", phone, &n, &t)).await;
                    assert!(matches!(e, TunnelEvent::Joined { .. }), "{e:?}");
                    (agent, ph)
                }
            };
            let (mut agent, phone_ws) = pair(tid(40)).await;
            assert!(matches!(event(&mut agent).await, TunnelEvent::Peer { .. }));
            // At the cap of paired tunnels, a second session is turned away on both sides.
            let (mut agent2, mut phone2) = pair(tid(41)).await;
            assert_eq!(err_code(&event(&mut agent2).await), kalit_proto::ErrorCode::Unavailable);
            assert_eq!(err_code(&event(&mut phone2).await), kalit_proto::ErrorCode::Unavailable);
            // The phone stops reading; the agent sends until the relay's send to the phone blocks. The idle
            // limit still holds: the tunnel ends, and the agent is told why.
            let (mut tx, mut rx) = agent.split();
            let flood = tokio::spawn(async move {
                for _ in 0..4000 {
                    if tx.send(Message::Binary(vec![7u8; 60_000].into())).await.is_err() {
                        break;
                    }
                }
            });
            let why = loop {
                match tokio::time::timeout(Duration::from_secs(30), rx.next()).await.expect("the tunnel stayed open") {
                    Some(Ok(Message::Text(t))) => break serde_json::from_str::<TunnelEvent>(t.as_str()).unwrap(),
                    Some(Ok(_)) => {}
                    other => panic!("{other:?}"),
                }
            };
            match why {
                TunnelEvent::Error { code, message } => {
                    assert_eq!(code, kalit_proto::ErrorCode::Unavailable);
                    assert!(message.contains("stopped reading"), "{message}");
                }
                other => panic!("{other:?}"),
            }
            flood.abort();
            drop(phone_ws);
            tokio::time::sleep(Duration::from_millis(300)).await;
            assert_eq!(r.state.tunnels.paired(), 0, "the paired tunnel was counted out");
        }

        /// The idle limit counts from the last frame: a tunnel whose sides speak more often than the limit
        /// outlives it many times over; once both fall silent it ends, and both sides are told it timed out.
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn the_idle_limit_counts_from_the_last_frame() {
            let (r, phone, base) = alice_registered_on(Limits { tunnel_idle_secs: 1, ..no_limits() }).await;
            let t = tid(42);
            let mut agent = connect(&format!("{base}/v1/tunnel/{t}/wait")).await.unwrap();
            assert!(matches!(event(&mut agent).await, TunnelEvent::Ready { .. }));
            let n = r.nonce().await;
            let (mut ph, e) = join(&r, &base, &t, join_request(&r, "alice", &phone, &n, &t)).await;
            assert!(matches!(e, TunnelEvent::Joined { .. }), "{e:?}");
            assert!(matches!(event(&mut agent).await, TunnelEvent::Peer { .. }));
            // Ten frames 300 ms apart, each way in turn: three seconds, three times the idle limit.
            for i in 0..10u8 {
                tokio::time::sleep(Duration::from_millis(300)).await;
                let (from, to) = if i % 2 == 0 { (&mut agent, &mut ph) } else { (&mut ph, &mut agent) };
                from.send(Message::Binary(vec![i; 8].into())).await.unwrap();
                match tokio::time::timeout(Duration::from_secs(5), to.next()).await.expect("the frame came") {
                    Some(Ok(Message::Binary(b))) => assert_eq!(b.as_ref(), &[i; 8][..], "frame {i}"),
                    other => panic!("frame {i}: {other:?}"),
                }
            }
            // Then silence: both sides are told the session timed out.
            for side in [&mut agent, &mut ph] {
                match tokio::time::timeout(Duration::from_secs(5), side.next()).await.expect("the tunnel ended") {
                    Some(Ok(Message::Text(t))) => {
                        let e = serde_json::from_str::<TunnelEvent>(t.as_str()).unwrap();
                        assert_eq!(err_code(&e), kalit_proto::ErrorCode::Expired, "{e:?}");
                    }
                    other => panic!("{other:?}"),
                }
            }
        }
    }
}

/// A device acts under the certificate it registered with: every device request checks that
/// certificate's CRL (here one that cannot be fetched: `unavailable`, never accepted unchecked). A
/// registration from before the relay kept chains (its `chain` is NULL) is not checked there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn device_requests_check_the_revocation_of_the_device_certificate() {
    use kalit_relay::store::{NewCert, NewDevice};
    let ca = Ca::new("Test RA");
    for db in databases().await {
        let b = db.backend;
        let r = relay(&db, vec![ca.der.clone()], no_limits()).await;
        // A certificate naming a CRL that no one serves (nothing listens on port 1).
        let k = key(KeyAlgorithm::P256);
        let mut p = CertificateParams::new(vec![]).unwrap();
        p.distinguished_name = kalit_core::csr::parse_subject("CN=Crl Person").unwrap();
        p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        p.crl_distribution_points =
            vec![rcgen::CrlDistributionPoint { uris: vec!["http://127.0.0.1:1/ca.crl".into()] }];
        let leaf = p.signed_by(&k, &ca.issuer).unwrap().der().to_vec();
        let fp = statement::cert_fingerprint(&leaf);
        // Registered while its CRL could be had (written to the store directly: the registration itself
        // would check the CRL too).
        let phone = Device::new();
        let cert = NewCert { fingerprint: &fp, subject: "CN=Crl Person", der: &leaf, chain: &[] };
        let dev = NewDevice { device_id: &phone.id(), key: &phone.raw(), name: "phone" };
        r.state.store.create_login("crl.person", &cert, &dev, 0).await.unwrap();
        let (s, v) = r.device_call("crl.person", &phone, "list", "").await;
        assert_eq!((s, code(&v)), (StatusCode::SERVICE_UNAVAILABLE, "unavailable"), "{b}: {v}");
        assert!(v["error"]["message"].as_str().unwrap().contains("revoked"), "{b}: {v}");
        // The same row as an older relay wrote it, without a chain: not checked, as before.
        let pool = sqlx::AnyPool::connect(&db.url).await.unwrap();
        sqlx::query("UPDATE certificates SET chain = NULL WHERE login = 'crl.person'").execute(&pool).await.unwrap();
        pool.close().await;
        let (s, v) = r.device_call("crl.person", &phone, "list", "").await;
        assert_eq!(s, StatusCode::OK, "{b}: {v}");
        r.state.store.close().await;
    }
}

/// A chain that passed its revocation check is remembered with the very CRL it was checked against and
/// until its certificate ends: while that copy of the CRL serves, a join does not validate the path again;
/// the next CRL (here one that revokes it) is checked afresh; a certificate past its end, or before its
/// start (a clock set back), is refused though its chain passed before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chain_verdict_lasts_only_as_long_as_its_crl_and_its_certificate() {
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use time::{Duration as D, OffsetDateTime};
    let now = OffsetDateTime::now_utc();
    let k = key(KeyAlgorithm::P256);
    let mut p = CertificateParams::new(vec![]).unwrap();
    p.distinguished_name = kalit_core::csr::parse_subject("CN=Crl CA").unwrap();
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_der = p.self_signed(&k).unwrap().der().to_vec();
    let ca = Issuer::new(p, k);
    let crl = |revoked: &[u8]| {
        let params = rcgen::CertificateRevocationListParams {
            this_update: now - D::minutes(1),
            next_update: now + D::days(1),
            crl_number: rcgen::SerialNumber::from_slice(&[1]),
            issuing_distribution_point: None,
            revoked_certs: revoked
                .iter()
                .map(|serial| rcgen::RevokedCertParams {
                    serial_number: rcgen::SerialNumber::from_slice(&[*serial]),
                    revocation_time: now,
                    reason_code: Some(rcgen::RevocationReason::KeyCompromise),
                    invalidity_date: None,
                })
                .collect(),
            key_identifier_method: rcgen::KeyIdMethod::Sha256,
        };
        params.signed_by(&ca).unwrap().der().to_vec()
    };
    // The CA's CRL, served over HTTP; the test swaps it and counts the fetches.
    let served = Arc::new(Mutex::new(crl(&[])));
    let fetches = Arc::new(AtomicUsize::new(0));
    let (c, f) = (served.clone(), fetches.clone());
    let app = axum::Router::new().route(
        "/ca.crl",
        axum::routing::get(move || {
            f.fetch_add(1, Ordering::SeqCst);
            let body = c.lock().unwrap().clone();
            async move { body }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/ca.crl", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let leaf_at = |serial: u8, from: OffsetDateTime, until: OffsetDateTime, url: &str| {
        let mut p = CertificateParams::new(vec![]).unwrap();
        p.distinguished_name = kalit_core::csr::parse_subject(&format!("CN=Person {serial}")).unwrap();
        p.serial_number = Some(rcgen::SerialNumber::from_slice(&[serial]));
        p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        p.not_before = from;
        p.not_after = until;
        p.crl_distribution_points = vec![rcgen::CrlDistributionPoint { uris: vec![url.to_string()] }];
        p.signed_by(&key(KeyAlgorithm::P256), &ca).unwrap().der().to_vec()
    };
    let leaf = |serial: u8, from: OffsetDateTime, until: OffsetDateTime| leaf_at(serial, from, until, &url);
    let rev = kalit_relay::revocation::Revocation::default();
    let anchors = Arc::new(vec![ca_der]);
    let check = async |cert: &Vec<u8>, at: OffsetDateTime| rev.check_chain(cert, &[], &anchors, at).await;
    let fetched = || fetches.load(Ordering::SeqCst);

    let a = leaf(0x42, now - D::hours(1), now + D::days(1));
    check(&a, now).await.unwrap();
    assert_eq!((rev.verdicts(), fetched()), (1, 1));
    check(&a, now + D::minutes(1)).await.unwrap();
    assert_eq!((rev.verdicts(), fetched()), (1, 1), "the same CRL, the same verdict");
    assert_eq!(rev.known_certificates(), 1, "its CRL address was read once");
    // Another certificate's addresses are its own: one naming a CRL nobody serves is not checked against
    // the first one's.
    let nowhere = leaf_at(0x45, now - D::hours(1), now + D::days(1), "http://127.0.0.1:9/none.crl");
    let e = check(&nowhere, now + D::minutes(1)).await.unwrap_err();
    assert!(e.message.contains("127.0.0.1:9/none.crl"), "{}", e.message);
    assert_eq!((rev.known_certificates(), fetched()), (2, 1));
    // The CA revokes it. The relay's copy of the CRL serves up to 15 minutes; the next copy revokes it,
    // and the verdict made under the old copy counts for nothing.
    *served.lock().unwrap() = crl(&[0x42]);
    let e = check(&a, now + D::minutes(16)).await.unwrap_err();
    assert!(e.message.contains("revoked"), "{}", e.message);
    assert_eq!(fetched(), 2);
    // A certificate that ends 20 minutes from now passes at 16; at 21 the CRL copy still serves, but the
    // certificate has ended.
    let b = leaf(0x43, now - D::hours(1), now + D::minutes(20));
    check(&b, now + D::minutes(16)).await.unwrap();
    let e = check(&b, now + D::minutes(21)).await.unwrap_err();
    assert!(e.message.contains("expired") || e.message.contains("valid"), "{}", e.message);
    // A certificate that starts 10 minutes from now passes at 16; a clock set back to 5 is before its start.
    let c = leaf(0x44, now + D::minutes(10), now + D::days(1));
    check(&c, now + D::minutes(16)).await.unwrap();
    assert!(check(&c, now + D::minutes(5)).await.is_err(), "not yet valid");
    assert_eq!(fetched(), 2, "all under the second copy of the CRL");
}

/// Identity rotation: the root key endorses signing keys; the relay id, and so every registration and
/// pin, stays; attestations the previous key signed keep verifying through the overlap; a node whose root
/// key went offline signs with the endorsed keys alone; a broken or foreign list is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identity_rotation_keeps_the_relay_id_and_what_was_signed() {
    use kalit_relay::identity::{self, KEY_FILE, KEYS_FILE};
    let ca = Ca::new("Test RA");
    let db = databases().await.into_iter().next().unwrap();
    let dir = db._dir.path().to_path_buf();
    let r = relay(&db, vec![ca.der.clone()], no_limits()).await;
    let root = r.state.identity.root_public_key().to_vec();
    async fn registered(ca: &Ca, r: &Relay, login: &str) -> kalit_proto::relay::SignedAttestation {
        let who = ca.person(login, KeyAlgorithm::P256);
        let req = r.request(login, &who, &Device::new(), None).await;
        let (s, v) = r.register(&req).await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        serde_json::from_value(v["attestation"].clone()).unwrap()
    }
    let attest = |r, login| registered(&ca, r, login);
    // Before any rotation the root key signs and the identity lists no signing key.
    let by_root = attest(&r, "before.rotation").await;
    assert!(by_root.relay_key.is_none());
    statement::verify_attestation(&root, &by_root).unwrap();
    let (_, ident) = r.call("GET", "/.well-known/kalit-relay", None).await;
    assert!(ident.get("signing_keys").is_none(), "{ident}");

    // The first rotation: the node picks the key up and signs with it; the id does not change.
    let now = kalit_service::now_ms() / 1000;
    let first = identity::rotate_key(&dir, &dir.join(KEY_FILE), 30 * 86_400, now).unwrap();
    assert_eq!(first.relay_id, r.id);
    assert!(r.state.identity.reload().unwrap());
    assert!(!r.state.identity.reload().unwrap(), "an unchanged list is not read again");
    let by_first = attest(&r, "first.key").await;
    assert_eq!(by_first.relay_key.as_deref(), Some(&first.new_key));
    statement::verify_attestation(&root, &by_first).unwrap();
    // Not by the root key itself, and not without its endorsement.
    let mut bare = by_first.clone();
    bare.relay_key = None;
    assert!(statement::verify_attestation(&root, &bare).is_err());
    let (_, ident) = r.call("GET", "/.well-known/kalit-relay", None).await;
    let ident: RelayIdentity = serde_json::from_value(ident).unwrap();
    assert_eq!((ident.relay_id.as_str(), ident.public_key.as_slice()), (r.id.as_str(), root.as_slice()));
    assert_eq!(ident.signing_keys, vec![first.new_key.clone()]);
    // Operators alert on the newest key's end (ops/prometheus): the gauge says it.
    let metrics = |r: &Relay| {
        let req = Request::get("/metrics").body(Body::empty()).unwrap();
        let app = app(r.state.clone());
        async move {
            let resp = app.oneshot(req).await.unwrap();
            String::from_utf8(axum::body::to_bytes(resp.into_body(), 1 << 20).await.unwrap().to_vec()).unwrap()
        }
    };
    let m = metrics(&r).await;
    let gauge = format!("kalit_relay_signing_key_not_after_seconds {}\n", first.new_key.key.not_after);
    assert!(m.contains(&gauge), "{m}");

    // The second rotation, during the first key's validity: new attestations name the new key, and the
    // first key's attestations still verify (the overlap).
    // (Each key file's mtime must differ from the last load's for the reload to see it on coarse clocks.)
    std::thread::sleep(std::time::Duration::from_millis(20));
    let second = identity::rotate_key(&dir, &dir.join(KEY_FILE), 30 * 86_400, now).unwrap();
    assert_eq!(second.still_valid, vec![first.new_key.clone()]);
    assert!(r.state.identity.reload().unwrap());
    let by_second = attest(&r, "second.key").await;
    assert_eq!(by_second.relay_key.as_deref(), Some(&second.new_key));
    statement::verify_attestation(&root, &by_second).unwrap();
    statement::verify_attestation(&root, &by_first).unwrap();
    let (_, ident) = r.call("GET", "/.well-known/kalit-relay", None).await;
    let ident: RelayIdentity = serde_json::from_value(ident).unwrap();
    assert_eq!(ident.signing_keys, vec![second.new_key.clone(), first.new_key.clone()], "newest first");
    let m = metrics(&r).await;
    assert!(
        m.contains(&format!("kalit_relay_signing_key_not_after_seconds {}\n", second.new_key.key.not_after)),
        "{m}"
    );

    // The root key leaves the node: a restarted node has the same id and signs with the endorsed key.
    let offline = tempfile::tempdir().unwrap();
    let root_file = offline.path().join(KEY_FILE);
    std::fs::rename(dir.join(KEY_FILE), &root_file).unwrap();
    let restarted = relay(&db, vec![ca.der.clone()], no_limits()).await;
    assert_eq!(restarted.id, r.id);
    assert!(!restarted.state.identity.has_root());
    assert!(!dir.join(KEY_FILE).exists(), "a node with a key list never makes a new root key");
    let after_restart = attest(&restarted, "root.offline").await;
    assert_eq!(after_restart.relay_key.as_deref(), Some(&second.new_key));
    statement::verify_attestation(&root, &after_restart).unwrap();
    // Rotating needs the root key: from its offline place it works, without it the command says where.
    let e = identity::rotate_key(&dir, &dir.join(KEY_FILE), 86_400, now).unwrap_err();
    assert_eq!(e.code, kalit_proto::ErrorCode::NotFound, "{}", e.message);
    // Another relay's root key is refused, and the list stays as it was.
    let stranger = tempfile::tempdir().unwrap();
    Identity::load_or_create(stranger.path(), "other").unwrap();
    let before = std::fs::read(dir.join(KEYS_FILE)).unwrap();
    let e = identity::rotate_key(&dir, &stranger.path().join(KEY_FILE), 86_400, now).unwrap_err();
    assert_eq!(e.code, kalit_proto::ErrorCode::RefusedByPolicy, "{}", e.message);
    assert_eq!(std::fs::read(dir.join(KEYS_FILE)).unwrap(), before);
    let e = identity::rotate_key(&dir, &root_file, 60, now).unwrap_err();
    assert_eq!(e.code, kalit_proto::ErrorCode::InvalidInput, "{}", e.message);

    // A list someone edited (a validity stretched) does not load: not at start, and not on reload (the
    // keys in use stay).
    let mut edited: Value = serde_json::from_slice(&before).unwrap();
    edited["keys"][0]["endorsed"]["key"]["not_after"] = json!(now + 400 * 86_400);
    std::thread::sleep(std::time::Duration::from_millis(20));
    std::fs::write(dir.join(KEYS_FILE), serde_json::to_vec(&edited).unwrap()).unwrap();
    let e = Identity::load_or_create(&dir, "test relay").unwrap_err();
    assert_eq!(e.code, kalit_proto::ErrorCode::Corrupt, "{}", e.message);
    assert!(restarted.state.identity.reload().is_err());
    let still = attest(&restarted, "after.bad.edit").await;
    assert_eq!(still.relay_key.as_deref(), Some(&second.new_key));
    std::fs::write(dir.join(KEYS_FILE), &before).unwrap();

    // Every key expired and no root key on the node: attestations are refused as unavailable, clearly.
    let lapsed = tempfile::tempdir().unwrap();
    let lapsed_root = lapsed.path().join(KEY_FILE);
    Identity::load_or_create(lapsed.path(), "lapsed").unwrap();
    identity::rotate_key(lapsed.path(), &lapsed_root, 3600, now - 7200).unwrap();
    std::fs::remove_file(&lapsed_root).unwrap();
    let lapsed_identity = Identity::load_or_create(lapsed.path(), "lapsed").unwrap();
    let a = by_first.attestation.clone();
    let e = lapsed_identity
        .attest(kalit_proto::relay::Attestation { issued_at: now, expires_at: now + 600, ..a })
        .unwrap_err();
    assert_eq!(e.code, kalit_proto::ErrorCode::Unavailable, "{}", e.message);
    assert!(e.message.contains("rotate-key"), "{}", e.message);
}

/// `sudo kalit relay rotate-key`: the files it writes belong to the data directory's owner (the relay's
/// user), so the running relay can read them (they are 0600). Needs root (CI runs as root).
#[cfg(unix)]
#[test]
fn a_rotation_as_root_leaves_files_the_relay_user_can_read() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let root = tempfile::tempdir().unwrap();
    let probe = root.path().join("probe");
    std::fs::write(&probe, b"").unwrap();
    if std::fs::metadata(&probe).unwrap().uid() != 0 {
        eprintln!("skipped: changing a file's owner needs root (CI runs as root)");
        return;
    }
    let data = root.path().join("relay");
    Identity::load_or_create(&data, "relay").unwrap();
    // The relay's user (nobody) owns its data directory; the operator rotates as root.
    std::os::unix::fs::chown(&data, Some(65534), Some(65534)).unwrap();
    let now = kalit_service::now_ms() / 1000;
    let r = kalit_relay::identity::rotate_key(&data, &data.join("relay-identity.pk8"), 86_400, now).unwrap();
    for f in [r.new_file.clone(), data.join("relay-keys.json")] {
        let m = std::fs::metadata(&f).unwrap();
        assert_eq!((m.uid(), m.gid()), (65534, 65534), "{}", f.display());
        assert_eq!(m.permissions().mode() & 0o777, 0o600, "{}", f.display());
    }
}

/// Rows in the audit table for `event`, read through a connection of the test's own.
async fn audit_rows(url: &str, event: &str) -> i64 {
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(url).await.unwrap();
    let n: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM audit WHERE event = $1").bind(event).fetch_one(&pool).await.unwrap();
    pool.close().await;
    n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tunnel_audit_rows_are_written_in_groups_and_a_normal_stop_loses_none() {
    for db in databases().await {
        let store = Store::open(&db.url).await.unwrap();
        // More rows than one group holds, queued at once from many tasks: every one is written.
        let n = 600;
        let queued = (0..n).map(|i| {
            let s = store.clone();
            async move { s.audit(i, "tunnel_joined", &format!("login{i}"), "device").await }
        });
        for r in futures_util::future::join_all(queued).await {
            r.unwrap();
        }
        store.flush_audit().await;
        assert_eq!(audit_rows(&db.url, "tunnel_joined").await, n, "{}", db.backend);
        // Rows still waiting for their group when the relay stops normally are written before it closes.
        for i in 0..10 {
            store.audit(n + i, "tunnel_joined", "late", "device").await.unwrap();
        }
        store.close().await;
        assert_eq!(audit_rows(&db.url, "tunnel_joined").await, n + 10, "{}", db.backend);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_audit_linger_is_the_configured_one_and_bounded() {
    for db in databases().await {
        let store = Store::open(&db.url).await.unwrap();
        // Longer than a relay killed outright may lose: refused, with the setting's name.
        let too_long = kalit_relay::store::AUDIT_LINGER_MAX + std::time::Duration::from_millis(1);
        let e = store.set_audit_linger(too_long).unwrap_err();
        assert_eq!(e.code, kalit_proto::ErrorCode::InvalidInput, "{}", db.backend);
        assert!(e.message.contains("audit_linger_ms"), "{}: {}", db.backend, e.message);
        // The longest linger: a row queued is not written within ten default lingers...
        store.set_audit_linger(kalit_relay::store::AUDIT_LINGER_MAX).unwrap();
        store.audit(1, "tunnel_joined", "slow", "device").await.unwrap();
        tokio::time::sleep(10 * kalit_relay::store::AUDIT_LINGER).await;
        assert_eq!(audit_rows(&db.url, "tunnel_joined").await, 0, "{}", db.backend);
        // ...and a normal stop writes it at once, without waiting out the linger.
        let stopping = std::time::Instant::now();
        store.close().await;
        assert!(
            stopping.elapsed() < kalit_relay::store::AUDIT_LINGER_MAX / 2,
            "{}: {:?}",
            db.backend,
            stopping.elapsed()
        );
        assert_eq!(audit_rows(&db.url, "tunnel_joined").await, 1, "{}", db.backend);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_with_too_long_an_audit_linger_does_not_start() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = kalit_relay::RelayConfig {
        data: Some(dir.path().to_path_buf()),
        audit_linger_ms: 10_001,
        ..Default::default()
    };
    let e = kalit_relay::build(&cfg).await.expect_err("refused");
    assert_eq!(e.code, kalit_proto::ErrorCode::InvalidInput);
    assert!(e.message.contains("audit_linger_ms is at most 10000"), "{}", e.message);
    // At the bound it starts.
    let cfg = kalit_relay::RelayConfig { audit_linger_ms: 10_000, ..cfg };
    kalit_relay::build(&cfg).await.unwrap().store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_rows_past_their_retention_are_deleted_in_batches_and_the_rest_kept() {
    const DAY: i64 = 86_400_000;
    for db in databases().await {
        let store = Store::open(&db.url).await.unwrap();
        let now = 30_000 * DAY;
        // More old rows than two batches hold, then rows just inside the retention and from today.
        let old = 2 * kalit_relay::AUDIT_PRUNE_BATCH + 17;
        for i in 0..old {
            store.audit(now - 401 * DAY + i, "tunnel_joined", "old", "device").await.unwrap();
        }
        for at in [now - 399 * DAY, now - 399 * DAY, now - DAY, now] {
            store.audit(at, "tunnel_joined", "kept", "device").await.unwrap();
        }
        store.flush_audit().await;
        assert_eq!(kalit_relay::prune_audit(&store, 400, now).await.unwrap(), Some(old as u64), "{}", db.backend);
        assert_eq!(audit_rows(&db.url, "tunnel_joined").await, 4, "{}", db.backend);
        assert_eq!(kalit_relay::prune_audit(&store, 400, now).await.unwrap(), Some(0), "{}", db.backend);
        // Two days later, the rows that were 399 days old are past it too.
        assert_eq!(kalit_relay::prune_audit(&store, 400, now + 2 * DAY).await.unwrap(), Some(2), "{}", db.backend);
        assert_eq!(audit_rows(&db.url, "tunnel_joined").await, 2, "{}", db.backend);
        store.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_node_at_a_time_deletes_old_audit_rows_on_postgresql() {
    const DAY: i64 = 86_400_000;
    let Some(db) = databases().await.into_iter().find(|d| d.backend == "postgres") else {
        eprintln!("skipped: needs KALIT_TEST_POSTGRES_URL");
        return;
    };
    let (a, b) = (Store::open(&db.url).await.unwrap(), Store::open(&db.url).await.unwrap());
    let now = 30_000 * DAY;
    for i in 0..10 {
        a.audit(now - 401 * DAY + i, "tunnel_joined", "old", "device").await.unwrap();
    }
    a.flush_audit().await;
    // Another node (here a bare connection) is deleting them: this node leaves them alone this round.
    let other = sqlx::AnyPool::connect(&db.url).await.unwrap();
    let mut held = other.acquire().await.unwrap();
    sqlx::query("SELECT pg_advisory_lock($1)")
        .bind(kalit_relay::store::AUDIT_PRUNE_LOCK)
        .execute(&mut *held)
        .await
        .unwrap();
    assert_eq!(kalit_relay::prune_audit(&b, 400, now).await.unwrap(), None);
    assert_eq!(audit_rows(&db.url, "tunnel_joined").await, 10);
    // A node that dies releases the lock with its connection; the next round here deletes them.
    held.close().await.unwrap();
    assert_eq!(kalit_relay::prune_audit(&b, 400, now).await.unwrap(), Some(10));
    assert_eq!(audit_rows(&db.url, "tunnel_joined").await, 0);
    // And the node releases it when done: the other node's next round runs too.
    a.audit(now - 401 * DAY, "tunnel_joined", "old", "device").await.unwrap();
    a.flush_audit().await;
    assert_eq!(kalit_relay::prune_audit(&a, 400, now).await.unwrap(), Some(1));
    other.close().await;
    a.close().await;
    b.close().await;
}

/// Rows of a table, counted directly in the database.
async fn rows(url: &str, table: &str) -> i64 {
    use sqlx::Row;
    let pool = sqlx::AnyPool::connect(url).await.unwrap();
    let n = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT COUNT(*) AS n FROM {table}")))
        .fetch_one(&pool)
        .await
        .unwrap()
        .try_get::<i64, _>("n")
        .unwrap();
    pool.close().await;
    n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_nonces_are_not_stored_when_issued_and_stay_used_across_nodes_and_restarts() {
    let ca = Ca::new("Test RA");
    let Some(db) = databases().await.into_iter().find(|d| d.backend == "postgres") else {
        eprintln!("skipped: needs KALIT_TEST_POSTGRES_URL");
        return;
    };
    let a = relay(&db, vec![ca.der.clone()], no_limits()).await;
    // A stranger asking for nonces makes the database store none (rate limits are off here).
    for _ in 0..50 {
        a.nonce().await;
    }
    assert_eq!(rows(&db.url, "used_nonces").await, 0);
    assert_eq!(rows(&db.url, "nonces").await, 0, "the table of the previous version is not written");
    // A nonce from node A, its request sent after A restarted, to node B: the key is the cluster's.
    let alice = ca.person("Alice", KeyAlgorithm::P256);
    let phone = Device::new();
    let req = a.request("shared", &alice, &phone, None).await;
    a.state.store.close().await;
    let b = relay(&db, vec![ca.der.clone()], no_limits()).await;
    let (s, v) = b.register(&req).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(rows(&db.url, "used_nonces").await, 1);
    // Its replay, at another node started since, is refused: the use is recorded in the database.
    let c = relay(&db, vec![ca.der.clone()], no_limits()).await;
    let (_, v) = c.register(&req).await;
    assert_eq!(code(&v), "expired", "{v}");
    // So is a nonce made under another key (another relay's); the device registered above still works.
    let stranger = kalit_relay::nonces::LocalNonces::new().unwrap();
    let forged = stranger.issue(u64::try_from(kalit_service::now_ms() / 1000 + 60).unwrap()).unwrap();
    let bob = ca.person("Bob", KeyAlgorithm::P256);
    let req = c.request_with("forged", &bob, &Device::new(), None, &forged, &c.id);
    let (_, v) = c.register(&req).await;
    assert_eq!(code(&v), "expired", "{v}");
    let (s, v) = c.device_call("shared", &phone, "list", "").await;
    assert_eq!(s, StatusCode::OK, "{v}");
    b.state.store.close().await;
    c.state.store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_used_nonce_stays_used_at_a_node_whose_clock_is_behind_the_one_that_sweeps() {
    let Some(db) = databases().await.into_iter().find(|d| d.backend == "postgres") else {
        eprintln!("skipped: needs KALIT_TEST_POSTGRES_URL");
        return;
    };
    let (a, b) = (Store::open(&db.url).await.unwrap(), Store::open(&db.url).await.unwrap());
    let expires_ms = 1_900_000_000_000;
    let n = a.issue_nonce(expires_ms).unwrap();
    assert!(a.take_nonce(&n, expires_ms - 5_000).await.unwrap());
    // Node B's clock is 30 s ahead: its first use of a nonce also sweeps the rows it thinks expired.
    let m = b.issue_nonce(expires_ms + 100_000).unwrap();
    assert!(b.take_nonce(&m, expires_ms + 30_000).await.unwrap());
    // Node A, whose clock still says the nonce is valid, refuses its replay: the row outlived the sweep.
    assert!(!a.take_nonce(&n, expires_ms - 1_000).await.unwrap(), "replayed after another node's sweep");
    a.close().await;
    b.close().await;
}
