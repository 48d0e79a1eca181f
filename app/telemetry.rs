//! Logs to stdout and to rolling `info.log` and `errors.log` files (one per day, 14 kept), as
//! the old kube_monitoring app did under /logs/kube-monitoring; or to stdout only.

use std::io::IsTerminal;
use std::path::Path;
use tracing_appender::non_blocking::WorkerGuard;
use tracing_appender::rolling::{RollingFileAppender, Rotation};
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::prelude::*;
use tracing_subscriber::{fmt, EnvFilter};

/// Keep the returned guards alive for the life of the process: dropping them flushes the files.
/// An empty `log_dir` means standard output only (what a container with a read-only root
/// filesystem wants: the cluster's log collector reads standard output).
pub fn init(log_dir: &Path) -> anyhow::Result<Vec<WorkerGuard>> {
    let filter = EnvFilter::builder()
        .with_default_directive(LevelFilter::INFO.into())
        .from_env_lossy();
    // Colours only on a terminal: escape codes are noise in `kubectl logs` and redirected files.
    let stdout = fmt::layer().with_ansi(std::io::stdout().is_terminal());
    if log_dir.as_os_str().is_empty() {
        tracing_subscriber::registry()
            .with(filter)
            .with(stdout)
            .try_init()
            .map_err(|e| anyhow::anyhow!("cannot set up logging: {e}"))?;
        return Ok(Vec::new());
    }
    std::fs::create_dir_all(log_dir).map_err(|e| {
        anyhow::anyhow!(
            "cannot create the log directory {} (KUBEMETER_LOG_DIR; empty for standard output only): {e}",
            log_dir.display()
        )
    })?;
    let appender = |name: &str| {
        RollingFileAppender::builder()
            .rotation(Rotation::DAILY)
            .filename_prefix(name)
            .max_log_files(14)
            .build(log_dir)
            .map_err(|e| anyhow::anyhow!("cannot open {name} in {}: {e}", log_dir.display()))
    };
    let (info, info_guard) = tracing_appender::non_blocking(appender("info.log")?);
    let (errors, errors_guard) = tracing_appender::non_blocking(appender("errors.log")?);
    tracing_subscriber::registry()
        .with(filter)
        .with(stdout)
        .with(fmt::layer().with_ansi(false).with_writer(info))
        .with(
            fmt::layer()
                .with_ansi(false)
                .with_writer(errors)
                .with_filter(LevelFilter::ERROR),
        )
        .try_init()
        .map_err(|e| anyhow::anyhow!("cannot set up logging: {e}"))?;
    Ok(vec![info_guard, errors_guard])
}

/// `outer: inner: innermost`, for logs.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}
