//! Wire and output types of Kalit: everything that crosses a process boundary.
//!
//! Architecture invariant: this crate does no I/O and holds no secrets. A `serde` derive here is a public
//! promise: scripts parse `kalit ... --json`, and later the relay and agent speak these types.

pub mod bytes;
pub mod error;
pub mod ids;
pub mod namespace;
pub mod ra;
pub mod relay;
pub mod session;
pub mod vault;
pub mod verify;

pub use bytes::{Base64, Base64Url};

/// Whether a URL host (`localhost`, `127.0.0.1`, `[::1]`, ...) is a loopback address: the only place
/// plain HTTP is allowed (the clients' endpoints, the relay's loopback pages in direct mode).
pub fn is_loopback_host(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host == "localhost" || host.parse::<std::net::IpAddr>().is_ok_and(|a| a.is_loopback())
}
pub use error::{ApiError, ErrorBody, ErrorCode};
pub use ids::{CertFingerprint, DeviceId, Login, RelayId};

/// Version of the vault-facing JSON outputs (`kalit vault list --json` and friends).
pub const OUTPUT_VERSION: u32 = 1;

#[cfg(test)]
mod evolution {
    //! The evolution rules, as tests: requests refuse unknown fields, responses and peer messages tolerate
    //! them, and an unknown error code reads as `Unknown`.

    use crate::relay::{NonceResponse, RegisterRequest};
    use crate::session::{ChannelMessage, TunnelEvent};
    use crate::{ApiError, ErrorCode};

    #[test]
    fn requests_refuse_and_responses_tolerate_unknown_fields() {
        let req = r#"{"login":"ali","device_key":"AA==","device_name":"p","nonce":"AA==","relay_id":"r","proof":{"chain":[],"signature":""},"extra":1}"#;
        assert!(serde_json::from_str::<RegisterRequest>(req).is_err());
        let resp = r#"{"nonce":"AA==","expires_at":1,"added_later":true}"#;
        assert_eq!(serde_json::from_str::<NonceResponse>(resp).unwrap().expires_at, 1);
        let bye = r#"{"type":"bye","reason":"done","code":null,"added_later":[1,2]}"#;
        assert!(matches!(serde_json::from_str::<ChannelMessage>(bye).unwrap(), ChannelMessage::Bye { .. }));
        let ready = r#"{"event":"ready","expires_in":5,"node":"b"}"#;
        assert_eq!(serde_json::from_str::<TunnelEvent>(ready).unwrap(), TunnelEvent::Ready { expires_in: 5 });
    }

    #[test]
    fn sign_answers_are_typed_and_read_what_the_first_version_2_phones_sent() {
        use crate::session::SignAnswer;
        let answer = |json: &str| match serde_json::from_str::<ChannelMessage>(json).unwrap() {
            ChannelMessage::SignResponse { id: 7, answer } => answer,
            other => panic!("{other:?}"),
        };
        // As the first phones of version 2 wrote them (every field, null where unused).
        assert_eq!(
            answer(r#"{"type":"sign_response","id":7,"status":"approved","signature":"c2ln","message":null}"#),
            SignAnswer::Approved { signature: crate::Base64::of(b"sig") }
        );
        assert_eq!(
            answer(r#"{"type":"sign_response","id":7,"status":"declined","signature":null,"message":null}"#),
            SignAnswer::Declined
        );
        assert_eq!(
            answer(
                r#"{"type":"sign_response","id":7,"status":"failed","signature":null,"message":"wrong_pin: wrong PIN"}"#
            ),
            SignAnswer::Failed { code: None, message: "wrong_pin: wrong PIN".into() }
        );
        // As they are written now: only the fields of the status.
        let failed = ChannelMessage::SignResponse {
            id: 7,
            answer: SignAnswer::Failed { code: Some(ErrorCode::Locked), message: "locked: the vault is locked".into() },
        };
        let json = serde_json::to_string(&failed).unwrap();
        assert_eq!(
            json,
            r#"{"type":"sign_response","id":7,"status":"failed","code":"locked","message":"locked: the vault is locked"}"#
        );
        assert_eq!(serde_json::from_str::<ChannelMessage>(&json).unwrap(), failed);
        // An approval without its signature is no approval.
        assert!(
            serde_json::from_str::<ChannelMessage>(r#"{"type":"sign_response","id":7,"status":"approved"}"#).is_err()
        );
    }

    #[test]
    fn an_unknown_error_code_reads_as_unknown() {
        let e: ApiError = serde_json::from_str(r#"{"error":{"code":"quota_exceeded","message":"later"}}"#).unwrap();
        assert_eq!(e.error.code, ErrorCode::Unknown);
        assert_eq!(ErrorCode::Unknown.exit_code(), ErrorCode::Internal.exit_code());
        assert!(!ErrorCode::ALL.contains(&ErrorCode::Unknown), "never sent");
    }
}
