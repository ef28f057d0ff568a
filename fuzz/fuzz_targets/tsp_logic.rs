//! Any bytes as an RFC 3161 request, answer or token: an error or a verdict, never a panic; a request
//! the TSA side reads is written back to the same request.
#![allow(dead_code)]
use kalit_core::tsp::{self, TimestampRequest};

/// One fuzz input (see the file's header for what must hold).
pub fn run(data: &[u8]) {
    if let Ok(req) = TimestampRequest::from_der(data) {
        assert_eq!(TimestampRequest::from_der(&req.to_der()).ok(), Some(req.clone()), "a request does not round-trip");
        let _ = tsp::read_response(data, &req);
    }
    let req = TimestampRequest {
        hash: kalit_core::digest::HashAlg::Sha256,
        imprint: vec![0; 32],
        nonce: Some(vec![1]),
        cert_req: true,
        policy: None,
    };
    let _ = tsp::read_response(data, &req);
    let _ = tsp::verify_token(data, b"signature value");
    let _ = tsp::is_granted(data);
}
