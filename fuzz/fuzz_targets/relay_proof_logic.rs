//! Any bytes as a registration request body: JSON decoding with unknown fields refused, then the relay's
//! proof checks (bounded base64, chain, statement signature) against a fixed anchor. Never a panic.
#![allow(dead_code)]

use kalit_core::statement::{self, Statement};

/// One fuzz input (see the file's header for what must hold).
pub fn run(data: &[u8]) {
    let Ok(req) = serde_json::from_slice::<kalit_proto::relay::RegisterRequest>(data) else { return };
    let _ = statement::normalize_login(&req.login);
    let dk = statement::bounded("device_key", &req.device_key, 32).unwrap_or_default();
    let nonce = statement::bounded("nonce", &req.nonce, 32).unwrap_or_default();
    let anchors: Vec<Vec<u8>> = statement::proof_chain(&req.proof).map(|(_, rest)| rest).unwrap_or_default();
    let _ = statement::verify_proof(&req.proof, &anchors, time::OffsetDateTime::UNIX_EPOCH, |fp| {
        Statement::register(&req.relay_id, nonce, &req.login, dk, fp)
    });
}
