//! Self-authenticating nonces: issued without storing anything, consumed once.
//!
//! A nonce carries its own proof: 12 random bytes, its expiry (seconds, big-endian) and a 16-byte
//! HMAC-SHA256 tag over both. Issuing one stores nothing, so a stranger asking for nonces holds no memory
//! and no stored nonce (a cluster's shared rate limit still counts the request). A nonce is remembered
//! only once a request with valid proofs consumes it, until it expires, so it is used at most once.
//!
//! - **One node (SQLite):** the key is made at start-up and lives in memory only, and so do the consumed
//!   nonces ([`LocalNonces::take`], capped at [`MAX_USED`]). A restart invalidates every nonce handed out
//!   before it (a phone then gets `expired` and asks for a new one), so a nonce consumed before a restart
//!   cannot be used after it. Writing each nonce to the database (and deleting it when used) had cost
//!   two of the three fsyncs of a registration.
//! - **Several nodes (PostgreSQL):** a nonce issued by one node is used at another, so every node reads
//!   the same key from the database (made by the first node that starts, `relay_secrets`), and a consumed
//!   nonce is a row of `used_nonces` ([`LocalNonces::check`], then `Store::take_nonce`): one insert per
//!   use, where a stored nonce had cost an insert at issue and a delete at use.

use std::collections::HashMap;
use std::sync::Mutex;

use aws_lc_rs::{constant_time, hmac};
use kalit_proto::ErrorCode;
use kalit_service::ServiceError;

/// Consumed nonces remembered at once (each until its expiry). Only requests whose certificate proof
/// verified consume a nonce, and those are rate-limited per login; a full set answers `unavailable`.
pub const MAX_USED: usize = 100_000;

const RANDOM: usize = 12;
const TAG: usize = 16;

/// Consumed nonces are swept of expired ones every this many insertions, so the set holds about one
/// nonce lifetime of them (not [`MAX_USED`] before the first sweep).
const SWEEP_EVERY: u32 = 1024;

/// Issues and consumes self-authenticating nonces.
pub struct LocalNonces {
    key: hmac::Key,
    used: Mutex<Used>,
}

/// Consumed nonces and their expiry (seconds), and insertions since the last sweep.
#[derive(Default)]
struct Used {
    map: HashMap<[u8; 32], u64>,
    since_sweep: u32,
}

impl std::fmt::Debug for LocalNonces {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalNonces").finish_non_exhaustive()
    }
}

fn tag(key: &hmac::Key, body: &[u8]) -> [u8; TAG] {
    let mut out = [0u8; TAG];
    out.copy_from_slice(&hmac::sign(key, body).as_ref()[..TAG]);
    out
}

impl LocalNonces {
    /// A fresh key from the system's random generator.
    pub fn new() -> Result<LocalNonces, ServiceError> {
        let secret = kalit_core::SecretBytes::new(kalit_core::seal::random::<32>()?.to_vec());
        Ok(LocalNonces::with_secret(secret.expose_secret()))
    }

    /// Nonces under a key shared by the nodes of a cluster.
    pub fn with_secret(secret: &[u8]) -> LocalNonces {
        LocalNonces { key: hmac::Key::new(hmac::HMAC_SHA256, secret), used: Mutex::new(Used::default()) }
    }

    /// A nonce valid until `expires_secs`.
    pub fn issue(&self, expires_secs: u64) -> Result<[u8; 32], ServiceError> {
        let mut n = [0u8; 32];
        n[..RANDOM].copy_from_slice(&kalit_core::seal::random::<RANDOM>()?);
        let exp = u32::try_from(expires_secs).map_err(|_| ServiceError::internal("the clock is past 2106"))?;
        n[RANDOM..RANDOM + 4].copy_from_slice(&exp.to_be_bytes());
        let t = tag(&self.key, &n[..RANDOM + 4]);
        n[RANDOM + 4..].copy_from_slice(&t);
        Ok(n)
    }

    /// The expiry (seconds) of `nonce` when this key issued it and it has not expired at `now_secs`;
    /// whether it was used already is not known here.
    pub fn check(&self, nonce: &[u8], now_secs: u64) -> Option<u64> {
        let n = <[u8; 32]>::try_from(nonce).ok()?;
        let t = tag(&self.key, &n[..RANDOM + 4]);
        constant_time::verify_slices_are_equal(&t, &n[RANDOM + 4..]).ok()?;
        let mut exp = [0u8; 4];
        exp.copy_from_slice(&n[RANDOM..RANDOM + 4]);
        let exp = u64::from(u32::from_be_bytes(exp));
        (exp >= now_secs).then_some(exp)
    }

    /// Consumes `nonce` in this process's memory: true exactly once for a nonce this key issued, before
    /// its expiry.
    pub fn take(&self, nonce: &[u8], now_secs: u64) -> Result<bool, ServiceError> {
        let Some(exp) = self.check(nonce, now_secs) else { return Ok(false) };
        let Ok(n) = <[u8; 32]>::try_from(nonce) else { return Ok(false) };
        let mut used = self.used.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if used.map.contains_key(&n) {
            return Ok(false);
        }
        if used.since_sweep >= SWEEP_EVERY || used.map.len() >= MAX_USED {
            used.map.retain(|_, e| *e >= now_secs);
            used.since_sweep = 0;
            if used.map.len() >= MAX_USED {
                return Err(ServiceError::new(
                    ErrorCode::Unavailable,
                    "too many registrations at once; try again in a minute",
                ));
            }
        }
        used.map.insert(n, exp);
        used.since_sweep += 1;
        Ok(true)
    }

    /// Consumed nonces remembered now (for tests).
    pub fn used_len(&self) -> usize {
        self.used.lock().unwrap_or_else(std::sync::PoisonError::into_inner).map.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_nonce_is_taken_once_before_its_expiry_and_only_from_its_issuer() {
        let a = LocalNonces::new().unwrap();
        let n = a.issue(100).unwrap();
        assert!(a.take(&n, 100).unwrap());
        assert!(!a.take(&n, 100).unwrap(), "taken twice");
        let late = a.issue(100).unwrap();
        assert!(!a.take(&late, 101).unwrap(), "taken after its expiry");
        // Another process (a restart) does not accept it.
        let b = LocalNonces::new().unwrap();
        assert!(!b.take(&a.issue(100).unwrap(), 50).unwrap());
        // Any changed byte (random part, expiry, tag) makes it worthless.
        for i in 0..32 {
            let mut m = a.issue(100).unwrap();
            m[i] ^= 1;
            assert!(!a.take(&m, 50).unwrap(), "byte {i} changed and accepted");
        }
        assert!(!a.take(&n[..31], 50).unwrap());
    }

    #[test]
    fn nodes_sharing_a_key_check_each_others_nonces_and_no_one_elses() {
        let (a, b) = (LocalNonces::with_secret(&[7; 32]), LocalNonces::with_secret(&[7; 32]));
        let n = a.issue(100).unwrap();
        assert_eq!(b.check(&n, 100), Some(100));
        assert_eq!(b.check(&n, 101), None, "expired");
        assert_eq!(LocalNonces::with_secret(&[8; 32]).check(&n, 50), None, "another key");
        for i in 0..32 {
            let mut m = n;
            m[i] ^= 1;
            assert_eq!(b.check(&m, 50), None, "byte {i} changed and accepted");
        }
        assert_eq!(b.check(&n[..31], 50), None);
        // check says nothing of use: that is the caller's record (the database on a cluster).
        assert_eq!(b.check(&n, 50), Some(100));
    }

    #[test]
    fn the_used_set_is_capped_and_forgets_expired_nonces() {
        let a = LocalNonces::new().unwrap();
        for _ in 0..MAX_USED {
            assert!(a.take(&a.issue(10).unwrap(), 5).unwrap());
        }
        let fresh = a.issue(30).unwrap();
        let e = a.take(&fresh, 5).unwrap_err();
        assert_eq!(e.code, ErrorCode::Unavailable);
        // Once they expired, their room is free again.
        assert!(a.take(&fresh, 11).unwrap());
        assert_eq!(a.used_len(), 1);
    }

    #[test]
    fn expired_nonces_are_swept_long_before_the_cap() {
        let a = LocalNonces::new().unwrap();
        // Nonces used at second t expire at t + 10: at any time about ten seconds' worth are live.
        for t in 0..50u64 {
            for _ in 0..200 {
                assert!(a.take(&a.issue(t + 10).unwrap(), t).unwrap());
            }
        }
        // 10,000 taken; at most the live ones and one sweep interval are remembered.
        let left = a.used_len();
        assert!(left <= 11 * 200 + SWEEP_EVERY as usize, "{left} remembered");
    }
}
