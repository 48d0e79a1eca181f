//! The collector's own numbers, in Prometheus' text format (`GET /metrics`).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::Duration;

#[derive(Debug, Default, Clone, Copy)]
struct NodeStat {
    scrapes: u64,
    errors: u64,
    duration_sum: f64,
    last_duration: f64,
}

#[derive(Debug, Default)]
struct Inner {
    nodes: BTreeMap<String, NodeStat>,
    rounds: u64,
    points_encoded: u64,
    points_written: u64,
    points_rejected: u64,
    points_dropped: u64,
    write_errors: u64,
    spool_batches: u64,
    spool_bytes: u64,
}

#[derive(Debug, Default)]
pub struct Metrics(Mutex<Inner>);

impl Metrics {
    fn with<R>(&self, f: impl FnOnce(&mut Inner) -> R) -> R {
        // A panic while holding this lock cannot leave the counters inconsistent enough to
        // matter, so a poisoned lock is used as is.
        let mut guard = self.0.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut guard)
    }

    pub fn scraped(&self, node: &str, took: Duration, ok: bool) {
        self.with(|m| {
            let s = m.nodes.entry(node.to_string()).or_default();
            s.scrapes += 1;
            s.errors += u64::from(!ok);
            s.duration_sum += took.as_secs_f64();
            s.last_duration = took.as_secs_f64();
        });
    }

    pub fn round_done(&self, points: usize) {
        self.with(|m| {
            m.rounds += 1;
            m.points_encoded += points as u64;
        });
    }

    pub fn written(&self, points: usize) {
        self.with(|m| m.points_written += points as u64);
    }

    pub fn rejected(&self, points: usize) {
        self.with(|m| m.points_rejected += points as u64);
    }

    pub fn dropped(&self, points: usize) {
        self.with(|m| m.points_dropped += points as u64);
    }

    pub fn write_failed(&self) {
        self.with(|m| m.write_errors += 1);
    }

    pub fn spool(&self, batches: usize, bytes: u64) {
        self.with(|m| {
            m.spool_batches = batches as u64;
            m.spool_bytes = bytes;
        });
    }

    pub fn points_written(&self) -> u64 {
        self.with(|m| m.points_written)
    }

    pub fn scrape_errors(&self, node: &str) -> u64 {
        self.with(|m| m.nodes.get(node).map_or(0, |s| s.errors))
    }

    pub fn render(&self) -> String {
        self.with(|m| {
            let mut out = String::new();
            let mut family = |name: &str, kind: &str, help: &str| {
                let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            };
            family(
                "kubemeter_scrapes_total",
                "counter",
                "Summary scrapes per node.",
            );
            family(
                "kubemeter_scrape_errors_total",
                "counter",
                "Failed or timed-out summary scrapes per node.",
            );
            family(
                "kubemeter_scrape_duration_seconds_sum",
                "counter",
                "Time spent scraping each node.",
            );
            family(
                "kubemeter_scrape_duration_seconds_last",
                "gauge",
                "Duration of the last scrape of each node.",
            );
            let _ = &mut family;
            for (node, s) in &m.nodes {
                let node = node.replace('\\', "\\\\").replace('"', "\\\"");
                let _ = writeln!(
                    out,
                    "kubemeter_scrapes_total{{node=\"{node}\"}} {}",
                    s.scrapes
                );
                let _ = writeln!(
                    out,
                    "kubemeter_scrape_errors_total{{node=\"{node}\"}} {}",
                    s.errors
                );
                let _ = writeln!(
                    out,
                    "kubemeter_scrape_duration_seconds_sum{{node=\"{node}\"}} {}",
                    s.duration_sum
                );
                let _ = writeln!(
                    out,
                    "kubemeter_scrape_duration_seconds_last{{node=\"{node}\"}} {}",
                    s.last_duration
                );
            }
            let scalars: [(&str, &str, &str, u64); 8] = [
                (
                    "kubemeter_rounds_total",
                    "counter",
                    "Completed scrape rounds.",
                    m.rounds,
                ),
                (
                    "kubemeter_points_encoded_total",
                    "counter",
                    "Points produced from summaries.",
                    m.points_encoded,
                ),
                (
                    "kubemeter_points_written_total",
                    "counter",
                    "Points InfluxDB accepted.",
                    m.points_written,
                ),
                (
                    "kubemeter_points_rejected_total",
                    "counter",
                    "Points InfluxDB refused as malformed (HTTP 400).",
                    m.points_rejected,
                ),
                (
                    "kubemeter_points_dropped_total",
                    "counter",
                    "Points dropped because the spool was full.",
                    m.points_dropped,
                ),
                (
                    "kubemeter_write_errors_total",
                    "counter",
                    "Failed writes to InfluxDB (retried from the spool).",
                    m.write_errors,
                ),
                (
                    "kubemeter_spool_batches",
                    "gauge",
                    "Batches waiting in the on-disk spool.",
                    m.spool_batches,
                ),
                (
                    "kubemeter_spool_bytes",
                    "gauge",
                    "Bytes waiting in the on-disk spool.",
                    m.spool_bytes,
                ),
            ];
            for (name, kind, help, value) in scalars {
                let _ = writeln!(
                    out,
                    "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
                );
            }
            out
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_node_errors_and_totals_are_rendered() {
        let m = Metrics::default();
        m.scraped("node-01", Duration::from_millis(20), true);
        m.scraped("node-02", Duration::from_millis(5000), false);
        m.written(7);
        let text = m.render();
        assert!(
            text.contains("kubemeter_scrape_errors_total{node=\"node-02\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("kubemeter_scrape_errors_total{node=\"node-01\"} 0"),
            "{text}"
        );
        assert!(text.contains("kubemeter_points_written_total 7"), "{text}");
        assert!(
            text.contains("kubemeter_scrape_duration_seconds_last{node=\"node-02\"} 5"),
            "{text}"
        );
    }
}
