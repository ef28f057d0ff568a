//! The `session_flow` harness, shared by the fuzz target (`session_flow.rs`, libFuzzer) and by a normal
//! test of kalit-core (`tests/fuzz_replay.rs`), which runs it on the committed seeds and on a stream of
//! pseudo-random programs in every CI run.
//!
//! Whole sessions through the two state machines (`kalit_core::flow`) with arbitrary event orders: the
//! input is a program of operations (sign, withdraw, end, answer, deliver, drop, reorder or forge frames,
//! relay events) on a paired agent and phone. Never a panic, and the session's promises hold whatever the
//! order: no answer ever reaches the page for a request it withdrew; the phone never sends an answer for a
//! request it saw withdrawn; a closed side does nothing more; the agent pairs only with the phone whose
//! hello it checked.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]
use std::collections::VecDeque;

use kalit_core::SecretBytes;
use kalit_core::flow::{
    AgentAction, AgentConfig, AgentSession, Failure, PhoneAction, PhoneAnswer, PhoneConfig, PhoneSession, SignDoc,
};
use kalit_core::keys::PrivateKey;
use kalit_core::session::{ComputerKey, hazmat};
use kalit_core::statement::Statement;
use kalit_proto::ErrorCode;
use kalit_proto::relay::{Attestation, SignedAttestation};
use kalit_proto::session::{ChannelMessage, DocFormat, QrPayload, TunnelEvent};

const NOW: u64 = 1_800_000_000;

fn ed25519(seed: u8) -> PrivateKey {
    let mut der = vec![0x30, 0x2e, 2, 1, 0, 0x30, 5, 6, 3, 0x2b, 0x65, 0x70, 4, 0x22, 4, 0x20];
    der.extend_from_slice(&[seed; 32]);
    PrivateKey::from_pkcs8(&SecretBytes::new(der)).expect("fixed key")
}

struct Run {
    agent: AgentSession,
    phone: PhoneSession,
    to_agent: VecDeque<Vec<u8>>,
    to_phone: VecDeque<Vec<u8>>,
    /// Requests the page withdrew (the agent's side).
    withdrawn_by_page: Vec<u32>,
    /// Requests the phone saw withdrawn.
    withdrawn_at_phone: Vec<u32>,
    prompts: Vec<u32>,
    agent_closed: bool,
    phone_closed: bool,
}

impl Run {
    fn agent_did(&mut self, out: Vec<AgentAction>) {
        if self.agent_closed {
            assert!(out.is_empty(), "a closed agent session acted: {out:?}");
        }
        for a in out {
            match a {
                AgentAction::Send(f) => self.to_phone.push_back(f),
                AgentAction::Answer { id, .. } => {
                    assert!(
                        !self.withdrawn_by_page.contains(&id),
                        "an answer to withdrawn request {id} reached the page"
                    )
                }
                AgentAction::Closed(_) => self.agent_closed = true,
                AgentAction::Paired(p) => assert_eq!(p.login, "ali"),
                AgentAction::LateAnswerRefused { id } => assert!(self.withdrawn_by_page.contains(&id)),
            }
        }
    }

    fn phone_did(&mut self, out: Vec<PhoneAction>) {
        if self.phone_closed {
            assert!(out.is_empty(), "a closed phone session acted: {out:?}");
        }
        for a in out {
            match a {
                PhoneAction::Send(f) => self.to_agent.push_back(f),
                PhoneAction::Prompt(p) => {
                    assert!(!self.withdrawn_at_phone.contains(&p.id));
                    self.prompts.push(p.id)
                }
                PhoneAction::Withdrawn { id, prompted: true, .. } => self.withdrawn_at_phone.push(id),
                PhoneAction::Closed(_) => self.phone_closed = true,
                _ => {}
            }
        }
    }
}

fn setup() -> Option<Run> {
    let computer = ComputerKey::from_private(&SecretBytes::from_slice(&[1; 32])).ok()?;
    // A fixed session secret: the same input replays the same frames.
    let payload = QrPayload {
        v: kalit_proto::session::SESSION_VERSION,
        pk: Default::default(),
        s: Default::default(),
        relay: "https://relay.example".into(),
        relay_id: "r1".into(),
        origin: "https://portal.example".into(),
        iat: NOW,
        ttl: 60,
        op: "sign".into(),
        mode: None,
    };
    let (qr, secrets) = hazmat::danger_qr_with_secret(&computer, [7; 16], &payload).ok()?;
    let relay = ed25519(150);
    let cert = b"cert".to_vec();
    let a = Attestation {
        relay_id: "r1".into(),
        login: "ali".into(),
        cert_fingerprint: kalit_core::statement::cert_fingerprint(&cert).into(),
        device_id: "d1".into(),
        device_key: Default::default(),
        issued_at: NOW as i64,
        expires_at: NOW as i64 + 600,
    };
    let sig = Statement::attestation(&a).sign(&relay).ok()?;
    let attestation = SignedAttestation { signature: sig.into(), attestation: a, relay_key: None };
    let key = relay.public_key_raw().to_vec();
    let mut agent = AgentSession::new(
        qr.clone(),
        secrets,
        AgentConfig { relay_id: "r1".into(), relay_public_key: key.clone(), anchors: vec![] },
    );
    hazmat::danger_fix_agent_ephemeral(&mut agent, [65; 32]);
    let mut phone = PhoneSession::new(
        qr.text(),
        NOW,
        PhoneConfig {
            relay_id: "r1".into(),
            relay_public_key: key,
            login: "ali".into(),
            device_id: "d1".into(),
            chain: vec![cert],
            formats: vec![],
            documents: Some(kalit_proto::session::DocumentSupport {
                whole: kalit_proto::session::MAX_WHOLE_DOCUMENT,
                digest: true,
            }),
        },
    )
    .ok()?;
    hazmat::danger_fix_phone_ephemeral(&mut phone, [33; 32]);
    let mut run = Run {
        agent,
        phone,
        to_agent: VecDeque::new(),
        to_phone: VecDeque::new(),
        withdrawn_by_page: vec![],
        withdrawn_at_phone: vec![],
        prompts: vec![],
        agent_closed: false,
        phone_closed: false,
    };
    let out = run.agent.on_event(TunnelEvent::Peer { login: "ali".into(), device_id: "d1".into() });
    run.agent_did(out);
    let out = run.phone.on_event(TunnelEvent::Joined {
        attestation,
        computer_address: "192.0.2.1".into(),
        same_network: false,
        origin: None,
    });
    run.phone_did(out);
    Some(run)
}

/// Runs one program (the fuzz input) on a freshly paired agent and phone, asserting the invariants.
pub fn run(data: &[u8]) {
    let Some(mut r) = setup() else { return };
    let mut ops = data.iter().copied();
    while let Some(op) = ops.next() {
        let arg = ops.next().unwrap_or(0);
        match op % 14 {
            0 => {
                let doc = SignDoc {
                    data: vec![b'a'; usize::from(arg)],
                    name: "d".into(),
                    media_type: if arg % 7 == 0 { "application/x-not a token".into() } else { "text/plain".into() },
                    format: match arg % 3 {
                        0 => DocFormat::Raw,
                        1 => DocFormat::Cms,
                        // This phone lists no formats: the agent refuses a PDF signature before sending.
                        _ => DocFormat::Pades,
                    },
                    pss: false,
                    byte_range: (arg % 5 == 0).then_some([0, 1, 2, usize::from(arg).saturating_sub(2)]),
                    // Now and then a document too large to travel: by digest (refused for raw).
                    digest: (arg % 11 == 0).then(|| kalit_core::flow::DocDigest {
                        size: 1 << 30,
                        sha256: vec![arg; 32],
                        sha512: vec![arg; 64],
                    }),
                };
                if let Ok((_, out)) = r.agent.sign(&doc) {
                    r.agent_did(out);
                }
            }
            1 => {
                if let Some(id) = r.agent.pending() {
                    r.withdrawn_by_page.push(id);
                }
                let out = r.agent.withdraw("gave up");
                r.agent_did(out);
            }
            2 => {
                if let Some(id) = r.agent.pending() {
                    r.withdrawn_by_page.push(id);
                }
                let out = r.agent.end("bye");
                r.agent_did(out);
            }
            3..=5 => {
                if let Some(f) = r.to_phone.pop_front() {
                    let out = r.phone.on_frame(&f);
                    r.phone_did(out);
                }
            }
            6..=8 => {
                if let Some(f) = r.to_agent.pop_front() {
                    let out = r.agent.on_frame(&f, NOW as i64 + i64::from(arg));
                    r.agent_did(out);
                }
            }
            9 => {
                // The person answers the latest prompt (or an id of the input's choosing).
                let id = if arg < 200 { r.prompts.last().copied().unwrap_or(0) } else { u32::from(arg) };
                let answer = match arg % 3 {
                    0 => PhoneAnswer::Approved(vec![arg; 8]),
                    1 => PhoneAnswer::Declined,
                    _ => PhoneAnswer::Failed(Failure::new(ErrorCode::WrongPin, "wrong PIN")),
                };
                if let Ok(out) = r.phone.answer(id, answer) {
                    assert!(!r.withdrawn_at_phone.contains(&id), "the phone answered withdrawn request {id}");
                    r.phone_did(out);
                }
            }
            10 => {
                // The relay drops or reorders a frame.
                if arg % 2 == 0 {
                    r.to_phone.pop_front();
                } else if r.to_agent.len() > 1 {
                    r.to_agent.swap(0, 1);
                }
            }
            11 => {
                // A relay event at any time.
                let ev = match arg % 3 {
                    0 => TunnelEvent::Ready { expires_in: 1 },
                    1 => TunnelEvent::Peer { login: "mallory".into(), device_id: "d2".into() },
                    _ => TunnelEvent::Error { code: ErrorCode::Unknown, message: "x".into() },
                };
                if arg % 2 == 0 {
                    let out = r.agent.on_event(ev);
                    r.agent_did(out);
                } else {
                    let out = r.phone.on_event(ev);
                    r.phone_did(out);
                }
            }
            12 => {
                // A lying computer: any message through the agent's channel (the rest of the input as JSON).
                let rest: Vec<u8> = ops.by_ref().take(usize::from(arg)).collect();
                if let Ok(m) = serde_json::from_slice::<ChannelMessage>(&rest)
                    && let Ok(frames) = hazmat::danger_agent_seal(&mut r.agent, &m)
                {
                    r.to_phone.extend(frames);
                }
            }
            _ => {
                // A lying phone, the same way; or raw bytes as a frame.
                let rest: Vec<u8> = ops.by_ref().take(usize::from(arg)).collect();
                if let Ok(m) = serde_json::from_slice::<ChannelMessage>(&rest) {
                    // A forged answer to a withdrawn request must still never reach the page.
                    if let Ok(frames) = hazmat::danger_phone_seal(&mut r.phone, &m) {
                        r.to_agent.extend(frames);
                    }
                } else {
                    r.to_agent.push_back(rest);
                }
            }
        }
    }
}
