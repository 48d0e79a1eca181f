//! Sets of time intervals, for coverage: when a pod (or any pod of a group) was observed.
//!
//! Coverage is a union, not a sum: two containers observed at the same time are one observed
//! second of the pod. A union re-aggregates exactly from hourly pieces, which a fraction would
//! not, so rollups keep the set and statements measure it at the end.

use serde::{Deserialize, Serialize};

/// A finite union of intervals, kept sorted, disjoint and non-touching. Each `(a, b)` has
/// `a < b` and stands for the time between `a` and `b` in nanoseconds; whether the ends are
/// open or closed changes no measure, so the set treats them as `[a, b)`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IntervalSet {
    spans: Vec<(i64, i64)>,
}

impl IntervalSet {
    pub fn new() -> IntervalSet {
        IntervalSet::default()
    }

    /// The set's intervals, sorted and disjoint.
    pub fn spans(&self) -> &[(i64, i64)] {
        &self.spans
    }

    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    /// Adds `(a, b)`; empty intervals are ignored.
    pub fn insert(&mut self, a: i64, b: i64) {
        if a >= b {
            return;
        }
        // Appending in time order is the common case (samples arrive sorted): O(1).
        if let Some(last) = self.spans.last_mut() {
            if a >= last.0 {
                if a <= last.1 {
                    last.1 = last.1.max(b);
                } else {
                    self.spans.push((a, b));
                }
                return;
            }
        } else {
            self.spans.push((a, b));
            return;
        }
        // Out of order: find the first span that ends at or after `a` and merge what overlaps.
        let i = self.spans.partition_point(|s| s.1 < a);
        let mut j = i;
        let (mut lo, mut hi) = (a, b);
        while j < self.spans.len() && self.spans[j].0 <= hi {
            lo = lo.min(self.spans[j].0);
            hi = hi.max(self.spans[j].1);
            j += 1;
        }
        self.spans.splice(i..j, [(lo, hi)]);
    }

    /// Adds every interval of `other`.
    pub fn union_with(&mut self, other: &IntervalSet) {
        for &(a, b) in &other.spans {
            self.insert(a, b);
        }
    }

    /// Total length in nanoseconds.
    pub fn measure(&self) -> u128 {
        self.spans.iter().map(|&(a, b)| (b - a) as u128).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn union_merges_overlapping_and_touching_spans_in_any_order() {
        let mut s = IntervalSet::new();
        s.insert(10, 20);
        s.insert(30, 40);
        s.insert(0, 5);
        s.insert(20, 25); // touches (10, 20)
        s.insert(5, 5); // empty: ignored
        assert_eq!(s.spans(), &[(0, 5), (10, 25), (30, 40)]);
        s.insert(3, 35); // swallows everything but the tail
        assert_eq!(s.spans(), &[(0, 40)]);
        assert_eq!(s.measure(), 40);
    }
}
