#![allow(clippy::unwrap_used)]
//! The billing benchmark (`make bench`), figures measured in one run:
//!
//! * **Upkeep**: what keeps metered rows current for 1 000 pods at 15 s, per hour of data —
//!   the collector's meter over an hour of real rounds (CPU of this process), and the job
//!   making ten-minute periods and the hour from those minutes (this process and InfluxDB) —
//!   as a share of one core. Also what recomputing an hour from raw samples costs (after a
//!   collector restart, or a backfill).
//! * **Statements** for 1 000 pods over windows with edges at arbitrary seconds (31 days ending
//!   "now", 7 days, 1 day), month to date, 366 days and an empty month, p50; and for 10 000
//!   pods month to date by namespace and by pod.
//!
//! Loading a year of raw samples is not feasible here, so the rows a statement reads are
//! written from the real rows of one metered hour (minutes with their slices, ten minutes,
//! the hour; days and weeks as 24 and 168 of its hours): exactly the rows, and as many, as a
//! statement over those windows reads in production.

use std::time::Instant;

use std::collections::BTreeSet;

use kubemeter::billing::samples::{NS_PER_HOUR, NS_PER_SEC};
use kubemeter::billing::{GroupBy, IntervalSet, Modes, Window};
use kubemeter::catalogue::name as m;
use kubemeter::collector::meter::Meter;
use kubemeter::influx::client::InfluxAuth;
use kubemeter::influx::line::{tagset, write_point_with_tagset, Value};
use kubemeter::influx::{InfluxClient, InfluxConfig};
use kubemeter::jobs::rollup;
use kubemeter::metering::markers::{self, Mark};
use kubemeter::metering::period::{Period, NS_PER_DAY};
use kubemeter::metering::plan::{pieces, Complete, Piece};
use kubemeter::metering::rows::{self, Kind, PeriodRows, Slice, UsageRow, JOB_WRITER};
use kubemeter::metering::{MemorySource, Metering, Quiet, StatementQuery};
use kubemeter::users::Scope;

const PODS: usize = 1_000;
const NAMESPACES: usize = 20;
const STEP_S: i64 = 15;
const CLUSTER: &str = "bench";
/// 2026-10-01T00:00:00Z.
const D0: i64 = 1_790_812_800 * NS_PER_SEC;
/// "Now" in the statements: 2026-11-19T13:27:41.5Z, a Thursday afternoon at an odd second.
const NOW: i64 =
    D0 + 49 * NS_PER_DAY + 13 * NS_PER_HOUR + (27 * 60 + 41) * NS_PER_SEC + NS_PER_SEC / 2;

fn p50(mut samples: Vec<f64>) -> f64 {
    samples.sort_by(|a, b| a.total_cmp(b));
    samples[samples.len() / 2]
}

/// Milliseconds of each of `runs` statements (after one warm-up), and the rows of the last.
async fn time_statements(m: &Metering, q: &StatementQuery, runs: usize) -> (Vec<f64>, usize) {
    m.statement(q, &Quiet).await.unwrap();
    let mut ms = Vec::with_capacity(runs);
    let mut rows = 0;
    for _ in 0..runs {
        let start = Instant::now();
        let s = m.statement(q, &Quiet).await.unwrap();
        ms.push(start.elapsed().as_secs_f64() * 1000.0);
        rows = s.rows.len();
    }
    (ms, rows)
}

/// CPU seconds a process has used (user + system), from `/proc/<pid>/stat`.
fn cpu_seconds(pid: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

/// One hour (plus the look-back scrape) of every series billing reads, for `PODS` pods with a
/// container each: CPU counter, uptime and request, working set and request, network
/// counters, ephemeral storage and its request.
async fn load_raw_hour(influx: &InfluxClient, hour: i64) -> usize {
    let mut points = 0;
    for k in -1..(3_600 / STEP_S) {
        let (buf, n) = raw_round(hour, k);
        points += n;
        influx.write(buf).await.unwrap();
    }
    points
}

/// The points of round `k` of the raw hour starting at `hour` (as the collector writes them).
fn raw_round(hour: i64, k: i64) -> (String, usize) {
    let mut points = 0;
    let mut buf = String::new();
    let tags: Vec<(String, String)> = (0..PODS)
        .map(|p| {
            let ns = format!("team-{:02}", p % NAMESPACES);
            let pod = format!("api-{p:04}");
            let uid = format!("uid-{p:04}");
            let node = format!("node-{:03}", p / 20);
            let workload = format!("api-{}", p % 50);
            let mut base = vec![
                ("cluster_name", "bench"),
                ("namespace_name", ns.as_str()),
                ("pod_name", pod.as_str()),
                ("pod_id", uid.as_str()),
                ("nodename", node.as_str()),
                ("workload_kind", "Deployment"),
                ("workload_name", workload.as_str()),
            ];
            let pod_tags = {
                let mut t = base.clone();
                t.push(("type", "pod"));
                tagset(&mut t)
            };
            base.push(("type", "pod_container"));
            base.push(("container_name", "main"));
            (tagset(&mut base), pod_tags)
        })
        .collect();
    let start_s = hour / NS_PER_SEC - 86_400;
    {
        let t = hour + k * STEP_S * NS_PER_SEC;
        let up_s = t / NS_PER_SEC - start_s;
        for (p, (ctags, ptags)) in tags.iter().enumerate() {
            let mc = 50 + (p as i64 % 400);
            let series = [
                (m::CPU_USAGE, ctags, mc * 1_000_000 * up_s),
                (m::UPTIME, ctags, up_s * 1_000),
                (m::CPU_REQUEST, ctags, 500),
                (m::MEMORY_WORKING_SET, ctags, (64 + p as i64 % 512) << 20),
                (m::MEMORY_REQUEST, ctags, 256 << 20),
                (m::NETWORK_RX, ptags, 1_000 * up_s),
                (m::NETWORK_TX, ptags, 500 * up_s),
                (m::EPHEMERAL_STORAGE_USAGE, ptags, 1 << 30),
                (m::EPHEMERAL_STORAGE_REQUEST, ptags, 2 << 30),
            ];
            for (name, tags, v) in series {
                write_point_with_tagset(&mut buf, name, tags, Value::Int(v), t).unwrap();
                points += 1;
            }
        }
    }
    (buf, points)
}

/// The real rows of the metered hour, to copy: one minute (with its slices), one ten
/// minutes, the hour.
struct Templates {
    minute: (i64, Vec<UsageRow>),
    ten: Vec<UsageRow>,
    hour: Vec<UsageRow>,
}

async fn templates(influx: &InfluxClient, hour: i64) -> Templates {
    let read = |period: Period, start: i64| {
        let q = rows::select(period, period.window(start), CLUSTER, Kind::Pod);
        async move {
            let answer = influx.query_each_ns(&[q]).await.unwrap();
            rows::decode_usage(period, &answer[0])
                .into_iter()
                .map(|(_, r)| r)
                .collect::<Vec<_>>()
        }
    };
    let minute = hour + 10 * 60 * NS_PER_SEC;
    Templates {
        minute: (minute, read(Period::Minute, minute).await),
        ten: read(Period::TenMinutes, hour).await,
        hour: read(Period::Hour, hour).await,
    }
}

/// `set` moved by `by` nanoseconds.
fn shifted(set: &IntervalSet, by: i64) -> IntervalSet {
    let mut out = IntervalSet::new();
    for (a, b) in set.spans() {
        out.insert(a + by, b + by);
    }
    out
}

impl Templates {
    /// The rows of the period at `start` for `copies` × the template pods (copy `c` renamed
    /// `-c<c>`, so 10 copies make 10 000 pods).
    fn rows(&self, period: Period, start: i64, copies: usize) -> PeriodRows {
        let base: Vec<UsageRow> = match period {
            Period::Minute => {
                let by = start - self.minute.0;
                self.minute
                    .1
                    .iter()
                    .map(|r| UsageRow {
                        slices: r
                            .slices
                            .iter()
                            .map(|s| Slice {
                                at: s.at + by,
                                usage: kubemeter::billing::Usage {
                                    quantities: s.usage.quantities,
                                    observed: shifted(&s.usage.observed, by),
                                    cpu_source: s.usage.cpu_source,
                                },
                            })
                            .collect(),
                        ..r.clone()
                    })
                    .collect()
            }
            Period::TenMinutes => self.ten.clone(),
            _ => {
                let hours = period.len_ns() / NS_PER_HOUR;
                self.hour
                    .iter()
                    .map(|r| {
                        let mut u = r.usage.clone();
                        for _ in 1..hours {
                            u.quantities += r.usage.quantities;
                        }
                        UsageRow {
                            usage: u,
                            ..r.clone()
                        }
                    })
                    .collect()
            }
        };
        let mut pods = Vec::with_capacity(base.len() * copies);
        for c in 0..copies {
            for r in &base {
                let mut r = r.clone();
                if copies > 1 {
                    r.identity.pod = format!("{}-c{c}", r.identity.pod);
                    r.identity.pod_uid = format!("{}-c{c}", r.identity.pod_uid);
                }
                if period != Period::Minute {
                    let mut seen = IntervalSet::new();
                    seen.insert(start, start + period.len_ns());
                    r.usage.observed = seen;
                }
                pods.push(r);
            }
        }
        PeriodRows {
            namespaces: if period == Period::Minute {
                Vec::new()
            } else {
                rows::namespace_rows(&pods)
            },
            pods,
            nodes: Vec::new(),
        }
    }
}

/// The periods a statement over `w` reads when everything is metered: the longest whole
/// periods that fit, and the minutes its edges fall in.
fn periods_read(w: Window) -> BTreeSet<(Period, i64)> {
    // Every period that could be read is "complete" for planning: those inside `w`, plus the
    // edge minutes.
    let mut all = Complete::default();
    let mut t = w.from;
    while t < w.to {
        let mut took = None;
        for p in Period::LONGEST_FIRST {
            let whole = p.window(p.floor(t));
            if whole.from == t && whole.to <= w.to {
                took = Some((p, whole));
                break;
            }
        }
        match took {
            Some((p, whole)) => {
                all.insert(p, whole.from);
                t = whole.to;
            }
            None => {
                let minute = Period::Minute.floor(t);
                all.insert(Period::Minute, minute);
                t = (minute + Period::Minute.len_ns()).min(w.to);
            }
        }
    }
    let mut out = BTreeSet::new();
    for piece in pieces(w, &all) {
        match piece {
            Piece::Whole(p, run) => out.extend(p.starts_within(run).map(|s| (p, s))),
            Piece::PartOfMinute(part) => {
                out.insert((Period::Minute, Period::Minute.floor(part.from)));
            }
            Piece::Missing(_) => {}
        }
    }
    out
}

/// Writes the rows and markers of `periods` (job rows, as if metered long ago).
async fn write_periods(
    influx: &InfluxClient,
    m: &Metering,
    t: &Templates,
    periods: &BTreeSet<(Period, i64)>,
    copies: usize,
) -> usize {
    let mut written = 0;
    for (period, start) in periods {
        let rows = t.rows(*period, *start, copies);
        let mut buf = String::new();
        rows::encode(&mut buf, *period, *start, CLUSTER, JOB_WRITER, &rows).unwrap();
        let mark = Mark {
            rows: rows.pods.len() as i64,
            shards: 1,
            written: 1,
            provisional: false,
        };
        markers::encode(
            &mut buf,
            *period,
            *start,
            CLUSTER,
            &m.basis(),
            JOB_WRITER,
            mark,
        )
        .unwrap();
        written += rows.pods.len() + rows.namespaces.len();
        influx.write(buf).await.unwrap();
    }
    written
}

fn query(from: i64, to: i64, by: GroupBy) -> StatementQuery {
    StatementQuery {
        window: Window::new(from, to).unwrap(),
        by,
        modes: Modes::default(),
        scope: Scope::All,
    }
}

/// The collector's meter over the raw hour's rounds, as it runs while scraping: seconds of
/// CPU it took (single-threaded: wall time of the calls).
fn meter_an_hour(hour: i64) -> f64 {
    let mut meter = Meter::new(CLUSTER, 0, 1, MemorySource::WorkingSet, NS_PER_HOUR);
    let rounds: Vec<String> = (-1..(3_600 / STEP_S))
        .map(|k| raw_round(hour, k).0)
        .collect();
    let started = Instant::now();
    let mut rows = 0;
    for (k, lines) in rounds.iter().enumerate() {
        meter.feed(lines);
        let now = hour + (k as i64) * STEP_S * NS_PER_SEC + 5 * NS_PER_SEC;
        rows += meter.flush(now, false).lines().count();
    }
    let secs = started.elapsed().as_secs_f64();
    assert!(
        rows > 50 * PODS,
        "the meter metered the hour ({rows} lines)"
    );
    secs
}

struct Timed {
    label: String,
    p50: f64,
    rows: usize,
}

async fn timed(m: &Metering, label: &str, q: StatementQuery, runs: usize) -> Timed {
    let (ms, rows) = time_statements(m, &q, runs).await;
    Timed {
        label: label.to_string(),
        p50: p50(ms),
        rows,
    }
}

fn verdict(ok: bool) -> &'static str {
    if ok {
        "met"
    } else {
        "NOT met"
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    if !std::env::args().any(|a| a == "--bench") {
        println!("billing: a benchmark; run it with `make bench`");
        return Ok(());
    }
    let url = std::env::var("KUBEMETER_BENCH_INFLUX_URL")
        .map_err(|_| anyhow::anyhow!("KUBEMETER_BENCH_INFLUX_URL is not set; run `make bench`"))?;
    let influx_pid = std::env::var("KUBEMETER_BENCH_INFLUX_PID").ok();
    let influx = InfluxClient::new(InfluxConfig {
        url: url.parse()?,
        database: "kubemeter_bench_billing".into(),
        auth: InfluxAuth::None,
        timeout: std::time::Duration::from_secs(600),
    });
    influx.drop_database().await?;
    influx.create_database().await?;
    let m = Metering {
        influx: influx.clone(),
        prices: None,
        memory: MemorySource::WorkingSet,
    };

    // --- Upkeep -------------------------------------------------------------------------
    let raw_hour = D0;
    let started = Instant::now();
    let points = load_raw_hour(&influx, raw_hour).await;
    println!(
        "loaded {points} raw points ({PODS} pods × 1 h at {STEP_S} s, 9 series each) in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let started = Instant::now();
    let report = rollup::roll_up(&m, CLUSTER, Period::Hour.window(raw_hour), &Quiet).await?;
    let recompute_s = started.elapsed().as_secs_f64();
    assert_eq!(report.minutes, 60);
    let meter_s = meter_an_hour(raw_hour);
    // The job's share: make the ten-minute periods and the hour again from the minutes.
    let again: Vec<String> = [Period::TenMinutes, Period::Hour]
        .iter()
        .flat_map(|p| {
            p.starts_within(Period::Hour.window(raw_hour))
                .map(|s| markers::delete(*p, s, CLUSTER))
                .collect::<Vec<_>>()
        })
        .collect();
    influx.query_each_ns(&again).await?;
    let (self_before, influx_before) = (
        cpu_seconds("self"),
        influx_pid.as_deref().and_then(cpu_seconds),
    );
    let started = Instant::now();
    let mut made = rollup::RollupReport::default();
    rollup::cascade(&m, CLUSTER, Period::Hour.window(raw_hour), &mut made).await?;
    let cascade_s = started.elapsed().as_secs_f64();
    assert_eq!(made.made(Period::Hour), 1);
    let job_cpu = match (
        self_before,
        cpu_seconds("self"),
        influx_before,
        influx_pid.as_deref().and_then(cpu_seconds),
    ) {
        (Some(a), Some(b), Some(c), Some(d)) => (b - a) + (d - c),
        _ => cascade_s,
    };
    let upkeep = meter_s + job_cpu;
    // The hour both ways must agree before anything is timed.
    let hour_q = query(raw_hour, raw_hour + NS_PER_HOUR, GroupBy::Pod);
    assert_eq!(
        m.statement(&hour_q, &Quiet).await?,
        m.statement_from_raw(&hour_q, &Quiet).await?
    );
    let started = Instant::now();
    m.statement_from_raw(&hour_q, &Quiet).await?;
    let raw_hour_ms = started.elapsed().as_secs_f64() * 1000.0;

    // --- Statements, 1 000 pods ---------------------------------------------------------
    let t = templates(&influx, raw_hour).await;
    let month_start = D0 + 31 * NS_PER_DAY; // 2026-11-01
    let windows = [
        ("31 days ending now", NOW - 31 * NS_PER_DAY, NOW),
        (
            "7 days, mid-hour edges",
            NOW - 7 * NS_PER_DAY - 1_234 * NS_PER_SEC,
            NOW - 3 * NS_PER_HOUR,
        ),
        (
            "1 day, odd seconds",
            NOW - NS_PER_DAY - 17 * NS_PER_SEC,
            NOW - 611 * NS_PER_SEC,
        ),
        ("month to date", month_start, Period::Hour.floor(NOW)),
        ("366 days ending now", NOW - 366 * NS_PER_DAY, NOW),
    ];
    let mut periods = BTreeSet::new();
    for (_, from, to) in &windows {
        periods.extend(periods_read(Window::new(*from, *to).unwrap()));
    }
    let started = Instant::now();
    let rows_written = write_periods(&influx, &m, &t, &periods, 1).await;
    println!(
        "wrote {rows_written} metered rows ({} periods) in {:.1} s",
        periods.len(),
        started.elapsed().as_secs_f64()
    );
    let mut results = Vec::new();
    for (label, from, to) in &windows {
        for by in [GroupBy::Namespace, GroupBy::Pod] {
            let name = format!("{label}, by {}", by.name());
            results.push(timed(&m, &name, query(*from, *to, by), 7).await);
        }
    }
    let empty = query(
        D0 - 400 * NS_PER_DAY,
        D0 - 369 * NS_PER_DAY,
        GroupBy::Namespace,
    );
    results.push(timed(&m, "an empty month, by namespace", empty, 7).await);

    // --- Statements, 10 000 pods --------------------------------------------------------
    influx.drop_database().await?;
    influx.create_database().await?;
    let mtd = Window::new(month_start, Period::Hour.floor(NOW)).unwrap();
    let started = Instant::now();
    let big = write_periods(&influx, &m, &t, &periods_read(mtd), 10).await;
    println!(
        "wrote {big} metered rows for 10 000 pods, month to date, in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let mut big_results = Vec::new();
    for by in [GroupBy::Namespace, GroupBy::Pod] {
        let name = format!("10 000 pods, month to date, by {}", by.name());
        big_results.push(timed(&m, &name, query(mtd.from, mtd.to, by), 5).await);
    }

    // --- Report -------------------------------------------------------------------------
    println!();
    println!("upkeep, {PODS} pods at {STEP_S} s, per hour of data:");
    println!("  collector meter (every round, minutes as they end): {meter_s:>7.2} s CPU");
    println!("  job: 6 ten-minute periods and the hour from minutes: {job_cpu:>7.2} s CPU (kubemeter + InfluxDB), {cascade_s:.2} s wall");
    println!(
        "  total {upkeep:.2} s per hour = {:.3} % of one core (target ≤ 1 %: {})",
        upkeep / 36.0,
        verdict(upkeep / 36.0 <= 1.0)
    );
    println!("  recomputing an hour from raw samples (after a restart, or a backfill): {recompute_s:.1} s");
    println!("  one hour from raw samples as a statement: {raw_hour_ms:.0} ms");
    println!();
    println!("statements ({PODS} pods unless said), p50:");
    for r in results.iter().chain(&big_results) {
        println!("  {:<48} {:>8.1} ms  ({} rows)", r.label, r.p50, r.rows);
    }
    let p50_of = |prefix: &str| {
        results
            .iter()
            .chain(&big_results)
            .filter(|r| r.label.starts_with(prefix))
            .map(|r| r.p50)
            .fold(0.0, f64::max)
    };
    let up_to_31: Vec<f64> = results
        .iter()
        .filter(|r| !r.label.starts_with("366") && !r.label.starts_with("an empty"))
        .map(|r| r.p50)
        .collect();
    let worst_31 = up_to_31.iter().copied().fold(0.0, f64::max);
    println!();
    println!("targets:");
    println!(
        "  any window ≤ 31 days ≤ 300 ms p50: worst {worst_31:.1} ms — {}",
        verdict(worst_31 <= 300.0)
    );
    let year = p50_of("366");
    println!(
        "  366 days ≤ 1 s: {year:.1} ms — {}",
        verdict(year <= 1_000.0)
    );
    let empty_ms = p50_of("an empty");
    println!(
        "  an empty month ≤ 50 ms: {empty_ms:.1} ms — {}",
        verdict(empty_ms <= 50.0)
    );
    let ns = big_results[0].p50;
    let pod = big_results[1].p50;
    println!(
        "  10 000 pods month to date by namespace ≤ 1 s: {ns:.1} ms — {}",
        verdict(ns <= 1_000.0)
    );
    println!(
        "  10 000 pods month to date by pod ≤ 3 s: {pod:.1} ms — {}",
        verdict(pod <= 3_000.0)
    );
    if std::env::var_os("KUBEMETER_BENCH_KEEP_DB").is_none() {
        influx.drop_database().await?;
    }
    Ok(())
}
