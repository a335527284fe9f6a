//! Provider limits: a concurrency cap, two token buckets (requests per minute and audio
//! seconds per minute) and a pause that a 429 with Retry-After sets.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

/// Limits of one provider (a transcription or a summarization endpoint).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProviderLimits {
    /// Calls in flight at once.
    pub concurrency: usize,
    /// Requests per minute (token bucket holding one minute's worth).
    pub requests_per_minute: f64,
    /// Audio seconds per minute; a job costs its audio length. Infinite means no limit.
    pub audio_seconds_per_minute: f64,
}

/// A token bucket refilled continuously at `per_minute / 60` tokens per second, holding at
/// most one minute's worth.
#[derive(Debug)]
pub struct TokenBucket {
    capacity: f64,
    per_second: f64,
    tokens: f64,
    updated: Instant,
}

impl TokenBucket {
    pub fn new(per_minute: f64, now: Instant) -> Self {
        let capacity = if per_minute.is_finite() && per_minute > 0.0 {
            per_minute
        } else {
            f64::INFINITY
        };
        TokenBucket {
            capacity,
            per_second: capacity / 60.0,
            tokens: capacity,
            updated: now,
        }
    }

    fn refill(&mut self, now: Instant) {
        if self.capacity.is_infinite() {
            return;
        }
        let elapsed = now.saturating_duration_since(self.updated).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.per_second).min(self.capacity);
        self.updated = now;
    }

    /// Takes `cost` tokens (a cost above the capacity is charged as the capacity, so a huge job
    /// still runs, alone) and returns how long the caller must wait before using them. Tokens
    /// may go negative: callers then queue behind each other in the order they asked.
    pub fn take(&mut self, cost: f64, now: Instant) -> Duration {
        if self.capacity.is_infinite() {
            return Duration::ZERO;
        }
        self.refill(now);
        self.tokens -= cost.min(self.capacity);
        if self.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-self.tokens / self.per_second)
        }
    }
}

#[derive(Debug)]
struct Buckets {
    requests: TokenBucket,
    audio: TokenBucket,
    paused_until: Option<Instant>,
}

/// A provider's gate, shared by every worker.
#[derive(Debug, Clone)]
pub struct ProviderGate {
    pub name: &'static str,
    slots: Arc<Semaphore>,
    buckets: Arc<Mutex<Buckets>>,
}

impl ProviderGate {
    pub fn new(name: &'static str, limits: ProviderLimits) -> Self {
        let now = Instant::now();
        ProviderGate {
            name,
            slots: Arc::new(Semaphore::new(limits.concurrency.max(1))),
            buckets: Arc::new(Mutex::new(Buckets {
                requests: TokenBucket::new(limits.requests_per_minute, now),
                audio: TokenBucket::new(limits.audio_seconds_per_minute, now),
                paused_until: None,
            })),
        }
    }

    fn buckets(&self) -> std::sync::MutexGuard<'_, Buckets> {
        self.buckets.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A concurrency slot if one is free and the provider is not paused.
    pub fn try_slot(&self) -> Option<OwnedSemaphorePermit> {
        if self.paused_for(Instant::now()).is_some() {
            return None;
        }
        self.slots.clone().try_acquire_owned().ok()
    }

    fn paused_for(&self, now: Instant) -> Option<Duration> {
        self.buckets()
            .paused_until
            .filter(|until| *until > now)
            .map(|until| until - now)
    }

    /// Pauses the provider until `now + wait` (a 429's Retry-After); a longer pause stays.
    pub fn pause(&self, wait: Duration) {
        let until = Instant::now() + wait;
        let mut b = self.buckets();
        if b.paused_until.is_none_or(|p| p < until) {
            b.paused_until = Some(until);
        }
    }

    /// Waits for a pause to end and for the tokens of one request costing `audio_secs`;
    /// returns the time spent waiting.
    pub async fn admit(&self, audio_secs: f64) -> Duration {
        let started = Instant::now();
        loop {
            let now = Instant::now();
            if let Some(wait) = self.paused_for(now) {
                tokio::time::sleep(wait).await;
                continue;
            }
            let wait = {
                let mut b = self.buckets();
                let a = b.requests.take(1.0, now);
                let c = b.audio.take(audio_secs, now);
                a.max(c)
            };
            if !wait.is_zero() {
                tokio::time::sleep(wait).await;
            }
            return started.elapsed();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_allows_a_minute_burst_then_paces() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(60.0, t0);
        for _ in 0..60 {
            assert_eq!(b.take(1.0, t0), Duration::ZERO);
        }
        // One token per second from now on; the 61st waits one second, the 62nd two.
        assert_eq!(b.take(1.0, t0), Duration::from_secs(1));
        assert_eq!(b.take(1.0, t0), Duration::from_secs(2));
        // One second later one of the two owed tokens is back: the next waits two seconds.
        assert_eq!(
            b.take(1.0, t0 + Duration::from_secs(1)),
            Duration::from_secs(2)
        );
        // Ten seconds on, the debt is paid and eight tokens are there.
        assert_eq!(b.take(8.0, t0 + Duration::from_secs(11)), Duration::ZERO);
        assert_eq!(
            b.take(1.0, t0 + Duration::from_secs(11)),
            Duration::from_secs(1)
        );
    }

    #[test]
    fn audio_cost_is_capped_at_the_capacity() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(600.0, t0);
        assert_eq!(b.take(30.0, t0), Duration::ZERO);
        // 10 tokens/s; 570 left; a 1000 s job is charged 600, 30 short: 3 s.
        assert_eq!(b.take(1000.0, t0), Duration::from_secs(3));
    }

    #[test]
    fn unlimited_bucket_never_waits() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(f64::INFINITY, t0);
        assert_eq!(b.take(1e12, t0), Duration::ZERO);
        let mut z = TokenBucket::new(0.0, t0);
        assert_eq!(z.take(5.0, t0), Duration::ZERO);
    }

    #[tokio::test]
    async fn pause_blocks_slots_and_admission() {
        let gate = ProviderGate::new(
            "t",
            ProviderLimits {
                concurrency: 1,
                requests_per_minute: f64::INFINITY,
                audio_seconds_per_minute: f64::INFINITY,
            },
        );
        let slot = gate.try_slot();
        assert!(slot.is_some());
        assert!(gate.try_slot().is_none(), "concurrency 1");
        drop(slot);
        gate.pause(Duration::from_millis(200));
        assert!(gate.try_slot().is_none(), "paused");
        let waited = gate.admit(1.0).await;
        assert!(waited >= Duration::from_millis(150), "{waited:?}");
        assert!(gate.try_slot().is_some());
    }
}
