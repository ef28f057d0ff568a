//! The services' wall clock, injectable: the relay and the RA read the time only through a [`Clock`], so
//! a test moves time forward (a cooling-off period, an expired enrolment code) instead of sleeping.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use time::OffsetDateTime;

/// Where "now" comes from.
#[derive(Debug, Clone, Default)]
pub struct Clock {
    /// `None`: the system clock. `Some`: a manual clock's Unix milliseconds.
    manual: Option<Arc<AtomicI64>>,
}

impl Clock {
    /// The system clock (what every service runs with).
    pub fn system() -> Clock {
        Clock { manual: None }
    }

    /// A clock that stands still at `start` until [`Clock::advance`] moves it (tests).
    pub fn manual(start: OffsetDateTime) -> Clock {
        Clock { manual: Some(Arc::new(AtomicI64::new(crate::unix_ms(start)))) }
    }

    /// Now, as Unix milliseconds.
    pub fn now_ms(&self) -> i64 {
        match &self.manual {
            Some(ms) => ms.load(Ordering::SeqCst),
            None => crate::now_ms(),
        }
    }

    /// Now.
    pub fn now(&self) -> OffsetDateTime {
        match &self.manual {
            Some(ms) => OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms.load(Ordering::SeqCst)) * 1_000_000)
                .unwrap_or(OffsetDateTime::UNIX_EPOCH),
            None => OffsetDateTime::now_utc(),
        }
    }

    /// Moves a manual clock forward (every clone sees it); returns false, and does nothing, for the
    /// system clock.
    pub fn advance(&self, by: Duration) -> bool {
        match &self.manual {
            Some(ms) => {
                ms.fetch_add(i64::try_from(by.as_millis()).unwrap_or(i64::MAX), Ordering::SeqCst);
                true
            }
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_moves_only_when_told_and_for_every_clone() {
        let start = OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap_or(OffsetDateTime::UNIX_EPOCH);
        let c = Clock::manual(start);
        let seen_by_state = c.clone();
        assert_eq!(c.now_ms(), 1_800_000_000_000);
        assert!(c.advance(Duration::from_millis(2500)));
        assert_eq!(seen_by_state.now_ms(), 1_800_000_002_500);
        assert_eq!(seen_by_state.now().unix_timestamp(), 1_800_000_002);
        assert!(!Clock::system().advance(Duration::from_secs(1)));
    }
}
