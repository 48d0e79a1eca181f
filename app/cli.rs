//! The `kubemeter` command line (DESIGN.md §2). Subcommands appear here as they become real.

use chrono::{DurationRound, TimeZone, Utc};
use clap::{Args, Parser, Subcommand};
use secrecy::SecretString;
use std::time::Duration;

use crate::config::ServeArgs;
use crate::demo::{DemoCluster, Detail};
use crate::influx::InfluxClient;
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
    /// Load a small demo cluster into InfluxDB, then serve it (see `make run`).
    Demo(DemoArgs),
}

#[derive(Args, Debug)]
pub struct DemoArgs {
    #[command(flatten)]
    pub serve: ServeArgs,
    /// How many pods the demo cluster has.
    #[arg(long, default_value_t = 24)]
    pub pods: usize,
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(args) => serve(args).await,
        Command::Demo(args) => demo(args).await,
    }
}

fn settings(args: &ServeArgs) -> anyhow::Result<Settings> {
    Ok(Settings {
        listen: args.listen,
        influx: args.influx.to_config()?,
        api_credential: args.api.credential()?,
    })
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let settings = settings(&args)?;
    let _guards = telemetry::init(&args.log.log_dir)?;
    if settings.api_credential.is_none() {
        tracing::warn!("API_USERNAME/API_PASSWORD are not set: every API call will be refused");
    }
    let app = Application::build(settings)?;
    tracing::info!(port = app.port(), "kubemeter serving");
    Ok(app.run_until_stopped().await?)
}

async fn demo(args: DemoArgs) -> anyhow::Result<()> {
    let mut settings = settings(&args.serve)?;
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
    let cluster = DemoCluster::new(args.pods);
    let now = Utc::now().duration_trunc(chrono::Duration::minutes(1))?;
    println!(
        "Loading the demo cluster ({} pods) into InfluxDB…",
        cluster.pods.len()
    );
    let recent = cluster
        .write(
            &influx,
            now - chrono::Duration::hours(2),
            now,
            60,
            Detail::Full,
        )
        .await?;
    // The window of the seed README's curl example, so that it answers unchanged.
    let dec = Utc.with_ymd_and_hms(2017, 12, 1, 0, 0, 0).unwrap();
    let old = cluster
        .write(
            &influx,
            dec,
            dec + chrono::Duration::days(2),
            300,
            Detail::Full,
        )
        .await?;
    println!("Loaded {} points.", recent + old);

    let app = Application::build(settings)?;
    let port = app.port();
    tokio::spawn(keep_writing(cluster, influx));
    println!();
    println!("kubemeter demo is running at http://127.0.0.1:{port}");
    println!("API credential: X-USERNAME {user}  X-PASSWORD {password}");
    println!("Try:");
    println!(
        "  curl -X POST http://127.0.0.1:{port}/api/cpu/usage_rate -H 'x-username: {user}' \
         -H 'x-password: {password}' -d '{{\"agg\":\"pod-by-namespace\",\"timeBeginInterval\":\"2017-12-01\",\"timeEndInterval\":\"2017-12-31\"}}'"
    );
    println!("Press Ctrl-C to stop.");
    Ok(app.run_until_stopped().await?)
}

/// Keeps "the last 60 minutes" populated while the demo runs.
async fn keep_writing(cluster: DemoCluster, influx: InfluxClient) {
    let mut tick = tokio::time::interval(Duration::from_secs(60));
    loop {
        tick.tick().await;
        let mut buf = String::new();
        cluster.lines_at(Utc::now(), Detail::Full, &mut buf);
        if let Err(e) = influx.write(buf).await {
            tracing::warn!(error = %e, "demo: could not write the latest points");
        }
    }
}
