//! The signing session, without I/O: the QR, the keys derived from its secret, the Noise handshake
//! (`Noise_NKpsk0_25519_ChaChaPoly_SHA256`, phone = initiator, agent = responder), the short
//! authentication string, and the framing of channel messages into Noise messages.
//!
//! Invariants: the exact QR text is the Noise prologue (a changed field fails the handshake); the relay
//! learns only the tunnel id; every frame is authenticated and carries an implicit counter, so a tampered,
//! replayed, reordered or dropped frame makes [`Channel::open`] fail and the channel is then unusable.

use aws_lc_rs::hkdf;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use kalit_proto::namespace;
use kalit_proto::session::{
    ChannelMessage, MAX_CHANNEL_MESSAGE, MAX_FRAME, QR_MAX_LEN, QR_SCHEME, QR_TTL_MAX_SECS, QrPayload, SESSION_VERSION,
};

use crate::{CoreError, SecretBytes};

/// The Noise protocol of the channel.
pub const NOISE_PARAMS: &str = "Noise_NKpsk0_25519_ChaChaPoly_SHA256";
pub use kalit_proto::session::{CLOCK_SKEW_SECS, is_tunnel_id};
const TAG_LEN: usize = 16;
/// Plaintext bytes per frame: one flag byte and a chunk of the message.
const CHUNK: usize = MAX_FRAME - TAG_LEN - 1;
const FLAG_MORE: u8 = 1;
const FLAG_LAST: u8 = 0;

fn channel_err(msg: impl Into<String>) -> CoreError {
    CoreError::Channel(msg.into())
}

fn hkdf32(ikm: &[u8], info: &str) -> Result<[u8; 32], CoreError> {
    let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, &[]).extract(ikm);
    let info = [info.as_bytes()];
    let okm = prk.expand(&info, hkdf::HKDF_SHA256).map_err(|_| CoreError::Crypto("HKDF"))?;
    let mut out = [0u8; 32];
    okm.fill(&mut out).map_err(|_| CoreError::Crypto("HKDF"))?;
    Ok(out)
}

fn params() -> Result<snow::params::NoiseParams, CoreError> {
    NOISE_PARAMS.parse().map_err(|_| CoreError::Internal("Noise parameters".into()))
}

fn noise(e: snow::Error) -> CoreError {
    channel_err(format!("the secure channel failed ({e}): the QR, the relay or a frame was altered"))
}

/// The tunnel id the relay sees: hex of HKDF(s, `kalit/v1/tunnel`). Reveals nothing about the PSK.
pub fn tunnel_id(secret: &[u8]) -> Result<String, CoreError> {
    Ok(hex::encode(hkdf32(secret, namespace::TUNNEL)?))
}

fn psk(secret: &[u8]) -> Result<SecretBytes, CoreError> {
    Ok(SecretBytes::new(hkdf32(secret, namespace::PSK)?.to_vec()))
}

/// Six decimal digits from the handshake hash; both screens show them.
fn sas(handshake_hash: &[u8]) -> Result<String, CoreError> {
    let k = hkdf32(handshake_hash, namespace::SAS)?;
    let n = u32::from_be_bytes([k[0], k[1], k[2], k[3]]) % 1_000_000;
    Ok(format!("{:03} {:03}", n / 1000, n % 1000))
}

/// A parsed QR: its payload and the exact text (the prologue).
#[derive(Debug, Clone)]
pub struct Qr {
    /// The payload.
    pub payload: QrPayload,
    text: String,
    agent_public: [u8; 32],
}

/// The agent's secrets for one session; wiped on drop.
#[derive(Debug)]
pub struct AgentSecrets {
    static_private: SecretBytes,
    secret: SecretBytes,
}

impl AgentSecrets {
    /// The tunnel id for these secrets.
    pub fn tunnel_id(&self) -> Result<String, CoreError> {
        tunnel_id(self.secret.expose_secret())
    }
}

/// A computer's long-term X25519 identity: the agent's Noise static key. The QR carries its public half
/// and the handshake (`es`) proves that the computer holds the private half, so a phone that remembers
/// the key recognises the computer, and an attacker's computer cannot pass for it.
pub struct ComputerKey {
    private: SecretBytes,
    public: [u8; 32],
}

impl std::fmt::Debug for ComputerKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ComputerKey").field("id", &computer_id(&self.public)).finish_non_exhaustive()
    }
}

impl ComputerKey {
    /// A new random key.
    pub fn generate() -> Result<ComputerKey, CoreError> {
        let kp = snow::Builder::new(params()?).generate_keypair().map_err(noise)?;
        let public: [u8; 32] = kp.public.as_slice().try_into().map_err(|_| CoreError::Internal("X25519".into()))?;
        Ok(ComputerKey { private: SecretBytes::new(kp.private), public })
    }

    /// The key from its 32 private bytes.
    pub fn from_private(private: &SecretBytes) -> Result<ComputerKey, CoreError> {
        let k =
            aws_lc_rs::agreement::PrivateKey::from_private_key(&aws_lc_rs::agreement::X25519, private.expose_secret())
                .map_err(|_| CoreError::Corrupt("not an X25519 private key".into()))?;
        let public = k.compute_public_key().map_err(|_| CoreError::Crypto("X25519"))?;
        let public: [u8; 32] = public.as_ref().try_into().map_err(|_| CoreError::Crypto("X25519"))?;
        Ok(ComputerKey { private: SecretBytes::from_slice(private.expose_secret()), public })
    }

    /// The private bytes, to store (0600) on the computer.
    pub fn private(&self) -> &SecretBytes {
        &self.private
    }

    /// The public key.
    pub fn public(&self) -> &[u8; 32] {
        &self.public
    }
}

/// The id by which a phone remembers a computer: the first 10 bytes of SHA-256 over its public key, hex.
pub fn computer_id(public: &[u8]) -> String {
    hex::encode(&crate::digest::HashAlg::Sha256.digest(public)[..10])
}

impl Qr {
    /// A fresh QR for a session asked by `origin`, with a new throw-away computer key (tests).
    pub fn new(
        relay: &str,
        relay_id: &str,
        origin: &str,
        ttl: u32,
        now_secs: u64,
    ) -> Result<(Qr, AgentSecrets), CoreError> {
        Qr::for_computer(&ComputerKey::generate()?, relay, relay_id, origin, ttl, now_secs)
    }

    /// A fresh QR made by a web page itself (direct mode, no agent): a key for this session only, and
    /// `mode: direct`, so the phone requires the relay's statement of the page's origin.
    pub fn for_page(
        relay: &str,
        relay_id: &str,
        origin: &str,
        ttl: u32,
        now_secs: u64,
    ) -> Result<(Qr, AgentSecrets), CoreError> {
        let (qr, secrets) = Qr::for_computer(&ComputerKey::generate()?, relay, relay_id, origin, ttl, now_secs)?;
        let payload = QrPayload { mode: Some(kalit_proto::session::QrMode::Direct), ..qr.payload.clone() };
        Ok((Qr::from_payload(&payload)?, secrets))
    }

    /// The QR whose text is `kalit:` + base64url(JSON of `payload`), checked as a phone reads it.
    fn from_payload(payload: &QrPayload) -> Result<Qr, CoreError> {
        let json = serde_json::to_vec(payload).map_err(|e| CoreError::Internal(e.to_string()))?;
        let text = format!("{QR_SCHEME}{}", B64URL.encode(json));
        if text.len() > QR_MAX_LEN {
            return Err(CoreError::invalid("the relay URL or origin is too long for a QR"));
        }
        Qr::parse(&text)
    }

    /// A fresh QR for a session asked by `origin`, for the computer whose long-term key is `key`.
    pub fn for_computer(
        key: &ComputerKey,
        relay: &str,
        relay_id: &str,
        origin: &str,
        ttl: u32,
        now_secs: u64,
    ) -> Result<(Qr, AgentSecrets), CoreError> {
        let secret: [u8; 16] = crate::seal::random()?;
        let payload = QrPayload {
            v: SESSION_VERSION,
            pk: key.public.into(),
            s: secret.into(),
            relay: relay.trim_end_matches('/').to_string(),
            relay_id: relay_id.into(),
            origin: origin.into(),
            iat: now_secs,
            ttl: ttl.clamp(1, QR_TTL_MAX_SECS),
            op: "sign".into(),
            mode: None,
        };
        let qr = Qr::from_payload(&payload)?;
        Ok((
            qr,
            AgentSecrets {
                static_private: SecretBytes::from_slice(key.private.expose_secret()),
                secret: SecretBytes::from_slice(&secret),
            },
        ))
    }

    /// Parses QR text, checking its form (not its age: see [`Qr::check_fresh`]).
    pub fn parse(text: &str) -> Result<Qr, CoreError> {
        let text = text.trim();
        if text.len() > QR_MAX_LEN {
            return Err(CoreError::invalid(format!("the QR text is longer than {QR_MAX_LEN} characters")));
        }
        let body = text
            .strip_prefix(QR_SCHEME)
            .ok_or_else(|| CoreError::invalid("this QR is not a Kalit signing request (it must start with kalit:)"))?;
        let json = B64URL.decode(body).map_err(|_| CoreError::invalid("the QR text is damaged (not base64url)"))?;
        let version: Option<u32> = serde_json::from_slice::<serde_json::Value>(&json)
            .ok()
            .and_then(|v| v.get("v")?.as_u64())
            .map(|v| v as u32);
        if let Some(v) = version
            && v != SESSION_VERSION
        {
            return Err(CoreError::Unsupported(format!(
                "QR version {v} (this Kalit understands version {SESSION_VERSION}); update Kalit"
            )));
        }
        let payload: QrPayload = serde_json::from_slice(&json)
            .map_err(|e| CoreError::invalid(format!("the QR payload is malformed: {e}")))?;
        let agent_public: [u8; 32] =
            payload.pk.as_slice().try_into().map_err(|_| CoreError::invalid("QR: the agent key must be 32 bytes"))?;
        if payload.s.len() != 16 {
            return Err(CoreError::invalid("QR: the session secret must be 16 bytes"));
        }
        if payload.op != "sign" {
            return Err(CoreError::Unsupported(format!("QR operation {:?}", payload.op)));
        }
        if payload.ttl == 0 || payload.ttl > QR_TTL_MAX_SECS {
            return Err(CoreError::invalid(format!("QR lifetime {} s (at most {QR_TTL_MAX_SECS})", payload.ttl)));
        }
        if payload.origin.is_empty() || payload.relay_id.is_empty() || payload.relay.is_empty() {
            return Err(CoreError::invalid("QR: empty origin or relay"));
        }
        Ok(Qr { payload, text: text.to_string(), agent_public })
    }

    /// The id of the computer that made this QR ([`computer_id`] of its key). Only a computer holding the
    /// key's private half can complete the handshake.
    pub fn computer_id(&self) -> String {
        computer_id(&self.agent_public)
    }

    /// The exact QR text.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Refuses a QR that expired or was issued in the future (beyond [`CLOCK_SKEW_SECS`]).
    pub fn check_fresh(&self, now_secs: u64) -> Result<(), CoreError> {
        let p = &self.payload;
        if p.iat > now_secs + CLOCK_SKEW_SECS {
            return Err(CoreError::invalid("this QR was issued in the future: check the clocks of phone and computer"));
        }
        if now_secs > p.iat + u64::from(p.ttl) + CLOCK_SKEW_SECS {
            return Err(CoreError::Expired(format!(
                "this QR expired {} s ago: start a new signing session on the computer",
                now_secs - p.iat - u64::from(p.ttl)
            )));
        }
        Ok(())
    }

    /// The tunnel id for this QR.
    pub fn tunnel_id(&self) -> Result<String, CoreError> {
        tunnel_id(&self.secret()?)
    }

    fn secret(&self) -> Result<Vec<u8>, CoreError> {
        Ok(self.payload.s.to_vec())
    }
}

/// The phone's half of the handshake, between sending message 1 and reading message 2.
pub struct PhoneHandshake {
    hs: snow::HandshakeState,
}

impl std::fmt::Debug for PhoneHandshake {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PhoneHandshake")
    }
}

impl PhoneHandshake {
    /// Starts the handshake for `qr`; returns the state and message 1 (to send through the tunnel).
    pub fn start(qr: &Qr) -> Result<(PhoneHandshake, Vec<u8>), CoreError> {
        PhoneHandshake::start_with(qr, None)
    }

    fn start_with(qr: &Qr, ephemeral: Option<&[u8]>) -> Result<(PhoneHandshake, Vec<u8>), CoreError> {
        let psk = psk(&qr.secret()?)?;
        let psk: &[u8; 32] = psk.expose_secret().try_into().map_err(|_| CoreError::Internal("psk".into()))?;
        let mut b = snow::Builder::new(params()?);
        if let Some(e) = ephemeral {
            b = b.fixed_ephemeral_key_for_testing_only(e);
        }
        let mut hs = b
            .psk(0, psk)
            .and_then(|b| b.prologue(qr.text.as_bytes()))
            .and_then(|b| b.remote_public_key(&qr.agent_public))
            .and_then(|b| b.build_initiator())
            .map_err(noise)?;
        let mut buf = vec![0u8; 256];
        let n = hs.write_message(&[], &mut buf).map_err(noise)?;
        buf.truncate(n);
        Ok((PhoneHandshake { hs }, buf))
    }

    /// Reads message 2 and returns the channel.
    pub fn finish(mut self, msg2: &[u8]) -> Result<Channel, CoreError> {
        if msg2.len() > 256 {
            return Err(channel_err("handshake message too long"));
        }
        let mut buf = vec![0u8; 256];
        self.hs.read_message(msg2, &mut buf).map_err(noise)?;
        Channel::from_handshake(self.hs)
    }
}

/// The agent's half: reads message 1 and answers with message 2.
pub fn agent_respond(qr: &Qr, secrets: &AgentSecrets, msg1: &[u8]) -> Result<(Vec<u8>, Channel), CoreError> {
    agent_respond_with(qr, secrets, msg1, None)
}

fn agent_respond_with(
    qr: &Qr,
    secrets: &AgentSecrets,
    msg1: &[u8],
    ephemeral: Option<&[u8]>,
) -> Result<(Vec<u8>, Channel), CoreError> {
    if msg1.len() > 256 {
        return Err(channel_err("handshake message too long"));
    }
    let psk = psk(secrets.secret.expose_secret())?;
    let psk: &[u8; 32] = psk.expose_secret().try_into().map_err(|_| CoreError::Internal("psk".into()))?;
    let mut b = snow::Builder::new(params()?);
    if let Some(e) = ephemeral {
        b = b.fixed_ephemeral_key_for_testing_only(e);
    }
    let mut hs = b
        .psk(0, psk)
        .and_then(|b| b.prologue(qr.text.as_bytes()))
        .and_then(|b| b.local_private_key(secrets.static_private.expose_secret()))
        .and_then(|b| b.build_responder())
        .map_err(noise)?;
    let mut buf = vec![0u8; 256];
    hs.read_message(msg1, &mut buf).map_err(noise)?;
    let n = hs.write_message(&[], &mut buf).map_err(noise)?;
    buf.truncate(n);
    Ok((buf, Channel::from_handshake(hs)?))
}

/// Deterministic sessions for conformance vectors (`crates/kalit-core/vectors/`): fixed session secret,
/// fixed ephemeral keys. **Never use these outside tests**: a session's security rests on fresh random
/// secrets and ephemeral keys, which the ordinary constructors make.
pub mod hazmat {
    use super::*;

    /// A QR with a given session secret (instead of a random one).
    pub fn danger_qr_with_secret(
        key: &ComputerKey,
        secret: [u8; 16],
        payload: &QrPayload,
    ) -> Result<(Qr, AgentSecrets), CoreError> {
        let payload = QrPayload { pk: key.public.into(), s: secret.into(), ..payload.clone() };
        let qr = Qr::from_payload(&payload)?;
        let secrets = AgentSecrets {
            static_private: SecretBytes::from_slice(key.private.expose_secret()),
            secret: SecretBytes::from_slice(&secret),
        };
        Ok((qr, secrets))
    }

    /// The phone's handshake with a fixed ephemeral private key.
    pub fn danger_phone_start(qr: &Qr, ephemeral: &[u8; 32]) -> Result<(PhoneHandshake, Vec<u8>), CoreError> {
        PhoneHandshake::start_with(qr, Some(ephemeral))
    }

    /// The agent's answer with a fixed ephemeral private key.
    pub fn danger_agent_respond(
        qr: &Qr,
        secrets: &AgentSecrets,
        msg1: &[u8],
        ephemeral: &[u8; 32],
    ) -> Result<(Vec<u8>, Channel), CoreError> {
        agent_respond_with(qr, secrets, msg1, Some(ephemeral))
    }

    /// An agent session whose handshake uses a fixed ephemeral private key.
    pub fn danger_fix_agent_ephemeral(s: &mut crate::flow::AgentSession, ephemeral: [u8; 32]) {
        s.set_ephemeral(ephemeral);
    }

    /// A phone session whose handshake uses a fixed ephemeral private key.
    pub fn danger_fix_phone_ephemeral(s: &mut crate::flow::PhoneSession, ephemeral: [u8; 32]) {
        s.set_ephemeral(ephemeral);
    }

    /// Seals any message through a paired agent session's channel, bypassing its rules: a lying
    /// computer, for tests and fuzzing.
    pub fn danger_agent_seal(
        s: &mut crate::flow::AgentSession,
        m: &ChannelMessage,
    ) -> Result<Vec<Vec<u8>>, crate::flow::Failure> {
        s.danger_seal(m)
    }

    /// The same for a phone session: a lying phone.
    pub fn danger_phone_seal(
        s: &mut crate::flow::PhoneSession,
        m: &ChannelMessage,
    ) -> Result<Vec<Vec<u8>>, crate::flow::Failure> {
        s.danger_seal(m)
    }

    /// The PSK a QR's secret gives (to publish in vectors; the session keeps it secret).
    pub fn danger_psk(secret: &[u8]) -> Result<Vec<u8>, CoreError> {
        Ok(psk(secret)?.expose_secret().to_vec())
    }
}

/// An established channel: turns [`ChannelMessage`]s into frames and back.
pub struct Channel {
    transport: snow::TransportState,
    sas: String,
    partial: Vec<u8>,
    broken: bool,
}

impl std::fmt::Debug for Channel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Channel").field("broken", &self.broken).finish_non_exhaustive()
    }
}

impl Channel {
    fn from_handshake(hs: snow::HandshakeState) -> Result<Channel, CoreError> {
        let sas = sas(hs.get_handshake_hash())?;
        let transport = hs.into_transport_mode().map_err(noise)?;
        Ok(Channel { transport, sas, partial: vec![], broken: false })
    }

    /// The short authentication string, e.g. `042 917`.
    pub fn sas(&self) -> &str {
        &self.sas
    }

    /// Encrypts a message into one or more frames (each at most [`MAX_FRAME`] bytes).
    pub fn seal(&mut self, msg: &ChannelMessage) -> Result<Vec<Vec<u8>>, CoreError> {
        if self.broken {
            return Err(channel_err("the channel already failed"));
        }
        let json = zeroize::Zeroizing::new(serde_json::to_vec(msg).map_err(|e| CoreError::Internal(e.to_string()))?);
        if json.len() > MAX_CHANNEL_MESSAGE {
            return Err(CoreError::invalid("message too large for the channel"));
        }
        let chunks: Vec<&[u8]> = json.chunks(CHUNK).collect();
        let mut frames = Vec::with_capacity(chunks.len());
        let mut plain = zeroize::Zeroizing::new(Vec::with_capacity(CHUNK + 1));
        for (i, chunk) in chunks.iter().enumerate() {
            plain.clear();
            plain.push(if i + 1 == chunks.len() { FLAG_LAST } else { FLAG_MORE });
            plain.extend_from_slice(chunk);
            let mut out = vec![0u8; plain.len() + TAG_LEN];
            let n = self.transport.write_message(&plain, &mut out).map_err(noise)?;
            out.truncate(n);
            frames.push(out);
        }
        Ok(frames)
    }

    /// Decrypts one frame; returns a message when its last frame arrived. Any failure breaks the channel
    /// for good (nothing after a bad frame is ever decrypted).
    pub fn open(&mut self, frame: &[u8]) -> Result<Option<ChannelMessage>, CoreError> {
        let r = self.open_inner(frame);
        if r.is_err() {
            self.broken = true;
            zeroize::Zeroize::zeroize(&mut self.partial);
        }
        r
    }

    fn open_inner(&mut self, frame: &[u8]) -> Result<Option<ChannelMessage>, CoreError> {
        if self.broken {
            return Err(channel_err("the channel already failed"));
        }
        if frame.len() <= TAG_LEN || frame.len() > MAX_FRAME {
            return Err(channel_err(format!("frame of {} bytes", frame.len())));
        }
        let mut plain = zeroize::Zeroizing::new(vec![0u8; frame.len()]);
        let n = self.transport.read_message(frame, &mut plain).map_err(noise)?;
        let (flag, chunk) = plain[..n].split_first().ok_or_else(|| channel_err("empty frame"))?;
        if self.partial.len() + chunk.len() > MAX_CHANNEL_MESSAGE {
            return Err(channel_err("message larger than the channel limit"));
        }
        self.partial.extend_from_slice(chunk);
        match *flag {
            FLAG_MORE => Ok(None),
            FLAG_LAST => {
                let json = zeroize::Zeroizing::new(std::mem::take(&mut self.partial));
                serde_json::from_slice(&json).map(Some).map_err(|e| channel_err(format!("malformed message: {e}")))
            }
            _ => Err(channel_err("bad frame flag")),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn pair() -> (Qr, AgentSecrets, Channel, Channel) {
        let (qr, secrets) = Qr::new("http://127.0.0.1:1", "relay1", "https://portal.example", 60, 1000).unwrap();
        let phone_qr = Qr::parse(qr.text()).unwrap();
        let (hs, m1) = PhoneHandshake::start(&phone_qr).unwrap();
        let (m2, agent) = agent_respond(&qr, &secrets, &m1).unwrap();
        let phone = hs.finish(&m2).unwrap();
        (qr, secrets, agent, phone)
    }

    fn bye(s: &str) -> ChannelMessage {
        ChannelMessage::Bye { reason: s.into(), code: None }
    }

    #[test]
    fn handshake_gives_same_sas_and_messages_flow_both_ways() {
        let (qr, secrets, mut agent, mut phone) = pair();
        assert_eq!(agent.sas(), phone.sas());
        assert_eq!(agent.sas().len(), 7);
        assert_eq!(qr.tunnel_id().unwrap(), secrets.tunnel_id().unwrap());
        assert!(is_tunnel_id(&qr.tunnel_id().unwrap()));
        for f in agent.seal(&bye("a")).unwrap() {
            if let Some(m) = phone.open(&f).unwrap() {
                assert_eq!(m, bye("a"));
            }
        }
        let big = "x".repeat(200_000);
        let frames = phone.seal(&bye(&big)).unwrap();
        assert_eq!(frames.len(), 4);
        let mut got = None;
        for f in frames {
            got = agent.open(&f).unwrap();
        }
        assert_eq!(got, Some(bye(&big)));
    }

    #[test]
    fn any_altered_qr_field_breaks_the_handshake() {
        let (qr, secrets) = Qr::new("http://127.0.0.1:1", "relay1", "https://portal.example", 60, 1000).unwrap();
        let mut p = qr.payload.clone();
        p.origin = "https://evil.example".into();
        let text = format!("kalit:{}", B64URL.encode(serde_json::to_vec(&p).unwrap()));
        let altered = Qr::parse(&text).unwrap();
        let (_, m1) = PhoneHandshake::start(&altered).unwrap();
        assert_eq!(agent_respond(&qr, &secrets, &m1).unwrap_err().code(), kalit_proto::ErrorCode::Channel);
    }

    #[test]
    fn tampered_replayed_reordered_and_dropped_frames_break_the_channel() {
        let frames = |ch: &mut Channel| [ch.seal(&bye("1")).unwrap(), ch.seal(&bye("2")).unwrap()].concat();
        // tampered
        let (_, _, mut a, mut p) = pair();
        let mut f = frames(&mut a);
        f[0][5] ^= 1;
        assert!(p.open(&f[0]).is_err());
        assert!(p.open(&f[1]).is_err(), "nothing after a bad frame is decrypted");
        // replayed
        let (_, _, mut a, mut p) = pair();
        let f = frames(&mut a);
        p.open(&f[0]).unwrap();
        assert!(p.open(&f[0]).is_err());
        // reordered / dropped
        let (_, _, mut a, mut p) = pair();
        let f = frames(&mut a);
        assert!(p.open(&f[1]).is_err());
        // empty, tiny and oversized
        let (_, _, _, mut p) = pair();
        assert!(p.open(&[]).is_err());
        let (_, _, _, mut p) = pair();
        assert!(p.open(&[0u8; 16]).is_err());
        let (_, _, _, mut p) = pair();
        assert!(p.open(&vec![0u8; MAX_FRAME + 1]).is_err());
        // a frame from another session
        let (_, _, mut a1, _) = pair();
        let (_, _, _, mut p2) = pair();
        assert!(p2.open(&a1.seal(&bye("x")).unwrap()[0]).is_err());
    }

    #[test]
    fn qr_parsing_and_freshness() {
        let (qr, _) = Qr::new("http://127.0.0.1:1/", "relay1", "https://portal.example", 60, 1000).unwrap();
        let key = ComputerKey::generate().unwrap();
        let again = ComputerKey::from_private(key.private()).unwrap();
        assert_eq!(key.public(), again.public(), "the public key is derived from the stored private key");
        let (a, _) = Qr::for_computer(&key, "http://127.0.0.1:1", "r", "https://p.example", 60, 1000).unwrap();
        let (b, _) = Qr::for_computer(&again, "http://127.0.0.1:1", "r", "https://p.example", 60, 1000).unwrap();
        assert_eq!(a.computer_id(), b.computer_id(), "one computer, one id across sessions");
        assert_ne!(a.computer_id(), qr.computer_id());
        assert_eq!(qr.payload.relay, "http://127.0.0.1:1");
        qr.check_fresh(1000).unwrap();
        qr.check_fresh(1069).unwrap();
        assert_eq!(qr.check_fresh(1071).unwrap_err().code(), kalit_proto::ErrorCode::Expired);
        assert!(qr.check_fresh(900).is_err());
        let t = qr.text();
        for bad in [
            "",
            "kalit:",
            "http://x",
            &t[..t.len() - 4],
            &format!("{t}AAAA"),
            &"kalit:".repeat(400),
            "kalit:eyJ2IjozfQ", // {"v":3}
        ] {
            assert!(Qr::parse(bad).is_err(), "{bad}");
        }
        let v3 = Qr::parse("kalit:eyJ2IjozfQ").unwrap_err();
        assert!(v3.to_string().contains("version 3"), "{v3}");
        // A version 1 QR (before the computer identity and the cancel message) is refused by name.
        let v1 = Qr::parse("kalit:eyJ2IjoxfQ").unwrap_err();
        assert!(v1.to_string().contains("version 1") && v1.to_string().contains("version 2"), "{v1}");
        let mut p = qr.payload.clone();
        p.ttl = 100_000;
        assert!(Qr::parse(&format!("kalit:{}", B64URL.encode(serde_json::to_vec(&p).unwrap()))).is_err());
    }
}
