//! Conformance vectors: what Kalit's protocol produces from fixed inputs, byte for byte, committed in
//! `crates/kalit-core/vectors/`. Every implementation of the protocol (this one; the TypeScript phone app
//! and kalit.js later) must reproduce them.
//!
//! `cargo test -p kalit-core --test vectors` fails when the committed files differ from what this code
//! generates; after an intended change, `KALIT_WRITE_VECTORS=1 cargo test -p kalit-core --test vectors`
//! rewrites them (and the change must then bump the version its file names).

#![allow(clippy::unwrap_used)]

use kalit_core::SecretBytes;
use kalit_core::flow::{
    AgentAction, AgentConfig, AgentSession, DocDigest, PhoneAction, PhoneAnswer, PhoneConfig, PhoneSession, SignDoc,
};
use kalit_core::keys::PrivateKey;
use kalit_core::session::{ComputerKey, Qr, hazmat, tunnel_id};
use kalit_core::statement::Statement;
use kalit_proto::Base64;
use kalit_proto::ErrorCode;
use kalit_proto::relay::Attestation;
use kalit_proto::session::{
    ChannelMessage, DocFormat, DocumentSupport, MAX_WHOLE_DOCUMENT, QrPayload, SignAnswer, TunnelEvent,
};
use serde_json::{Value, json};

fn dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("vectors")
}

/// Bytes 0, 1, 2, ... offset by `start`: fixed keys that protect nothing.
fn fixed<const N: usize>(start: u8) -> [u8; N] {
    std::array::from_fn(|i| start.wrapping_add(i as u8))
}

/// An Ed25519 key from a 32-byte seed (PKCS#8 v1 around it).
fn ed25519(seed: [u8; 32]) -> PrivateKey {
    let mut der = hex::decode("302e020100300506032b657004220420").unwrap();
    der.extend_from_slice(&seed);
    PrivateKey::from_pkcs8(&SecretBytes::new(der)).unwrap()
}

/// The QR payload of the session vectors (`pk` and `s` are filled from the fixed keys).
fn vector_payload() -> QrPayload {
    QrPayload {
        v: kalit_proto::session::SESSION_VERSION,
        pk: Default::default(),
        s: Default::default(),
        relay: "https://relay.example".into(),
        relay_id: "00112233445566778899aabbccddeeff".into(),
        origin: "https://portal.example".into(),
        iat: 1_800_000_000,
        ttl: 60,
        op: "sign".into(),
        mode: None,
    }
}

fn session_vectors() -> Value {
    let computer = ComputerKey::from_private(&SecretBytes::from_slice(&fixed::<32>(1))).unwrap();
    let secret: [u8; 16] = fixed(101);
    let payload = vector_payload();
    let (qr, secrets) = hazmat::danger_qr_with_secret(&computer, secret, &payload).unwrap();
    let phone_e: [u8; 32] = fixed(33);
    let agent_e: [u8; 32] = fixed(65);
    let (hs, msg1) = hazmat::danger_phone_start(&qr, &phone_e).unwrap();
    let (msg2, mut agent) = hazmat::danger_agent_respond(&qr, &secrets, &msg1, &agent_e).unwrap();
    let mut phone = hs.finish(&msg2).unwrap();
    assert_eq!(phone.sas(), agent.sas());
    let device = ed25519(fixed(201));
    let attestation = Attestation {
        relay_id: payload.relay_id.clone(),
        login: "ali".into(),
        cert_fingerprint: hex::encode([7u8; 32]).into(),
        device_id: kalit_core::statement::key_id(device.public_key_raw()).into(),
        device_key: Base64::of(device.public_key_raw()),
        issued_at: 1_800_000_000,
        expires_at: 1_800_000_600,
    };
    let relay_key = ed25519(fixed(150));
    let signed = kalit_proto::relay::SignedAttestation {
        signature: Base64::of(Statement::attestation(&attestation).sign(&relay_key).unwrap()),
        attestation,
        relay_key: None,
    };
    // A whole session: hello, a request, its answer, a second request the page withdraws, goodbye.
    let script: Vec<(&str, ChannelMessage)> = vec![
        (
            "phone",
            ChannelMessage::Hello {
                login: "ali".into(),
                device_name: "phone".into(),
                chain: vec![Base64::of(b"not a real certificate")],
                attestation: signed,
                formats: vec![],
                documents: None,
            },
        ),
        (
            "agent",
            ChannelMessage::SignRequest {
                id: 1,
                origin: payload.origin.clone(),
                name: "contract.txt".into(),
                media_type: "text/plain".into(),
                data: Base64::of("Shartnoma / Договор / Contract\n"),
                format: DocFormat::Cms,
                pss: false,
            },
        ),
        (
            "phone",
            ChannelMessage::SignResponse {
                id: 1,
                answer: SignAnswer::Approved { signature: Base64::of(b"a signature") },
            },
        ),
        (
            "agent",
            ChannelMessage::SignRequest {
                id: 2,
                origin: payload.origin.clone(),
                name: "second.txt".into(),
                media_type: "text/plain".into(),
                data: Base64::of("withdrawn"),
                format: DocFormat::Raw,
                pss: false,
            },
        ),
        ("agent", ChannelMessage::Cancel { id: 2, reason: "the page ended the session".into() }),
        ("agent", ChannelMessage::Bye { reason: "the page ended the session".into(), code: None }),
    ];
    let mut transcript = vec![];
    for (from, m) in script {
        let (tx, rx) = if from == "agent" { (&mut agent, &mut phone) } else { (&mut phone, &mut agent) };
        let frames = tx.seal(&m).unwrap();
        let mut got = None;
        for f in &frames {
            got = rx.open(f).unwrap();
        }
        assert_eq!(got.as_ref(), Some(&m));
        transcript.push(json!({
            "from": from,
            "message": serde_json::to_value(&m).unwrap(),
            "frames": frames.iter().map(hex::encode).collect::<Vec<_>>(),
        }));
    }
    json!({
        "description": "A signing session from fixed inputs: the QR, the keys its secret gives, the Noise_NKpsk0_25519_ChaChaPoly_SHA256 handshake with fixed ephemeral keys (phone = initiator), the SAS, and every frame of a session (JSON messages split into Noise messages whose first plaintext byte is 1 when more follow, 0 on the last). Keys here protect nothing.",
        "session_version": kalit_proto::session::SESSION_VERSION,
        "computer_private": hex::encode(fixed::<32>(1)),
        "computer_public": hex::encode(computer.public()),
        "computer_id": qr.computer_id(),
        "secret": hex::encode(secret),
        "qr_text": qr.text(),
        "tunnel_id": tunnel_id(&secret).unwrap(),
        "psk": hex::encode(hazmat::danger_psk(&secret).unwrap()),
        "phone_ephemeral_private": hex::encode(phone_e),
        "agent_ephemeral_private": hex::encode(agent_e),
        "msg1": hex::encode(&msg1),
        "msg2": hex::encode(&msg2),
        "sas": agent.sas(),
        "transcript": transcript,
    })
}

fn agent_action(a: &AgentAction) -> Value {
    match a {
        AgentAction::Send(f) => json!({"send": hex::encode(f)}),
        AgentAction::Paired(p) => json!({"paired": {"sas": p.sas, "login": p.login,
            "chain": p.chain.iter().map(hex::encode).collect::<Vec<_>>()}}),
        AgentAction::Answer { id, result } => match result {
            Ok(sig) => json!({"answer": {"id": id, "signature": hex::encode(sig)}}),
            Err(f) => json!({"answer": {"id": id, "error": f.code.as_str()}}),
        },
        AgentAction::LateAnswerRefused { id } => json!({"late_answer_refused": id}),
        AgentAction::Closed(f) => json!({"closed": f.as_ref().map(|f| f.code.as_str())}),
    }
}

fn phone_action(a: &PhoneAction) -> Value {
    match a {
        PhoneAction::Send(f) => json!({"send": hex::encode(f)}),
        PhoneAction::Network { computer_address, same_network } => {
            json!({"network": {"computer_address": computer_address, "same_network": same_network}})
        }
        PhoneAction::OriginAttested { relay_id } => json!({"origin_attested": relay_id}),
        PhoneAction::Connected { sas } => json!({"connected": {"sas": sas}}),
        PhoneAction::Prompt(p) => json!({"prompt": {"id": p.id, "origin": p.origin, "name": p.name,
            "media_type": p.media_type, "data": hex::encode(&p.data), "size": p.size, "format": p.format.as_str(),
            "pss": p.pss, "sha256": p.sha256, "blind": p.blind, "unchecked": p.unchecked,
            "digests": p.digests.as_ref().map(|d| json!({"sha256": hex::encode(&d.sha256), "sha512": hex::encode(&d.sha512), "computed_here": d.computed_here})),
            "type_warning": p.type_warning}}),
        PhoneAction::Refused { id, failure, .. } => json!({"refused": {"id": id, "error": failure.code.as_str()}}),
        PhoneAction::Withdrawn { id, prompted, .. } => json!({"withdrawn": {"id": id, "prompted": prompted}}),
        PhoneAction::Ended { reason } => json!({"ended": reason}),
        PhoneAction::Closed(f) => json!({"closed": f.as_ref().map(|f| f.code.as_str())}),
    }
}

/// The inputs of the flow vectors (fixed keys that protect nothing).
struct FlowInputs {
    agent: AgentSession,
    phone: PhoneSession,
    joined: TunnelEvent,
    header: Value,
}

fn flow_inputs() -> FlowInputs {
    let computer = ComputerKey::from_private(&SecretBytes::from_slice(&fixed::<32>(1))).unwrap();
    let secret: [u8; 16] = fixed(101);
    let payload = vector_payload();
    let (qr, secrets) = hazmat::danger_qr_with_secret(&computer, secret, &payload).unwrap();
    let relay = ed25519(fixed(150));
    let device = ed25519(fixed(201));
    let cert = b"a certificate: the agent of these vectors has no trust anchors".to_vec();
    let attestation = Attestation {
        relay_id: payload.relay_id.clone(),
        login: "ali".into(),
        cert_fingerprint: kalit_core::statement::cert_fingerprint(&cert).into(),
        device_id: kalit_core::statement::key_id(device.public_key_raw()).into(),
        device_key: Base64::of(device.public_key_raw()),
        issued_at: 1_800_000_000,
        expires_at: 1_800_000_600,
    };
    let signed = kalit_proto::relay::SignedAttestation {
        signature: Base64::of(Statement::attestation(&attestation).sign(&relay).unwrap()),
        attestation: attestation.clone(),
        relay_key: None,
    };
    let mut agent = AgentSession::new(
        qr.clone(),
        secrets,
        AgentConfig {
            relay_id: payload.relay_id.clone(),
            relay_public_key: relay.public_key_raw().to_vec(),
            anchors: vec![],
        },
    );
    hazmat::danger_fix_agent_ephemeral(&mut agent, fixed(65));
    let mut phone = PhoneSession::new(
        qr.text(),
        payload.iat,
        PhoneConfig {
            relay_id: payload.relay_id.clone(),
            relay_public_key: relay.public_key_raw().to_vec(),
            login: "ali".into(),
            device_id: attestation.device_id.clone(),
            chain: vec![cert.clone()],
            formats: vec![],
            documents: Some(DocumentSupport { whole: MAX_WHOLE_DOCUMENT, digest: true }),
        },
    )
    .unwrap();
    hazmat::danger_fix_phone_ephemeral(&mut phone, fixed(33));
    let joined = TunnelEvent::Joined {
        attestation: signed,
        computer_address: "192.0.2.7".into(),
        same_network: false,
        origin: None,
    };
    let header = json!({
        "computer_private": hex::encode(fixed::<32>(1)),
        "secret": hex::encode(secret),
        "qr_text": qr.text(),
        "now": payload.iat,
        "relay_id": payload.relay_id,
        "relay_public": hex::encode(relay.public_key_raw()),
        "login": "ali",
        "device_id": attestation.device_id,
        "chain": [hex::encode(&cert)],
        "documents": {"whole": MAX_WHOLE_DOCUMENT, "digest": true},
        "agent_anchors": [],
        "agent_ephemeral_private": hex::encode(fixed::<32>(65)),
        "phone_ephemeral_private": hex::encode(fixed::<32>(33)),
    });
    FlowInputs { agent, phone, joined, header }
}

/// One side's input, in the vectors' words.
#[derive(Clone)]
enum Input {
    Event(TunnelEvent),
    Frame(Vec<u8>),
    Sign {
        name: &'static str,
        media_type: &'static str,
        data: &'static [u8],
        format: DocFormat,
        digest: Option<DocDigest>,
    },
    /// The agent seals a message as it is, past its own rules (a part of a stream too small for a real
    /// agent to send in parts).
    Inject(ChannelMessage),
    Withdraw(&'static str),
    Answer(u32, PhoneAnswer),
    End(&'static str),
}

fn input_json(i: &Input) -> Value {
    match i {
        Input::Event(e) => json!({"event": serde_json::to_value(e).unwrap()}),
        Input::Frame(f) => json!({"frame": hex::encode(f)}),
        Input::Sign { name, media_type, data, format, digest } => {
            let mut v = json!({"name": name, "media_type": media_type, "data": hex::encode(data), "format": format.as_str(), "pss": false});
            if let Some(d) = digest {
                v["digest"] =
                    json!({"size": d.size, "sha256": hex::encode(&d.sha256), "sha512": hex::encode(&d.sha512)});
            }
            json!({ "sign": v })
        }
        Input::Inject(m) => json!({"inject": serde_json::to_value(m).unwrap()}),
        Input::Withdraw(r) => json!({"withdraw": r}),
        Input::Answer(id, a) => json!({"answer": {"id": id, "decision": match a {
            PhoneAnswer::Approved(sig) => json!({"approved": hex::encode(sig)}),
            PhoneAnswer::Declined => json!("declined"),
            PhoneAnswer::Failed(f) => json!({"failed": f.code.as_str(), "message": f.message}),
        }}}),
        Input::End(r) => json!({"end": r}),
    }
}

/// A whole session through both state machines: each side's frames are delivered to the other in order.
fn flow_vectors() -> Value {
    let FlowInputs { mut agent, mut phone, joined, header } = flow_inputs();
    let mut steps = vec![];
    // Frames in flight, per receiving side.
    let mut to_agent: std::collections::VecDeque<Vec<u8>> = Default::default();
    let mut to_phone: std::collections::VecDeque<Vec<u8>> = Default::default();
    let record_agent = |agent: &mut AgentSession,
                        i: Input,
                        to_phone: &mut std::collections::VecDeque<Vec<u8>>,
                        steps: &mut Vec<Value>| {
        let out = match i.clone() {
            Input::Event(e) => agent.on_event(e),
            Input::Frame(f) => agent.on_frame(&f, 1_800_000_001),
            Input::Sign { name, media_type, data, format, digest } => {
                let d = SignDoc {
                    data: data.to_vec(),
                    name: name.into(),
                    media_type: media_type.into(),
                    format,
                    pss: false,
                    byte_range: None,
                    digest,
                };
                match agent.sign(&d) {
                    Ok((_, a)) => a,
                    Err(f) => vec![AgentAction::Closed(Some(f))],
                }
            }
            Input::Inject(m) => {
                hazmat::danger_agent_seal(agent, &m).unwrap().into_iter().map(AgentAction::Send).collect()
            }
            Input::Withdraw(r) => agent.withdraw(r),
            Input::End(r) => agent.end(r),
            Input::Answer(..) => unreachable!(),
        };
        for a in &out {
            if let AgentAction::Send(f) = a {
                to_phone.push_back(f.clone());
            }
        }
        steps.push(json!({"side": "agent", "input": input_json(&i), "actions": out.iter().map(agent_action).collect::<Vec<_>>()}));
    };
    let record_phone = |phone: &mut PhoneSession,
                        i: Input,
                        to_agent: &mut std::collections::VecDeque<Vec<u8>>,
                        steps: &mut Vec<Value>| {
        let out = match i.clone() {
            Input::Event(e) => phone.on_event(e),
            Input::Frame(f) => phone.on_frame(&f),
            Input::Answer(id, a) => match phone.answer(id, a) {
                Ok(out) => out,
                Err(f) => {
                    // Refused (a withdrawn request): nothing sent, the session goes on.
                    steps.push(json!({"side": "phone", "input": input_json(&i), "actions": [{"answer_refused": f.code.as_str()}]}));
                    return;
                }
            },
            Input::End(r) => phone.end(r),
            _ => unreachable!(),
        };
        for a in &out {
            if let PhoneAction::Send(f) = a {
                to_agent.push_back(f.clone());
            }
        }
        steps.push(json!({"side": "phone", "input": input_json(&i), "actions": out.iter().map(phone_action).collect::<Vec<_>>()}));
    };
    record_agent(&mut agent, Input::Event(TunnelEvent::Ready { expires_in: 60 }), &mut to_phone, &mut steps);
    let peer = TunnelEvent::Peer { login: "ali".into(), device_id: header["device_id"].as_str().unwrap().into() };
    record_agent(&mut agent, Input::Event(peer), &mut to_phone, &mut steps);
    record_phone(&mut phone, Input::Event(joined), &mut to_agent, &mut steps);
    macro_rules! deliver {
        () => {
            while !to_agent.is_empty() || !to_phone.is_empty() {
                while let Some(f) = to_agent.pop_front() {
                    record_agent(&mut agent, Input::Frame(f), &mut to_phone, &mut steps);
                }
                while let Some(f) = to_phone.pop_front() {
                    record_phone(&mut phone, Input::Frame(f), &mut to_agent, &mut steps);
                }
            }
        };
    }
    deliver!();
    // 1: approved. 2: a wrong PIN (the session goes on). 3: withdrawn while the person reads.
    // 4: a protocol statement, refused before asking. 5: declined. Then the page ends the session.
    let sign =
        |name, data: &'static [u8], format| Input::Sign { name, media_type: "text/plain", data, format, digest: None };
    record_agent(
        &mut agent,
        sign("contract.txt", "Shartnoma / Договор / Contract\n".as_bytes(), DocFormat::Cms),
        &mut to_phone,
        &mut steps,
    );
    deliver!();
    record_phone(
        &mut phone,
        Input::Answer(1, PhoneAnswer::Approved(b"a signature".to_vec())),
        &mut to_agent,
        &mut steps,
    );
    deliver!();
    record_agent(&mut agent, sign("second.txt", b"second", DocFormat::Raw), &mut to_phone, &mut steps);
    deliver!();
    let wrong = PhoneAnswer::Failed(kalit_core::flow::Failure::new(ErrorCode::WrongPin, "wrong PIN (4 tries left)"));
    record_phone(&mut phone, Input::Answer(2, wrong), &mut to_agent, &mut steps);
    deliver!();
    record_agent(&mut agent, sign("third.txt", b"withdrawn", DocFormat::Raw), &mut to_phone, &mut steps);
    deliver!();
    record_agent(&mut agent, Input::Withdraw("the page stopped waiting"), &mut to_phone, &mut steps);
    deliver!();
    record_phone(&mut phone, Input::Answer(3, PhoneAnswer::Approved(b"too late".to_vec())), &mut to_agent, &mut steps);
    record_agent(&mut agent, sign("statement", b"kalit/v1/register\0...", DocFormat::Raw), &mut to_phone, &mut steps);
    deliver!();
    record_agent(&mut agent, sign("fifth.txt", b"declined", DocFormat::Raw), &mut to_phone, &mut steps);
    deliver!();
    record_phone(&mut phone, Input::Answer(5, PhoneAnswer::Declined), &mut to_agent, &mut steps);
    deliver!();
    // 6: a document too large to travel, signed by the agent's digests (the phone warns and asks apart).
    let digest = DocDigest { size: 200 << 20, sha256: fixed::<32>(40).to_vec(), sha512: fixed::<64>(80).to_vec() };
    let by_digest = Input::Sign {
        name: "archive.txt",
        media_type: "text/plain",
        data: b"The first bytes of a very large archive.\n",
        format: DocFormat::Cms,
        digest: Some(digest),
    };
    record_agent(&mut agent, by_digest, &mut to_phone, &mut steps);
    deliver!();
    record_phone(&mut phone, Input::Answer(6, PhoneAnswer::Approved(b"a CMS".to_vec())), &mut to_agent, &mut steps);
    deliver!();
    // 7: a document in parts (a real agent streams only past 8 MiB; these parts are small), hashed by the
    // phone as they arrive. The page ends the session while the person reads it.
    let origin = vector_payload().origin;
    let start = ChannelMessage::SignStart {
        id: 7,
        origin,
        name: "parts.txt".into(),
        media_type: "text/plain".into(),
        format: DocFormat::Cms,
        pss: false,
        size: 11,
    };
    record_agent(&mut agent, Input::Inject(start), &mut to_phone, &mut steps);
    for part in [&b"Ikki "[..], &b"qism.\n"[..]] {
        record_agent(
            &mut agent,
            Input::Inject(ChannelMessage::DocumentPart { id: 7, data: part.into() }),
            &mut to_phone,
            &mut steps,
        );
    }
    deliver!();
    record_agent(&mut agent, Input::End("the page ended the session"), &mut to_phone, &mut steps);
    deliver!();
    json!({
        "description": "A whole signing session through the two state machines (kalit_core::flow): each step is one input to one side (a relay event, a tunnel frame, a request of the page, the person's answer) and the actions that side produced, in order; frames are delivered to the other side in the order sent. An implementation of either side, from the same inputs and fixed ephemeral keys, must produce the same actions byte for byte. Keys here protect nothing.",
        "session_version": kalit_proto::session::SESSION_VERSION,
        "inputs": header,
        "steps": steps,
    })
}

fn statement_vectors() -> Value {
    let device = ed25519(fixed(201));
    let cert_key = ed25519(fixed(7));
    let relay_key = ed25519(fixed(150));
    let nonce: [u8; 32] = fixed(9);
    let relay_id = "00112233445566778899aabbccddeeff";
    let fp = hex::encode([7u8; 32]);
    let dev = device.public_key_raw().to_vec();
    let dev_id = kalit_core::statement::key_id(&dev);
    let register = Statement::register(relay_id, &nonce, "ali", &dev, &fp);
    let removal = Statement::device_removal(relay_id, &nonce, "ali", &dev_id, "ffeeddccbbaa99887766554433221100");
    let join = Statement::device_request(relay_id, &nonce, "ali", &dev_id, "tunnel-join", &"ab".repeat(32));
    let attach = Statement::device_request(relay_id, &nonce, "ali", &dev_id, "attach", &format!("{fp}/{dev_id}"));
    let (rid, ali, fpb, did) = (relay_id.as_bytes(), b"ali".as_slice(), fp.as_bytes(), dev_id.as_bytes());
    let attestation = Attestation {
        relay_id: relay_id.into(),
        login: "ali".into(),
        cert_fingerprint: fp.clone().into(),
        device_id: dev_id.clone().into(),
        device_key: Base64::of(&dev),
        issued_at: 1_800_000_000,
        expires_at: 1_800_000_600,
    };
    let att = Statement::attestation(&attestation);
    let origin = kalit_proto::session::OriginAttestation {
        relay_id: relay_id.into(),
        tunnel: "ab".repeat(32),
        origin: "https://portal.example".into(),
        issued_at: 1_800_000_000,
        expires_at: 1_800_000_600,
    };
    let orig = Statement::origin(&origin);
    // Each statement with its fields (hex, in order), so that another implementation builds the bytes itself.
    let entry = |s: &Statement, fields: &[&[u8]], signature: Vec<u8>, signer: &str| {
        json!({"namespace": s.namespace(),
        "fields": fields.iter().map(hex::encode).collect::<Vec<_>>(), "bytes": hex::encode(s.as_bytes()),
        "signer": signer, "signature": hex::encode(signature)})
    };
    let removed = "ffeeddccbbaa99887766554433221100";
    let tunnel = "ab".repeat(32);
    let attach_target = format!("{fp}/{dev_id}");
    json!({
        "description": "Statements: namespace, 0x00, then each field as u32 big-endian length and bytes. Certificate statements are signed under the statement scheme (here Ed25519ph, SHA-512 prehash, context \"kalit/v1/statement\"); device and relay statements with plain Ed25519. Ed25519 keys are PKCS#8 v1 around the given seed.",
        "relay_id": relay_id,
        "nonce": hex::encode(nonce),
        "device_seed": hex::encode(fixed::<32>(201)),
        "device_public": hex::encode(&dev),
        "certificate_key_seed": hex::encode(fixed::<32>(7)),
        "certificate_key_public": hex::encode(cert_key.public_key_raw()),
        "relay_seed": hex::encode(fixed::<32>(150)),
        "relay_public": hex::encode(relay_key.public_key_raw()),
        "statements": [
            entry(&register, &[rid, &nonce, ali, &dev, fpb], register.sign_as_certificate(&cert_key).unwrap(), "certificate (Ed25519ph, context kalit/v1/statement)"),
            entry(&removal, &[rid, &nonce, ali, did, removed.as_bytes()], removal.sign_as_certificate(&cert_key).unwrap(), "certificate (Ed25519ph, context kalit/v1/statement)"),
            entry(&join, &[rid, &nonce, ali, did, b"tunnel-join", tunnel.as_bytes()], join.sign(&device).unwrap(), "device (Ed25519)"),
            entry(&attach, &[rid, &nonce, ali, did, b"attach", attach_target.as_bytes()], attach.sign(&device).unwrap(), "device (Ed25519)"),
            entry(&att, &[rid, ali, fpb, did, attestation.device_key.encode().as_bytes(), &attestation.issued_at.to_be_bytes(),
                &attestation.expires_at.to_be_bytes()], att.sign(&relay_key).unwrap(), "relay (Ed25519)"),
            entry(&orig, &[rid, origin.tunnel.as_bytes(), origin.origin.as_bytes(), &origin.issued_at.to_be_bytes(),
                &origin.expires_at.to_be_bytes()], orig.sign(&relay_key).unwrap(), "relay (Ed25519)"),
        ],
        "attestation": serde_json::to_value(&attestation).unwrap(),
        "origin_attestation": serde_json::to_value(&origin).unwrap(),
    })
}

/// Identity rotation: the relay's root key endorses signing keys (`kalit/v1/relay-key`), whose
/// attestations carry the endorsement. Each case is a signed attestation (or origin attestation) and
/// whether a phone or agent that knows only the root key (the relay id's key) accepts it.
fn relay_key_vectors() -> Value {
    use kalit_proto::relay::{EndorsedRelayKey, RelayKey, SignedAttestation};
    use kalit_proto::session::{OriginAttestation, SignedOriginAttestation};
    let root = ed25519(fixed(150));
    let signing = ed25519(fixed(170));
    let stranger = ed25519(fixed(190));
    let root_public = root.public_key_raw().to_vec();
    let relay_id = kalit_core::statement::key_id(&root_public);
    let key = |k: &PrivateKey, not_before: i64, not_after: i64, relay: &str| RelayKey {
        relay_id: relay.into(),
        public_key: Base64::of(k.public_key_raw()),
        not_before,
        not_after,
    };
    let endorse = |by: &PrivateKey, k: RelayKey| EndorsedRelayKey {
        signature: Base64::of(Statement::relay_key(&k).sign(by).unwrap()),
        key: k,
    };
    let (nb, na) = (1_800_000_000, 1_802_592_000);
    let good = endorse(&root, key(&signing, nb, na, &relay_id));
    let st = Statement::relay_key(&good.key);
    let att = |issued_at: i64, expires_at: i64| Attestation {
        relay_id: relay_id.as_str().into(),
        login: "ali".into(),
        cert_fingerprint: hex::encode([7u8; 32]).into(),
        device_id: "00112233445566778899aabbccddeeff".into(),
        device_key: Base64::of(fixed::<32>(201)),
        issued_at,
        expires_at,
    };
    let signed = |a: Attestation, by: &PrivateKey, e: Option<&EndorsedRelayKey>| SignedAttestation {
        signature: Base64::of(Statement::attestation(&a).sign(by).unwrap()),
        attestation: a,
        relay_key: e.cloned().map(Box::new),
    };
    let t = nb + 86_400;
    let mut tampered = good.clone();
    tampered.key.not_after += 86_400;
    let case = |name: &str, s: SignedAttestation, valid: bool| {
        let ok = kalit_core::statement::verify_attestation(&root_public, &s).is_ok();
        assert_eq!(ok, valid, "{name}");
        json!({"name": name, "kind": "attestation", "signed": s, "valid": valid})
    };
    let origin = OriginAttestation {
        relay_id: relay_id.as_str().into(),
        tunnel: "ab".repeat(32),
        origin: "https://portal.example".into(),
        issued_at: t,
        expires_at: t + 600,
    };
    let signed_origin = SignedOriginAttestation {
        signature: Base64::of(Statement::origin(&origin).sign(&signing).unwrap()),
        attestation: origin,
        relay_key: Some(Box::new(good.clone())),
    };
    assert!(kalit_core::statement::verify_origin_attestation(&root_public, &signed_origin).is_ok());
    // A hello carrying an endorsed attestation, as the phone sends it: every implementation writes
    // these exact bytes.
    let hello = ChannelMessage::Hello {
        login: "ali".into(),
        device_name: "Ali's phone".into(),
        chain: vec![Base64::of([0x30u8, 0x03, 0x02, 0x01, 0x01])],
        attestation: signed(att(t, t + 600), &signing, Some(&good)),
        formats: vec![DocFormat::Raw, DocFormat::Cms],
        documents: None,
    };
    let mut origin_by_root = signed_origin.clone();
    origin_by_root.relay_key = None;
    assert!(kalit_core::statement::verify_origin_attestation(&root_public, &origin_by_root).is_err());
    json!({
        "description": "Relay identity rotation. The relay id is the root key's id; the root key signs kalit/v1/relay-key (relay id, signing key, not_before, not_after as i64 big-endian) and the signing key signs attestations, which carry the endorsement as relay_key. Accept when relay_key is absent and the root key signed; or when the root key endorsed relay_key for this relay id, not_before <= issued_at <= expires_at <= not_after, and the endorsed key signed. Ed25519 keys are PKCS#8 v1 around the given seeds.",
        "root_seed": hex::encode(fixed::<32>(150)),
        "root_public": hex::encode(&root_public),
        "relay_id": relay_id,
        "signing_seed": hex::encode(fixed::<32>(170)),
        "signing_public": hex::encode(signing.public_key_raw()),
        "endorsement": {
            "key": good.key,
            "fields": [hex::encode(relay_id.as_bytes()), hex::encode(signing.public_key_raw()), hex::encode(nb.to_be_bytes()), hex::encode(na.to_be_bytes())],
            "bytes": hex::encode(st.as_bytes()),
            "signature": hex::encode(good.signature.as_slice()),
        },
        "cases": [
            case("signed by the root key, no endorsement", signed(att(t, t + 600), &root, None), true),
            case("signed by an endorsed key within its validity", signed(att(t, t + 600), &signing, Some(&good)), true),
            case("the whole validity, to the second", signed(att(nb, na), &signing, Some(&good)), true),
            case("issued before the key's validity", signed(att(nb - 1, nb + 600), &signing, Some(&good)), false),
            case("expires after the key's validity (a back-dated statement cannot outlive its key)", signed(att(na - 600, na + 1), &signing, Some(&good)), false),
            case("expires before it is issued", signed(att(t, t - 1), &signing, Some(&good)), false),
            case("endorsed by another key than the root", signed(att(t, t + 600), &signing, Some(&endorse(&stranger, key(&signing, nb, na, &relay_id)))), false),
            case("endorsed by the root for another relay id", signed(att(t, t + 600), &signing, Some(&endorse(&root, key(&signing, nb, na, "ffeeddccbbaa99887766554433221100")))), false),
            case("the endorsement's validity stretched after signing", signed(att(na, na + 600), &signing, Some(&tampered)), false),
            case("signed by the root key while naming an endorsed key", signed(att(t, t + 600), &root, Some(&good)), false),
            case("signed by the endorsed key without its endorsement", signed(att(t, t + 600), &signing, None), false),
            case("signed by a stranger under a good endorsement", signed(att(t, t + 600), &stranger, Some(&good)), false),
            {"name": "an origin statement signed by an endorsed key", "kind": "origin", "signed": signed_origin, "valid": true},
            {"name": "an origin statement by the endorsed key without its endorsement", "kind": "origin", "signed": origin_by_root, "valid": false},
        ],
        "hello": serde_json::to_string(&hello).unwrap(),
    })
}

/// The phone's display rules (`kalit_core::display`, `kalit_core::purpose`) as input -> output cases:
/// the phone app must show exactly these.
fn display_vectors() -> Value {
    use kalit_core::display;
    let strings = [
        "contract.pdf",
        "invoice\u{202e}fdp.exe",
        "a\x1b[2Jb",
        "\x1b]52;c;cGF5bG9hZA==\x07",
        "two\nlines",
        "zero\u{200b}width",
        "c:\\temp",
        "Toshkent — Тошкент",
        "tab\there",
        "emoji \u{1f600}",
    ];
    let escape: Vec<Value> = strings.iter().map(|s| json!({"input": s, "output": display::escape(s)})).collect();
    let field: Vec<Value> = [("short", 10), ("abcdefghijklmno", 10), ("\u{202e}abcdefghij", 10)]
        .iter()
        .map(|(s, n)| json!({"input": s, "max": n, "output": display::field(s, *n)}))
        .collect();
    let media: Vec<Value> = [
        "text/plain",
        "Text/Plain",
        "application/vnd.oasis.opendocument.text",
        "text",
        "text/plain; charset=utf-8",
        "text/plain\n  Preview: all good",
        "te xt/plain",
        "/x",
    ]
    .iter()
    .map(|s| json!({"input": s, "output": display::media_type(s).ok()}))
    .collect();
    let origins: Vec<Value> = [
        "https://my.gov.example",
        "http://127.0.0.1:8080",
        "https://[::1]:443",
        "https://my.gov.example/",
        "https://MY.gov.example",
        "https://user@my.gov.example",
        "https://my.gov.example:0",
        "https://my.gov.example\x1b[2J",
        "javascript://x",
    ]
    .iter()
    .map(|s| json!({"input": s, "valid": display::origin(s).is_ok()}))
    .collect();
    let previews: Vec<Value> = [
        format!("I agree to pay 100 som.{}and also to sell my house.", " ".repeat(70)),
        "x".repeat(100),
        (0..30).map(|i| format!("line {i}")).collect::<Vec<_>>().join("\n"),
        "ok\x1b[2J\u{202e}\r\nnext\n".to_string(),
    ]
    .iter()
    .map(|t| json!({"input": t, "width": 40, "max_lines": 12, "output": display::preview(t.as_bytes(), 40, 12)}))
    .collect();
    let sniff: Vec<Value> = [
        ("text/plain", b"hello".to_vec()),
        ("text/plain", b"%PDF-1.7\n".to_vec()),
        ("application/pdf", b"just text".to_vec()),
        ("application/pdf", b"%PDF-1.4".to_vec()),
        ("application/octet-stream", b"%PDF-1.4".to_vec()),
        ("application/octet-stream", vec![0, 1, 2]),
        ("image/png", b"\x89PNG\r\n\x1a\n".to_vec()),
    ]
    .iter()
    .map(|(t, d)| json!({"media_type": t, "data": hex::encode(d), "warning": display::type_mismatch(t, d)}))
    .collect();
    let stmt = Statement::register("r", &[1; 32], "ali", &[2; 32], "fp");
    let documents: Vec<Value> = [
        ("kalit statement", stmt.as_bytes().to_vec()),
        ("DER SEQUENCE", vec![0x30, 0x03, 0x02, 0x01, 0x00]),
        ("DER SET", vec![0x31, 0x04, 0x30, 0x02, 0x05, 0x00]),
        ("BER indefinite", vec![0x30, 0x80, 0x00, 0x00]),
        ("SEQUENCE then more", vec![0x30, 0x00, b'x']),
        ("text", b"Shartnoma".to_vec()),
        ("binary", vec![0x89, b'P', b'N', b'G', 0, 1]),
    ]
    .iter()
    .map(|(what, d)| {
        json!({
            "what": what,
            "data": hex::encode(d),
            "raw_refused": kalit_core::purpose::check_document(d, true).is_err(),
            "cms_refused": kalit_core::purpose::check_document(d, false).is_err(),
            "raw_needs_blind_confirmation": kalit_core::purpose::needs_blind_confirmation(d),
        })
    })
    .collect();
    json!({
        "description": "The phone's display and document rules: every string from the computer, relay or RA is shown through these (escape: control, format and bidi characters as \\u{hex}, backslash doubled; field: escape then cut with a marked remainder; media types are type/subtype tokens, lower-cased; origins are scheme://host[:port]; previews wrap, mark long blank runs and hidden lines; the claimed type is checked against the content; documents that are Kalit statements or (raw) DER structures are refused).",
        "escape": escape,
        "field": field,
        "media_type": media,
        "origin": origins,
        "preview": previews,
        "type_mismatch": sniff,
        "documents": documents,
    })
}

fn check(name: &str, generated: Value) {
    let path = dir().join(name);
    let text = serde_json::to_string_pretty(&generated).unwrap() + "\n";
    if std::env::var_os("KALIT_WRITE_VECTORS").is_some() {
        std::fs::create_dir_all(dir()).unwrap();
        // Whole or not at all: the replay tests may read the file meanwhile.
        let tmp = path.with_extension("json.tmp");
        std::fs::write(&tmp, &text).unwrap();
        std::fs::rename(&tmp, &path).unwrap();
    }
    let committed = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (write it with KALIT_WRITE_VECTORS=1)", path.display()));
    assert!(
        committed == text,
        "{} differs from what the code generates: a protocol change must bump its version and rewrite the vectors (KALIT_WRITE_VECTORS=1)",
        path.display()
    );
}

#[test]
fn committed_vectors_are_what_the_code_generates() {
    check("session-v2.json", session_vectors());
    check("flow-v2.json", flow_vectors());
    check("statements-v1.json", statement_vectors());
    check("display-v1.json", display_vectors());
    check("relay-keys-v1.json", relay_key_vectors());
}

#[test]
fn the_committed_relay_keys_verify() {
    use kalit_core::statement::{self, Statement};
    let v: Value = serde_json::from_str(&std::fs::read_to_string(dir().join("relay-keys-v1.json")).unwrap()).unwrap();
    let root = hex::decode(v["root_public"].as_str().unwrap()).unwrap();
    assert_eq!(statement::key_id(&root), v["relay_id"].as_str().unwrap());
    let e = &v["endorsement"];
    let key: kalit_proto::relay::RelayKey = serde_json::from_value(e["key"].clone()).unwrap();
    let bytes = Statement::relay_key(&key);
    assert_eq!(hex::encode(bytes.as_bytes()), e["bytes"].as_str().unwrap());
    let sig = hex::decode(e["signature"].as_str().unwrap()).unwrap();
    statement::verify_ed25519(&root, bytes.as_bytes(), &sig).unwrap();
    let mut n = 0;
    for c in v["cases"].as_array().unwrap() {
        let ok = if c["kind"] == "origin" {
            let s: kalit_proto::session::SignedOriginAttestation = serde_json::from_value(c["signed"].clone()).unwrap();
            statement::verify_origin_attestation(&root, &s).is_ok()
        } else {
            let s: kalit_proto::relay::SignedAttestation = serde_json::from_value(c["signed"].clone()).unwrap();
            statement::verify_attestation(&root, &s).is_ok()
        };
        assert_eq!(ok, c["valid"].as_bool().unwrap(), "{}", c["name"]);
        n += 1;
    }
    assert_eq!(n, 14);
    let hello: ChannelMessage = serde_json::from_str(v["hello"].as_str().unwrap()).unwrap();
    assert_eq!(serde_json::to_string(&hello).unwrap(), v["hello"].as_str().unwrap());
    let ChannelMessage::Hello { attestation, .. } = hello else { panic!("not a hello") };
    assert!(attestation.relay_key.is_some());
    statement::verify_attestation(&root, &attestation).unwrap();
}

/// The other direction, as another implementation would use the files: from the committed inputs alone,
/// derive and open everything.
#[test]
fn the_committed_session_replays() {
    let v: Value = serde_json::from_str(&std::fs::read_to_string(dir().join("session-v2.json")).unwrap()).unwrap();
    let h = |k: &str| hex::decode(v[k].as_str().unwrap()).unwrap();
    let qr = Qr::parse(v["qr_text"].as_str().unwrap()).unwrap();
    assert_eq!(qr.tunnel_id().unwrap(), v["tunnel_id"].as_str().unwrap());
    assert_eq!(hazmat::danger_psk(&h("secret")).unwrap(), h("psk"));
    assert_eq!(qr.computer_id(), v["computer_id"].as_str().unwrap());
    let computer = ComputerKey::from_private(&SecretBytes::new(h("computer_private"))).unwrap();
    let secret: [u8; 16] = h("secret").try_into().unwrap();
    let (_, secrets) = hazmat::danger_qr_with_secret(&computer, secret, &qr.payload).unwrap();
    let e: [u8; 32] = h("agent_ephemeral_private").try_into().unwrap();
    // The agent answers the committed message 1 with the committed message 2.
    let (msg2, mut agent) = hazmat::danger_agent_respond(&qr, &secrets, &h("msg1"), &e).unwrap();
    assert_eq!(msg2, h("msg2"));
    assert_eq!(agent.sas(), v["sas"].as_str().unwrap());
    let pe: [u8; 32] = h("phone_ephemeral_private").try_into().unwrap();
    let (hs, msg1) = hazmat::danger_phone_start(&qr, &pe).unwrap();
    assert_eq!(msg1, h("msg1"));
    let mut phone = hs.finish(&msg2).unwrap();
    for step in v["transcript"].as_array().unwrap() {
        let rx = if step["from"] == "agent" { &mut phone } else { &mut agent };
        let mut got = None;
        for f in step["frames"].as_array().unwrap() {
            got = rx.open(&hex::decode(f.as_str().unwrap()).unwrap()).unwrap();
        }
        assert_eq!(serde_json::to_value(got.unwrap()).unwrap(), step["message"]);
    }
    // One flipped bit in any frame breaks the channel.
    let first = v["transcript"][0]["frames"][0].as_str().unwrap();
    let mut bad = hex::decode(first).unwrap();
    bad[5] ^= 1;
    let (hs, _) = hazmat::danger_phone_start(&qr, &pe).unwrap();
    let (_, mut agent) = hazmat::danger_agent_respond(&qr, &secrets, &h("msg1"), &e).unwrap();
    drop(hs);
    assert!(agent.open(&bad).is_err());
}

#[test]
fn the_committed_statements_verify() {
    let v: Value = serde_json::from_str(&std::fs::read_to_string(dir().join("statements-v1.json")).unwrap()).unwrap();
    let h = |x: &Value| hex::decode(x.as_str().unwrap()).unwrap();
    let cert_public = h(&v["certificate_key_public"]);
    // The certificate key's SubjectPublicKeyInfo (Ed25519): 302a300506032b6570032100 || key.
    let mut spki = hex::decode("302a300506032b6570032100").unwrap();
    spki.extend_from_slice(&cert_public);
    for s in v["statements"].as_array().unwrap() {
        let bytes = hex::decode(s["bytes"].as_str().unwrap()).unwrap();
        let sig = hex::decode(s["signature"].as_str().unwrap()).unwrap();
        let signer = s["signer"].as_str().unwrap();
        if signer.starts_with("certificate") {
            kalit_core::x509::verify_statement(&spki, &bytes, &sig).unwrap();
            assert!(kalit_core::x509::verify_raw(&spki, &bytes, &sig).is_err(), "never a document signature");
        } else {
            let key = if signer.starts_with("device") { "device_public" } else { "relay_public" };
            let pk = hex::decode(v[key].as_str().unwrap()).unwrap();
            kalit_core::statement::verify_ed25519(&pk, &bytes, &sig).unwrap();
        }
        // The bytes are the namespace, a zero byte and the fields, each after its u32 big-endian length.
        let mut built = format!("{}\0", s["namespace"].as_str().unwrap()).into_bytes();
        for f in s["fields"].as_array().unwrap() {
            let f = h(f);
            built.extend_from_slice(&(f.len() as u32).to_be_bytes());
            built.extend_from_slice(&f);
        }
        assert_eq!(built, bytes);
    }
}

/// The flow vectors from the committed file alone: both machines rebuilt from its inputs, every step's
/// input fed to its side, every action compared.
#[test]
fn the_committed_flow_replays() {
    let v: Value = serde_json::from_str(&std::fs::read_to_string(dir().join("flow-v2.json")).unwrap()).unwrap();
    let i = &v["inputs"];
    let h = |x: &Value| hex::decode(x.as_str().unwrap()).unwrap();
    let computer = ComputerKey::from_private(&SecretBytes::new(h(&i["computer_private"]))).unwrap();
    let qr = Qr::parse(i["qr_text"].as_str().unwrap()).unwrap();
    let (qr2, secrets) =
        hazmat::danger_qr_with_secret(&computer, h(&i["secret"]).try_into().unwrap(), &qr.payload).unwrap();
    assert_eq!(qr2.text(), qr.text());
    let chain: Vec<Vec<u8>> = i["chain"].as_array().unwrap().iter().map(h).collect();
    let mut agent = AgentSession::new(
        qr.clone(),
        secrets,
        AgentConfig {
            relay_id: i["relay_id"].as_str().unwrap().into(),
            relay_public_key: h(&i["relay_public"]),
            anchors: vec![],
        },
    );
    hazmat::danger_fix_agent_ephemeral(&mut agent, h(&i["agent_ephemeral_private"]).try_into().unwrap());
    let mut phone = PhoneSession::new(
        qr.text(),
        i["now"].as_u64().unwrap(),
        PhoneConfig {
            relay_id: i["relay_id"].as_str().unwrap().into(),
            relay_public_key: h(&i["relay_public"]),
            login: i["login"].as_str().unwrap().into(),
            device_id: i["device_id"].as_str().unwrap().into(),
            chain,
            formats: vec![],
            documents: serde_json::from_value(i["documents"].clone()).unwrap(),
        },
    )
    .unwrap();
    hazmat::danger_fix_phone_ephemeral(&mut phone, h(&i["phone_ephemeral_private"]).try_into().unwrap());
    let now = i["now"].as_i64().unwrap() + 1;
    for (n, step) in v["steps"].as_array().unwrap().iter().enumerate() {
        let input = &step["input"];
        let got: Vec<Value> = if step["side"] == "agent" {
            let out = if let Some(e) = input.get("event") {
                agent.on_event(serde_json::from_value(e.clone()).unwrap())
            } else if let Some(f) = input.get("frame") {
                agent.on_frame(&h(f), now)
            } else if let Some(s) = input.get("sign") {
                let digest = s.get("digest").map(|d| DocDigest {
                    size: d["size"].as_u64().unwrap(),
                    sha256: h(&d["sha256"]),
                    sha512: h(&d["sha512"]),
                });
                let d = SignDoc {
                    data: h(&s["data"]),
                    name: s["name"].as_str().unwrap().into(),
                    media_type: s["media_type"].as_str().unwrap().into(),
                    format: serde_json::from_value(s["format"].clone()).unwrap(),
                    pss: s["pss"].as_bool().unwrap(),
                    byte_range: None,
                    digest,
                };
                agent.sign(&d).map(|(_, a)| a).unwrap_or_else(|f| vec![AgentAction::Closed(Some(f))])
            } else if let Some(m) = input.get("inject") {
                let m: ChannelMessage = serde_json::from_value(m.clone()).unwrap();
                hazmat::danger_agent_seal(&mut agent, &m).unwrap().into_iter().map(AgentAction::Send).collect()
            } else if let Some(r) = input.get("withdraw") {
                agent.withdraw(r.as_str().unwrap())
            } else {
                agent.end(input["end"].as_str().unwrap())
            };
            out.iter().map(agent_action).collect()
        } else {
            let out = if let Some(e) = input.get("event") {
                phone.on_event(serde_json::from_value(e.clone()).unwrap())
            } else if let Some(f) = input.get("frame") {
                phone.on_frame(&h(f))
            } else if let Some(a) = input.get("answer") {
                let d = &a["decision"];
                let decision = if let Some(sig) = d.get("approved") {
                    PhoneAnswer::Approved(h(sig))
                } else if let Some(code) = d.get("failed") {
                    let code = ErrorCode::ALL.iter().copied().find(|c| c.as_str() == code.as_str().unwrap()).unwrap();
                    PhoneAnswer::Failed(kalit_core::flow::Failure::new(code, d["message"].as_str().unwrap()))
                } else {
                    PhoneAnswer::Declined
                };
                let id = a["id"].as_u64().unwrap() as u32;
                match phone.answer(id, decision) {
                    Ok(out) => out,
                    Err(f) => {
                        assert_eq!(step["actions"], json!([{"answer_refused": f.code.as_str()}]), "step {n}");
                        continue;
                    }
                }
            } else {
                phone.end(input["end"].as_str().unwrap())
            };
            out.iter().map(phone_action).collect()
        };
        assert_eq!(Value::from(got), step["actions"], "step {n}");
    }
    assert_eq!(agent.phase(), kalit_proto::session::SessionPhase::Closed);
    assert!(phone.closed());
}
