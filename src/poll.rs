//! Waiting for a condition with a deadline: the one polling loop of the tools and tests.

use std::convert::Infallible;
use std::time::{Duration, Instant};

/// Calls `check` every `every` until it returns `Some`, for at most `timeout`. `check` runs at
/// least once, and once more at the deadline, so a condition met just in time is not missed.
pub fn until<T>(
    timeout: Duration,
    every: Duration,
    mut check: impl FnMut() -> Option<T>,
) -> Option<T> {
    match try_until(timeout, every, || Ok::<_, Infallible>(check())) {
        Ok(found) => found,
        Err(never) => match never {},
    }
}

/// Like [`until`], for a check that can also fail: its first error ends the wait.
pub fn try_until<T, E>(
    timeout: Duration,
    every: Duration,
    mut check: impl FnMut() -> Result<Option<T>, E>,
) -> Result<Option<T>, E> {
    let deadline = Instant::now() + timeout;
    loop {
        let past_deadline = Instant::now() >= deadline;
        if let Some(found) = check()? {
            return Ok(Some(found));
        }
        if past_deadline {
            return Ok(None);
        }
        let left = deadline.saturating_duration_since(Instant::now());
        std::thread::sleep(every.min(left));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_condition_met_later_is_found() {
        let mut calls = 0;
        let found = until(Duration::from_secs(5), Duration::from_millis(1), || {
            calls += 1;
            (calls == 3).then_some(calls)
        });
        assert_eq!(found, Some(3));
    }

    #[test]
    fn a_condition_never_met_ends_at_the_deadline_after_a_last_look() {
        let started = Instant::now();
        let mut calls = 0;
        let found: Option<()> = until(Duration::from_millis(30), Duration::from_millis(10), || {
            calls += 1;
            None
        });
        assert_eq!(found, None);
        assert!(started.elapsed() >= Duration::from_millis(30));
        assert!(
            calls >= 2,
            "looked at least at the start and the deadline: {calls}"
        );
    }

    #[test]
    fn an_error_ends_the_wait_at_once() {
        let outcome: Result<Option<()>, &str> =
            try_until(Duration::from_secs(60), Duration::from_secs(1), || {
                Err("gone")
            });
        assert_eq!(outcome, Err("gone"));
    }
}
