//! Metering: the billing math ([`crate::billing`]) fed from InfluxDB.
//!
//! The one aggregation engine behind `POST /api/billing`, the dashboard's billing page,
//! `kubemeter export` and the rollup job: for a window it reads the billing rollups of whole
//! weeks, days and hours where they are complete ([`rollups`], [`plan`]) and raw samples for
//! everything else, an hour at a time ([`raw`]), restricted to the namespaces a caller may see
//! ([`scope`]), and hands them to the pure functions in `billing`. Rollups and raw samples
//! give the same integers (tested on real InfluxDB data), so which one a piece comes from
//! only changes speed.

pub mod capacity;
pub mod plan;
pub mod raw;
pub mod rollups;
pub mod scope;
pub mod series;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use crate::billing::samples::{hour_ceil, hour_floor, NS_PER_HOUR};
use crate::billing::{
    attach_capacity, build_statement, usage_from_raw, GroupBy, Modes, PodIdentity, PodUsage,
    PriceBook, Statement, Usage, Window,
};
use crate::influx::client::{InfluxClient, InfluxError};
use crate::influx::ql::Cond;
use crate::users::Scope;

use self::plan::{Marked, Piece};
use self::rollups::Period;

/// The look-back `L` of raw reads (see [`raw`]): an hour, the same for every reader, so that
/// quantities depend on the data only. It is far beyond the gap rule's 2.5 intervals of any
/// usual collection (15 s to 5 min); a predecessor older than it is no predecessor.
pub const LOOKBACK_NS: i64 = NS_PER_HOUR;

/// Reads of a statement from rollups before it is read from raw samples, when the rollup job
/// keeps rewriting periods under it.
const REREADS: usize = 2;

/// Pieces of a statement read at once: InfluxDB answers a few queries in parallel faster than
/// one after the other, and raw hours stay few in memory.
const PARALLEL_PIECES: usize = 3;

/// Which memory gauge is billed (DESIGN §5: working set by default, `usage` configurable).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MemorySource {
    #[default]
    WorkingSet,
    Usage,
}

impl MemorySource {
    pub fn as_str(self) -> &'static str {
        match self {
            MemorySource::WorkingSet => "working_set",
            MemorySource::Usage => "usage",
        }
    }
}

/// Everything the engine needs, built once at start (cheap to clone).
#[derive(Clone)]
pub struct Metering {
    pub influx: InfluxClient,
    pub prices: Option<Arc<PriceBook>>,
    pub memory: MemorySource,
}

/// What a caller asks for.
#[derive(Debug, Clone)]
pub struct StatementQuery {
    pub window: Window,
    pub by: GroupBy,
    pub modes: Modes,
    /// The namespaces the caller may see; pods elsewhere are not read at all.
    pub scope: Scope,
}

/// Progress of a long statement (export, backfill): `done` of `total` steps.
pub trait Progress: Send + Sync {
    fn step(&self, done: u64, total: u64);
}

/// No progress shown (API, dashboard).
pub struct Quiet;

impl Progress for Quiet {
    fn step(&self, _done: u64, _total: u64) {}
}

#[derive(Debug, thiserror::Error)]
pub enum MeteringError {
    #[error(transparent)]
    Influx(#[from] InfluxError),
}

impl Metering {
    /// What rollups depend on besides the samples: the memory gauge, e.g. `working_set`.
    /// Markers carry it, so a reader never takes rollups computed under other settings. (The
    /// gap rule's interval is the data's own, so it is no part of it; markers of rollups made
    /// when it was the reader's, `working_set/15s`, match no reader any more.)
    pub fn basis(&self) -> String {
        self.memory.as_str().to_string()
    }

    /// The look-back `L` of raw reads.
    pub fn lookback_ns(&self) -> i64 {
        LOOKBACK_NS
    }

    /// The statement for `q`: same numbers whoever asks. Whole weeks, days and hours come
    /// from the billing rollups where they are complete, everything else from raw samples.
    pub async fn statement(
        &self,
        q: &StatementQuery,
        progress: &dyn Progress,
    ) -> Result<Statement, MeteringError> {
        self.statement_with(q, progress, Source::Rollups).await
    }

    /// The statement for `q` from raw samples only (slower; what rollups must agree with).
    pub async fn statement_from_raw(
        &self,
        q: &StatementQuery,
        progress: &dyn Progress,
    ) -> Result<Statement, MeteringError> {
        self.statement_with(q, progress, Source::Raw).await
    }

    /// Reads `q` from `source`; when the rollup job rewrote one of the periods it read in the
    /// meantime (its marker changed), reads it again, and after [`REREADS`] tries from raw
    /// samples, so a statement never mixes a half-rewritten period in.
    async fn statement_with(
        &self,
        q: &StatementQuery,
        progress: &dyn Progress,
        mut source: Source,
    ) -> Result<Statement, MeteringError> {
        let mut rereads = 0;
        loop {
            let (st, seen) = self.read(q, progress, source).await?;
            if source == Source::Raw || self.unchanged(&seen).await? {
                return Ok(st);
            }
            rereads += 1;
            tracing::info!(
                rereads,
                "billing rollups were rewritten while a statement read them; reading it again"
            );
            if rereads >= REREADS {
                source = Source::Raw;
            }
        }
    }

    /// The statement for `q`, and the markers each price segment was planned with.
    async fn read(
        &self,
        q: &StatementQuery,
        progress: &dyn Progress,
        source: Source,
    ) -> Result<(Statement, Vec<(Window, Marked)>), MeteringError> {
        let prices = self.prices.as_deref();
        let segments = prices.map_or_else(|| vec![q.window], |b| b.segments(q.window));
        let mut by_segment: HashMap<Window, Vec<PodUsage>> = HashMap::new();
        let mut seen = Vec::with_capacity(segments.len());
        // Node capacity is cluster-wide: only for callers who see every namespace.
        let with_capacity = q.by == GroupBy::Node && q.scope == Scope::All;
        let mut allocatable = BTreeMap::new();
        // An empty scope sees nothing: no query at all, an empty statement.
        if let Some(conds) = scope::conditions(&q.scope) {
            let mut plans = Vec::with_capacity(segments.len());
            for seg in &segments {
                let marked = self.markers(*seg, source).await?;
                plans.push((*seg, plan::pieces(*seg, &marked)));
                seen.push((*seg, marked));
            }
            let mut total = plans.iter().map(|(_, p)| p.len() as u64).sum();
            if with_capacity {
                total += segments.len() as u64;
            }
            let mut steps = Steps::new(progress, total);
            for (seg, pieces) in plans {
                let usage = self.usage(&pieces, &conds, &mut steps).await?;
                by_segment.insert(seg, visible(usage, &q.scope));
                if with_capacity {
                    allocatable.insert(seg, capacity::allocatable_of(self, &pieces).await?);
                    steps.tick();
                }
            }
        }
        let mut st = build_statement(q.window, &q.by, q.modes, prices, |seg| {
            by_segment.remove(&seg).unwrap_or_default()
        });
        if with_capacity {
            attach_capacity(&mut st, prices, &allocatable);
        }
        Ok((st, seen))
    }

    /// Whether every segment's markers are still the ones it was read with.
    async fn unchanged(&self, seen: &[(Window, Marked)]) -> Result<bool, InfluxError> {
        for (seg, marked) in seen {
            if self.markers(*seg, Source::Rollups).await? != *marked {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// The markers of the whole periods in `w` (none when reading raw samples only).
    async fn markers(&self, w: Window, source: Source) -> Result<Marked, InfluxError> {
        match (source, Window::new(hour_ceil(w.from), hour_floor(w.to))) {
            (Source::Rollups, Some(whole)) => self.marked(whole).await,
            _ => Ok(Marked::default()),
        }
    }

    /// Starts of the hours, days and weeks in `w` whose rollups are complete.
    pub async fn marked(&self, w: Window) -> Result<Marked, InfluxError> {
        let periods = [Period::Hour, Period::Day, Period::Week];
        let statements: Vec<String> = periods
            .iter()
            .map(|p| rollups::select_markers(*p, w, &self.basis()))
            .collect();
        let answers = self.influx.query_each_ns(&statements).await?;
        let mut marked = Marked::default();
        for (period, answer) in periods.iter().zip(&answers) {
            for (start, written) in rollups::decode_markers(answer) {
                marked.insert_written(*period, start, written);
            }
        }
        Ok(marked)
    }

    /// Per-pod usage summed over `pieces`, one read per piece, [`PARALLEL_PIECES`] at once
    /// (raw samples are read an hour at a time, so a month of them never sits in memory).
    async fn usage(
        &self,
        pieces: &[Piece],
        conds: &[Cond],
        steps: &mut Steps<'_>,
    ) -> Result<Vec<PodUsage>, InfluxError> {
        use futures::{StreamExt, TryStreamExt};
        let mut parts = futures::stream::iter(pieces.iter().copied())
            .map(|piece| async move {
                match piece {
                    Piece::Raw(w) => self.raw_chunk(w, conds).await,
                    Piece::Rollups(period, w) => self.rollups(period, w, conds).await,
                }
            })
            .buffered(PARALLEL_PIECES);
        let mut acc = UsageByPod::default();
        while let Some(part) = parts.try_next().await? {
            acc.add(part);
            steps.tick();
        }
        Ok(acc.finish())
    }

    /// Per-pod usage from the rollups of `period` starting in `w`.
    pub async fn rollups(
        &self,
        period: Period,
        w: Window,
        conds: &[Cond],
    ) -> Result<Vec<PodUsage>, InfluxError> {
        let answers = self
            .influx
            .query_each_ns(&[rollups::select(period, w, conds)])
            .await?;
        let mut acc = UsageByPod::default();
        for answer in &answers {
            acc.add(
                rollups::decode(answer)
                    .into_iter()
                    .map(|r| PodUsage {
                        identity: r.identity,
                        usage: r.usage,
                    })
                    .collect(),
            );
        }
        Ok(acc.finish())
    }

    /// Per-pod usage of one chunk from raw samples.
    pub async fn raw_chunk(&self, w: Window, conds: &[Cond]) -> Result<Vec<PodUsage>, InfluxError> {
        Ok(usage_from_raw(&self.raw_samples(w, conds).await?, w))
    }

    /// The raw samples of chunk `w` and its look-back, restricted by `conds`.
    pub async fn raw_samples(
        &self,
        w: Window,
        conds: &[Cond],
    ) -> Result<Vec<crate::billing::PodSamples>, InfluxError> {
        let answers = self
            .influx
            .query_each_ns(&raw::tag_key_statements(self.memory))
            .await?;
        let label_keys = raw::label_keys(&answers);
        let q = raw::RawQuery {
            scope: conds,
            memory: self.memory,
            lookback_ns: self.lookback_ns(),
            label_keys: &label_keys,
        };
        raw::read(&self.influx, w, &q).await
    }
}

/// Where whole periods are read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    Rollups,
    Raw,
}

/// Pods outside `scope` dropped (the queries already leave them out; this keeps the promise
/// even if a tag were missing).
fn visible(usage: Vec<PodUsage>, scope: &Scope) -> Vec<PodUsage> {
    usage
        .into_iter()
        .filter(|p| scope.allows(&p.identity.namespace))
        .collect()
}

/// Per-pod usage summed over pieces of a window (exact: integer sums, unions of intervals).
#[derive(Default)]
pub struct UsageByPod(BTreeMap<PodIdentity, Usage>);

impl UsageByPod {
    pub fn add(&mut self, part: Vec<PodUsage>) {
        for p in part {
            match self.0.get_mut(&p.identity) {
                Some(u) => u.merge(&p.usage),
                None => {
                    self.0.insert(p.identity, p.usage);
                }
            }
        }
    }

    pub fn finish(self) -> Vec<PodUsage> {
        self.0
            .into_iter()
            .filter(|(_, u)| !u.is_empty())
            .map(|(identity, usage)| PodUsage { identity, usage })
            .collect()
    }
}

/// Counts finished steps for a [`Progress`].
struct Steps<'a> {
    progress: &'a dyn Progress,
    done: u64,
    total: u64,
}

impl<'a> Steps<'a> {
    fn new(progress: &'a dyn Progress, total: u64) -> Steps<'a> {
        progress.step(0, total);
        Steps {
            progress,
            done: 0,
            total,
        }
    }

    fn tick(&mut self) {
        self.done += 1;
        self.progress.step(self.done, self.total);
    }
}
