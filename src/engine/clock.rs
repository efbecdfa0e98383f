//! The one source of time for a server: lease deadlines (and later auth token expiry) are read
//! from it, never from `Instant::now()` or tokio's clock directly.
//!
//! Time is a [`Duration`] since the clock was made, so that deadlines are plain numbers that a
//! manual clock can reach by being advanced. Neither kind reads tokio's clock: a test that pauses
//! its own runtime's time changes nothing here.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A clock: real (monotonic time, plus whatever a test added) or manual (moves only when
/// advanced). Clones share the time.
#[derive(Debug, Clone)]
pub(crate) struct Clock {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// Where real time is counted from; `None` for a manual clock.
    start: Option<Instant>,
    /// Time added by [`Clock::advance`].
    skipped: Mutex<Duration>,
}

impl Clock {
    /// A clock that follows real (monotonic) time.
    pub(crate) fn real() -> Self {
        Clock::with_start(Some(Instant::now()))
    }

    /// A clock that stands still until advanced.
    pub(crate) fn manual() -> Self {
        Clock::with_start(None)
    }

    fn with_start(start: Option<Instant>) -> Self {
        Clock {
            inner: Arc::new(Inner {
                start,
                skipped: Mutex::new(Duration::ZERO),
            }),
        }
    }

    /// An independent clock showing the same time now (for a forked server).
    pub(crate) fn fork(&self) -> Clock {
        Clock {
            inner: Arc::new(Inner {
                start: self.inner.start,
                skipped: Mutex::new(*self.skipped()),
            }),
        }
    }

    /// Whether time passes on its own (so that someone must sleep until deadlines).
    pub(crate) fn is_real(&self) -> bool {
        self.inner.start.is_some()
    }

    /// The time now, counted from when the clock was made.
    pub(crate) fn now(&self) -> Duration {
        let real = self
            .inner
            .start
            .map_or(Duration::ZERO, |start| start.elapsed());
        real.saturating_add(*self.skipped())
    }

    /// Moves the clock forward by `by` (a real clock jumps ahead and keeps running).
    pub(crate) fn advance(&self, by: Duration) {
        let mut skipped = self.skipped();
        *skipped = skipped.saturating_add(by);
    }

    /// How long from now until `deadline` passes, in real time: zero if it has passed, `None` for
    /// a manual clock, which only an [`advance`](Clock::advance) brings to a deadline.
    pub(crate) fn until(&self, deadline: Duration) -> Option<Duration> {
        self.is_real().then(|| deadline.saturating_sub(self.now()))
    }

    fn skipped(&self) -> std::sync::MutexGuard<'_, Duration> {
        // Only a Duration is behind the lock: a panic elsewhere cannot leave it inconsistent.
        self.inner
            .skipped
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_moves_only_when_advanced() {
        let clock = Clock::manual();
        assert_eq!(clock.now(), Duration::ZERO);
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(clock.now(), Duration::ZERO);
        clock.clone().advance(Duration::from_secs(3));
        assert_eq!(clock.now(), Duration::from_secs(3));
        assert_eq!(clock.until(Duration::from_secs(10)), None);
    }

    #[test]
    fn a_real_clock_runs_and_can_jump_ahead() {
        let clock = Clock::real();
        let before = clock.now();
        std::thread::sleep(Duration::from_millis(5));
        assert!(clock.now() >= before + Duration::from_millis(5));
        clock.advance(Duration::from_secs(60));
        assert!(clock.now() >= Duration::from_secs(60));
        assert_eq!(clock.until(Duration::from_secs(1)), Some(Duration::ZERO));
        assert!(clock.until(Duration::from_secs(3600)) > Some(Duration::from_secs(3000)));
    }
}
