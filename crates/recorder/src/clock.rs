//! Exact conversion of sample counts at any rate into the 48 kHz timeline.

/// The timeline unit: every start and length in the spool is counted in 48 kHz samples.
pub const TIMELINE_RATE: u64 = 48_000;

/// Converts successive counts of samples at one rate into 48 kHz units without drift: the
/// remainder of each division is carried into the next, so the sum of the converted parts equals
/// the conversion of the sum.
#[derive(Debug, Clone)]
pub(crate) struct TimelineClock {
    rate: u64,
    remainder: u64,
}

impl TimelineClock {
    pub(crate) fn new(rate: u32) -> Self {
        TimelineClock {
            rate: u64::from(rate.max(1)),
            remainder: 0,
        }
    }

    pub(crate) fn advance(&mut self, samples: u64) -> u64 {
        let scaled = u128::from(samples) * u128::from(TIMELINE_RATE) + u128::from(self.remainder);
        let whole = scaled / u128::from(self.rate);
        self.remainder = (scaled % u128::from(self.rate)) as u64;
        whole as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_sum_to_the_whole() {
        let mut clock = TimelineClock::new(44_100);
        let total: u64 = (0..1000).map(|i| clock.advance(i % 37 + 1)).sum();
        let samples: u64 = (0..1000).map(|i| i % 37 + 1).sum();
        assert_eq!(total, samples * 48_000 / 44_100);
    }

    #[test]
    fn integer_ratios_are_exact() {
        assert_eq!(TimelineClock::new(16_000).advance(16_000), 48_000);
        assert_eq!(TimelineClock::new(48_000).advance(7), 7);
        assert_eq!(TimelineClock::new(8_000).advance(1), 6);
    }
}
