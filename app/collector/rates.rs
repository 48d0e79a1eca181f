//! Rates from cumulative counters: the change between two consecutive samples of one series
//! divided by the time between them. No rate on the first sample, across a counter reset (the
//! value went down or the container's start time changed) or between two reads of the same
//! sample.

use std::collections::HashMap;

#[derive(Debug, Clone, Copy)]
struct Prev {
    time_ns: i64,
    value: u64,
    start_ns: i64,
    round: u64,
}

/// The last sample of every counter series, keyed by a series key the caller builds.
#[derive(Debug, Default)]
pub struct Rates {
    prev: HashMap<String, Prev>,
    round: u64,
}

impl Rates {
    /// Per-second rate of `key`'s counter, given a new sample, and remembers the sample.
    pub fn per_second(
        &mut self,
        key: &str,
        time_ns: i64,
        value: u64,
        start_ns: i64,
    ) -> Option<f64> {
        let round = self.round;
        let sample = Prev {
            time_ns,
            value,
            start_ns,
            round,
        };
        let Some(prev) = self.prev.get_mut(key) else {
            self.prev.insert(key.to_string(), sample);
            return None;
        };
        if time_ns <= prev.time_ns {
            // The same sample read again (or an older one): nothing new to say.
            prev.round = round;
            return None;
        }
        let rate = (prev.start_ns == start_ns && value >= prev.value)
            .then(|| (value - prev.value) as f64 / ((time_ns - prev.time_ns) as f64 / 1e9));
        *prev = sample;
        rate
    }

    /// Starts a new scrape round and forgets series not seen for `keep_rounds` rounds (pods
    /// that are gone), so memory follows the cluster's size, not its history.
    pub fn next_round(&mut self, keep_rounds: u64) {
        self.round += 1;
        let oldest = self.round.saturating_sub(keep_rounds);
        self.prev.retain(|_, p| p.round >= oldest);
    }

    pub fn len(&self) -> usize {
        self.prev.len()
    }

    pub fn is_empty(&self) -> bool {
        self.prev.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = 1_000_000_000;

    #[test]
    fn no_rate_on_the_first_sample() {
        let mut r = Rates::default();
        assert_eq!(r.per_second("a", 10 * S, 100, 0), None);
    }

    #[test]
    fn the_rate_is_the_change_over_the_elapsed_time() {
        let mut r = Rates::default();
        r.per_second("a", 10 * S, 1_000, 0);
        // 3000 more in 15 s.
        assert_eq!(r.per_second("a", 25 * S, 4_000, 0), Some(200.0));
    }

    #[test]
    fn a_counter_that_goes_down_is_a_reset_not_negative_usage() {
        let mut r = Rates::default();
        r.per_second("a", 10 * S, 5_000, 0);
        assert_eq!(r.per_second("a", 20 * S, 100, 0), None);
        // And counting resumes from the new value.
        assert_eq!(r.per_second("a", 30 * S, 1_100, 0), Some(100.0));
    }

    #[test]
    fn a_new_start_time_is_a_reset_even_if_the_counter_grew() {
        let mut r = Rates::default();
        r.per_second("a", 10 * S, 5_000, 0);
        assert_eq!(r.per_second("a", 20 * S, 9_000, 15 * S), None);
    }

    #[test]
    fn the_same_sample_read_twice_gives_no_second_rate() {
        let mut r = Rates::default();
        r.per_second("a", 10 * S, 5_000, 0);
        assert_eq!(r.per_second("a", 20 * S, 6_000, 0), Some(100.0));
        assert_eq!(r.per_second("a", 20 * S, 6_000, 0), None);
        assert_eq!(r.per_second("a", 30 * S, 7_000, 0), Some(100.0));
    }

    #[test]
    fn series_not_seen_for_a_while_are_forgotten() {
        let mut r = Rates::default();
        r.per_second("gone", 10 * S, 1, 0);
        r.next_round(2);
        r.per_second("alive", 20 * S, 1, 0);
        r.next_round(2);
        r.next_round(2);
        assert_eq!(r.len(), 1);
    }
}
