//! Metering: the billing math ([`crate::billing`]) fed from InfluxDB.
//!
//! The one aggregation engine behind `POST /api/billing`, the dashboard's billing page,
//! `kubemeter export` and the rollup job. Usage is metered into rows per pod and period
//! ([`rows`]): minutes by the collector as it scrapes (or by the rollup job from raw samples),
//! then ten minutes, hours, days and weeks by the rollup job, each marked complete
//! ([`markers`]). A statement over any window reads the longest complete periods that fit and,
//! where an edge falls inside a minute, the slices of that minute taken inside the window
//! ([`plan`]) — a few rows per pod whatever the window, never raw samples. What is not metered
//! (yet) is a gap, and the statement says up to which instant it is complete.
//!
//! Raw samples ([`raw`]) remain the truth that rows are computed from and checked against:
//! the same samples give the same integers either way.

pub mod capacity;
pub mod markers;
pub mod period;
pub mod plan;
pub mod raw;
pub mod rows;
pub mod scope;
pub mod series;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use futures::{StreamExt, TryStreamExt};

use crate::billing::samples::NS_PER_HOUR;
use crate::billing::{
    attach_capacity, build_statement, usage_from_raw, Allocatable, GroupBy, Modes, PodIdentity,
    PodUsage, PriceBook, Statement, Usage, Window,
};
use crate::influx::client::{InfluxClient, InfluxError};
use crate::influx::ql::Cond;
use crate::users::Scope;

use self::markers::Marks;
use self::period::Period;
use self::plan::{Complete, Piece};
use self::rows::{Kind, NodeRow, UsageRow};

/// The look-back `L` of raw reads (see [`raw`]): an hour, the same for every reader, so that
/// quantities depend on the data only. It is far beyond the gap rule's 2.5 intervals of any
/// usual collection (15 s to 5 min); a predecessor older than it is no predecessor.
pub const LOOKBACK_NS: i64 = NS_PER_HOUR;

/// Reads of a statement before it is read from raw samples, when the rollup job keeps
/// rewriting periods under it.
const REREADS: usize = 2;

/// Statements sent to InfluxDB in one request, and requests in flight at once.
const STATEMENTS_PER_REQUEST: usize = 8;
const PARALLEL_REQUESTS: usize = 3;

/// The coarse periods whose markers are read over the whole window; minutes are looked up only
/// where these leave gaps.
const COARSE: [Period; 4] = [Period::Week, Period::Day, Period::Hour, Period::TenMinutes];

/// Which memory gauge is billed (working set by default, `usage` configurable).
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
    /// The namespaces the caller may see; pods elsewhere are not counted.
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

/// One read of metered rows: a statement and how to use its answer.
#[derive(Debug, Clone)]
struct Read {
    statement: String,
    period: Period,
    kind: Kind,
    /// Only what was taken in this window counts (part of a minute); whole periods count whole.
    window: Window,
    /// The price segment it belongs to.
    segment: Window,
    /// Pods' rows folded into their namespace, to add up with namespace rows.
    fold_namespaces: bool,
}

impl Metering {
    /// What rows depend on besides the samples: the memory gauge. Markers carry it, so a
    /// reader never takes rows computed for another gauge. (The gap rule's interval is the
    /// data's own, so it is no part of it.)
    pub fn basis(&self) -> String {
        self.memory.as_str().to_string()
    }

    /// The look-back `L` of raw reads.
    pub fn lookback_ns(&self) -> i64 {
        LOOKBACK_NS
    }

    /// The statement for `q`: same numbers whoever asks, from metered rows.
    pub async fn statement(
        &self,
        q: &StatementQuery,
        progress: &dyn Progress,
    ) -> Result<Statement, MeteringError> {
        let mut rereads = 0;
        loop {
            let (st, seen) = self.read_metered(q, progress).await?;
            if self.markers(q.window).await? == seen {
                return Ok(st);
            }
            rereads += 1;
            tracing::info!(
                rereads,
                "metered rows were rewritten while a statement read them; reading it again"
            );
            if rereads >= REREADS {
                return self.statement_from_raw(q, progress).await;
            }
        }
    }

    /// The statement for `q` from raw samples only (slow; what metered rows must agree with).
    pub async fn statement_from_raw(
        &self,
        q: &StatementQuery,
        progress: &dyn Progress,
    ) -> Result<Statement, MeteringError> {
        let Some(conds) = scope::conditions(&q.scope) else {
            return Ok(self.build(q, HashMap::new(), BTreeMap::new(), None));
        };
        let segments = self.segments(q.window);
        let with_capacity = with_capacity(q);
        let mut by_segment = HashMap::new();
        let mut allocatable = BTreeMap::new();
        let total = segments
            .iter()
            .map(|s| plan::hours(*s).len() as u64)
            .sum::<u64>();
        let mut steps = Steps::new(progress, total);
        for seg in &segments {
            let mut acc = UsageByPod::default();
            for hour in plan::hours(*seg) {
                acc.add(self.raw_chunk(hour, &conds).await?);
                steps.tick();
            }
            by_segment.insert(*seg, visible(acc.finish(), &q.scope));
            if with_capacity {
                let nodes = capacity::node_allocatable(self, *seg).await?;
                allocatable.insert(*seg, nodes);
            }
        }
        Ok(self.build(q, by_segment, allocatable, None))
    }

    fn segments(&self, w: Window) -> Vec<Window> {
        self.prices
            .as_deref()
            .map_or_else(|| vec![w], |b| b.segments(w))
    }

    fn build(
        &self,
        q: &StatementQuery,
        mut by_segment: HashMap<Window, Vec<PodUsage>>,
        allocatable: BTreeMap<Window, Allocatable>,
        complete_to: Option<i64>,
    ) -> Statement {
        let prices = self.prices.as_deref();
        let mut st = build_statement(q.window, &q.by, q.modes, prices, |seg| {
            by_segment.remove(&seg).unwrap_or_default()
        });
        if with_capacity(q) {
            attach_capacity(&mut st, prices, &allocatable);
        }
        st.complete_to = complete_to;
        st
    }

    /// Markers of every cluster over `w`: the coarse periods over all of it, minutes where
    /// those leave gaps.
    async fn markers(&self, w: Window) -> Result<BTreeMap<Period, Marks>, InfluxError> {
        let basis = self.basis();
        let statements: Vec<String> = COARSE
            .iter()
            .map(|p| markers::select(*p, w, &basis))
            .collect();
        let answers = self.influx.query_each_ns(&statements).await?;
        let mut marks: BTreeMap<Period, Marks> = COARSE
            .iter()
            .zip(&answers)
            .map(|(p, a)| (*p, Marks::decode(a)))
            .collect();
        let gaps = self.uncovered(w, &marks);
        if let (Some(first), Some(last)) = (gaps.first(), gaps.last()) {
            // From the start of the minute the first gap begins in: a window edge inside a
            // minute reads part of it.
            let span = Window {
                from: Period::Minute.floor(first.from),
                to: last.to,
            };
            let answer = self
                .influx
                .query_each_ns(&[markers::select(Period::Minute, span, &basis)])
                .await?;
            marks.insert(Period::Minute, Marks::decode(&answer[0]));
        }
        Ok(marks)
    }

    /// The parts of `w` that no cluster covers with complete coarse periods.
    fn uncovered(&self, w: Window, marks: &BTreeMap<Period, Marks>) -> Vec<Window> {
        let clusters = clusters(marks);
        if clusters.is_empty() {
            return vec![w];
        }
        let mut gaps: Vec<Window> = clusters
            .iter()
            .flat_map(|c| plan::uncovered(w, &complete(marks, c), &COARSE))
            .collect();
        gaps.sort();
        gaps
    }

    /// The statement for `q` from metered rows, and the markers it was planned with.
    async fn read_metered(
        &self,
        q: &StatementQuery,
        progress: &dyn Progress,
    ) -> Result<(Statement, BTreeMap<Period, Marks>), MeteringError> {
        let marks = self.markers(q.window).await?;
        if scope::conditions(&q.scope).is_none() {
            // An empty scope sees nothing: no rows are read at all.
            let st = self.build(q, HashMap::new(), BTreeMap::new(), None);
            return Ok((st, marks));
        }
        let segments = self.segments(q.window);
        let namespace_rows = q.by == GroupBy::Namespace;
        let mut reads = Vec::new();
        let mut complete_to: Option<i64> = None;
        for cluster in clusters(&marks) {
            let done = complete(&marks, &cluster);
            let by_job = marks
                .get(&Period::Minute)
                .map(|m| m.by_job(&cluster))
                .unwrap_or_default();
            // Up to where this cluster is metered: the start of a gap that reaches the end.
            if let Some(Piece::Missing(gap)) = plan::pieces(q.window, &done).last() {
                complete_to = Some(complete_to.map_or(gap.from, |c: i64| c.min(gap.from)));
            }
            for seg in &segments {
                let pieces = plan::pieces(*seg, &done);
                let how = ReadsOf {
                    cluster: &cluster,
                    segment: *seg,
                    by_namespace: namespace_rows,
                    nodes: with_capacity(q),
                    job_minutes: &by_job,
                };
                reads.extend(how.reads(&pieces));
            }
        }
        if clusters(&marks).is_empty() {
            complete_to = Some(q.window.from);
        }
        let mut steps = Steps::new(progress, reads.len() as u64);
        let (usage, nodes) = self.run_reads(&reads, &mut steps).await?;
        let mut by_segment = HashMap::new();
        for (seg, rows) in usage {
            by_segment.insert(seg, visible(rows.finish(), &q.scope));
        }
        let st = self.build(q, by_segment, nodes, complete_to);
        Ok((st, marks))
    }

    /// Runs the reads, a few requests at a time, and adds their rows up per price segment.
    async fn run_reads(
        &self,
        reads: &[Read],
        steps: &mut Steps<'_>,
    ) -> Result<(BTreeMap<Window, UsageByPod>, BTreeMap<Window, Allocatable>), InfluxError> {
        let mut usage: BTreeMap<Window, UsageByPod> = BTreeMap::new();
        let mut nodes: BTreeMap<Window, Allocatable> = BTreeMap::new();
        let mut answers = futures::stream::iter(reads.chunks(STATEMENTS_PER_REQUEST))
            .map(|chunk| async move {
                let statements: Vec<String> = chunk.iter().map(|r| r.statement.clone()).collect();
                let answers = self.influx.query_each_ns(&statements).await?;
                Ok::<_, InfluxError>(chunk.iter().zip(answers).collect::<Vec<_>>())
            })
            .buffered(PARALLEL_REQUESTS);
        while let Some(part) = answers.try_next().await? {
            for (read, answer) in part {
                match read.kind {
                    Kind::Node => {
                        let acc = nodes.entry(read.segment).or_default();
                        for (_, row) in rows::decode_nodes(read.period, &answer) {
                            add_node(acc, &row, read.window);
                        }
                    }
                    Kind::Pod | Kind::Namespace => {
                        let acc = usage.entry(read.segment).or_default();
                        let rows = rows::decode_usage(read.period, &answer);
                        let rows = rows.into_iter().map(|(_, r)| r);
                        acc.add_rows(rows, read.window, read.fold_namespaces);
                    }
                }
                steps.tick();
            }
        }
        Ok((usage, nodes))
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

/// Node capacity is cluster-wide: only for statements by node of callers who see every
/// namespace.
fn with_capacity(q: &StatementQuery) -> bool {
    q.by == GroupBy::Node && q.scope == Scope::All
}

/// The clusters with any marker in any period.
fn clusters(marks: &BTreeMap<Period, Marks>) -> Vec<String> {
    let mut out: Vec<String> = marks.values().flat_map(|m| m.clusters().cloned()).collect();
    out.sort();
    out.dedup();
    out
}

/// The complete periods of `cluster`.
fn complete(marks: &BTreeMap<Period, Marks>, cluster: &str) -> Complete {
    Complete(
        marks
            .iter()
            .map(|(p, m)| (*p, m.complete(cluster)))
            .collect(),
    )
}

/// How a segment's pieces are read.
struct ReadsOf<'a> {
    cluster: &'a str,
    segment: Window,
    /// Namespace rows for whole periods of ten minutes and more (a statement by namespace).
    by_namespace: bool,
    /// Node rows too (capacity).
    nodes: bool,
    /// Minutes the job recomputed: their rows are the job's.
    job_minutes: &'a std::collections::BTreeSet<i64>,
}

impl ReadsOf<'_> {
    fn reads(&self, pieces: &[Piece]) -> Vec<Read> {
        let mut out = Vec::new();
        for piece in pieces {
            match *piece {
                Piece::Whole(Period::Minute, run) => {
                    for (writers, w) in self.minute_runs(run) {
                        self.push(&mut out, Period::Minute, w, w, writers);
                    }
                }
                Piece::Whole(p, w) => self.push(&mut out, p, w, w, rows::Writers::Any),
                Piece::PartOfMinute(w) => {
                    let minute = Period::Minute.floor(w.from);
                    let writers = self.writers_of(minute);
                    self.push(
                        &mut out,
                        Period::Minute,
                        Period::Minute.window(minute),
                        w,
                        writers,
                    );
                }
                Piece::Missing(_) => {}
            }
        }
        out
    }

    fn writers_of(&self, minute: i64) -> rows::Writers {
        if self.job_minutes.contains(&minute) {
            rows::Writers::Job
        } else {
            rows::Writers::Collector
        }
    }

    /// A run of whole minutes cut where the writer whose rows count changes.
    fn minute_runs(&self, run: Window) -> Vec<(rows::Writers, Window)> {
        let mut out: Vec<(rows::Writers, Window)> = Vec::new();
        for start in Period::Minute.starts_within(run) {
            let writers = self.writers_of(start);
            let w = Period::Minute.window(start);
            match out.last_mut() {
                Some((last, run)) if *last == writers && run.to == w.from => run.to = w.to,
                _ => out.push((writers, w)),
            }
        }
        out
    }

    /// Reads the rows of `period` starting in `rows_window`, counting what was taken in
    /// `window`.
    fn push(
        &self,
        out: &mut Vec<Read>,
        period: Period,
        rows_window: Window,
        window: Window,
        writers: rows::Writers,
    ) {
        let kind = if self.by_namespace && period != Period::Minute {
            Kind::Namespace
        } else {
            Kind::Pod
        };
        let mut kinds = vec![kind];
        if self.nodes {
            kinds.push(Kind::Node);
        }
        for kind in kinds {
            out.push(Read {
                statement: rows::select_from(period, rows_window, self.cluster, kind, writers),
                period,
                kind,
                window,
                segment: self.segment,
                fold_namespaces: self.by_namespace && kind == Kind::Pod,
            });
        }
    }
}

fn add_node(acc: &mut Allocatable, row: &NodeRow, w: Window) {
    let (cpu, memory) = row.in_window(w);
    let e = acc.entry(row.node.clone()).or_default();
    e.0 += cpu;
    e.1 += memory;
}

/// Pods outside `scope` dropped (the rows hold every namespace of a cluster; this is where a
/// caller's scope is applied).
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
            self.add_one(p.identity, &p.usage);
        }
    }

    fn add_one(&mut self, identity: PodIdentity, usage: &Usage) {
        match self.0.get_mut(&identity) {
            Some(u) => u.merge(usage),
            None => {
                self.0.insert(identity, usage.clone());
            }
        }
    }

    /// Adds rows' usage in `w`; `by_namespace` folds pods into their namespace (and GPU
    /// model), as namespace rows are.
    fn add_rows(&mut self, rows: impl Iterator<Item = UsageRow>, w: Window, by_namespace: bool) {
        for row in rows {
            let usage = row.usage_in(w);
            if usage.is_empty() {
                continue;
            }
            let identity = if by_namespace {
                PodIdentity {
                    namespace: row.identity.namespace,
                    gpu_model: row.identity.gpu_model,
                    ..PodIdentity::default()
                }
            } else {
                row.identity
            };
            self.add_one(identity, &usage);
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
