//! Waiting between attempts: capped exponential backoff with full jitter, and `Retry-After`.

use std::time::{Duration, SystemTime};

use backon::{BackoffBuilder, ExponentialBuilder};
use rand::Rng;

/// Delays between failed attempts: the capped exponential sequence from `backon`, each delay
/// drawn uniformly from `[0, base]` ("full jitter"). backon's own jitter only adds up to one
/// base delay on top, which keeps a crowd of clients that failed together in lock step;
/// drawing from the whole interval spreads them out, which is what a recovering server needs.
#[derive(Debug)]
pub struct Backoff {
    builder: ExponentialBuilder,
    current: backon::ExponentialBackoff,
    cap: Duration,
}

impl Backoff {
    pub fn new(min: Duration, cap: Duration) -> Backoff {
        let builder = ExponentialBuilder::default()
            .with_min_delay(min)
            .with_max_delay(cap.max(min))
            .with_factor(2.0)
            .without_max_times();
        Backoff {
            builder,
            current: builder.build(),
            cap: cap.max(min),
        }
    }

    /// The next delay to wait.
    pub fn next_delay(&mut self) -> Duration {
        // without_max_times: the iterator never ends; the cap is the fallback anyway.
        let base = self.current.next().unwrap_or(self.cap);
        full_jitter(base)
    }

    /// Starts over at the minimum delay: called whenever an attempt made progress.
    pub fn reset(&mut self) {
        self.current = self.builder.build();
    }
}

fn full_jitter(base: Duration) -> Duration {
    if base.is_zero() {
        return base;
    }
    let nanos = u64::try_from(base.as_nanos()).unwrap_or(u64::MAX);
    Duration::from_nanos(rand::rng().random_range(0..=nanos))
}

/// Parses a `Retry-After` value: delay seconds, or an HTTP date (IMF-fixdate, RFC 9110 §5.6.7).
/// A date in the past means "now". Unparseable values give None (the caller backs off instead).
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let format = time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    let when = time::PrimitiveDateTime::parse(value, &format)
        .ok()?
        .assume_utc();
    let when = SystemTime::from(when);
    Some(when.duration_since(now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_jitter_stays_within_the_capped_exponential() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_millis(800));
        let bases = [100u64, 200, 400, 800, 800, 800];
        for base in bases {
            let d = b.next_delay();
            assert!(d <= Duration::from_millis(base), "{d:?} > {base} ms");
        }
        b.reset();
        assert!(b.next_delay() <= Duration::from_millis(100));
    }

    #[test]
    fn full_jitter_spreads_over_the_whole_interval() {
        let draws: Vec<Duration> = (0..400)
            .map(|_| full_jitter(Duration::from_millis(1000)))
            .collect();
        assert!(draws.iter().any(|d| *d < Duration::from_millis(250)));
        assert!(draws.iter().any(|d| *d > Duration::from_millis(750)));
    }

    #[test]
    fn retry_after_seconds_and_dates() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(784_111_777); // Sun, 06 Nov 1994 08:49:37 GMT
        assert_eq!(
            parse_retry_after("120", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(parse_retry_after(" 0 ", now), Some(Duration::ZERO));
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:50:07 GMT", now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-5", now), None);
    }
}
