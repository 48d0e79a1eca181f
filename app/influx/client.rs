//! The HTTP side: `/query` (InfluxQL in, typed series out), `/write` (line protocol), `/ping`.
//! One pooled `reqwest::Client` per process; HTTP Basic auth for 1.x, a token for 2.x/3.x.

use reqwest::{StatusCode, Url};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use super::ql;

/// How we authenticate to InfluxDB.
#[derive(Clone, Debug, Default)]
pub enum InfluxAuth {
    #[default]
    None,
    /// InfluxDB 1.x users (`INFLUXDB_USER`/`INFLUXDB_PASS`).
    Basic {
        user: String,
        password: SecretString,
    },
    /// InfluxDB 2.x/3.x through the v1-compatible API (`INFLUXDB_TOKEN`).
    Token(SecretString),
}

/// Where InfluxDB is and which database holds the measurements.
#[derive(Clone, Debug)]
pub struct InfluxConfig {
    pub url: Url,
    pub database: String,
    pub auth: InfluxAuth,
    /// Upper bound for one request, so a stuck server cannot hold a caller forever.
    pub timeout: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum InfluxError {
    #[error("can't connect to InfluxDB at {url}")]
    Unreachable {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("InfluxDB refused our credentials (HTTP {0}); check INFLUXDB_USER/INFLUXDB_PASS or INFLUXDB_TOKEN")]
    Unauthorized(u16),
    #[error("the InfluxDB database {0:?} does not exist")]
    DatabaseNotFound(String),
    #[error("InfluxDB rejected the statement: {0}")]
    Statement(String),
    #[error("InfluxDB rejected the points: {0}")]
    Rejected(String),
    #[error("InfluxDB answered HTTP {status}: {body}")]
    Http { status: u16, body: String },
    #[error("InfluxDB's answer could not be read")]
    Decode(#[source] reqwest::Error),
    /// InfluxDB did not answer within the client's timeout.
    #[error("InfluxDB did not answer within {0:?}")]
    Timeout(std::time::Duration),
}

/// One series of a query result, as InfluxDB returns it.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct Series {
    pub name: String,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    pub columns: Vec<String>,
    #[serde(default)]
    pub values: Vec<Vec<serde_json::Value>>,
}

#[derive(Deserialize)]
struct QueryResponse {
    #[serde(default)]
    results: Vec<StatementResult>,
    error: Option<String>,
}

#[derive(Deserialize)]
struct StatementResult {
    #[serde(default)]
    series: Vec<Series>,
    error: Option<String>,
}

#[derive(Clone)]
pub struct InfluxClient {
    http: reqwest::Client,
    config: Arc<InfluxConfig>,
}

impl InfluxClient {
    pub fn new(config: InfluxConfig) -> Self {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(config.timeout)
            .pool_idle_timeout(Duration::from_secs(60))
            .build()
            // Only fails if the TLS backend cannot initialise, which is a broken build.
            .expect("the HTTP client can be built");
        InfluxClient {
            http,
            config: Arc::new(config),
        }
    }

    pub fn config(&self) -> &InfluxConfig {
        &self.config
    }

    fn endpoint(&self, path: &str) -> Url {
        let mut url = self.config.url.clone();
        let base = url.path().trim_end_matches('/').to_string();
        url.set_path(&format!("{base}/{path}"));
        url
    }

    fn authed(&self, req: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.config.auth {
            InfluxAuth::None => req,
            InfluxAuth::Basic { user, password } => {
                req.basic_auth(user, Some(password.expose_secret()))
            }
            InfluxAuth::Token(token) => req.header(
                reqwest::header::AUTHORIZATION,
                format!("Token {}", token.expose_secret()),
            ),
        }
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> Result<reqwest::Response, InfluxError> {
        let resp = self.authed(req).send().await.map_err(|source| {
            if source.is_timeout() {
                InfluxError::Timeout(self.config.timeout)
            } else {
                InfluxError::Unreachable {
                    url: self.config.url.to_string(),
                    source,
                }
            }
        })?;
        match resp.status() {
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                Err(InfluxError::Unauthorized(resp.status().as_u16()))
            }
            _ => Ok(resp),
        }
    }

    /// Runs one InfluxQL statement against the configured database.
    pub async fn query(&self, influxql: &str) -> Result<Vec<Series>, InfluxError> {
        let req = self
            .http
            .post(self.endpoint("query"))
            .query(&[("db", self.config.database.as_str())])
            .form(&[("q", influxql)]);
        self.run(req).await
    }

    /// Runs several InfluxQL statements in one request, asking for times as integer
    /// nanoseconds since the epoch (`epoch=ns`) instead of RFC 3339 text: exact, and cheaper to
    /// read. Returns each statement's series, in the statements' order.
    pub async fn query_each_ns(
        &self,
        statements: &[String],
    ) -> Result<Vec<Vec<Series>>, InfluxError> {
        if statements.is_empty() {
            return Ok(Vec::new());
        }
        let req = self
            .http
            .post(self.endpoint("query"))
            .query(&[("db", self.config.database.as_str()), ("epoch", "ns")])
            .form(&[("q", statements.join(";\n"))]);
        let results = self.results(req).await?;
        // InfluxDB answers every statement; taking a short answer would silently drop data.
        if results.len() != statements.len() {
            return Err(InfluxError::Statement(format!(
                "InfluxDB answered {} of {} statements",
                results.len(),
                statements.len()
            )));
        }
        Ok(results)
    }

    async fn run(&self, req: reqwest::RequestBuilder) -> Result<Vec<Series>, InfluxError> {
        Ok(self.results(req).await?.into_iter().flatten().collect())
    }

    /// The series of each statement of a query request.
    async fn results(&self, req: reqwest::RequestBuilder) -> Result<Vec<Vec<Series>>, InfluxError> {
        let resp = self.send(req).await?;
        let status = resp.status();
        let body = resp.bytes().await.map_err(|e| {
            if e.is_timeout() {
                InfluxError::Timeout(self.config.timeout)
            } else {
                InfluxError::Decode(e)
            }
        })?;
        let parsed: QueryResponse = match serde_json::from_slice(&body) {
            Ok(p) => p,
            Err(_) => {
                return Err(InfluxError::Http {
                    status: status.as_u16(),
                    body: String::from_utf8_lossy(&body).chars().take(300).collect(),
                })
            }
        };
        let error = parsed
            .error
            .or_else(|| parsed.results.iter().find_map(|r| r.error.clone()));
        if let Some(message) = error {
            if message.starts_with("database not found") {
                return Err(InfluxError::DatabaseNotFound(self.config.database.clone()));
            }
            if status.is_server_error() {
                return Err(InfluxError::Http {
                    status: status.as_u16(),
                    body: message,
                });
            }
            return Err(InfluxError::Statement(message));
        }
        Ok(parsed.results.into_iter().map(|r| r.series).collect())
    }

    /// Writes newline-separated line protocol (nanosecond timestamps).
    pub async fn write(&self, lines: String) -> Result<(), InfluxError> {
        let req = self
            .http
            .post(self.endpoint("write"))
            .query(&[("db", self.config.database.as_str()), ("precision", "ns")])
            .body(lines);
        let resp = self.send(req).await?;
        let status = resp.status();
        if status.is_success() {
            return Ok(());
        }
        let body = resp.text().await.unwrap_or_default();
        if status == StatusCode::NOT_FOUND && body.contains("database not found") {
            return Err(InfluxError::DatabaseNotFound(self.config.database.clone()));
        }
        if status == StatusCode::BAD_REQUEST || status == StatusCode::UNPROCESSABLE_ENTITY {
            return Err(InfluxError::Rejected(body));
        }
        Err(InfluxError::Http {
            status: status.as_u16(),
            body,
        })
    }

    /// Is the server up? (`/ping`, no database needed.)
    pub async fn ping(&self) -> Result<(), InfluxError> {
        let resp = self.send(self.http.get(self.endpoint("ping"))).await?;
        if resp.status().is_success() {
            Ok(())
        } else {
            Err(InfluxError::Http {
                status: resp.status().as_u16(),
                body: String::new(),
            })
        }
    }

    /// `CREATE DATABASE` for the configured database (idempotent in InfluxDB).
    pub async fn create_database(&self) -> Result<(), InfluxError> {
        let stmt = format!("CREATE DATABASE {}", ql::ident(&self.config.database));
        self.admin(&stmt).await
    }

    pub async fn drop_database(&self) -> Result<(), InfluxError> {
        let stmt = format!("DROP DATABASE {}", ql::ident(&self.config.database));
        self.admin(&stmt).await
    }

    /// A statement that needs no database (`CREATE DATABASE`, `DROP DATABASE`). The answer is
    /// read to the end: influxd cancels a statement whose client hangs up early.
    async fn admin(&self, stmt: &str) -> Result<(), InfluxError> {
        let req = self.http.post(self.endpoint("query")).form(&[("q", stmt)]);
        self.run(req).await.map(drop)
    }
}
