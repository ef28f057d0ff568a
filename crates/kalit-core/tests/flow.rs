//! The session state machines (`kalit_core::flow`) against each other, with no network: every rule, and
//! the two bugs issue 10 found (a withdrawn request signed anyway; an answer to it delivered).

#![allow(clippy::unwrap_used)]

use kalit_core::SecretBytes;
use kalit_core::flow::{
    AgentAction, AgentConfig, AgentSession, Failure, PhoneAction, PhoneAnswer, PhoneConfig, PhoneSession, SignDoc,
};
use kalit_core::keys::PrivateKey;
use kalit_core::session::{ComputerKey, Qr, hazmat};
use kalit_core::statement::Statement;
use kalit_proto::Base64;
use kalit_proto::ErrorCode;
use kalit_proto::relay::{Attestation, SignedAttestation};
use kalit_proto::session::{
    ChannelMessage, DocFormat, DocumentSupport, MAX_WHOLE_DOCUMENT, OriginAttestation, SessionPhase,
    SignedOriginAttestation, TunnelEvent,
};

const NOW: u64 = 1_800_000_000;
const ORIGIN: &str = "https://portal.example";
const RELAY_ID: &str = "00112233445566778899aabbccddeeff";

fn ed25519(seed: u8) -> PrivateKey {
    let mut der = hex::decode("302e020100300506032b657004220420").unwrap();
    der.extend_from_slice(&[seed; 32]);
    PrivateKey::from_pkcs8(&SecretBytes::new(der)).unwrap()
}

/// The phone "ali", device "d1", of the relay whose key is `relay`.
fn phone_config(relay: &PrivateKey, cert: Vec<u8>, formats: Vec<DocFormat>) -> PhoneConfig {
    PhoneConfig {
        relay_id: RELAY_ID.into(),
        relay_public_key: relay.public_key_raw().to_vec(),
        login: "ali".into(),
        device_id: "d1".into(),
        chain: vec![cert],
        formats,
        documents: Some(DocumentSupport { whole: MAX_WHOLE_DOCUMENT, digest: true }),
    }
}

struct World {
    agent: AgentSession,
    phone: PhoneSession,
    joined: TunnelEvent,
}

fn world() -> World {
    world_with(vec![])
}

/// A world whose phone lists `formats` in its hello.
fn world_with(formats: Vec<DocFormat>) -> World {
    world_cert(formats, b"a certificate (the agent here has no anchors)".to_vec())
}

/// The same with the phone's certificate `cert`.
fn world_cert(formats: Vec<DocFormat>, cert: Vec<u8>) -> World {
    let computer = ComputerKey::from_private(&SecretBytes::from_slice(&[1; 32])).unwrap();
    let (qr, secrets) = Qr::for_computer(&computer, "https://relay.example", RELAY_ID, ORIGIN, 60, NOW).unwrap();
    let relay = ed25519(150);
    let device = ed25519(201);
    let a = Attestation {
        relay_id: RELAY_ID.into(),
        login: "ali".into(),
        cert_fingerprint: kalit_core::statement::cert_fingerprint(&cert).into(),
        device_id: "d1".into(),
        device_key: Base64::of(device.public_key_raw()),
        issued_at: NOW as i64,
        expires_at: NOW as i64 + 600,
    };
    let attestation = SignedAttestation {
        signature: Base64::of(Statement::attestation(&a).sign(&relay).unwrap()),
        attestation: a,
        relay_key: None,
    };
    let agent = AgentSession::new(
        qr.clone(),
        secrets,
        AgentConfig { relay_id: RELAY_ID.into(), relay_public_key: relay.public_key_raw().to_vec(), anchors: vec![] },
    );
    let phone = PhoneSession::new(qr.text(), NOW, phone_config(&relay, cert, formats)).unwrap();
    let joined =
        TunnelEvent::Joined { attestation, computer_address: "127.0.0.1".into(), same_network: true, origin: None };
    World { agent, phone, joined }
}

fn sends_a(actions: &[AgentAction]) -> Vec<Vec<u8>> {
    actions.iter().filter_map(|a| if let AgentAction::Send(f) = a { Some(f.clone()) } else { None }).collect()
}

fn sends_p(actions: &[PhoneAction]) -> Vec<Vec<u8>> {
    actions.iter().filter_map(|a| if let PhoneAction::Send(f) = a { Some(f.clone()) } else { None }).collect()
}

fn to_phone(w: &mut World, frames: Vec<Vec<u8>>) -> Vec<PhoneAction> {
    frames.iter().flat_map(|f| w.phone.on_frame(f)).collect()
}

fn to_agent(w: &mut World, frames: Vec<Vec<u8>>) -> Vec<AgentAction> {
    frames.iter().flat_map(|f| w.agent.on_frame(f, NOW as i64)).collect()
}

/// Pairs the two sides; returns the world.
fn paired() -> World {
    pair_world(world())
}

fn pair_world(mut w: World) -> World {
    assert!(w.agent.on_event(TunnelEvent::Ready { expires_in: 60 }).is_empty());
    assert!(w.agent.on_event(TunnelEvent::Peer { login: "ali".into(), device_id: "d1".into() }).is_empty());
    assert_eq!(w.agent.phase(), SessionPhase::Pairing);
    let joined = w.joined.clone();
    let a = w.phone.on_event(joined);
    assert!(matches!(a[0], PhoneAction::Network { same_network: true, .. }));
    let msg2 = sends_a(&to_agent(&mut w, sends_p(&a)));
    let a = to_phone(&mut w, msg2);
    let PhoneAction::Connected { sas } = &a[0] else { panic!("{a:?}") };
    let sas = sas.clone();
    let out = to_agent(&mut w, sends_p(&a));
    let Some(AgentAction::Paired(p)) = out.last() else { panic!("{out:?}") };
    assert_eq!((p.sas.as_str(), p.login.as_str()), (sas.as_str(), "ali"));
    assert_eq!(w.agent.phase(), SessionPhase::Connected);
    w
}

fn doc(text: &str) -> SignDoc {
    SignDoc {
        data: text.as_bytes().to_vec(),
        name: "contract.txt".into(),
        media_type: "text/plain".into(),
        format: DocFormat::Cms,
        pss: false,
        byte_range: None,
        digest: None,
    }
}

fn prompt_id(a: &[PhoneAction]) -> u32 {
    a.iter().find_map(|x| if let PhoneAction::Prompt(p) = x { Some(p.id) } else { None }).expect("a prompt")
}

#[test]
fn a_session_signs_and_ends() {
    let mut w = paired();
    let (id, a) = w.agent.sign(&doc("Shartnoma")).unwrap();
    assert_eq!(w.agent.sign(&doc("again")).unwrap_err().code, ErrorCode::Busy);
    let p = to_phone(&mut w, sends_a(&a));
    assert_eq!(prompt_id(&p), id);
    let PhoneAction::Prompt(prompt) = &p[0] else { panic!() };
    assert_eq!((prompt.origin.as_str(), prompt.data.as_slice(), prompt.blind), (ORIGIN, &b"Shartnoma"[..], false));
    let ans = w.phone.answer(id, PhoneAnswer::Approved(b"sig".to_vec())).unwrap();
    let out = to_agent(&mut w, sends_p(&ans));
    assert_eq!(out, vec![AgentAction::Answer { id, result: Ok(b"sig".to_vec()) }]);
    // A declined one and a wrong PIN leave the session usable, and the code reaches the page as itself.
    let (id2, a) = w.agent.sign(&doc("two")).unwrap();
    assert!(id2 > id);
    to_phone(&mut w, sends_a(&a));
    let ans = w.phone.answer(id2, PhoneAnswer::Failed(Failure::new(ErrorCode::WrongPin, "wrong PIN"))).unwrap();
    let out = to_agent(&mut w, sends_p(&ans));
    assert!(
        matches!(&out[..], [AgentAction::Answer { result: Err(f), .. }] if f.code == ErrorCode::WrongPin),
        "{out:?}"
    );
    let (id3, a) = w.agent.sign(&doc("three")).unwrap();
    to_phone(&mut w, sends_a(&a));
    let ans = w.phone.answer(id3, PhoneAnswer::Declined).unwrap();
    let out = to_agent(&mut w, sends_p(&ans));
    assert!(matches!(&out[..], [AgentAction::Answer { result: Err(f), .. }] if f.code == ErrorCode::Declined));
    // The page ends: goodbye, the phone ends cleanly.
    let out = w.agent.end("the page ended the session");
    assert_eq!(out.last(), Some(&AgentAction::Closed(None)));
    let p = to_phone(&mut w, sends_a(&out));
    assert!(matches!(&p[..], [PhoneAction::Ended { .. }, PhoneAction::Closed(None)]), "{p:?}");
    assert!(w.phone.closed());
}

#[test]
fn a_withdrawn_request_is_never_answered_on_either_side() {
    let mut w = paired();
    let (id, a) = w.agent.sign(&doc("withdrawn")).unwrap();
    let p = to_phone(&mut w, sends_a(&a));
    assert_eq!(prompt_id(&p), id);
    // The page gives up while the person reads: the prompt is dismissed...
    let cancel = w.agent.withdraw("the page stopped waiting");
    assert_eq!(w.agent.pending(), None);
    let p = to_phone(&mut w, sends_a(&cancel));
    assert!(matches!(&p[..], [PhoneAction::Withdrawn { id: i, prompted: true, .. }] if *i == id), "{p:?}");
    assert!(w.phone.is_withdrawn(id));
    // ... an answer is refused by the phone (nothing sent) ...
    let e = w.phone.answer(id, PhoneAnswer::Approved(b"sig".to_vec())).unwrap_err();
    assert_eq!(e.code, ErrorCode::Expired);
    // ... and by the agent, had a phone sent one anyway (a phone that missed the cancel).
    let mut w = paired();
    let (id, a) = w.agent.sign(&doc("withdrawn")).unwrap();
    to_phone(&mut w, sends_a(&a));
    let ans = w.phone.answer(id, PhoneAnswer::Approved(b"sig".to_vec())).unwrap();
    let cancel = w.agent.withdraw("the page ended the session");
    assert!(!cancel.is_empty());
    let out = to_agent(&mut w, sends_p(&ans));
    assert_eq!(out, vec![AgentAction::LateAnswerRefused { id }]);
    // The cancel reaches a phone that already answered: nothing to dismiss; the session goes on.
    let p = to_phone(&mut w, sends_a(&cancel));
    assert!(matches!(&p[..], [PhoneAction::Withdrawn { prompted: false, .. }]));
    let (id2, a) = w.agent.sign(&doc("next")).unwrap();
    assert_eq!(prompt_id(&to_phone(&mut w, sends_a(&a))), id2);
    // Ending while a request waits withdraws it first, then says goodbye.
    let out = w.agent.end("the page ended the session");
    let p = to_phone(&mut w, sends_a(&out));
    assert!(matches!(p[0], PhoneAction::Withdrawn { prompted: true, .. }), "{p:?}");
    assert!(w.phone.is_withdrawn(id2));
    assert!(w.phone.closed());
}

#[test]
fn the_phone_refuses_what_the_qr_did_not_promise() {
    // Another origin than the QR's ends the session with refused_by_policy, and the agent learns why.
    let mut w2 = paired();
    let evil = ChannelMessage::SignRequest {
        id: 1,
        origin: "https://evil.example".into(),
        name: "n".into(),
        media_type: "text/plain".into(),
        data: Base64::of("x"),
        format: DocFormat::Raw,
        pss: false,
    };
    let frames = agent_seal(&mut w2, &evil);
    let p = to_phone(&mut w2, frames);
    let Some(PhoneAction::Closed(Some(f))) = p.last() else { panic!("{p:?}") };
    assert_eq!(f.code, ErrorCode::RefusedByPolicy);
    let out = to_agent(&mut w2, sends_p(&p));
    assert!(
        matches!(out.last(), Some(AgentAction::Closed(Some(f))) if f.code == ErrorCode::RefusedByPolicy),
        "{out:?}"
    );

    // A media type that is not a token, a reused id, a second request before the answer: the session ends.
    for (msg, code) in [
        (req(1, "text/plain\n\nPreview: all is fine", "x"), ErrorCode::InvalidInput),
        (req(0, "text/plain", "x"), ErrorCode::Channel),
    ] {
        let mut w = paired();
        let frames = agent_seal(&mut w, &msg);
        let p = to_phone(&mut w, frames);
        assert!(matches!(p.last(), Some(PhoneAction::Closed(Some(f))) if f.code == code), "{p:?}");
    }
    let mut w = paired();
    let frames = agent_seal(&mut w, &req(1, "text/plain", "x"));
    assert_eq!(prompt_id(&to_phone(&mut w, frames)), 1);
    let frames = agent_seal(&mut w, &req(2, "text/plain", "y"));
    let p = to_phone(&mut w, frames);
    assert!(matches!(p.last(), Some(PhoneAction::Closed(Some(f))) if f.code == ErrorCode::Channel), "{p:?}");

    // A protocol statement as a document: refused before asking, the session goes on.
    let mut w = paired();
    let frames = agent_seal(&mut w, &req(1, "text/plain", "kalit/v1/register\0..."));
    let p = to_phone(&mut w, frames);
    assert!(
        matches!(&p[..], [PhoneAction::Send(_), PhoneAction::Refused { failure, .. }] if failure.code == ErrorCode::RefusedByPolicy),
        "{p:?}"
    );
    assert!(!w.phone.closed());
}

#[test]
fn a_pdf_signature_goes_only_to_a_phone_that_lists_it() {
    let pades = SignDoc { format: DocFormat::Pades, byte_range: Some([0, 1, 2, 3]), ..doc("%PDF-") };
    // A phone whose hello lists no formats (the first phones, today's phone app) makes raw and CMS only:
    // the agent refuses a PDF signature before anything is sent.
    let mut w = paired();
    assert_eq!(w.agent.paired().unwrap().formats, vec![DocFormat::Raw, DocFormat::Cms]);
    let e = w.agent.sign(&pades).unwrap_err();
    assert_eq!(e.code, ErrorCode::InvalidInput);
    assert!(e.message.contains("pades"), "{}", e.message);
    assert_eq!(w.agent.pending(), None);
    // A computer that sends one anyway is refused by the phone before it asks; the session goes on.
    let lying = ChannelMessage::SignRequest {
        id: 1,
        origin: ORIGIN.into(),
        name: "n.pdf".into(),
        media_type: "application/pdf".into(),
        data: Base64::of("%PDF-1.7"),
        format: DocFormat::Pades,
        pss: false,
    };
    let frames = agent_seal(&mut w, &lying);
    let p = to_phone(&mut w, frames);
    assert!(
        matches!(&p[..], [PhoneAction::Send(_), PhoneAction::Refused { failure, .. }] if failure.code == ErrorCode::InvalidInput),
        "{p:?}"
    );
    assert!(!w.phone.closed());

    // A phone that lists pades gets it, with the byte range the agent will check the CMS against.
    let mut w = pair_world(world_with(vec![DocFormat::Raw, DocFormat::Cms, DocFormat::Pades]));
    assert!(w.agent.paired().unwrap().formats.contains(&DocFormat::Pades));
    let (id, out) = w.agent.sign(&pades).unwrap();
    let p = to_phone(&mut w, sends_a(&out));
    let Some(PhoneAction::Prompt(prompt)) = p.last() else { panic!("{p:?}") };
    assert_eq!((prompt.id, prompt.format), (id, DocFormat::Pades));
    // Without its byte range the agent could not check the answer: refused.
    let mut w = pair_world(world_with(vec![DocFormat::Pades]));
    let e = w.agent.sign(&SignDoc { byte_range: None, ..pades.clone() }).unwrap_err();
    assert_eq!(e.code, ErrorCode::Internal);
    // A hello's unknown format names (a newer phone's) are skipped, not fatal.
    let hello: ChannelMessage = serde_json::from_value(serde_json::json!({
        "type": "hello", "login": "ali", "device_name": "d", "chain": [], "formats": ["raw", "xades", "pades"],
        "attestation": {"attestation": {"relay_id": "r", "login": "ali", "cert_fingerprint": "00", "device_id": "d1",
            "device_key": "AA==", "issued_at": 0, "expires_at": 0}, "signature": "AA=="}
    }))
    .unwrap();
    let ChannelMessage::Hello { formats, .. } = hello else { panic!() };
    assert_eq!(formats, vec![DocFormat::Raw, DocFormat::Pades]);
}

fn req(id: u32, media_type: &str, data: &str) -> ChannelMessage {
    ChannelMessage::SignRequest {
        id,
        origin: ORIGIN.into(),
        name: "n".into(),
        media_type: media_type.into(),
        data: Base64::of(data),
        format: DocFormat::Raw,
        pss: false,
    }
}

/// Seals any message through the agent's channel, bypassing its rules: a lying computer.
fn agent_seal(w: &mut World, m: &ChannelMessage) -> Vec<Vec<u8>> {
    hazmat::danger_agent_seal(&mut w.agent, m).unwrap()
}

#[test]
fn the_agent_checks_the_hello_and_the_order() {
    // A phone whose attestation names another device than the one the relay let in.
    let mut w = world();
    w.agent.on_event(TunnelEvent::Peer { login: "ali".into(), device_id: "someone-else".into() });
    let joined = w.joined.clone();
    let a = w.phone.on_event(joined);
    let msg2 = sends_a(&to_agent(&mut w, sends_p(&a)));
    let a = to_phone(&mut w, msg2);
    let out = to_agent(&mut w, sends_p(&a));
    assert!(matches!(out.last(), Some(AgentAction::Closed(Some(f))) if f.code == ErrorCode::Unauthorized), "{out:?}");
    // The phone is told why.
    let p = to_phone(&mut w, sends_a(&out));
    assert!(matches!(p.last(), Some(PhoneAction::Closed(Some(f))) if f.code == ErrorCode::Unauthorized), "{p:?}");

    // A frame before any phone joined, a second peer event: the relay broke the protocol.
    let mut w = world();
    let out = w.agent.on_frame(b"early", NOW as i64);
    assert!(matches!(&out[..], [AgentAction::Closed(Some(f))] if f.code == ErrorCode::Unavailable));
    let mut w = world();
    w.agent.on_event(TunnelEvent::Peer { login: "ali".into(), device_id: "d1".into() });
    let out = w.agent.on_event(TunnelEvent::Peer { login: "ali".into(), device_id: "d1".into() });
    assert!(matches!(&out[..], [AgentAction::Closed(Some(_))]));
    // Signing before pairing is refused with expired; after closing, nothing happens.
    let mut w = world();
    assert_eq!(w.agent.sign(&doc("x")).unwrap_err().code, ErrorCode::Expired);
    assert_eq!(w.agent.end("bye"), vec![AgentAction::Closed(None)]);
    assert!(w.agent.end("bye").is_empty());
    assert!(w.agent.on_frame(b"late", NOW as i64).is_empty());
}

#[test]
fn the_phone_checks_the_qr_and_the_relay() {
    let w = world();
    let qr = w.phone.qr().text().to_string();
    let cfg = |relay_id: &str| PhoneConfig {
        relay_id: relay_id.into(),
        relay_public_key: ed25519(150).public_key_raw().to_vec(),
        login: "ali".into(),
        device_id: "d1".into(),
        chain: vec![b"c".to_vec()],
        formats: vec![],
        documents: None,
    };
    assert_eq!(PhoneSession::new(&qr, NOW + 3600, cfg(RELAY_ID)).unwrap_err().code, ErrorCode::Expired);
    assert_eq!(PhoneSession::new(&qr, NOW, cfg("another")).unwrap_err().code, ErrorCode::NotFound);
    // An attestation signed by another key than the pinned relay's: nothing is sent.
    let mut p = PhoneSession::new(
        &qr,
        NOW,
        PhoneConfig { relay_public_key: ed25519(151).public_key_raw().to_vec(), ..cfg(RELAY_ID) },
    )
    .unwrap();
    let a = p.on_event(w.joined.clone());
    assert!(matches!(&a[..], [PhoneAction::Closed(Some(f))] if f.code == ErrorCode::Unavailable), "{a:?}");
    // The relay's error event ends the session with its code.
    let mut p = PhoneSession::new(&qr, NOW, cfg(RELAY_ID)).unwrap();
    let a = p.on_event(TunnelEvent::Error { code: ErrorCode::Expired, message: "gone".into() });
    assert!(matches!(&a[..], [PhoneAction::Closed(Some(f))] if f.code == ErrorCode::Expired));
}

/// A phone for a QR a page made itself (direct mode), and the relay's key.
fn direct_phone(qr_origin: &str) -> (PhoneSession, PrivateKey, TunnelEvent) {
    let w = world();
    let (qr, _) = Qr::for_page("https://relay.example", RELAY_ID, qr_origin, 60, NOW).unwrap();
    assert_eq!(qr.payload.mode, Some(kalit_proto::session::QrMode::Direct));
    let relay = ed25519(150);
    let cert = b"a certificate (the agent here has no anchors)".to_vec();
    let phone = PhoneSession::new(qr.text(), NOW, phone_config(&relay, cert, vec![])).unwrap();
    (phone, relay, w.joined)
}

fn origin_statement(relay: &PrivateKey, tunnel: &str, origin: &str, issued_at: i64) -> SignedOriginAttestation {
    let a = OriginAttestation {
        relay_id: RELAY_ID.into(),
        tunnel: tunnel.into(),
        origin: origin.into(),
        issued_at,
        expires_at: issued_at + 600,
    };
    SignedOriginAttestation {
        signature: Base64::of(Statement::origin(&a).sign(relay).unwrap()),
        attestation: a,
        relay_key: None,
    }
}

fn with_origin(joined: &TunnelEvent, o: Option<SignedOriginAttestation>) -> TunnelEvent {
    let o = o.map(Box::new);
    let TunnelEvent::Joined { attestation, computer_address, same_network, .. } = joined.clone() else { panic!() };
    TunnelEvent::Joined { attestation, computer_address, same_network, origin: o }
}

fn closed_with(a: &[PhoneAction]) -> Option<ErrorCode> {
    a.iter().find_map(|x| if let PhoneAction::Closed(f) = x { f.as_ref().map(|f| f.code) } else { None })
}

#[test]
fn a_page_s_qr_needs_the_relay_s_statement_of_the_same_origin() {
    // The relay vouches for the origin the QR claims: the phone goes on and says who vouches.
    let (mut p, relay, joined) = direct_phone(ORIGIN);
    let t = p.tunnel_id().unwrap();
    let a = p.on_event(with_origin(&joined, Some(origin_statement(&relay, &t, ORIGIN, NOW as i64))));
    assert_eq!(a[0], PhoneAction::OriginAttested { relay_id: RELAY_ID.into() }, "{a:?}");
    assert!(matches!(a[2], PhoneAction::Send(_)), "{a:?}");

    // A page on origin B that wrote origin A into its QR: refused before the handshake.
    let (mut p, relay, joined) = direct_phone(ORIGIN);
    let t = p.tunnel_id().unwrap();
    let a = p.on_event(with_origin(&joined, Some(origin_statement(&relay, &t, "https://evil.example", NOW as i64))));
    assert_eq!(closed_with(&a), Some(ErrorCode::RefusedByPolicy), "{a:?}");
    assert!(sends_p(&a).is_empty(), "nothing reaches the page");

    // No statement for a page's QR (a relay that does not vouch, or a page that hid its origin).
    let (mut p, _, joined) = direct_phone(ORIGIN);
    assert_eq!(closed_with(&p.on_event(with_origin(&joined, None))), Some(ErrorCode::RefusedByPolicy));

    // A statement signed by another key, for another tunnel, or out of its time.
    let (mut p, _, joined) = direct_phone(ORIGIN);
    let t = p.tunnel_id().unwrap();
    let forged = origin_statement(&ed25519(99), &t, ORIGIN, NOW as i64);
    assert_eq!(closed_with(&p.on_event(with_origin(&joined, Some(forged)))), Some(ErrorCode::Unavailable));
    let (mut p, relay, joined) = direct_phone(ORIGIN);
    let other = origin_statement(&relay, &"ab".repeat(32), ORIGIN, NOW as i64);
    assert_eq!(closed_with(&p.on_event(with_origin(&joined, Some(other)))), Some(ErrorCode::Unavailable));
    let (mut p, relay, joined) = direct_phone(ORIGIN);
    let t = p.tunnel_id().unwrap();
    let old = origin_statement(&relay, &t, ORIGIN, NOW as i64 - 3600);
    assert_eq!(closed_with(&p.on_event(with_origin(&joined, Some(old)))), Some(ErrorCode::Unavailable));

    // An agent's QR opened from a browser page: the statement is checked all the same.
    let mut w = world();
    let t = w.phone.tunnel_id().unwrap();
    let relay = ed25519(150);
    let a = w
        .phone
        .on_event(with_origin(&w.joined, Some(origin_statement(&relay, &t, "https://evil.example", NOW as i64))));
    assert_eq!(closed_with(&a), Some(ErrorCode::RefusedByPolicy));
}

// ---- Large documents: streamed whole, or by the computer's digest. ----

fn big(len: usize, format: DocFormat) -> SignDoc {
    let data: Vec<u8> = (0..len).map(|i| b"Shartnoma matni. "[i % 17]).collect();
    SignDoc { format, name: "big.txt".into(), ..doc_bytes(data) }
}

fn doc_bytes(data: Vec<u8>) -> SignDoc {
    SignDoc { data, ..doc("") }
}

/// The frames of a sign request and of every part the agent then seals, in order.
fn with_parts(agent: &mut AgentSession, d: &SignDoc, first: Vec<AgentAction>) -> Vec<Vec<u8>> {
    let mut frames = sends_a(&first);
    while agent.streaming() {
        frames.extend(sends_a(&agent.next_part(d)));
    }
    frames
}

fn the_prompt(a: &[PhoneAction]) -> kalit_core::flow::Prompt {
    a.iter().find_map(|x| if let PhoneAction::Prompt(p) = x { Some(p.clone()) } else { None }).expect("a prompt")
}

#[test]
fn a_large_document_streams_and_the_phone_hashes_it_itself() {
    use kalit_core::digest::HashAlg;
    let len = kalit_proto::session::MAX_DOCUMENT + 3 * kalit_proto::session::DOCUMENT_PART + 5;
    // CMS: the phone keeps the first bytes for the screen and the digests it computed.
    let mut w = paired();
    let d = big(len, DocFormat::Cms);
    let (id, a) = w.agent.sign(&d).unwrap();
    // The start goes first; each part is sealed when the driver asks for it.
    assert!(matches!(&a[..], [AgentAction::Send(_)]) && w.agent.streaming(), "{}", a.len());
    let frames = with_parts(&mut w.agent, &d, a);
    assert!(!w.agent.streaming());
    // Nothing is asked until the last part is in.
    let (last, rest) = frames.split_last().unwrap();
    assert!(to_phone(&mut w, rest.to_vec()).is_empty());
    let p = the_prompt(&to_phone(&mut w, vec![last.clone()]));
    assert_eq!((p.id, p.size, p.unchecked), (id, len as u64, false));
    assert_eq!(p.data, d.data[..kalit_proto::session::PREVIEW_LEN]);
    let g = p.digests.clone().unwrap();
    assert!(g.computed_here);
    assert_eq!(g.sha256, HashAlg::Sha256.digest(&d.data));
    assert_eq!(g.sha512, HashAlg::Sha512.digest(&d.data));
    assert_eq!(p.sha256, hex::encode(&g.sha256));
    let ans = w.phone.answer(id, PhoneAnswer::Declined).unwrap();
    let out = to_agent(&mut w, sends_p(&ans));
    assert!(matches!(&out[..], [AgentAction::Answer { result: Err(f), .. }] if f.code == ErrorCode::Declined));
    // A P-256 key's CMS carries only the SHA-256: the phone computes no SHA-512 (an Ed25519 key's would).
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let p256 = rcgen::CertificateParams::new(vec![]).unwrap().self_signed(&key).unwrap().der().to_vec();
    let mut v = pair_world(world_cert(vec![], p256));
    let (id2, a) = v.agent.sign(&d).unwrap();
    let frames = with_parts(&mut v.agent, &d, a);
    let p = the_prompt(&to_phone(&mut v, frames));
    let g = p.digests.clone().expect("a CMS that streamed is signed by its digests, never over the preview");
    assert_eq!((p.id, g.sha256, g.sha512.len()), (id2, HashAlg::Sha256.digest(&d.data), 0));
    // Raw: the key signs the bytes themselves, so the phone keeps them all.
    let d = big(len, DocFormat::Raw);
    let (id, a) = w.agent.sign(&d).unwrap();
    let frames = with_parts(&mut w.agent, &d, a);
    let p = the_prompt(&to_phone(&mut w, frames));
    assert_eq!((p.id, p.data.len(), p.digests.is_none()), (id, len, true));
    let ans = w.phone.answer(id, PhoneAnswer::Declined).unwrap();
    to_agent(&mut w, sends_p(&ans));
    // Withdrawn mid-stream: no more parts, a cancel, and the phone dismisses what it was receiving.
    let (id, a) = w.agent.sign(&d).unwrap();
    let mut frames = sends_a(&a);
    frames.extend(sends_a(&w.agent.next_part(&d)));
    frames.extend(sends_a(&w.agent.withdraw("the page stopped waiting")));
    assert!(!w.agent.streaming() && w.agent.next_part(&d).is_empty());
    let out = to_phone(&mut w, frames);
    assert!(matches!(&out[..], [PhoneAction::Withdrawn { id: i, prompted: false, .. }] if *i == id), "{out:?}");
    assert_eq!(p.data, d.data);
    // A phone that offers nothing beyond 8 MiB is never sent more; nor more than it offers.
    let mut w = world();
    w.phone = PhoneSession::new(
        w.phone.qr().text(),
        NOW,
        PhoneConfig {
            documents: None,
            ..phone_config(&ed25519(150), b"a certificate (the agent here has no anchors)".to_vec(), vec![])
        },
    )
    .unwrap();
    let mut w = pair_world(w);
    let e = w.agent.sign(&big(len, DocFormat::Cms)).unwrap_err();
    assert_eq!(e.code, ErrorCode::TooLarge, "{e:?}");
    assert!(e.message.contains("takes whole (up to 8 MiB)"), "{}", e.message);
    // The session is still usable.
    let (id, a) = w.agent.sign(&doc("small")).unwrap();
    assert_eq!(prompt_id(&to_phone(&mut w, sends_a(&a))), id);
}

#[test]
fn a_document_too_large_to_travel_is_signed_by_digest_with_a_warning() {
    use kalit_core::flow::DocDigest;
    let mut w = paired();
    let preview = b"%PDF-1.7 a very large scan".repeat(4000);
    let digest = DocDigest { size: 200 << 20, sha256: vec![7; 32], sha512: vec![9; 64] };
    let d = SignDoc { digest: Some(digest.clone()), ..doc_bytes(preview.clone()) };
    let (id, a) = w.agent.sign(&d).unwrap();
    let p = the_prompt(&to_phone(&mut w, sends_a(&a)));
    assert_eq!((p.id, p.size, p.unchecked), (id, 200 << 20, true));
    assert_eq!(p.data, preview[..kalit_proto::session::PREVIEW_LEN]);
    let g = p.digests.unwrap();
    assert_eq!((g.sha256, g.sha512, g.computed_here), (digest.sha256.clone(), digest.sha512.clone(), false));
    w.phone.answer(id, PhoneAnswer::Declined).unwrap();
    // Never raw, never to a phone that does not sign by digest.
    let raw = SignDoc { format: DocFormat::Raw, ..d.clone() };
    let mut w = paired();
    assert_eq!(w.agent.sign(&raw).unwrap_err().code, ErrorCode::TooLarge);
    let mut w = world();
    w.phone = PhoneSession::new(
        w.phone.qr().text(),
        NOW,
        PhoneConfig {
            documents: Some(DocumentSupport { whole: MAX_WHOLE_DOCUMENT, digest: false }),
            ..phone_config(&ed25519(150), b"a certificate (the agent here has no anchors)".to_vec(), vec![])
        },
    )
    .unwrap();
    let mut w = pair_world(w);
    let e = w.agent.sign(&d).unwrap_err();
    assert!(e.code == ErrorCode::TooLarge && e.message.contains("does not sign by digest"), "{e:?}");
}

#[test]
fn the_phone_refuses_a_lying_stream_or_digest() {
    let start = |id: u32, size: u64, format: DocFormat| ChannelMessage::SignStart {
        id,
        origin: ORIGIN.into(),
        name: "x".into(),
        media_type: "text/plain".into(),
        format,
        pss: false,
        size,
    };
    let part = |id: u32, data: &[u8]| ChannelMessage::DocumentPart { id, data: data.into() };
    let digest = |size: u64, format: DocFormat, sha256: Vec<u8>| ChannelMessage::SignDigest {
        id: 1,
        origin: ORIGIN.into(),
        name: "x".into(),
        media_type: "text/plain".into(),
        format,
        pss: false,
        size,
        sha256: sha256.into(),
        sha512: vec![0u8; 64].into(),
        preview: b"first bytes".as_slice().into(),
    };
    let ends = |msgs: Vec<ChannelMessage>| {
        let mut w = paired();
        let mut out = vec![];
        for m in &msgs {
            let frames = agent_seal(&mut w, m);
            out.extend(to_phone(&mut w, frames));
        }
        assert!(!out.iter().any(|a| matches!(a, PhoneAction::Prompt(_))), "{out:?}");
        closed_with(&out)
    };
    // More than announced, another request's part, a part never announced, an empty part.
    assert_eq!(ends(vec![start(1, 3, DocFormat::Cms), part(1, b"abcd")]), Some(ErrorCode::Channel));
    assert_eq!(ends(vec![start(1, 3, DocFormat::Cms), part(2, b"abc")]), Some(ErrorCode::Channel));
    assert_eq!(ends(vec![part(1, b"abc")]), Some(ErrorCode::Channel));
    assert_eq!(ends(vec![start(1, 3, DocFormat::Cms), part(1, b"")]), Some(ErrorCode::Channel));
    // More than the phone takes whole; a second request while one is arriving.
    assert_eq!(ends(vec![start(1, MAX_WHOLE_DOCUMENT + 1, DocFormat::Cms)]), Some(ErrorCode::TooLarge));
    assert_eq!(ends(vec![start(1, 3, DocFormat::Cms), start(2, 3, DocFormat::Cms)]), Some(ErrorCode::Channel));
    // A digest for raw, for a document the phone could have taken whole, or of a wrong length.
    let huge = MAX_WHOLE_DOCUMENT + 1;
    assert_eq!(ends(vec![digest(huge, DocFormat::Raw, vec![0; 32])]), Some(ErrorCode::InvalidInput));
    assert_eq!(ends(vec![digest(1000, DocFormat::Cms, vec![0; 32])]), Some(ErrorCode::InvalidInput));
    assert_eq!(ends(vec![digest(huge, DocFormat::Cms, vec![0; 20])]), Some(ErrorCode::InvalidInput));
    // A withdrawal while the document arrives: nothing is asked, and the session goes on.
    let mut w = paired();
    for m in [start(1, 6, DocFormat::Cms), part(1, b"abc")] {
        let frames = agent_seal(&mut w, &m);
        assert!(to_phone(&mut w, frames).is_empty());
    }
    let frames = agent_seal(&mut w, &ChannelMessage::Cancel { id: 1, reason: "gave up".into() });
    let out = to_phone(&mut w, frames);
    assert!(matches!(&out[..], [PhoneAction::Withdrawn { id: 1, prompted: false, .. }]), "{out:?}");
    assert!(w.phone.is_withdrawn(1));
    let frames = agent_seal(&mut w, &start(2, 3, DocFormat::Cms));
    assert!(to_phone(&mut w, frames).is_empty());
    let frames = agent_seal(&mut w, &part(2, b"xyz"));
    assert_eq!(the_prompt(&to_phone(&mut w, frames)).size, 3);
}
