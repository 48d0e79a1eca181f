#![allow(clippy::unwrap_used)]
//! Issue 2's benchmark: kubemeter's `POST /api/<metric>` against the same InfluxQL sent straight
//! to InfluxDB, in one run, on 500 pods × 2 days at 60 s. Also shows the seed's InfluxQL (no
//! `type` filter, so every level is read) for comparison. Run with `make bench`.

use chrono::{Duration, TimeZone, Utc};
use kubemeter::api::plan::Plan;
use kubemeter::api::request::MetricQuery;
use kubemeter::catalogue;
use kubemeter::demo::{DemoCluster, Detail};
use kubemeter::influx::client::InfluxAuth;
use kubemeter::influx::ql::Cond;
use kubemeter::influx::{InfluxClient, InfluxConfig};
use kubemeter::startup::{Application, Settings};
use secrecy::SecretString;
use std::time::Instant;

const PODS: usize = 500;
const DAYS: i64 = 2;

fn p50(mut samples: Vec<f64>) -> f64 {
    samples.sort_by(|a, b| a.total_cmp(b));
    samples[samples.len() / 2]
}

async fn time_ms<F: std::future::Future<Output = usize>>(f: F) -> (f64, usize) {
    let start = Instant::now();
    let bytes = f.await;
    (start.elapsed().as_secs_f64() * 1000.0, bytes)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    if !std::env::args().any(|a| a == "--bench") {
        println!("api_latency: a benchmark; run it with `make bench`");
        return Ok(());
    }
    let url = std::env::var("KUBEMETER_BENCH_INFLUX_URL")
        .map_err(|_| anyhow::anyhow!("KUBEMETER_BENCH_INFLUX_URL is not set; run `make bench`"))?;
    let config = InfluxConfig {
        url: url.parse()?,
        database: "kubemeter_bench".into(),
        auth: InfluxAuth::None,
        timeout: std::time::Duration::from_secs(300),
    };
    let influx = InfluxClient::new(config.clone());
    influx.create_database().await?;

    let begin = Utc.with_ymd_and_hms(2017, 12, 1, 0, 0, 0).unwrap();
    let end = begin + Duration::days(DAYS);
    let cluster = DemoCluster::new(PODS);
    println!("loading {PODS} pods × {DAYS} days at 60 s (cpu/usage_rate at container, pod, namespace and node level)…");
    let started = Instant::now();
    let mut loaded = 0;
    let mut day = begin;
    while day < end {
        let next = day + Duration::hours(6);
        loaded += cluster
            .write(&influx, day, next, 60, Detail::CpuRate)
            .await?;
        day = next;
        eprint!(
            "\r  {loaded} points, {:.0} s",
            started.elapsed().as_secs_f64()
        );
    }
    eprintln!();
    println!(
        "loaded {loaded} points in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    // A SQL user too, for the credential-cache throughput below.
    let sql_dir = std::env::temp_dir().join(format!("kubemeter-bench-sql-{}", std::process::id()));
    let db = kubemeter::users::Db::connect(&kubemeter::users::default_url(&sql_dir)).await?;
    db.migrate().await?;
    db.create_user(kubemeter::users::NewUser {
        username: "meter".into(),
        email: "meter@example.com".into(),
        role: kubemeter::users::Role::Api,
        namespaces: vec![],
        password: SecretString::from("meter-password"),
    })
    .await?;
    db.create_user(kubemeter::users::NewUser {
        username: "viewer".into(),
        email: "viewer@example.com".into(),
        role: kubemeter::users::Role::Viewer,
        namespaces: vec![],
        password: SecretString::from("viewer-password"),
    })
    .await?;
    let app = Application::build(Settings {
        listen: "127.0.0.1:0".parse()?,
        influx: config.clone(),
        api_credential: Some(("bench".into(), SecretString::from("bench"))),
        db: Some(db),
        billing: Default::default(),
        // The bench measures throughput with one user over many connections.
        limits: kubemeter::heavy::HeavyLimits {
            per_user: 64,
            total: 64,
            ..Default::default()
        },
    })?;
    let base = format!("http://127.0.0.1:{}", app.port());
    let api = format!("{base}/api/cpu/usage_rate");
    tokio::spawn(app.run_until_stopped());
    let http = reqwest::Client::new();
    let query_url = format!("{url}/query");
    let metric = catalogue::find("cpu/usage_rate").expect("in the catalogue");

    let window = r#""timeBeginInterval":"2017-12-01","timeEndInterval":"2017-12-03""#;
    let modes = [
        ("no agg, limit 100", format!("{{{window}}}"), 101),
        (
            "pod-by-namespace",
            format!(r#"{{"agg":"pod-by-namespace",{window}}}"#),
            31,
        ),
        (
            "all-namespace",
            format!(r#"{{"agg":"all-namespace",{window}}}"#),
            31,
        ),
        ("all-pod", format!(r#"{{"agg":"all-pod",{window}}}"#), 31),
    ];
    println!();
    println!(
        "{:<20} {:>12} {:>14} {:>10} {:>16} {:>14}",
        "mode", "direct p50", "kubemeter p50", "added", "kubemeter/direct", "seed's InfluxQL"
    );
    for (name, body, runs) in modes {
        let query = MetricQuery::parse(body.as_bytes(), end)?;
        let plan = Plan::build(metric, &query, &kubemeter::users::Scope::All)?;
        let influxql = plan.influxql();
        let mut seed = plan.statement.clone();
        seed.conditions
            .retain(|c| !matches!(c, Cond::TagEq(t, _) if t == "type"));
        let seed_ql = seed.to_influxql();

        let direct = |q: String| {
            let http = http.clone();
            let url = query_url.clone();
            async move {
                let resp = http
                    .post(&url)
                    .query(&[("db", "kubemeter_bench")])
                    .form(&[("q", q)])
                    .send()
                    .await
                    .expect("influxd answers");
                resp.bytes().await.expect("a body").len()
            }
        };
        let ours = || {
            let http = http.clone();
            let api = api.clone();
            let body = body.clone();
            async move {
                let resp = http
                    .post(&api)
                    .header("X-USERNAME", "bench")
                    .header("X-PASSWORD", "bench")
                    .body(body)
                    .send()
                    .await
                    .expect("kubemeter answers");
                assert_eq!(resp.status(), 200);
                resp.bytes().await.expect("a body").len()
            }
        };
        // Warm both paths (connections, InfluxDB's caches) before measuring.
        for _ in 0..2 {
            direct(influxql.clone()).await;
            ours().await;
        }
        let (mut d, mut k, mut s) = (Vec::new(), Vec::new(), Vec::new());
        for i in 0..runs {
            // Alternate the order so neither path always runs on a warmer cache.
            if i % 2 == 0 {
                d.push(time_ms(direct(influxql.clone())).await.0);
                k.push(time_ms(ours()).await.0);
            } else {
                k.push(time_ms(ours()).await.0);
                d.push(time_ms(direct(influxql.clone())).await.0);
            }
            if runs <= 31 {
                s.push(time_ms(direct(seed_ql.clone())).await.0);
            }
        }
        let (dp, kp) = (p50(d), p50(k));
        let seed_p50 = if s.is_empty() {
            "-".to_string()
        } else {
            format!("{:.1} ms", p50(s))
        };
        println!(
            "{name:<20} {:>9.1} ms {:>11.1} ms {:>7.1} ms {:>16.3} {:>14}",
            dp,
            kp,
            kp - dp,
            kp / dp,
            seed_p50
        );
    }
    println!();
    println!("direct = the same InfluxQL POSTed to influxd's /query; seed's InfluxQL = the same without the type filter (all levels).");
    rollup_speed(&http, &api, &influx, begin).await;
    throughput(&http, &api).await;
    web_pages(&base).await;
    let _ = std::fs::remove_dir_all(&sql_dir);
    influx.drop_database().await?;
    Ok(())
}

/// Issue 5's target: `all-namespace` and `all-pod` over the 2 days from hourly rollups against
/// the same answer from raw samples, in one run. Two windows: the seed's usual one, whole days
/// (`"2017-12-01"` to `"2017-12-03"`: rollups only), and one with half-hour edges at both ends
/// (rollups plus two raw slices).
async fn rollup_speed(
    http: &reqwest::Client,
    api: &str,
    influx: &InfluxClient,
    begin: chrono::DateTime<Utc>,
) {
    let windows = [
        (
            "whole days",
            r#""timeBeginInterval":"2017-12-01","timeEndInterval":"2017-12-03""#,
        ),
        (
            "half-hour edges",
            r#""timeBeginInterval":"2017-12-01T00:30:00Z","timeEndInterval":"2017-12-02T23:30:00Z""#,
        ),
    ];
    let modes = ["all-namespace", "all-pod"];
    let cases: Vec<(String, String)> = windows
        .iter()
        .flat_map(|(label, w)| {
            modes.iter().map(move |agg| {
                (
                    format!("{agg}, {label}"),
                    format!(r#"{{"agg":"{agg}",{w}}}"#),
                )
            })
        })
        .collect();
    let mut raw = Vec::new();
    for (_, body) in &cases {
        raw.push(measure(http, api, body).await);
    }
    let start = Instant::now();
    for h in 0..DAYS * 24 {
        kubemeter::jobs::aggregates::roll_up_hour(influx, begin + Duration::hours(h))
            .await
            .expect("the hour is rolled up");
    }
    let took = start.elapsed().as_secs_f64();
    println!();
    println!(
        "hourly rollups: {} hours × {} metrics in {took:.1} s ({:.0} ms an hour)",
        DAYS * 24,
        kubemeter::jobs::aggregates::pod_metrics().count(),
        took * 1000.0 / (DAYS * 24) as f64
    );
    println!(
        "{:<32} {:>12} {:>14} {:>10}",
        "mode (2 days)", "raw p50", "rollups p50", "speed-up"
    );
    for ((name, body), (raw_ms, raw_answer)) in cases.iter().zip(raw) {
        let (ms, answer) = measure(http, api, body).await;
        assert_eq!(
            answer, raw_answer,
            "{name}: rollups (+ raw edges) give the raw answer"
        );
        println!(
            "{name:<32} {raw_ms:>9.1} ms {ms:>11.1} ms {:>9.1}×",
            raw_ms / ms
        );
    }
    println!("target: ≥ 5× faster than scanning raw data for the same answer (whole days; edges read raw samples, and InfluxDB decodes a whole 1 000-point block per series for any slice)");
}

/// The p50 of 15 calls (after one to warm up) and the last answer.
async fn measure(http: &reqwest::Client, api: &str, body: &str) -> (f64, String) {
    let ask = || async {
        let resp = http
            .post(api)
            .header("X-USERNAME", "bench")
            .header("X-PASSWORD", "bench")
            .body(body.to_string())
            .send()
            .await
            .expect("kubemeter answers");
        assert_eq!(resp.status(), 200);
        resp.text().await.expect("a body")
    };
    ask().await;
    let mut ms = Vec::new();
    let mut answer = String::new();
    for _ in 0..15 {
        let start = Instant::now();
        answer = ask().await;
        ms.push(start.elapsed().as_secs_f64() * 1000.0);
    }
    (p50(ms), answer)
}

/// Requests per second of a cheap query over 4 connections for 5 s, as `user`.
async fn rate(http: &reqwest::Client, api: &str, user: &str, password: &str) -> f64 {
    let body =
        r#"{"limit":1,"timeBeginInterval":"2017-12-02T23:00:00Z","timeEndInterval":"2017-12-03"}"#;
    let deadline = Instant::now() + std::time::Duration::from_secs(5);
    let tasks: Vec<_> = (0..4)
        .map(|_| {
            let (http, api, user, password) = (
                http.clone(),
                api.to_string(),
                user.to_string(),
                password.to_string(),
            );
            tokio::spawn(async move {
                let mut n = 0u32;
                while Instant::now() < deadline {
                    let resp = http
                        .post(&api)
                        .header("X-USERNAME", &user)
                        .header("X-PASSWORD", &password)
                        .body(body)
                        .send()
                        .await
                        .expect("kubemeter answers");
                    assert_eq!(resp.status(), 200);
                    resp.bytes().await.expect("a body");
                    n += 1;
                }
                n
            })
        })
        .collect();
    let mut total = 0;
    for t in tasks {
        total += t.await.expect("the task ends");
    }
    f64::from(total) / 5.0
}

/// Issue 4's target: a SQL user's calls, thanks to the verified-credential cache, against the
/// bootstrap credential (two SHA-256 digests compared in constant time: as good as no
/// authentication), and what one argon2id verification costs without the cache.
async fn throughput(http: &reqwest::Client, api: &str) {
    let _ = rate(http, api, "meter", "meter-password").await; // warm the cache and connections
    let user = rate(http, api, "meter", "meter-password").await;
    let bootstrap = rate(http, api, "bench", "bench").await;
    let hash = kubemeter::users::hash_password(SecretString::from("x-password"))
        .await
        .expect("hash");
    let checker =
        kubemeter::auth::checker::PasswordChecker::new(1, std::time::Duration::from_secs(5));
    let start = Instant::now();
    for _ in 0..5 {
        let _ = checker
            .verify(SecretString::from("x-password"), hash.clone())
            .await;
    }
    let argon_ms = start.elapsed().as_secs_f64() * 1000.0 / 5.0;
    println!();
    println!("cheap query, 4 connections, 5 s each:");
    println!("  SQL user (cached credential): {user:.0} req/s");
    println!("  bootstrap credential (no argon2): {bootstrap:.0} req/s");
    println!("  user / bootstrap: {:.2}", user / bootstrap);
    println!("  one argon2id verification: {argon_ms:.1} ms (without the cache: at most {:.0} req/s per core)", 1000.0 / argon_ms);
}

/// Issue 4's target: a stats page of 1 000 rows with its chart, signed in as a SQL user.
async fn web_pages(base: &str) {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("a client");
    let login = http
        .get(format!("{base}/web/login/"))
        .send()
        .await
        .expect("login page");
    let csrf_cookie = login.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let page = login.text().await.unwrap();
    let marker = "name=\"csrf_token\" value=\"";
    let at = page.find(marker).unwrap() + marker.len();
    let token = page[at..].split('"').next().unwrap().to_string();
    let signed = http
        .post(format!("{base}/web/authentication/signin"))
        .header("cookie", csrf_cookie)
        .form(&[
            ("username", "viewer"),
            ("password", "viewer-password"),
            ("csrf_token", token.as_str()),
        ])
        .send()
        .await
        .expect("sign-in");
    let session = signed
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|c| c.to_str().unwrap().split(';').next().unwrap().to_string())
        .find(|c| c.starts_with("kubemeter_session="))
        .expect("a session");
    let range = "from=2017-12-02T23:00:00Z&to=2017-12-03T00:00:00Z";
    println!();
    println!("dashboard pages (last hour of the data, 1 000 rows each, 21 runs):");
    println!("{:<44} {:>8} {:>10} {:>10}", "page", "p50", "size", "rows");
    for (name, path) in [
        (
            "one namespace (100 pods)",
            format!("/web/stats/cpu/usage_rate/cluster-3?{range}"),
        ),
        (
            "all namespaces (500 pods)",
            format!("/web/stats/cpu/usage_rate?{range}"),
        ),
        (
            "one workload",
            format!("/web/stats/cpu/usage_rate/cluster-3?workload=Deployment/deployment-3&{range}"),
        ),
        (
            "cluster at a glance (3 metrics, 500 pods)",
            format!("/web/stats/index?{range}"),
        ),
    ] {
        let mut samples = Vec::new();
        let (mut size, mut rows) = (0, 0);
        for _ in 0..21 {
            let (ms, body) = {
                let start = Instant::now();
                let resp = http
                    .get(format!("{base}{path}"))
                    .header("cookie", &session)
                    .send()
                    .await
                    .unwrap();
                assert_eq!(resp.status(), 200, "{path}");
                let body = resp.text().await.unwrap();
                (start.elapsed().as_secs_f64() * 1000.0, body)
            };
            samples.push(ms);
            size = body.len();
            rows = body.matches("<tr><td>").count();
        }
        println!(
            "{name:<44} {:>6.1} ms {:>7} KB {rows:>10}",
            p50(samples),
            size / 1024
        );
    }
    println!("target: a 1 000-row stats page with its chart in <= 50 ms p50 (the old app: 74 ms, 297 KB)");
}
