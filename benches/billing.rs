#![allow(clippy::unwrap_used)]
//! Issue 5's billing benchmark, ratios measured in one run: a 30-day statement by namespace
//! for 1 000 pods from the billing rollups, against the same statement computed from raw
//! samples. Run with `make bench`.
//!
//! Loading 30 days of raw samples for 1 000 pods (≈ 1.5 billion points at 15 s) is not
//! feasible here, so the raw side is measured on one hour of real raw samples (every series
//! billing reads, 1 000 pods at 15 s) and scaled by 720 hours: the raw path reads hour by
//! hour, so its cost is linear in the window. The rollup side reads 30 days of rollups — the
//! 3 whole weeks from weekly rollups, the other 9 days from daily ones (12 000 points) —
//! made from that hour's real rollups, weeks from days by the job's own code.

use std::time::Instant;

use kubemeter::billing::samples::{NS_PER_HOUR, NS_PER_SEC};
use kubemeter::billing::{GroupBy, Modes, Window};
use kubemeter::catalogue::name as m;
use kubemeter::influx::client::InfluxAuth;
use kubemeter::influx::line::{tagset, write_point_with_tagset, Value};
use kubemeter::influx::{InfluxClient, InfluxConfig};
use kubemeter::jobs::rollup;
use kubemeter::metering::rollups::{self, Period, Rollup, NS_PER_DAY};
use kubemeter::metering::{MemorySource, Metering, Quiet, StatementQuery};
use kubemeter::users::Scope;

const PODS: usize = 1_000;
const NAMESPACES: usize = 20;
const DAYS: i64 = 30;
const STEP_S: i64 = 15;
/// 2026-10-01T00:00:00Z.
const D0: i64 = 1_790_812_800 * NS_PER_SEC;

fn p50(mut samples: Vec<f64>) -> f64 {
    samples.sort_by(|a, b| a.total_cmp(b));
    samples[samples.len() / 2]
}

/// Milliseconds of each of `runs` statements (after one warm-up).
async fn time_statements(m: &Metering, q: &StatementQuery, raw: bool, runs: usize) -> Vec<f64> {
    let run = || async {
        if raw {
            m.statement_from_raw(q, &Quiet).await.unwrap()
        } else {
            m.statement(q, &Quiet).await.unwrap()
        }
    };
    run().await;
    let mut ms = Vec::with_capacity(runs);
    for _ in 0..runs {
        let start = Instant::now();
        let s = run().await;
        ms.push(start.elapsed().as_secs_f64() * 1000.0);
        assert_eq!(s.rows.len(), NAMESPACES);
    }
    ms
}

/// One hour (plus the look-back scrape) of every series billing reads, for `PODS` pods with a
/// container each: CPU counter, uptime and request, working set and request, network
/// counters, ephemeral storage and its request.
async fn load_raw_hour(influx: &InfluxClient, hour: i64) -> usize {
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
    for k in -1..(3_600 / STEP_S) {
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
        if buf.len() > 16 << 20 {
            influx.write(std::mem::take(&mut buf)).await.unwrap();
        }
    }
    influx.write(buf).await.unwrap();
    points
}

/// Daily rollups for `DAYS` days from the real rollups of one hour: each pod's day is 24
/// times its hour (integers) observed all day, then the day markers.
async fn write_days(influx: &InfluxClient, m: &Metering, hour: i64) -> usize {
    let hour_usage = m
        .rollups(Period::Hour, Period::Hour.window(hour), &[])
        .await
        .unwrap();
    let mut written = 0;
    for d in 0..DAYS {
        let day = D0 + d * NS_PER_DAY;
        let mut buf = String::new();
        for p in &hour_usage {
            let mut usage = p.usage.clone();
            let q = p.usage.quantities;
            for _ in 1..24 {
                usage.quantities += q;
            }
            usage.observed = Default::default();
            usage.observed.insert(
                day - STEP_S * NS_PER_SEC,
                day + NS_PER_DAY - STEP_S * NS_PER_SEC,
            );
            let r = Rollup {
                identity: p.identity.clone(),
                start: day,
                usage,
            };
            rollups::encode(&mut buf, Period::Day, &r).unwrap();
            written += 1;
        }
        rollups::encode_marker(&mut buf, Period::Day, day, hour_usage.len(), &m.basis(), 0)
            .unwrap();
        influx.write(buf).await.unwrap();
    }
    written
}

fn query(from: i64, to: i64) -> StatementQuery {
    StatementQuery {
        window: Window::new(from, to).unwrap(),
        by: GroupBy::Namespace,
        modes: Modes::default(),
        scope: Scope::All,
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

    // The raw hour right after the 30 days.
    let raw_hour = D0 + DAYS * NS_PER_DAY;
    let started = Instant::now();
    let points = load_raw_hour(&influx, raw_hour).await;
    println!(
        "loaded {points} raw points ({PODS} pods × 1 h at {STEP_S} s, 9 series each) in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let started = Instant::now();
    let report = rollup::roll_up(&m, Period::Hour.window(raw_hour), &Quiet).await?;
    println!(
        "rollup job: 1 hour of {} pods in {:.0} ms",
        report.pod_hours,
        started.elapsed().as_secs_f64() * 1000.0
    );
    let started = Instant::now();
    let days = write_days(&influx, &m, raw_hour).await;
    println!(
        "wrote {days} daily rollups ({DAYS} days) in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    // Weeks from their days, by the job's own code (only complete weeks are written).
    let started = Instant::now();
    let mut weeks = 0;
    let mut week = Period::Week.floor(D0);
    while week < D0 + DAYS * NS_PER_DAY {
        weeks += usize::from(rollup::roll_up_from_parts(&m, Period::Week, week).await?);
        week += Period::Week.len_ns();
    }
    println!(
        "rolled up {weeks} complete weeks from their days in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    // The same hour both ways must agree before anything is timed.
    let hour_q = query(raw_hour, raw_hour + NS_PER_HOUR);
    assert_eq!(
        m.statement(&hour_q, &Quiet).await?,
        m.statement_from_raw(&hour_q, &Quiet).await?
    );

    let month = query(D0, D0 + DAYS * NS_PER_DAY);
    let rolled = p50(time_statements(&m, &month, false, 15).await);
    let raw_one_hour = p50(time_statements(&m, &hour_q, true, 5).await);
    let raw_month = raw_one_hour * (DAYS * 24) as f64;
    // A month that starts and ends mid-day: daily, hourly and raw pieces together.
    let ragged = query(
        D0 + NS_PER_DAY + 30 * 60 * NS_PER_SEC,
        raw_hour + 45 * 60 * NS_PER_SEC,
    );
    let ragged_ms = p50(time_statements(&m, &ragged, false, 7).await);

    println!();
    println!("30-day statement by namespace, {PODS} pods:");
    println!("  from rollups (3 weekly + 9 daily points a pod): p50 {rolled:>9.1} ms");
    println!(
        "  from raw samples (1 h measured: {raw_one_hour:.1} ms, × 720): {raw_month:>9.0} ms (estimated)"
    );
    println!(
        "  raw / rollups:                                 {:>9.0}×",
        raw_month / rolled
    );
    println!("  ragged month (edges mid-hour, ~29 days + raw hours): p50 {ragged_ms:.1} ms");
    println!(
        "target: rollups ≤ 200 ms p50 and ≥ 20× faster than raw — {}",
        if rolled <= 200.0 && raw_month / rolled >= 20.0 {
            "met"
        } else {
            "NOT met"
        }
    );
    if std::env::var_os("KUBEMETER_BENCH_KEEP_DB").is_none() {
        influx.drop_database().await?;
    }
    Ok(())
}
