//! The `kubemeter` command line: one binary, a subcommand per job (the README's Commands).

use chrono::Utc;
use clap::{Args, Parser, Subcommand};
use secrecy::SecretString;
use std::net::SocketAddr;

use crate::collector::{self, CollectSettings};
use crate::config::{CollectArgs, DbArgs, ServeArgs};
use crate::influx::InfluxClient;
use crate::simulator::model::SimConfig;
use crate::simulator::{NodeMode, SimSettings, Simulator};
use crate::startup::{Application, Settings};
use crate::telemetry;

#[derive(Parser, Debug)]
#[command(
    name = "kubemeter",
    version,
    about = "Meters what every Kubernetes workload uses, for chargeback."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Serve the API (POST /api/<metric>) and /healthz, /readyz.
    Serve(ServeArgs),
    /// Scrape every node's kubelet summary into InfluxDB, every interval (or --once).
    Collect(CollectArgs),
    /// Serve a simulated cluster (Kubernetes API subset + kubelet summaries).
    Simulate(SimulateArgs),
    /// Everything on one machine: a simulated cluster, the collector and the server.
    Demo(DemoArgs),
    /// Add a user (prompts for the password unless --password-stdin).
    Createuser(CreateUserArgs),
    /// Apply the SQL migrations (serve does this at start too).
    Migrate(DbArgs),
    /// A billing statement for a period, to a file, standard output or a billing system.
    Export(ExportArgs),
    /// (Re)compute the billing rollups: the last few hours, or every hour of a period with
    /// --backfill (collect does the former every hour).
    Rollup(RollupArgs),
}

#[derive(Args, Debug)]
pub struct RollupArgs {
    #[command(flatten)]
    pub influx: crate::config::InfluxArgs,
    #[command(flatten)]
    pub billing: crate::config::BillingArgs,
    /// Recompute every whole hour from --from to --to (and the complete days and weeks among
    /// them) instead of the last few hours, e.g. after importing old data.
    #[arg(long, requires_all = ["from", "to"])]
    pub backfill: bool,
    /// First day (or RFC 3339 time) of the backfill, included, e.g. 2026-10-01.
    #[arg(long, requires = "backfill")]
    pub from: Option<String>,
    /// End of the backfill, excluded, e.g. 2026-11-01.
    #[arg(long, requires = "backfill")]
    pub to: Option<String>,
    /// The cluster (`cluster_name` tag) to meter; default: every cluster in the data.
    #[arg(long)]
    pub cluster: Option<String>,
}

#[derive(Args, Debug)]
pub struct ExportArgs {
    #[command(flatten)]
    pub influx: crate::config::InfluxArgs,
    #[command(flatten)]
    pub db: DbArgs,
    #[command(flatten)]
    pub billing: crate::config::BillingArgs,
    /// First day (or RFC 3339 time) of the period, included, e.g. 2026-10-01.
    #[arg(long, required_unless_present_any = ["list", "month"], conflicts_with = "month")]
    pub from: Option<String>,
    /// End of the period, excluded, e.g. 2026-11-01 for all of October.
    #[arg(long, required_unless_present_any = ["list", "month"], conflicts_with = "month")]
    pub to: Option<String>,
    /// A calendar month instead of --from/--to: YYYY-MM, or `last` for the month before this
    /// one (what a monthly CronJob exports).
    #[arg(long)]
    pub month: Option<String>,
    /// namespace, workload, pod, node or label:<key>.
    #[arg(long, default_value = "namespace")]
    pub by: String,
    /// csv or json.
    #[arg(long, default_value = "csv")]
    pub format: String,
    /// usage, request or max for every resource, or e.g. cpu=usage,memory=max
    /// (default: KUBEMETER_BILLING_MODE).
    #[arg(long)]
    pub mode: Option<String>,
    /// Write the statement to FILE (default: standard output).
    #[arg(long, value_name = "FILE", conflicts_with = "post")]
    pub out: Option<std::path::PathBuf>,
    /// POST the statement to a billing system's URL, retrying when it is unavailable.
    #[arg(long, value_name = "URL")]
    pub post: Option<String>,
    /// Bearer token for --post.
    #[arg(long, env = "KUBEMETER_EXPORT_TOKEN", hide_env_values = true)]
    pub post_token: Option<String>,
    /// Attempts for --post before giving up.
    #[arg(long, default_value_t = 5)]
    pub post_attempts: u32,
    /// List the recorded export runs instead of exporting.
    #[arg(long)]
    pub list: bool,
}

#[derive(Args, Debug)]
pub struct CreateUserArgs {
    #[command(flatten)]
    pub db: DbArgs,
    #[arg(long)]
    pub username: String,
    #[arg(long)]
    pub email: String,
    /// admin, viewer (dashboard only) or api (API only).
    #[arg(long, default_value = "viewer")]
    pub role: String,
    /// Namespaces the user may see, e.g. team-a,team-b (default: all).
    #[arg(long, value_delimiter = ',')]
    pub namespaces: Vec<String>,
    /// Read the password from the first line of standard input.
    #[arg(long)]
    pub password_stdin: bool,
}

#[derive(Args, Debug, Clone)]
pub struct SimulateArgs {
    /// Number of nodes.
    #[arg(long, default_value_t = 3)]
    pub nodes: usize,
    /// Pod slots per node (slot 0: a host-network DaemonSet pod, slot 1: a static pod).
    #[arg(long, default_value_t = 12)]
    pub pods_per_node: usize,
    /// Seed of the deterministic usage functions.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Where the simulated API server listens.
    #[arg(long, default_value = "127.0.0.1:8001")]
    pub listen: SocketAddr,
    /// Make a node's kubelet fail (HTTP 500); repeatable.
    #[arg(long = "failing-node")]
    pub failing_nodes: Vec<String>,
    /// Make a node's kubelet slow, as NAME=SECONDS; repeatable.
    #[arg(long = "slow-node")]
    pub slow_nodes: Vec<String>,
    /// Also serve each node's kubelet on 127.0.0.<n+1>:PORT (for `collect --kubelet-direct`).
    #[arg(long)]
    pub kubelet_port: Option<u16>,
    /// The bearer token the simulated kubelets require.
    #[arg(long)]
    pub kubelet_token: Option<String>,
}

impl SimulateArgs {
    pub fn settings(&self) -> anyhow::Result<SimSettings> {
        let mut node_modes: Vec<(String, NodeMode)> = self
            .failing_nodes
            .iter()
            .map(|n| (n.clone(), NodeMode::Fail))
            .collect();
        for spec in &self.slow_nodes {
            let mode = spec
                .split_once('=')
                .and_then(|(n, s)| Some((n.to_string(), NodeMode::parse(&format!("slow={s}"))?)))
                .ok_or_else(|| {
                    anyhow::anyhow!("--slow-node {spec:?}: use NAME=SECONDS, e.g. node-002=5")
                })?;
            node_modes.push(mode);
        }
        Ok(SimSettings {
            config: SimConfig {
                nodes: self.nodes,
                pods_per_node: self.pods_per_node,
                seed: self.seed,
            },
            listen: self.listen,
            node_modes,
            kubelet_port: self.kubelet_port,
            kubelet_token: self.kubelet_token.clone(),
        })
    }
}

#[derive(Args, Debug)]
pub struct DemoArgs {
    #[command(flatten)]
    pub serve: ServeArgs,
    /// Where the collector serves /metrics.
    #[arg(
        long,
        env = "KUBEMETER_METRICS_LISTEN",
        default_value = "127.0.0.1:9464"
    )]
    pub metrics_listen: SocketAddr,
    /// Simulated nodes.
    #[arg(long, default_value_t = 3)]
    pub nodes: usize,
    /// Pod slots per simulated node.
    #[arg(long, default_value_t = 12)]
    pub pods_per_node: usize,
    /// Time between the demo collector's scrape rounds.
    #[arg(long, env = "KUBEMETER_SCRAPE_INTERVAL", default_value = "15s", value_parser = crate::config::parse_duration)]
    pub scrape_interval: std::time::Duration,
    /// Hours of the simulated cluster's past loaded at start (0: none), so that charts,
    /// drill-downs and bills have content at once.
    #[arg(long, default_value_t = 24)]
    pub history_hours: u32,
    /// Time between two samples of that history.
    #[arg(long, default_value = "60s", value_parser = crate::config::parse_duration)]
    pub history_step: std::time::Duration,
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(args) => serve(args).await,
        Command::Collect(args) => collect(args).await,
        Command::Simulate(args) => simulate(args).await,
        Command::Demo(args) => demo(args).await,
        Command::Createuser(args) => create_user(args).await,
        Command::Export(args) => export(args).await,
        Command::Rollup(args) => rollup(args).await,
        Command::Migrate(args) => {
            args.open().await?;
            println!(
                "migrations applied to {}",
                crate::users::redact(&args.url())
            );
            Ok(())
        }
    }
}

async fn settings(args: &ServeArgs) -> anyhow::Result<Settings> {
    let influx = args.influx.to_config()?;
    let api_credential = args.api.credential()?;
    Ok(Settings {
        listen: args.listen,
        influx,
        api_credential,
        db: Some(args.db.open().await?),
        billing: args.billing.settings()?,
        limits: args.limits.limits(),
    })
}

async fn create_user(args: CreateUserArgs) -> anyhow::Result<()> {
    use crate::api::request::Namespace;
    use crate::users::{NewUser, Role};
    let role = Role::parse(&args.role).ok_or_else(|| {
        anyhow::anyhow!("--role must be admin, viewer or api, not {:?}", args.role)
    })?;
    let ok_name = |c: char| c.is_ascii_alphanumeric() || "_.@-".contains(c);
    if args.username.is_empty() || args.username.len() > 150 || !args.username.chars().all(ok_name)
    {
        anyhow::bail!("--username must be 1 to 150 letters, digits or _ . @ -");
    }
    if !args.email.contains('@') {
        anyhow::bail!("--email {:?} is not an email address", args.email);
    }
    let namespaces = args
        .namespaces
        .iter()
        .map(|n| {
            Namespace::parse(n)
                .ok_or_else(|| anyhow::anyhow!("--namespaces: {n:?} is not a namespace name"))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let password = read_password(args.password_stdin)?;
    if password.chars().count() < 8 {
        anyhow::bail!("the password must have at least 8 characters");
    }
    let db = args.db.open().await?;
    db.create_user(NewUser {
        username: args.username.clone(),
        email: args.email,
        role,
        namespaces,
        password: SecretString::from(password),
    })
    .await?;
    println!("user {} created (role {})", args.username, role.as_str());
    Ok(())
}

fn read_password(from_stdin: bool) -> anyhow::Result<String> {
    if from_stdin {
        let mut line = String::new();
        std::io::stdin().read_line(&mut line)?;
        return Ok(line.trim_end_matches(['\r', '\n']).to_string());
    }
    let first = rpassword::prompt_password("Password: ")?;
    let again = rpassword::prompt_password("Password (again): ")?;
    if first != again {
        anyhow::bail!("the passwords do not match");
    }
    Ok(first)
}

async fn export(args: ExportArgs) -> anyhow::Result<()> {
    use crate::api::billing::StatementParams;
    use crate::jobs::export::{self, Destination, Retry};
    use crate::jobs::progress::TerminalProgress;
    let db = args.db.open().await?;
    if args.list {
        return list_exports(&db).await;
    }
    let mut fields = std::collections::BTreeMap::new();
    let (from, to) = match &args.month {
        Some(m) => {
            let (from, to) = month_bounds(m, Utc::now())?;
            (Some(from), Some(to))
        }
        None => (args.from.clone(), args.to.clone()),
    };
    let given = [
        ("from", &from),
        ("to", &to),
        ("by", &Some(args.by.clone())),
        ("format", &Some(args.format.clone())),
        ("mode", &args.mode),
    ];
    for (k, v) in given {
        if let Some(v) = v {
            fields.insert(k.to_string(), v.clone());
        }
    }
    let params = StatementParams::parse(&fields, chrono::Utc::now())
        .map_err(|e| anyhow::anyhow!("--{e}"))?;
    let destination = match (&args.out, &args.post) {
        (Some(path), _) => Destination::File(path.clone()),
        (None, Some(url)) => Destination::Post {
            url: reqwest::Url::parse(url)
                .ok()
                .filter(|u| matches!(u.scheme(), "http" | "https"))
                .ok_or_else(|| anyhow::anyhow!("--post {url:?} is not an http(s) URL"))?,
            token: args.post_token.clone().map(SecretString::from),
        },
        (None, None) => Destination::Stdout,
    };
    let billing = args.billing.settings()?;
    let metering = billing.metering(InfluxClient::new(args.influx.to_config()?));
    let progress = TerminalProgress::new("export");
    let retry = Retry {
        attempts: args.post_attempts.max(1),
        ..Retry::default()
    };
    let result = export::export(
        &metering,
        billing.modes,
        &db,
        &params,
        &destination,
        retry,
        &progress,
    )
    .await;
    progress.finish();
    let run = result?;
    eprintln!(
        "exported {} rows by {} ({} bytes, sha256 {}) to {}; run {}",
        run.rows,
        params.by.name(),
        run.bytes,
        run.sha256,
        run.destination,
        run.id
    );
    Ok(())
}

/// `2026-10` → (`2026-10-01`, `2026-11-01`); `last` → the month before `now`'s.
pub fn month_bounds(month: &str, now: chrono::DateTime<Utc>) -> anyhow::Result<(String, String)> {
    use chrono::{Datelike, NaiveDate};
    let first = if month == "last" {
        let this = NaiveDate::from_ymd_opt(now.year(), now.month(), 1);
        this.and_then(|d| d.checked_sub_months(chrono::Months::new(1)))
    } else {
        NaiveDate::parse_from_str(&format!("{month}-01"), "%Y-%m-%d").ok()
    }
    .ok_or_else(|| {
        anyhow::anyhow!("--month {month:?} is not a month; use YYYY-MM (e.g. 2026-10) or last")
    })?;
    let next = first
        .checked_add_months(chrono::Months::new(1))
        .ok_or_else(|| anyhow::anyhow!("--month {month:?} is too far in the future"))?;
    Ok((first.to_string(), next.to_string()))
}

async fn list_exports(db: &crate::users::Db) -> anyhow::Result<()> {
    let day = |t: i64| {
        chrono::DateTime::from_timestamp_nanos(t)
            .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
    };
    for r in crate::jobs::export::recorded_runs(db, 50).await? {
        println!(
            "{}  {} → {}  by {}  {}  {} rows  sha256 {}  {}",
            r.id,
            day(r.period_from),
            day(r.period_to),
            r.grouping,
            r.format,
            r.rows,
            r.sha256,
            r.destination
        );
    }
    Ok(())
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let settings = settings(&args).await?;
    let _guards = telemetry::init(&args.log.log_dir)?;
    if settings.api_credential.is_none() {
        tracing::warn!("API_USERNAME/API_PASSWORD are not set: only users made with `kubemeter createuser` can call the API");
    }
    // Each connection holds two descriptors (its socket, and the duplicate watched for
    // hang-ups): take every descriptor the system allows rather than the soft default.
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(n) => tracing::debug!(limit = n, "open files"),
        Err(e) => tracing::warn!(error = %e, "cannot raise the open-files limit"),
    }
    let app = Application::build(settings)?;
    tracing::info!(port = app.port(), "kubemeter serving");
    Ok(app.run_until_stopped().await?)
}

async fn collect(args: CollectArgs) -> anyhow::Result<()> {
    let settings = args.settings()?;
    let influx = InfluxClient::new(args.influx.to_config()?);
    let _guards = telemetry::init(&args.log.log_dir)?;
    let rollups = rollup_task(&settings, &args.billing_memory, &influx)?;
    let result = collector::run(settings, influx).await;
    if let Some(task) = rollups {
        task.abort();
    }
    result
}

/// The metering job next to a long-running collector, for its cluster (one replica's job when
/// the nodes are sharded; none for --once), on the memory gauge the server bills
/// (`KUBEMETER_BILLING_MEMORY`).
fn rollup_task(
    settings: &CollectSettings,
    billing_memory: &str,
    influx: &InfluxClient,
) -> anyhow::Result<Option<tokio::task::JoinHandle<()>>> {
    if settings.once || settings.shard.is_some_and(|s| s.index != 0) {
        return Ok(None);
    }
    let metering = crate::config::BillingSettings {
        memory: crate::config::memory_source(billing_memory)?,
        ..Default::default()
    }
    .metering(influx.clone());
    Ok(Some(tokio::spawn(crate::jobs::rollup::run_every_minute(
        metering,
        settings.cluster_name.clone(),
    ))))
}

async fn rollup(args: RollupArgs) -> anyhow::Result<()> {
    use crate::jobs::progress::TerminalProgress;
    use crate::jobs::rollup;
    use crate::metering::period::Period;
    let metering = args
        .billing
        .settings()?
        .metering(InfluxClient::new(args.influx.to_config()?));
    let clusters = match &args.cluster {
        Some(c) => vec![c.clone()],
        None => rollup::clusters(&metering).await?,
    };
    if clusters.is_empty() {
        anyhow::bail!("no raw samples found (no cluster_name in cpu/usage); nothing to meter");
    }
    for cluster in clusters {
        let progress = TerminalProgress::new(format!("rollup {cluster}"));
        let result = match (&args.from, &args.to) {
            (Some(from), Some(to)) => {
                let w = backfill_window(from, to)?;
                rollup::roll_up(&metering, &cluster, w, &progress).await
            }
            _ => {
                let now = Utc::now().timestamp_nanos_opt().unwrap_or(i64::MAX);
                rollup::run_recent(&metering, &cluster, now, &progress).await
            }
        };
        progress.finish();
        let r = result?;
        eprintln!(
            "{cluster}: {} minutes metered from raw samples; made {} ten-minute periods, {} hours, \
             {} days and {} weeks ({} pod rows)",
            r.minutes,
            r.made(Period::TenMinutes),
            r.made(Period::Hour),
            r.made(Period::Day),
            r.made(Period::Week),
            r.pod_rows
        );
    }
    Ok(())
}

/// `--from`/`--to` of a backfill as a window of whole hours.
fn backfill_window(from: &str, to: &str) -> anyhow::Result<crate::billing::Window> {
    use crate::api::request::parse_instant;
    let ns = |field, s| -> anyhow::Result<i64> {
        let t = parse_instant(field, s).map_err(|e| anyhow::anyhow!("--{e}"))?;
        t.timestamp_nanos_opt()
            .ok_or_else(|| anyhow::anyhow!("--{field} {s:?} is out of range"))
    };
    let w = crate::billing::Window::new(ns("from", from)?, ns("to", to)?)
        .ok_or_else(|| anyhow::anyhow!("--to {to:?} must be after --from {from:?}"))?;
    // A longer backfill would hold the raw samples of many hours for long; run it in pieces.
    const MAX_DAYS: i64 = 400;
    if w.to - w.from > MAX_DAYS * 86_400 * 1_000_000_000 {
        anyhow::bail!("a backfill covers at most {MAX_DAYS} days at a time; run it once per year");
    }
    Ok(w)
}

async fn simulate(args: SimulateArgs) -> anyhow::Result<()> {
    let settings = args.settings()?;
    let sim = Simulator::build(settings)?;
    println!(
        "simulated cluster ({} nodes × {} pod slots, seed {}) at http://127.0.0.1:{}",
        args.nodes,
        args.pods_per_node,
        args.seed,
        sim.port()
    );
    if let Some(port) = sim.kubelet_port() {
        println!("simulated kubelets at http://127.0.0.<n+1>:{port}/stats/summary");
    }
    Ok(sim.run_until_stopped().await?)
}

async fn demo(args: DemoArgs) -> anyhow::Result<()> {
    let settings = settings(&args.serve).await?;
    let _guards = telemetry::init(&args.serve.log.log_dir)?;
    crate::demo::stack::run(args, settings).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn a_month_is_its_first_day_to_the_next_months_first_day() {
        let now = Utc.with_ymd_and_hms(2027, 1, 5, 3, 0, 0).unwrap();
        let pair = |a: &str, b: &str| (a.to_string(), b.to_string());
        assert_eq!(
            month_bounds("2026-02", now).unwrap(),
            pair("2026-02-01", "2026-03-01")
        );
        assert_eq!(
            month_bounds("2026-12", now).unwrap(),
            pair("2026-12-01", "2027-01-01")
        );
        assert_eq!(
            month_bounds("last", now).unwrap(),
            pair("2026-12-01", "2027-01-01")
        );
        assert!(month_bounds("2026-13", now).is_err());
        assert!(month_bounds("October", now).is_err());
    }
}
