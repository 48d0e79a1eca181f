//! The writer: batches lines (≤ 5 000 lines or ≤ 1 s), writes them to InfluxDB, and keeps
//! whatever InfluxDB cannot take in the on-disk spool, retried in order with backoff and
//! jitter. Sample timestamps are explicit, so a batch written twice is stored once.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

use super::metrics::Metrics;
use super::spool::Spool;
use crate::influx::{InfluxClient, InfluxError};
use crate::telemetry::error_chain;

/// Most lines in one `/write` (InfluxDB's advice: 5 000).
pub const BATCH_LINES: usize = 5_000;
/// Longest a line waits before its batch is sent.
pub const FLUSH_INTERVAL: Duration = Duration::from_secs(1);
const MIN_BACKOFF: Duration = Duration::from_millis(500);
const MAX_BACKOFF: Duration = Duration::from_secs(30);

#[derive(Debug, Clone)]
pub struct WriterConfig {
    pub spool_dir: PathBuf,
    pub spool_max_bytes: u64,
}

/// Hands lines to the writer task.
#[derive(Clone)]
pub struct WriterHandle {
    tx: mpsc::Sender<String>,
}

impl WriterHandle {
    /// Queues newline-terminated lines. Waits when the writer is behind (back-pressure), so
    /// memory stays bounded.
    pub async fn send(&self, lines: String) {
        if !lines.is_empty() && self.tx.send(lines).await.is_err() {
            tracing::error!("the writer has stopped; lines could not be queued");
        }
    }
}

pub struct Writer {
    influx: InfluxClient,
    spool: Spool,
    metrics: Arc<Metrics>,
    pending: String,
    pending_lines: usize,
    backoff: Duration,
    retry_at: Option<Instant>,
}

/// Starts the writer task. Dropping every handle flushes what is queued and ends the task;
/// await the returned join handle to know it is done.
pub fn spawn(
    influx: InfluxClient,
    config: &WriterConfig,
    metrics: Arc<Metrics>,
) -> std::io::Result<(WriterHandle, tokio::task::JoinHandle<()>)> {
    let spool = Spool::open(&config.spool_dir, config.spool_max_bytes)?;
    if !spool.is_empty() {
        tracing::info!(batches = spool.len(), bytes = spool.bytes(), dir = %spool.dir().display(),
            "replaying batches spooled by an earlier run");
    }
    metrics.spool(spool.len(), spool.bytes());
    // A few nodes' worth of lines: when InfluxDB is slower than scraping, the collector waits
    // here instead of holding rounds of lines in memory.
    let (tx, rx) = mpsc::channel(16);
    let writer = Writer {
        influx,
        spool,
        metrics,
        pending: String::new(),
        pending_lines: 0,
        backoff: MIN_BACKOFF,
        // Replay an earlier run's spool at once.
        retry_at: Some(Instant::now()),
    };
    Ok((
        WriterHandle { tx },
        tokio::spawn(writer.run_until_stopped(rx)),
    ))
}

impl Writer {
    async fn run_until_stopped(mut self, mut rx: mpsc::Receiver<String>) {
        let mut tick = tokio::time::interval(FLUSH_INTERVAL / 4);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut oldest_pending = Instant::now();
        loop {
            tokio::select! {
                msg = rx.recv() => match msg {
                    Some(lines) => {
                        if self.pending.is_empty() {
                            oldest_pending = Instant::now();
                        }
                        self.pending_lines += lines.bytes().filter(|b| *b == b'\n').count();
                        self.pending.push_str(&lines);
                        if self.pending_lines >= BATCH_LINES {
                            self.flush().await;
                        }
                    }
                    None => break,
                },
                _ = tick.tick() => {
                    if !self.pending.is_empty() && oldest_pending.elapsed() >= FLUSH_INTERVAL {
                        self.flush().await;
                    }
                    if self.retry_at.is_some_and(|at| Instant::now() >= at) {
                        self.drain_spool().await;
                    }
                }
            }
        }
        self.flush().await;
        self.drain_spool().await;
        if !self.spool.is_empty() {
            tracing::warn!(batches = self.spool.len(), dir = %self.spool.dir().display(),
                "InfluxDB did not take every batch; they stay in the spool for the next run");
        }
    }

    /// Sends the pending batch, or spools it behind older batches so order is kept.
    async fn flush(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let batch = std::mem::take(&mut self.pending);
        let lines = std::mem::take(&mut self.pending_lines);
        if self.spool.is_empty() {
            match self.influx.write(batch.clone()).await {
                Ok(()) => return self.metrics.written(lines),
                Err(e) => {
                    if !self.keep_after(&e, lines) {
                        return;
                    }
                    self.schedule_retry();
                }
            }
        }
        self.spool_batch(&batch);
    }

    /// Whether a failed batch is worth keeping; logs and counts the failure either way.
    fn keep_after(&self, e: &InfluxError, lines: usize) -> bool {
        if let InfluxError::Rejected(reason) = e {
            // A 400 will fail the same way every time; in a partial write InfluxDB has kept
            // the valid points.
            let rejected = rejected_points(reason, lines);
            tracing::error!(lines, rejected, %reason, "InfluxDB rejected points");
            self.metrics.rejected(rejected);
            return false;
        }
        tracing::warn!(error = %error_chain(e), lines, "write to InfluxDB failed; spooling");
        self.metrics.write_failed();
        true
    }

    fn spool_batch(&mut self, batch: &str) {
        match self.spool.push(batch) {
            Ok(dropped) => {
                for d in dropped {
                    tracing::error!(lines = d.lines, "spool full: dropped its oldest batch");
                    self.metrics.dropped(d.lines);
                }
            }
            Err(e) => {
                let lines = batch.lines().count();
                tracing::error!(error = %e, lines, dir = %self.spool.dir().display(),
                    "cannot write to the spool; batch lost");
                self.metrics.dropped(lines);
            }
        }
        self.metrics.spool(self.spool.len(), self.spool.bytes());
    }

    /// Writes spooled batches, oldest first, until one fails.
    async fn drain_spool(&mut self) {
        self.retry_at = None;
        loop {
            let (_, batch) = match self.spool.oldest() {
                Ok(Some(b)) => b,
                Ok(None) => break,
                Err(e) => {
                    tracing::error!(error = %e, "cannot read the spool");
                    self.schedule_retry();
                    break;
                }
            };
            let lines = batch.lines().count();
            match self.influx.write(batch).await {
                Ok(()) => self.metrics.written(lines),
                Err(e) if self.keep_after(&e, lines) => {
                    self.schedule_retry();
                    break;
                }
                Err(_) => {}
            }
            if let Err(e) = self.spool.pop_oldest() {
                tracing::error!(error = %e, "cannot remove a written batch from the spool");
                self.schedule_retry();
                break;
            }
            self.backoff = MIN_BACKOFF;
        }
        self.metrics.spool(self.spool.len(), self.spool.bytes());
    }

    /// Exponential backoff with jitter (so several collectors do not retry in step).
    fn schedule_retry(&mut self) {
        let jitter = jitter_fraction() * self.backoff.as_secs_f64() / 2.0;
        self.retry_at = Some(Instant::now() + self.backoff + Duration::from_secs_f64(jitter));
        self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
    }
}

/// How many points a 400 from InfluxDB refused: one per line it could not parse plus its
/// `dropped=N`; the whole batch when it says neither (nothing was written).
fn rejected_points(reason: &str, lines: usize) -> usize {
    let unparsable = reason.matches("unable to parse '").count();
    let dropped: usize = reason
        .split("dropped=")
        .skip(1)
        .filter_map(|rest| {
            let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
            digits.parse::<usize>().ok()
        })
        .sum();
    if reason.contains("partial write") {
        (unparsable + dropped).min(lines)
    } else {
        lines
    }
}

/// A number in `[0, 1)` that differs between processes and calls; no crate needed for jitter.
fn jitter_fraction() -> f64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(Instant::now().elapsed().as_nanos());
    (h.finish() >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_partial_write_counts_only_the_refused_points() {
        let parse =
            "{\"error\":\"partial write: unable to parse 'x y': invalid field format dropped=0\"}";
        assert_eq!(rejected_points(parse, 13), 1);
        let conflict = "partial write: field type conflict: input field \"value\" on measurement \"m\" is type float, already exists as type integer dropped=2";
        assert_eq!(rejected_points(conflict, 10), 2);
        assert_eq!(rejected_points("field type conflict", 10), 10);
    }
}
