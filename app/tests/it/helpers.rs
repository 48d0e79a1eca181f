use kubemeter::influx::client::InfluxAuth;
use kubemeter::influx::{InfluxClient, InfluxConfig};
use kubemeter::startup::{Application, Settings};
use reqwest::Url;
use secrecy::SecretString;
use serde_json::Value;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

pub const USER: &str = "billing";
pub const PASSWORD: &str = "correct horse battery staple";

pub struct TestApp {
    pub address: String,
    pub influx: InfluxClient,
    pub http: reqwest::Client,
}

fn influx_url() -> Url {
    let raw = std::env::var("KUBEMETER_TEST_INFLUX_URL").expect(
        "KUBEMETER_TEST_INFLUX_URL is not set: run the tests with `make test`, which starts a private influxd",
    );
    Url::parse(&raw).expect("KUBEMETER_TEST_INFLUX_URL is a URL")
}

fn fresh_database_name() -> String {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!(
        "kubemeter_test_{}_{}_{nanos}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// A fresh, empty database on the test influxd.
pub async fn fresh_influx() -> InfluxClient {
    let client = InfluxClient::new(InfluxConfig {
        url: influx_url(),
        database: fresh_database_name(),
        auth: InfluxAuth::None,
        timeout: Duration::from_secs(30),
    });
    client
        .create_database()
        .await
        .expect("the test influxd is reachable");
    client
}

/// The app against a fresh database holding the hand-made fixture.
pub async fn spawn_app() -> TestApp {
    spawn_app_with_users(None).await
}

/// The same, with users from `db`.
pub async fn spawn_app_with_users(db: Option<kubemeter::users::Db>) -> TestApp {
    let influx = fresh_influx().await;
    influx
        .write(super::fixture::lines())
        .await
        .expect("the fixture is valid line protocol");
    spawn_app_with(influx.config().clone(), db).await
}

/// The app against any InfluxDB settings (e.g. one that is down).
pub async fn spawn_app_on(config: InfluxConfig) -> TestApp {
    spawn_app_with(config, None).await
}

pub async fn spawn_app_with(config: InfluxConfig, db: Option<kubemeter::users::Db>) -> TestApp {
    let app = Application::build(Settings {
        listen: "127.0.0.1:0".parse().unwrap(),
        influx: config.clone(),
        api_credential: Some((USER.into(), SecretString::from(PASSWORD))),
        db,
        billing: Default::default(),
        limits: Default::default(),
    })
    .expect("the app builds");
    let address = format!("http://127.0.0.1:{}", app.port());
    tokio::spawn(app.run_until_stopped());
    TestApp {
        address,
        influx: InfluxClient::new(config),
        http: reqwest::Client::new(),
    }
}

impl TestApp {
    /// `POST /api/<metric>` with the right credentials.
    pub async fn post(&self, metric: &str, body: &str) -> reqwest::Response {
        self.post_as(metric, body, Some(USER), Some(PASSWORD)).await
    }

    pub async fn post_as(
        &self,
        metric: &str,
        body: &str,
        user: Option<&str>,
        password: Option<&str>,
    ) -> reqwest::Response {
        let mut req = self
            .http
            .post(format!("{}/api/{metric}", self.address))
            .body(body.to_string());
        if let Some(u) = user {
            req = req.header("X-USERNAME", u);
        }
        if let Some(p) = password {
            req = req.header("X-PASSWORD", p);
        }
        req.send().await.expect("the app answers")
    }

    /// The JSON rows of a successful request.
    pub async fn rows(&self, metric: &str, body: &str) -> Vec<Value> {
        let resp = self.post(metric, body).await;
        let status = resp.status();
        let json: Value = resp.json().await.expect("a JSON body");
        assert_eq!(status, 200, "{json}");
        json.as_array()
            .unwrap_or_else(|| panic!("expected rows, got {json}"))
            .clone()
    }

    /// `(status, body)` of a request expected to fail.
    pub async fn error(&self, metric: &str, body: &str) -> (u16, Value) {
        let resp = self.post(metric, body).await;
        (
            resp.status().as_u16(),
            resp.json().await.expect("a JSON body"),
        )
    }
}

/// The fixture's window: `[2017-12-01T00:00:00Z, 2017-12-01T00:03:00Z)`.
pub fn window(extra: &str) -> String {
    let sep = if extra.is_empty() { "" } else { "," };
    format!(
        r#"{{"timeBeginInterval":"2017-12-01T00:00:00Z","timeEndInterval":"2017-12-01T00:03:00Z"{sep}{extra}}}"#
    )
}

/// `{key: value}` pairs of the rows, for order-independent comparisons.
pub fn pairs(rows: &[Value], key: &str, value: &str) -> Vec<(String, f64)> {
    let mut out: Vec<(String, f64)> = rows
        .iter()
        .map(|r| {
            (
                r[key].as_str().unwrap_or("<null>").to_string(),
                r[value].as_f64().unwrap_or(f64::NAN),
            )
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

pub fn owned(expected: &[(&str, f64)]) -> Vec<(String, f64)> {
    expected.iter().map(|(k, v)| (k.to_string(), *v)).collect()
}

/// A fresh, empty directory under the system's temp dir.
pub fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("{}-{name}", fresh_database_name()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A simulated cluster, served on a free port; returns its URL and model.
pub fn start_simulator(
    nodes: usize,
    pods_per_node: usize,
    node_modes: Vec<(String, kubemeter::simulator::NodeMode)>,
) -> (String, kubemeter::simulator::model::Model) {
    let (url, model, _) = start_simulator_with(kubemeter::simulator::SimSettings {
        config: kubemeter::simulator::model::SimConfig {
            nodes,
            pods_per_node,
            seed: 42,
        },
        listen: "127.0.0.1:0".parse().unwrap(),
        node_modes,
        kubelet_port: None,
        kubelet_token: None,
    });
    (url, model)
}

/// A simulated cluster with any settings; returns its URL, model and kubelet port.
pub fn start_simulator_with(
    settings: kubemeter::simulator::SimSettings,
) -> (String, kubemeter::simulator::model::Model, Option<u16>) {
    let sim = kubemeter::simulator::Simulator::build(settings).expect("the simulator starts");
    let url = format!("http://127.0.0.1:{}", sim.port());
    let (model, kubelet_port) = (sim.model(), sim.kubelet_port());
    tokio::spawn(sim.run_until_stopped());
    (url, model, kubelet_port)
}

pub struct RunningCollector {
    pub collector: kubemeter::collector::Collector,
    pub metrics: std::sync::Arc<kubemeter::collector::metrics::Metrics>,
    pub writer: tokio::task::JoinHandle<()>,
}

impl RunningCollector {
    /// Drops the collector (and so the writer's handle) and waits until the writer flushed.
    pub async fn finish(self) {
        drop(self.collector);
        self.writer.await.unwrap();
    }
}

/// The collector library against `kube_url`, writing to `influx`.
pub async fn start_collector(
    kube_url: &str,
    influx: &InfluxClient,
    node_timeout: Duration,
) -> RunningCollector {
    start_collector_with(kube_url, influx, node_timeout, None, None).await
}

/// The same, reading kubelets directly when `kubelet` is given, and DCGM exporters.
pub async fn start_collector_with(
    kube_url: &str,
    influx: &InfluxClient,
    node_timeout: Duration,
    kubelet: Option<kubemeter::collector::KubeletDirect>,
    dcgm_url: Option<String>,
) -> RunningCollector {
    use kubemeter::collector::{self, metrics::Metrics, writer, CollectSettings};
    let settings = CollectSettings {
        kube_url: Some(kube_url.to_string()),
        interval: Duration::from_secs(15),
        once: false,
        cluster_name: "test".into(),
        label_keys: vec!["team".into(), "cost-center".into()],
        concurrency: 8,
        node_timeout,
        writer: writer::WriterConfig {
            spool_dir: temp_dir("spool"),
            spool_max_bytes: 64 << 20,
        },
        metrics_listen: None,
        shard: None,
        kubelet,
        dcgm_url,
        memory: Default::default(),
    };
    let metrics = std::sync::Arc::new(Metrics::default());
    let (handle, task) = writer::spawn(influx.clone(), &settings.writer, metrics.clone()).unwrap();
    let client = collector::kube_client(Some(kube_url)).await.unwrap();
    let collector = collector::Collector::start(
        client,
        settings,
        metrics.clone(),
        handle,
        Duration::from_secs(20),
    )
    .await
    .expect("the collector lists the simulated cluster");
    RunningCollector {
        collector,
        metrics,
        writer: task,
    }
}

/// Rows of a query as maps from column to value.
pub async fn select(influx: &InfluxClient, q: &str) -> Vec<serde_json::Map<String, Value>> {
    let series = influx.query(q).await.unwrap_or_else(|e| panic!("{q}: {e}"));
    series
        .into_iter()
        .flat_map(|s| {
            let tags = s.tags.clone();
            let columns = s.columns.clone();
            s.values.into_iter().map(move |vals| {
                let mut row: serde_json::Map<String, Value> = tags
                    .iter()
                    .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                    .collect();
                row.extend(columns.iter().cloned().zip(vals));
                row
            })
        })
        .collect()
}

/// Fresh, migrated SQL databases to run a test against: SQLite always, PostgreSQL when
/// KUBEMETER_TEST_POSTGRES_URL is set (`.ci/run` sets it), each a new database.
pub async fn fresh_sql_databases() -> Vec<(&'static str, kubemeter::users::Db)> {
    use kubemeter::users::Db;
    let dir = temp_dir("sql");
    let mut urls = vec![("sqlite", kubemeter::users::default_url(&dir))];
    if let Ok(admin_url) = std::env::var("KUBEMETER_TEST_POSTGRES_URL") {
        let name = fresh_database_name();
        let admin = Db::connect(&admin_url)
            .await
            .expect("KUBEMETER_TEST_POSTGRES_URL answers");
        admin
            .execute(&format!("CREATE DATABASE {name}"))
            .await
            .unwrap();
        let base = admin_url
            .rsplit_once('/')
            .map_or(admin_url.as_str(), |(b, _)| b);
        urls.push(("postgres", format!("{base}/{name}")));
    }
    let mut dbs = Vec::new();
    for (label, url) in urls {
        let db = Db::connect(&url).await.unwrap();
        db.migrate().await.unwrap();
        dbs.push((label, db));
    }
    dbs
}

/// Meters what `m`'s InfluxDB holds in `[from, to)` (widened to whole minutes) from raw
/// samples, for every cluster in the data, as the collector and the metering job do for live
/// data: minutes, then every longer period they complete. Statements read metered rows only.
pub async fn meter(m: &kubemeter::metering::Metering, from: i64, to: i64) {
    use kubemeter::jobs::rollup;
    use kubemeter::metering::period::Period;
    let minute = Period::Minute.len_ns();
    let w = kubemeter::billing::Window::new(
        Period::Minute.floor(from),
        Period::Minute.floor(to - 1) + minute,
    )
    .expect("a window to meter");
    for cluster in rollup::clusters(m).await.expect("the clusters in the data") {
        rollup::roll_up(m, &cluster, w, &kubemeter::metering::Quiet)
            .await
            .expect("metering from raw samples");
    }
}
