//! `kubemeter export`: a billing statement for a period, written to a file (atomically),
//! standard output or a billing system's URL (with retries), and recorded in SQL with the
//! SHA-256 of its bytes. The statement comes from the same engine as `POST /api/billing` and
//! the dashboard, and the same period gives the same bytes.

use std::path::{Path, PathBuf};
use std::time::Duration;

use reqwest::{StatusCode, Url};
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};

use crate::api::billing::StatementParams;
use crate::billing::{Modes, Statement};
use crate::metering::{Metering, MeteringError, Progress};
use crate::users::{Db, Scope, StoreError};

/// Where the statement goes.
#[derive(Debug, Clone)]
pub enum Destination {
    Stdout,
    /// Written to `FILE.tmp` then renamed, so a reader never sees half a statement.
    File(PathBuf),
    /// POSTed to a billing system.
    Post {
        url: Url,
        token: Option<SecretString>,
    },
}

impl Destination {
    /// What the SQL record says (never the token).
    fn describe(&self) -> String {
        match self {
            Destination::Stdout => "-".into(),
            Destination::File(path) => path.display().to_string(),
            Destination::Post { url, .. } => shown_url(url),
        }
    }
}

/// A URL without its credentials or query string (either may hold a secret).
fn shown_url(url: &Url) -> String {
    let mut shown = url.clone();
    shown.set_query(None);
    let _ = shown.set_password(None);
    let _ = shown.set_username("");
    shown.to_string()
}

/// How hard to try a billing system that does not answer.
#[derive(Debug, Clone, Copy)]
pub struct Retry {
    pub attempts: u32,
    /// Wait before the second attempt; doubled after each failure.
    pub first_wait: Duration,
}

impl Default for Retry {
    fn default() -> Retry {
        Retry {
            attempts: 5,
            first_wait: Duration::from_secs(2),
        }
    }
}

/// One export, as recorded in `export_runs`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportRun {
    pub id: String,
    pub rows: usize,
    pub bytes: usize,
    pub sha256: String,
    pub destination: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("cannot compute the statement")]
    Metering(#[from] MeteringError),
    #[error("cannot write {path}")]
    Write {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the billing system at {url} refused the statement: HTTP {status}: {body}")]
    Refused {
        url: String,
        status: u16,
        body: String,
    },
    #[error(
        "the billing system at {url} did not take the statement after {attempts} attempts: {last}"
    )]
    Unreachable {
        url: String,
        attempts: u32,
        last: String,
    },
    #[error("the statement was delivered but its run could not be recorded in SQL")]
    Record(#[source] StoreError),
}

/// Computes, delivers and records one export.
pub async fn export(
    metering: &Metering,
    default_modes: Modes,
    db: &Db,
    params: &StatementParams,
    destination: &Destination,
    retry: Retry,
    progress: &dyn Progress,
) -> Result<ExportRun, ExportError> {
    // An export is for the finance team: every namespace.
    let query = params.query(default_modes, Scope::All);
    let statement = metering.statement(&query, progress).await?;
    let body = params.format.render(&statement);
    let sha256 = sha256_hex(body.as_bytes());
    deliver(destination, params, &body, &sha256, retry).await?;
    let run = ExportRun {
        id: crate::auth::sessions::random_token()[..32].to_string(),
        rows: statement.rows.len(),
        bytes: body.len(),
        sha256,
        destination: destination.describe(),
    };
    record(db, &run, params, &statement)
        .await
        .map_err(ExportError::Record)?;
    Ok(run)
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    crate::auth::sessions::hex(&Sha256::digest(bytes))
}

async fn deliver(
    destination: &Destination,
    params: &StatementParams,
    body: &str,
    sha256: &str,
    retry: Retry,
) -> Result<(), ExportError> {
    match destination {
        Destination::Stdout => {
            use std::io::Write;
            let mut out = std::io::stdout().lock();
            out.write_all(body.as_bytes())
                .and_then(|_| out.flush())
                .map_err(|source| ExportError::Write {
                    path: "standard output".into(),
                    source,
                })
        }
        Destination::File(path) => write_atomically(path, body.as_bytes()),
        Destination::Post { url, token } => {
            post_with_retries(url, token.as_ref(), params, body, sha256, retry).await
        }
    }
}

fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), ExportError> {
    let err = |source| ExportError::Write {
        path: path.display().to_string(),
        source,
    };
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let write = || -> std::io::Result<()> {
        use std::io::Write;
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        err(e)
    })
}

/// POSTs the statement; retries connection failures, timeouts, 5xx, 408 and 429 (honouring a
/// `Retry-After` in seconds, up to a minute), and stops at once on any other 4xx, which no
/// retry would fix. The `Idempotency-Key` (`key`) is the statement's SHA-256, so a billing system can
/// drop a copy it already took when an answer was lost.
async fn post_with_retries(
    url: &Url,
    token: Option<&SecretString>,
    params: &StatementParams,
    body: &str,
    key: &str,
    retry: Retry,
) -> Result<(), ExportError> {
    let http = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs(120))
        .build()
        .map_err(|e| unreachable_err(url, 0, &e.to_string()))?;
    let shown = shown_url(url);
    let mut wait = retry.first_wait;
    let mut last = String::new();
    for attempt in 1..=retry.attempts.max(1) {
        let mut req = http
            .post(url.clone())
            .header(reqwest::header::CONTENT_TYPE, params.format.content_type())
            .header("Idempotency-Key", key)
            .body(body.to_string());
        if let Some(t) = token {
            req = req.bearer_auth(t.expose_secret());
        }
        match req.send().await {
            Ok(resp) if resp.status().is_success() => return Ok(()),
            Ok(resp) if retryable(resp.status()) => {
                last = format!("HTTP {}", resp.status().as_u16());
                wait = retry_after(&resp).unwrap_or(wait);
            }
            Ok(resp) => {
                let status = resp.status().as_u16();
                let text = resp.text().await.unwrap_or_default();
                return Err(ExportError::Refused {
                    url: shown,
                    status,
                    body: text.chars().take(300).collect(),
                });
            }
            Err(e) => last = crate::telemetry::error_chain(&e),
        }
        if attempt < retry.attempts {
            tracing::warn!(attempt, url = %shown, error = %last, "posting the statement failed; retrying");
            tokio::time::sleep(wait).await;
            wait = wait.saturating_mul(2);
        }
    }
    Err(unreachable_err(url, retry.attempts, &last))
}

fn unreachable_err(url: &Url, attempts: u32, last: &str) -> ExportError {
    ExportError::Unreachable {
        url: shown_url(url),
        attempts,
        last: last.to_string(),
    }
}

fn retryable(status: StatusCode) -> bool {
    status.is_server_error()
        || status == StatusCode::REQUEST_TIMEOUT
        || status == StatusCode::TOO_MANY_REQUESTS
}

fn retry_after(resp: &reqwest::Response) -> Option<Duration> {
    let secs: u64 = resp
        .headers()
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    Some(Duration::from_secs(secs.min(60)))
}

async fn record(
    db: &Db,
    run: &ExportRun,
    params: &StatementParams,
    st: &Statement,
) -> Result<(), StoreError> {
    let modes = format!(
        "cpu={},memory={},ephemeral_storage={}",
        st.modes.cpu.as_str(),
        st.modes.memory.as_str(),
        st.modes.ephemeral.as_str()
    );
    sqlx::query(
        "INSERT INTO export_runs (id, period_from, period_to, grouping, format, modes, \
         row_count, bytes, sha256, destination, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
    )
    .bind(&run.id)
    .bind(params.window.from)
    .bind(params.window.to)
    .bind(params.by.name())
    .bind(params.format.extension())
    .bind(modes)
    .bind(run.rows as i64)
    .bind(run.bytes as i64)
    .bind(&run.sha256)
    .bind(&run.destination)
    .bind(chrono::Utc::now().timestamp())
    .execute(db.pool())
    .await?;
    Ok(())
}

/// One recorded run, for `kubemeter export --list` and tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedRun {
    pub id: String,
    pub period_from: i64,
    pub period_to: i64,
    pub grouping: String,
    pub format: String,
    pub rows: i64,
    pub sha256: String,
    pub destination: String,
}

/// The most recent runs first.
pub async fn recorded_runs(db: &Db, limit: i64) -> Result<Vec<RecordedRun>, StoreError> {
    use sqlx::Row;
    let rows = sqlx::query(
        "SELECT id, period_from, period_to, grouping, format, row_count, sha256, destination \
         FROM export_runs ORDER BY created_at DESC, id LIMIT $1",
    )
    .bind(limit)
    .fetch_all(db.pool())
    .await?;
    rows.iter()
        .map(|r| {
            Ok(RecordedRun {
                id: r.try_get("id")?,
                period_from: r.try_get("period_from")?,
                period_to: r.try_get("period_to")?,
                grouping: r.try_get("grouping")?,
                format: r.try_get("format")?,
                rows: r.try_get("row_count")?,
                sha256: r.try_get("sha256")?,
                destination: r.try_get("destination")?,
            })
        })
        .collect::<Result<_, sqlx::Error>>()
        .map_err(StoreError::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_digest_is_the_well_known_sha256() {
        // FIPS 180-2's example: SHA-256("abc").
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn only_failures_a_retry_can_fix_are_retried() {
        assert!(retryable(StatusCode::SERVICE_UNAVAILABLE));
        assert!(retryable(StatusCode::TOO_MANY_REQUESTS));
        assert!(retryable(StatusCode::REQUEST_TIMEOUT));
        assert!(!retryable(StatusCode::BAD_REQUEST));
        assert!(!retryable(StatusCode::UNAUTHORIZED));
    }

    #[test]
    fn a_file_is_replaced_whole() {
        let dir = std::env::temp_dir().join(format!("km-export-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("statement.csv");
        write_atomically(&path, b"first").unwrap();
        write_atomically(&path, b"second").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"second");
        assert!(!dir.join("statement.csv.tmp").exists());
        let missing = dir.join("no-such-dir").join("x.csv");
        assert!(matches!(
            write_atomically(&missing, b"x"),
            Err(ExportError::Write { .. })
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
