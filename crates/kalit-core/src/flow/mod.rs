//! The signing session's rules as two sans-I/O state machines, one per side: [`AgentSession`] (the
//! computer) and [`PhoneSession`] (the phone). Each takes events in (a relay event, a tunnel frame, a
//! request of the page or an answer of the person, with the time when a rule needs it) and gives actions
//! out (frames to send, what to show, what to tell the page). They do no I/O, read no clock and draw no
//! randomness: the QR secret, the agent's keys and the phone's ephemeral key come in from the caller, so
//! a test (or a conformance vector) can replay a whole session byte for byte.
//!
//! Every session rule lives here once: the hello comes first and is checked (certificate chain, the
//! relay's attestation for this device, login and time); one request at a time with increasing ids; the
//! phone refuses an origin other than the QR's, a media type that is not a token and a document that is a
//! protocol statement; a withdrawn request ([`kalit_proto::session::ChannelMessage::Cancel`]) dismisses
//! the phone's prompt, and an answer to it is refused on both sides; either side ends with a goodbye.
//! The drivers (the agent's tokio task, the phone's `kalit_phone::pair`) move bytes and keep timers.

pub mod agent;
pub mod phone;

pub use agent::{AgentAction, AgentConfig, AgentSession, DocDigest, Paired, SignDoc};
pub use phone::{Digests, PhoneAction, PhoneAnswer, PhoneConfig, PhoneSession, Prompt};

use kalit_proto::ErrorCode;

pub use crate::error::Failure;
use crate::session::Channel;
use kalit_proto::session::ChannelMessage;

/// Answers of the phone about one document that leave the session usable (the person declined, the
/// vault refused the document, a wrong PIN...); any other failure ends the session.
pub fn answer_keeps_session(code: ErrorCode) -> bool {
    matches!(
        code,
        ErrorCode::Declined
            | ErrorCode::RefusedByPolicy
            | ErrorCode::WrongPin
            | ErrorCode::TryLater
            | ErrorCode::InvalidInput
    )
}

/// How many withdrawn request ids a side remembers (a late answer to an older one is out of turn).
const WITHDRAWN_KEPT: usize = 64;

fn remember_withdrawn(list: &mut Vec<u32>, id: u32) {
    if list.len() == WITHDRAWN_KEPT {
        list.remove(0);
    }
    list.push(id);
}

/// A message sealed into frames on a side's channel (there is none before the handshake).
fn seal_frames(channel: &mut Option<Channel>, m: &ChannelMessage) -> Result<Vec<Vec<u8>>, Failure> {
    let ch = channel.as_mut().ok_or_else(|| Failure::channel("no channel"))?;
    Ok(ch.seal(m)?)
}

/// The goodbye frames on a side's channel; none before the handshake, or when the channel already failed
/// (the session closes either way).
fn bye_frames(channel: &mut Option<Channel>, reason: &str, code: Option<ErrorCode>) -> Vec<Vec<u8>> {
    if channel.is_none() {
        return vec![];
    }
    seal_frames(channel, &ChannelMessage::Bye { reason: reason.to_string(), code }).unwrap_or_default()
}
