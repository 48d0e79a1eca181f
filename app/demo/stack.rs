//! `kubemeter demo`: a simulated cluster, the collector and the server in one process, on
//! free ports, opening with a day of the cluster's history. Every part is watched: when one
//! stops before Ctrl-C or SIGTERM, the demo stops with an error naming it, instead of going
//! on as if the cluster were still scraped.

use actix_web::dev::ServerHandle;
use chrono::{DateTime, TimeZone, Utc};
use secrecy::SecretString;
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinSet;

use super::{DemoCluster, Detail};
use crate::cli::DemoArgs;
use crate::collector::{self, metrics::Metrics, writer::WriterConfig, CollectSettings};
use crate::influx::InfluxClient;
use crate::simulator::history::{self, Tagging};
use crate::simulator::model::SimConfig;
use crate::simulator::{SimSettings, Simulator};
use crate::startup::{Application, Settings};

/// The demo's login and bootstrap API credential (unless API_USERNAME/API_PASSWORD are set).
pub const DEMO_USER: &str = "demo";
/// How long the parts get to stop (the collector flushes what it holds) after a signal.
const STOP_GRACE: Duration = Duration::from_secs(20);

/// `addr`, or a free port on the same address when `addr`'s port is taken (the message says
/// which). Port 0 is left to the listener.
pub fn free_or_any(addr: SocketAddr, what: &str) -> (SocketAddr, Option<String>) {
    if addr.port() == 0 || TcpListener::bind(addr).is_ok() {
        return (addr, None);
    }
    let any = SocketAddr::new(addr.ip(), 0);
    (any, Some(format!("{what}: port {} is busy", addr.port())))
}

/// What one part returned, by name.
type Ended = (&'static str, anyhow::Result<()>);

/// Ctrl-C and SIGTERM, listened to from the start: a signal that arrives before a listener
/// exists is not delivered to it later.
struct Signals {
    interrupt: tokio::signal::unix::Signal,
    terminate: tokio::signal::unix::Signal,
}

impl Signals {
    fn new() -> anyhow::Result<Self> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(Signals {
            interrupt: signal(SignalKind::interrupt())?,
            terminate: signal(SignalKind::terminate())?,
        })
    }

    async fn recv(&mut self) {
        tokio::select! {
            _ = self.interrupt.recv() => {}
            _ = self.terminate.recv() => {}
        }
    }
}

pub async fn run(args: DemoArgs, mut settings: Settings) -> anyhow::Result<()> {
    let mut signals = Signals::new()?;
    let credential = settings
        .api_credential
        .get_or_insert_with(|| (DEMO_USER.to_string(), SecretString::from(DEMO_USER)))
        .clone();
    let influx = InfluxClient::new(settings.influx.clone());
    influx.create_database().await.map_err(|e| {
        anyhow::anyhow!(
            "cannot reach InfluxDB at {} ({e}); is it running?",
            settings.influx.url
        )
    })?;
    create_demo_user(&settings).await?;

    // Bind everything first, so that a port problem stops the demo before any work.
    let mut notes = Vec::new();
    let (listen, note) = free_or_any(settings.listen, "the server");
    notes.extend(note);
    settings.listen = listen;
    let (metrics_addr, note) = free_or_any(args.metrics_listen, "the collector's /metrics");
    notes.extend(note);
    let metrics = Arc::new(Metrics::default());
    let metrics_port = collector::serve_metrics(metrics_addr, metrics.clone())?;
    let history = chrono::Duration::hours(i64::from(args.history_hours));
    let now = Utc::now();
    let sim = Simulator::build_at(sim_settings(&args), now - history)?;
    let model = sim.model();
    let scrape_interval = args.scrape_interval;
    let metering = settings.billing.metering(influx.clone());
    let app = Application::build(settings)?;
    let port = app.port();

    let old_window = load_old_data_set(&influx).await?;
    let tagging = Tagging {
        cluster_name: "demo".into(),
        label_keys: vec!["team".into(), "cost-center".into()],
    };
    let history_from = now - history;
    if args.history_hours > 0 {
        let written = tokio::select! {
            r = load_history(&model, &influx, (history_from, now), args.history_step, &tagging) => r?,
            _ = signals.recv() => return Ok(()),
        };
        tracing::info!(
            points = written,
            hours = args.history_hours,
            "history loaded"
        );
    }

    let mut collect_settings = collect_settings(&args, &tagging, sim.port(), scrape_interval);
    collect_settings.memory = metering.memory;
    let servers = [sim.handle(), app.handle()];
    let mut parts: JoinSet<Ended> = JoinSet::new();
    parts.spawn(async move {
        let r = sim.run_until_stopped().await;
        ("simulated cluster", r.map_err(Into::into))
    });
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let collector_stop = async move {
        let mut stopped = stopped;
        let _ = stopped.wait_for(|s| *s).await;
    };
    let collector_run =
        collector::run_with_metrics(collect_settings, influx.clone(), metrics, collector_stop);
    parts.spawn(async move { ("collector", collector_run.await) });
    parts.spawn(async move { ("server", app.run_until_stopped().await.map_err(Into::into)) });
    // The old data set metered once (about a minute), then the metering job, as next to a
    // real collector (it completes the history's hours too); neither holds up the start.
    let cluster = tagging.cluster_name.clone();
    let rollups = tokio::spawn(async move {
        meter_old_data_set(&metering, old_window).await;
        crate::jobs::rollup::run_every_minute(metering, cluster).await
    });

    for note in &notes {
        println!("{note}; took another one.");
    }
    print_welcome(
        &args,
        port,
        (metrics_addr.ip(), metrics_port),
        &credential,
        scrape_interval,
    );
    let result = watch(&mut parts, (&stop, &servers), &mut signals).await;
    rollups.abort();
    result
}

/// Waits for Ctrl-C or SIGTERM, then for every part to stop; or for a part to stop first,
/// which is an error.
async fn watch(
    parts: &mut JoinSet<Ended>,
    (collector, servers): (&tokio::sync::watch::Sender<bool>, &[ServerHandle]),
    signals: &mut Signals,
) -> anyhow::Result<()> {
    tokio::select! {
        biased;
        _ = signals.recv() => {
            println!("stopping the demo…");
            let _ = collector.send(true);
            for server in servers {
                tokio::spawn(server.stop(true));
            }
            let all = async { while parts.join_next().await.is_some() {} };
            if tokio::time::timeout(STOP_GRACE, all).await.is_err() {
                anyhow::bail!("the demo's parts did not stop within {STOP_GRACE:?}");
            }
            Ok(())
        }
        Some(ended) = parts.join_next() => {
            let (part, result) = ended.unwrap_or(("a part", Err(anyhow::anyhow!("it panicked"))));
            match result {
                Ok(()) => anyhow::bail!("the demo's {part} stopped unexpectedly; stopping the demo"),
                Err(e) => anyhow::bail!("the demo's {part} failed: {e:#}; stopping the demo"),
            }
        }
    }
}

/// The collector of the simulated cluster, as `kubemeter collect` would run against it.
fn collect_settings(
    args: &DemoArgs,
    tagging: &Tagging,
    sim_port: u16,
    interval: Duration,
) -> CollectSettings {
    CollectSettings {
        kube_url: Some(format!("http://127.0.0.1:{sim_port}")),
        interval,
        once: false,
        cluster_name: tagging.cluster_name.clone(),
        label_keys: tagging.label_keys.clone(),
        concurrency: 8,
        node_timeout: Duration::from_secs(5),
        writer: WriterConfig {
            spool_dir: args.serve.db.data_dir.join("spool"),
            spool_max_bytes: 256 << 20,
        },
        metrics_listen: None,
        shard: None,
        kubelet: None,
        dcgm_url: None,
        memory: Default::default(),
    }
}

fn sim_settings(args: &DemoArgs) -> SimSettings {
    SimSettings {
        config: SimConfig {
            nodes: args.nodes,
            pods_per_node: args.pods_per_node,
            seed: 1,
        },
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        node_modes: vec![],
        kubelet_port: None,
        kubelet_token: None,
    }
}

async fn create_demo_user(settings: &Settings) -> anyhow::Result<()> {
    let Some(db) = &settings.db else {
        return Ok(());
    };
    let created = db
        .create_user(crate::users::NewUser {
            username: DEMO_USER.into(),
            email: "demo@example.invalid".into(),
            role: crate::users::Role::Admin,
            namespaces: vec![],
            password: SecretString::from(DEMO_USER),
        })
        .await;
    match created {
        Ok(()) | Err(crate::users::StoreError::UserExists(_)) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// The window of the old README's curl example (2017-12-01 and 02), so that it answers.
async fn load_old_data_set(influx: &InfluxClient) -> anyhow::Result<crate::billing::Window> {
    let dec = Utc
        .with_ymd_and_hms(2017, 12, 1, 0, 0, 0)
        .single()
        .ok_or_else(|| anyhow::anyhow!("2017-12-01 is a date"))?;
    let end = dec + chrono::Duration::days(2);
    DemoCluster::new(24)
        .write(influx, dec, end, 300, Detail::Full)
        .await?;
    let ns = crate::vocab::time::to_ns;
    Ok(crate::billing::Window {
        from: ns(dec),
        to: ns(end),
    })
}

/// Meters the old data set once, as `kubemeter rollup --backfill` meters data another program
/// wrote (statements read metered rows only).
async fn meter_old_data_set(metering: &crate::metering::Metering, w: crate::billing::Window) {
    let cluster = crate::jobs::rollup::DEFAULT_CLUSTER;
    let done = crate::jobs::rollup::roll_up(metering, cluster, w, &crate::metering::Quiet).await;
    match done {
        Ok(r) => tracing::info!(minutes = r.minutes, "the 2017 data set is metered"),
        Err(e) => tracing::warn!(error = %e, "the 2017 data set could not be metered"),
    }
}

/// The simulated cluster's last hours, as the collector would have scraped them.
async fn load_history(
    model: &crate::simulator::model::Model,
    influx: &InfluxClient,
    window: (DateTime<Utc>, DateTime<Utc>),
    step: Duration,
    tagging: &Tagging,
) -> anyhow::Result<usize> {
    let hours = (window.1 - window.0).num_hours();
    eprintln!("loading the simulated cluster's last {hours} hours (a sample every {step:?})…");
    let progress = |share: f64| tracing::debug!(share, "history");
    let started = std::time::Instant::now();
    let points = history::write(model, influx, window, step, tagging, progress).await?;
    eprintln!(
        "  {points} points in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(points)
}

fn print_welcome(
    args: &DemoArgs,
    port: u16,
    (metrics_ip, metrics_port): (std::net::IpAddr, u16),
    (user, password): &(String, SecretString),
    scrape_interval: Duration,
) {
    let password = secrecy::ExposeSecret::expose_secret(password);
    let base = format!("http://127.0.0.1:{port}");
    println!();
    println!("kubemeter demo is running at {base}");
    println!(
        "  a simulated cluster of {} nodes, with its last {} hours loaded, is scraped every {:?}",
        args.nodes, args.history_hours, scrape_interval
    );
    println!("Dashboard: {base}/web/login/  (user {DEMO_USER}, password {DEMO_USER})");
    println!("API credential: X-USERNAME {user}  X-PASSWORD {password}");
    println!("Try:");
    let auth = format!("-H 'x-username: {user}' -H 'x-password: {password}'");
    println!("  curl -X POST {base}/api/cpu/usage_rate {auth} -d '{{\"agg\":\"by-workload\"}}'");
    println!(
        "  curl -X POST {base}/api/cpu/usage_rate {auth} -d '{{\"agg\":\"pod-by-namespace\",\"timeBeginInterval\":\"2017-12-01\",\"timeEndInterval\":\"2017-12-31\"}}'"
    );
    let today = Utc::now().date_naive();
    let yesterday = today - chrono::Duration::days(1);
    let tomorrow = today + chrono::Duration::days(1);
    println!(
        "  curl '{base}/api/billing?from={yesterday}&to={tomorrow}&by=namespace&format=csv' {auth}"
    );
    println!("Billing page: {base}/web/billing?from={yesterday}&to={tomorrow}");
    println!("Collector metrics: http://{metrics_ip}:{metrics_port}/metrics");
    println!("Press Ctrl-C to stop.");
}
