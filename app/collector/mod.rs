//! The collector: every scrape interval, read each node's kubelet summary, tag every sample
//! with its owner, and write Heapster-compatible points to InfluxDB without losing any.

pub mod dcgm;
pub mod kube;
pub mod meter;
pub mod metrics;
pub mod owners;
pub mod points;
pub mod quantity;
pub mod rates;
pub mod rbac;
pub mod spool;
pub mod summary;
pub mod writer;

use actix_web::{web, App, HttpResponse, HttpServer};
use futures::StreamExt;
use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub use self::kube::KubeletDirect;
use self::kube::{KubeView, SummarySource};
use self::meter::Meter;
use self::metrics::Metrics;
use self::owners::Owner;
use self::points::{encode_summary, encode_totals, Totals};
use self::rates::Rates;
use self::writer::{WriterConfig, WriterHandle};
use crate::influx::InfluxClient;
use crate::telemetry::error_chain;

/// Rounds a counter series may miss before its last sample is forgotten.
const KEEP_ROUNDS: u64 = 4;

/// This replica's part of the nodes (`--shard i/n`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub index: u32,
    pub count: u32,
}

impl Shard {
    pub fn parse(s: &str) -> Option<Shard> {
        let (i, n) = s.split_once('/')?;
        let (index, count) = (i.trim().parse().ok()?, n.trim().parse().ok()?);
        (count > 0 && index < count).then_some(Shard { index, count })
    }

    /// FNV-1a of the node name: stable across replicas and restarts.
    pub fn owns(&self, node: &str) -> bool {
        let hash = node.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
        });
        hash % u64::from(self.count) == u64::from(self.index)
    }
}

#[derive(Debug, Clone)]
pub struct CollectSettings {
    pub kube_url: Option<String>,
    pub interval: Duration,
    pub once: bool,
    pub cluster_name: String,
    pub label_keys: Vec<String>,
    pub concurrency: usize,
    pub node_timeout: Duration,
    pub writer: WriterConfig,
    pub metrics_listen: Option<SocketAddr>,
    pub shard: Option<Shard>,
    /// Read kubelets directly instead of through the API server's node proxy.
    pub kubelet: Option<KubeletDirect>,
    /// Each node's DCGM exporter, e.g. `http://{address}:9400/metrics` (`{node}` works too).
    pub dcgm_url: Option<String>,
    /// The memory gauge metered as usage (`KUBEMETER_BILLING_MEMORY`).
    pub memory: crate::metering::MemorySource,
}

/// What one round did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RoundReport {
    pub nodes: usize,
    pub failed_nodes: Vec<String>,
    pub points: usize,
}

pub struct Collector {
    view: KubeView,
    source: SummarySource,
    http: reqwest::Client,
    settings: CollectSettings,
    rates: Rates,
    owners: HashMap<String, Owner>,
    metrics: Arc<Metrics>,
    writer: WriterHandle,
    meter: Meter,
}

/// A client for the API server at `url`, or from kubeconfig / in-cluster config.
pub async fn kube_client(url: Option<&str>) -> anyhow::Result<::kube::Client> {
    let config = match url {
        Some(url) => {
            let uri: http::Uri = url.parse().map_err(|_| {
                anyhow::anyhow!(
                    "KUBEMETER_KUBE_URL {url:?} is not a URL; use e.g. https://10.0.0.1:6443"
                )
            })?;
            ::kube::Config::new(uri)
        }
        None => ::kube::Config::infer().await.map_err(|e| {
            anyhow::anyhow!(
                "no Kubernetes API server: set KUBEMETER_KUBE_URL or provide a kubeconfig ({e})"
            )
        })?,
    };
    Ok(::kube::Client::try_from(config)?)
}

impl Collector {
    /// Starts watching the cluster and waits (up to `wait`) for the first lists.
    pub async fn start(
        client: ::kube::Client,
        settings: CollectSettings,
        metrics: Arc<Metrics>,
        writer: WriterHandle,
        wait: Duration,
    ) -> anyhow::Result<Self> {
        let source = SummarySource::new(client.clone(), settings.kubelet.as_ref())?;
        let view = KubeView::start(client);
        match tokio::time::timeout(wait, view.ready()).await {
            Ok(true) => {}
            _ => anyhow::bail!(
                "could not list nodes and pods from the Kubernetes API within {wait:?}; check KUBEMETER_KUBE_URL and the collector's RBAC"
            ),
        }
        let meter = meter_for(&settings);
        Ok(Collector {
            view,
            source,
            http: reqwest::Client::new(),
            settings,
            rates: Rates::default(),
            owners: HashMap::new(),
            metrics,
            writer,
            meter,
        })
    }

    /// One scrape round: every node (at most `concurrency` at a time, each bounded by the
    /// node timeout, so a slow node delays nobody), then the namespace and cluster sums.
    #[tracing::instrument(skip_all)]
    pub async fn round(&mut self) -> RoundReport {
        let started = chrono::Utc::now();
        let cluster = self.view.snapshot(
            &self.settings.cluster_name,
            &self.settings.label_keys,
            &mut self.owners,
        );
        let nodes: Vec<_> = self
            .view
            .node_targets()
            .into_iter()
            .filter(|n| self.settings.shard.is_none_or(|s| s.owns(&n.name)))
            .collect();
        let timeout = self.settings.node_timeout;
        let (source, http, dcgm) = (&self.source, &self.http, self.settings.dcgm_url.as_deref());
        let mut results = futures::stream::iter(nodes.clone())
            .map(|node| async move {
                let t0 = Instant::now();
                let mut summary = source.fetch(&node, timeout).await;
                if let (Ok(summary), Some(template)) = (&mut summary, dcgm) {
                    add_gpu_readings(http, template, &node, timeout, summary).await;
                }
                (node.name, t0.elapsed(), summary)
            })
            .buffer_unordered(self.settings.concurrency.max(1));
        let mut report = RoundReport {
            nodes: nodes.len(),
            ..RoundReport::default()
        };
        let mut totals = Totals::default();
        while let Some((node, took, summary)) = results.next().await {
            self.metrics.scraped(&node, took, summary.is_ok());
            match summary {
                Ok(summary) => {
                    let mut buf = String::with_capacity(64 * 1024);
                    report.points +=
                        encode_summary(&summary, &cluster, &mut self.rates, &mut totals, &mut buf);
                    report.points += encode_interval(
                        &summary,
                        &self.settings.cluster_name,
                        self.settings.interval,
                        &mut buf,
                    );
                    self.meter.feed(&buf);
                    self.writer.send(buf).await;
                }
                Err(e) => {
                    tracing::warn!(node = %node, error = %error_chain(&e), "scrape failed");
                    report.failed_nodes.push(node);
                }
            }
        }
        // With shards, each replica sees only part of a namespace: its sums would be partial.
        if self.settings.shard.is_none() {
            let mut buf = String::new();
            let t = started.timestamp_nanos_opt().unwrap_or_default();
            report.points += encode_totals(&totals, &self.settings.cluster_name, t, &mut buf);
            self.writer.send(buf).await;
        }
        // Minutes that ended before this round started are complete now.
        let now = started.timestamp_nanos_opt().unwrap_or(i64::MAX);
        let metered = self.meter.flush(now, false);
        if !metered.is_empty() {
            self.writer.send(metered).await;
        }
        self.rates.next_round(KEEP_ROUNDS);
        self.metrics.round_done(report.points);
        tracing::info!(
            nodes = report.nodes,
            failed = report.failed_nodes.len(),
            points = report.points,
            "round done"
        );
        report
    }
}

impl Collector {
    /// Meters what was scraped but not yet metered (the last minutes, marked provisional so
    /// the metering job completes them from raw samples) and hands it to the writer; call
    /// before the collector is dropped.
    pub async fn finish(mut self) {
        let now = chrono::Utc::now().timestamp_nanos_opt().unwrap_or(i64::MAX);
        let metered = self.meter.flush(now, true);
        if !metered.is_empty() {
            self.writer.send(metered).await;
        }
    }
}

/// The start of the last minute this collector's shard metered before, if InfluxDB says.
async fn last_metered_minute(influx: &InfluxClient, settings: &CollectSettings) -> Option<i64> {
    let shard = settings.shard.map_or(0, |s| s.index).to_string();
    let q = crate::metering::markers::select_latest(
        crate::metering::period::Period::Minute,
        &settings.cluster_name,
        &shard,
        settings.memory.as_str(),
    );
    let answer = influx.query_each_ns(&[q]).await.ok()?;
    answer.first()?.first()?.values.first()?.first()?.as_i64()
}

/// The meter of a collector with `settings`: its cluster, its shard, its memory gauge.
fn meter_for(settings: &CollectSettings) -> Meter {
    let (index, count) = settings.shard.map_or((0, 1), |s| (s.index, s.count));
    Meter::new(
        &settings.cluster_name,
        index,
        count,
        settings.memory,
        crate::metering::LOOKBACK_NS,
    )
}

/// Appends the `collector/interval` point of one node's round: the collector's interval, at
/// the earliest sample time of the node's summary, so that every sample of this round reads
/// this round's interval as its nominal one (the gap rule is measured in it: see
/// [`crate::billing::nominal`]) and a changed interval applies from its first round exactly.
/// Returns the points appended (none for a summary without any sample time).
pub fn encode_interval(
    summary: &self::summary::Summary,
    cluster_name: &str,
    interval: Duration,
    buf: &mut String,
) -> usize {
    let (Some(t), Ok(ns)) = (earliest_sample(summary), i64::try_from(interval.as_nanos())) else {
        return 0;
    };
    let tags = [
        ("cluster_name", cluster_name),
        ("nodename", summary.node.node_name.as_str()),
    ];
    let value = crate::influx::line::Value::Int(ns);
    let written = crate::influx::line::write_point(
        buf,
        crate::catalogue::COLLECTOR_INTERVAL,
        &tags,
        value,
        t,
    );
    usize::from(written.is_ok())
}

/// The earliest sample time anywhere in a node's summary, ns.
fn earliest_sample(s: &self::summary::Summary) -> Option<i64> {
    use self::summary::ContainerStats;
    let container = |c: &ContainerStats| {
        [
            c.cpu.as_ref().and_then(|x| x.time),
            c.memory.as_ref().and_then(|x| x.time),
            c.rootfs.as_ref().and_then(|x| x.time),
            c.logs.as_ref().and_then(|x| x.time),
        ]
    };
    let node = &s.node;
    let mut times = vec![
        node.cpu.as_ref().and_then(|x| x.time),
        node.memory.as_ref().and_then(|x| x.time),
        node.network.as_ref().and_then(|x| x.time),
        node.fs.as_ref().and_then(|x| x.time),
    ];
    times.extend(node.system_containers.iter().flat_map(container));
    for pod in &s.pods {
        times.extend([
            pod.cpu.as_ref().and_then(|x| x.time),
            pod.memory.as_ref().and_then(|x| x.time),
            pod.network.as_ref().and_then(|x| x.time),
            pod.ephemeral_storage.as_ref().and_then(|x| x.time),
        ]);
        times.extend(pod.containers.iter().flat_map(container));
    }
    times
        .into_iter()
        .flatten()
        .filter_map(|t| t.timestamp_nanos_opt())
        .min()
}

/// Merges the node's DCGM readings into its summary. A missing exporter costs the GPU
/// readings of that node, not its summary.
async fn add_gpu_readings(
    http: &reqwest::Client,
    template: &str,
    node: &self::kube::NodeTarget,
    timeout: Duration,
    summary: &mut self::summary::Summary,
) {
    let url = template
        .replace("{node}", &node.name)
        .replace("{address}", node.address.as_deref().unwrap_or(&node.name));
    let text = async {
        http.get(&url)
            .timeout(timeout)
            .send()
            .await?
            .error_for_status()?
            .text()
            .await
    };
    match text.await {
        Ok(text) => {
            dcgm::merge(summary, &dcgm::parse(&text));
        }
        Err(e) => {
            tracing::warn!(node = %node.name, %url, error = %error_chain(&e), "DCGM exporter unreachable")
        }
    }
}

/// `/metrics` and `/healthz` of the collector.
pub fn serve_metrics(addr: SocketAddr, metrics: Arc<Metrics>) -> anyhow::Result<u16> {
    let listener = TcpListener::bind(addr)
        .map_err(|e| anyhow::anyhow!("cannot listen on {addr} (KUBEMETER_METRICS_LISTEN): {e}"))?;
    let port = listener.local_addr()?.port();
    let data = web::Data::from(metrics);
    let server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .route(
                "/metrics",
                web::get().to(|m: web::Data<Metrics>| async move {
                    HttpResponse::Ok()
                        .content_type("text/plain; version=0.0.4")
                        .body(m.render())
                }),
            )
            .route(
                "/healthz",
                web::get().to(|| async { HttpResponse::Ok().body("ok\n") }),
            )
    })
    .workers(1)
    .listen(listener)?
    .run();
    tokio::spawn(server);
    Ok(port)
}

/// `kubemeter collect`: rounds every interval until Ctrl-C or SIGTERM (or one round with
/// `--once`), then flushes the writer.
pub async fn run(settings: CollectSettings, influx: InfluxClient) -> anyhow::Result<()> {
    let metrics = Arc::new(Metrics::default());
    if let Some(addr) = settings.metrics_listen {
        let port = serve_metrics(addr, metrics.clone())?;
        tracing::info!(port, "collector metrics on /metrics");
    }
    run_with_metrics(settings, influx, metrics, shutdown_signal()).await
}

/// [`run`], counting into `metrics` that the caller serves (`settings.metrics_listen` is
/// not used), until `stop` completes: `kubemeter demo` serves the metrics on whatever port is
/// free, and stops its parts itself (a signal that came before the loop started would be
/// missed by a handler installed later).
pub async fn run_with_metrics(
    settings: CollectSettings,
    influx: InfluxClient,
    metrics: Arc<Metrics>,
    stop: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    let client = kube_client(settings.kube_url.as_deref()).await?;
    if let Err(e) = influx.create_database().await {
        tracing::warn!(error = %error_chain(&e), "cannot create the InfluxDB database now; samples will be spooled until InfluxDB answers");
    }
    let influx_for_resume = influx.clone();
    let (writer, writer_task) =
        writer::spawn(influx, &settings.writer, metrics.clone()).map_err(|e| {
            anyhow::anyhow!(
                "cannot open the spool in {} (KUBEMETER_DATA_DIR): {e}",
                settings.writer.spool_dir.display()
            )
        })?;
    let once = settings.once;
    let interval = settings.interval;
    let resume = last_metered_minute(&influx_for_resume, &settings).await;
    let mut stop = std::pin::pin!(stop);
    let start = Collector::start(client, settings, metrics, writer, Duration::from_secs(60));
    let mut collector = tokio::select! {
        collector = start => collector?,
        // Stopped while still listing the cluster: the writer (dropped with `start`) flushes.
        _ = &mut stop => {
            writer_task.await?;
            return Ok(());
        }
    };
    if let Some(last) = resume {
        collector.meter.resume_after(last);
    }
    if once {
        collector.round().await;
        collector.finish().await;
    } else {
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => { collector.round().await; }
                _ = &mut stop => break,
            }
        }
        collector.finish().await;
    }
    tracing::info!("flushing the writer");
    writer_task.await?;
    Ok(())
}

/// Ctrl-C or SIGTERM, whichever comes first.
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => return std::future::pending().await,
            };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_round_records_its_interval_at_the_earliest_sample_of_each_node() {
        // The node's CPU at 10:00:05, a pod's memory at 10:00:02 (kubelets sample each
        // resource on its own clock): the record sits at 10:00:02, before every sample.
        let summary: self::summary::Summary = serde_json::from_value(serde_json::json!({
            "node": {"nodeName": "n1", "cpu": {"time": "2026-10-01T10:00:05Z"}},
            "pods": [{"podRef": {"name": "p", "namespace": "a"}, "containers": [
                {"name": "c", "memory": {"time": "2026-10-01T10:00:02Z", "workingSetBytes": 1}}]}]
        }))
        .unwrap();
        let mut buf = String::new();
        assert_eq!(
            encode_interval(&summary, "prod", Duration::from_secs(60), &mut buf),
            1
        );
        assert_eq!(
            buf,
            "collector/interval,cluster_name=prod,nodename=n1 value=60000000000i 1790848802000000000\n"
        );
        // A summary without any sample time records nothing.
        let empty = self::summary::Summary::default();
        assert_eq!(
            encode_interval(&empty, "prod", Duration::from_secs(60), &mut buf),
            0
        );
    }

    #[test]
    fn shards_split_nodes_without_overlap_or_gaps() {
        let shards: Vec<Shard> = (0..3)
            .map(|i| Shard::parse(&format!("{i}/3")).unwrap())
            .collect();
        for n in 0..100 {
            let node = format!("node-{n:03}");
            assert_eq!(shards.iter().filter(|s| s.owns(&node)).count(), 1, "{node}");
        }
        assert_eq!(Shard::parse("3/3"), None);
        assert_eq!(Shard::parse("x"), None);
    }
}
