//! Where a sample's nominal interval comes from: the data, never the reader's settings.
//!
//! * **Recorded.** kubemeter's collector writes, per node and round, one `collector/interval`
//!   point (its interval in ns) stamped at the earliest sample time of that node's summary in
//!   that round. A sample of node `n` at `t` has the value of `n`'s latest such point at or
//!   before `t`, if that point is at most the look-back `L` older: every sample of a round sees
//!   that round's interval, and a changed interval applies from its first round exactly.
//! * **From the series' spacing** (data kubemeter did not write: Heapster's, the old
//!   kube_monitoring app's). With two predecessors within `L`, the previous gap
//!   `t_p − t_pp` (how the series was spaced just before: a sample after a longer gap is then
//!   measured against the spacing it broke); with one, the gap to it (so that sample is
//!   bridged); with none, unknown.
//!
//! Both depend only on samples within `L` before the sample, which is what a raw read of any
//! chunk holds (its body plus the look-back), so every chunking gives every sample the same
//! interval and rollups, raw chunks and edges keep agreeing to the integer.

/// The interval recorded for a node at `t`: `points` are `(time, interval ns)` sorted by time.
pub fn recorded_at(points: &[(i64, i64)], t: i64, lookback_ns: i64) -> Option<i64> {
    let i = points.partition_point(|(pt, _)| *pt <= t);
    let (pt, n) = points[..i].last()?;
    (t - pt <= lookback_ns && *n > 0).then_some(*n)
}

/// The nominal interval of sample `i` from the spacing of `times` (sorted, distinct).
pub fn from_spacing(times: &[i64], i: usize, lookback_ns: i64) -> Option<i64> {
    let t = *times.get(i)?;
    let within = |j: Option<usize>| j.map(|j| times[j]).filter(|p| t - p <= lookback_ns);
    let p = within(i.checked_sub(1))?;
    match within(i.checked_sub(2)) {
        Some(pp) => Some(p - pp),
        None => Some(t - p),
    }
}

/// The nominal interval of every sample of a series with sample times `times` (sorted,
/// distinct): recorded where the collector recorded one for the series' node (`recorded`,
/// see [`recorded_at`]), else from the series' spacing.
pub fn assign(times: &[i64], recorded: &[(i64, i64)], lookback_ns: i64) -> Vec<Option<i64>> {
    (0..times.len())
        .map(|i| {
            recorded_at(recorded, times[i], lookback_ns)
                .or_else(|| from_spacing(times, i, lookback_ns))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = 1_000_000_000;
    const L: i64 = 3_600 * S;

    #[test]
    fn a_recorded_interval_applies_from_its_point_until_the_next_and_only_within_the_look_back() {
        // The collector ran at 15 s, then from 1 800 s at 60 s.
        let rec = [(0, 15 * S), (15 * S, 15 * S), (1_800 * S, 60 * S)];
        assert_eq!(recorded_at(&rec, -1, L), None, "before the first round");
        assert_eq!(recorded_at(&rec, 0, L), Some(15 * S), "at the point itself");
        assert_eq!(recorded_at(&rec, 1_799 * S, L), Some(15 * S));
        assert_eq!(recorded_at(&rec, 1_800 * S, L), Some(60 * S));
        assert_eq!(recorded_at(&rec, 1_800 * S + L, L), Some(60 * S));
        assert_eq!(
            recorded_at(&rec, 1_800 * S + L + 1, L),
            None,
            "older than L"
        );
        assert_eq!(
            recorded_at(&[(0, 0)], 5, L),
            None,
            "a zero interval is none"
        );
    }

    #[test]
    fn without_a_record_the_previous_gap_is_the_interval() {
        // 5-minute samples, one missed (600 s), then 5 minutes again.
        let t: Vec<i64> = [0, 300, 600, 1_200, 1_500].iter().map(|s| s * S).collect();
        let n: Vec<Option<i64>> = (0..t.len()).map(|i| from_spacing(&t, i, L)).collect();
        // First: nothing before it. Second: one predecessor, its own gap. Then the gap
        // before the predecessor: 300, 300 (the 600 s gap is measured against 300 s: bridged
        // as one missed scrape), then 600 for the sample after it.
        assert_eq!(
            n,
            vec![
                None,
                Some(300 * S),
                Some(300 * S),
                Some(300 * S),
                Some(600 * S)
            ]
        );
        // A predecessor older than L is none; one just within L counts.
        let t = [0, L + 1, L + 2];
        assert_eq!(from_spacing(&t, 1, L), None);
        assert_eq!(
            from_spacing(&t, 2, L),
            Some(1),
            "0 is L + 2 back: only one predecessor"
        );
        assert_eq!(assign(&t, &[(L, 7)], L), vec![None, Some(7), Some(7)]);
    }
}
