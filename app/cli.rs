//! The `kubemeter` command line (DESIGN.md §2). Subcommands appear here as they become real.

use chrono::{TimeZone, Utc};
use clap::{Args, Parser, Subcommand};
use secrecy::SecretString;
use std::net::SocketAddr;

use crate::collector::{self, writer::WriterConfig, CollectSettings};
use crate::config::{CollectArgs, DbArgs, ServeArgs};
use crate::demo::{DemoCluster, Detail};
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
    /// Time between scrape rounds.
    #[arg(long, env = "KUBEMETER_SCRAPE_INTERVAL", default_value = "15s", value_parser = crate::config::parse_duration)]
    pub scrape_interval: std::time::Duration,
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
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(args) => serve(args).await,
        Command::Collect(args) => collect(args).await,
        Command::Simulate(args) => simulate(args).await,
        Command::Demo(args) => demo(args).await,
        Command::Createuser(args) => create_user(args).await,
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

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let settings = settings(&args).await?;
    let _guards = telemetry::init(&args.log.log_dir)?;
    if settings.api_credential.is_none() {
        tracing::warn!("API_USERNAME/API_PASSWORD are not set: only users made with `kubemeter createuser` can call the API");
    }
    let app = Application::build(settings)?;
    tracing::info!(port = app.port(), "kubemeter serving");
    Ok(app.run_until_stopped().await?)
}

async fn collect(args: CollectArgs) -> anyhow::Result<()> {
    let settings = args.settings()?;
    let influx = InfluxClient::new(args.influx.to_config()?);
    let _guards = telemetry::init(&args.log.log_dir)?;
    collector::run(settings, influx).await
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
    let mut settings = settings(&args.serve).await?;
    let _guards = telemetry::init(&args.serve.log.log_dir)?;
    let credential = settings
        .api_credential
        .get_or_insert_with(|| ("demo".to_string(), SecretString::from("demo")));
    let (user, password) = (
        credential.0.clone(),
        secrecy::ExposeSecret::expose_secret(&credential.1).to_string(),
    );

    let influx = InfluxClient::new(settings.influx.clone());
    influx.create_database().await.map_err(|e| {
        anyhow::anyhow!(
            "cannot reach InfluxDB at {} ({e}); is it running?",
            settings.influx.url
        )
    })?;
    // The window of the old README's curl example, so that it answers unchanged.
    let dec = Utc.with_ymd_and_hms(2017, 12, 1, 0, 0, 0).unwrap();
    DemoCluster::new(24)
        .write(
            &influx,
            dec,
            dec + chrono::Duration::days(2),
            300,
            Detail::Full,
        )
        .await?;

    let sim = Simulator::build(
        SimulateArgs {
            nodes: args.nodes,
            pods_per_node: args.pods_per_node,
            seed: 1,
            listen: "127.0.0.1:0".parse()?,
            failing_nodes: vec![],
            slow_nodes: vec![],
            kubelet_port: None,
            kubelet_token: None,
        }
        .settings()?,
    )?;
    let collect_settings = CollectSettings {
        kube_url: Some(format!("http://127.0.0.1:{}", sim.port())),
        interval: args.scrape_interval,
        once: false,
        cluster_name: "demo".into(),
        label_keys: vec!["team".into(), "cost-center".into()],
        concurrency: 8,
        node_timeout: std::time::Duration::from_secs(5),
        writer: WriterConfig {
            spool_dir: args.serve.db.data_dir.join("spool"),
            spool_max_bytes: 256 << 20,
        },
        metrics_listen: Some(args.metrics_listen),
        shard: None,
        kubelet: None,
        dcgm_url: None,
    };
    tokio::spawn(sim.run_until_stopped());
    tokio::spawn(async move {
        if let Err(e) = collector::run(collect_settings, influx).await {
            tracing::error!(error = %format!("{e:#}"), "the demo's collector stopped");
        }
    });

    let demo_user = "demo";
    if let Some(db) = &settings.db {
        let created = db
            .create_user(crate::users::NewUser {
                username: demo_user.into(),
                email: "demo@example.invalid".into(),
                role: crate::users::Role::Admin,
                namespaces: vec![],
                password: SecretString::from(demo_user),
            })
            .await;
        match created {
            Ok(()) | Err(crate::users::StoreError::UserExists(_)) => {}
            Err(e) => return Err(e.into()),
        }
    }
    let app = Application::build(settings)?;
    let port = app.port();
    println!();
    println!("kubemeter demo is running at http://127.0.0.1:{port}");
    println!(
        "  a simulated cluster of {} nodes is scraped every {:?}",
        args.nodes, args.scrape_interval
    );
    println!(
        "Dashboard: http://127.0.0.1:{port}/web/login/  (user {demo_user}, password {demo_user})"
    );
    println!("API credential: X-USERNAME {user}  X-PASSWORD {password}");
    println!("Try:");
    println!(
        "  curl -X POST http://127.0.0.1:{port}/api/cpu/usage_rate -H 'x-username: {user}' \
         -H 'x-password: {password}' -d '{{\"agg\":\"by-workload\"}}'"
    );
    println!(
        "  curl -X POST http://127.0.0.1:{port}/api/cpu/usage_rate -H 'x-username: {user}' \
         -H 'x-password: {password}' -d '{{\"agg\":\"pod-by-namespace\",\"timeBeginInterval\":\"2017-12-01\",\"timeEndInterval\":\"2017-12-31\"}}'"
    );
    println!("Collector metrics: http://{}/metrics", args.metrics_listen);
    println!("Press Ctrl-C to stop.");
    Ok(app.run_until_stopped().await?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }
}
