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
    log_panics();
    Ok(vec![info_guard, errors_guard])
}

/// Logs every panic as an error (so it reaches `errors.log`) with where it happened, then
/// lets the default hook print it as before.
pub fn log_panics() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        tracing::error!(
            location = %panic_location(info),
            thread = std::thread::current().name().unwrap_or("unnamed"),
            "panic: {}",
            panic_message(info)
        );
        default(info);
    }));
}

fn panic_location(info: &std::panic::PanicHookInfo<'_>) -> String {
    info.location().map_or_else(
        || "unknown".into(),
        |l| format!("{}:{}:{}", l.file(), l.line(), l.column()),
    )
}

fn panic_message(info: &std::panic::PanicHookInfo<'_>) -> String {
    let payload = info.payload();
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".into())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_is_written_to_errors_log_with_its_location() {
        let dir = std::env::temp_dir().join(format!("kubemeter-panic-{}", std::process::id()));
        let guards = init(&dir).unwrap();
        let line = line!() + 1;
        let caught = std::panic::catch_unwind(|| panic!("the window arithmetic went wrong"));
        assert!(caught.is_err());
        drop(guards); // flushes the files
        let errors: String = std::fs::read_dir(&dir)
            .unwrap()
            .filter_map(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().starts_with("errors.log"))
            .map(|e| std::fs::read_to_string(e.path()).unwrap())
            .collect();
        let _ = std::fs::remove_dir_all(&dir);
        assert!(
            errors.contains("panic: the window arithmetic went wrong"),
            "{errors}"
        );
        assert!(
            errors.contains(&format!("app/telemetry.rs:{line}")),
            "{errors}"
        );
    }
}
