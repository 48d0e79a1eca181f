//! Settings: each is an environment variable (the seed's names kept) and a flag. A setting that
//! is missing or wrong stops start-up with one sentence saying which and why.

use clap::Args;
use reqwest::Url;
use secrecy::SecretString;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::influx::client::InfluxAuth;
use crate::influx::InfluxConfig;
use crate::vocab::time::parse_duration_seconds;

/// A clap value parser for durations such as `15s` or `1m`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    parse_duration_seconds(s)
        .map(Duration::from_secs)
        .ok_or_else(|| format!("{s:?} is not a duration; use a number and s, m, h or d, e.g. 15s"))
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("INFLUXDB_URL {0:?} is not an http(s) URL; use e.g. http://localhost:8086")]
    BadInfluxUrl(String),
    #[error("INFLUXDB_HOST {0:?} is not a host name; use e.g. localhost")]
    BadInfluxHost(String),
    #[error("INFLUXDB_DB must not be empty")]
    EmptyDatabase,
    #[error("INFLUXDB_USER is set but INFLUXDB_PASS is not; set both or neither")]
    InfluxUserWithoutPassword,
    #[error("INFLUXDB_PASS is set but INFLUXDB_USER is not; set both or neither")]
    InfluxPasswordWithoutUser,
    #[error("set either INFLUXDB_TOKEN (InfluxDB 2.x/3.x) or INFLUXDB_USER/INFLUXDB_PASS (1.x), not both")]
    TokenAndUser,
    #[error("API_USERNAME and API_PASSWORD go together: set both or neither")]
    HalfApiCredential,
}

/// Where InfluxDB is.
#[derive(Args, Debug, Clone)]
pub struct InfluxArgs {
    /// InfluxDB host (ignored when --influxdb-url is set).
    #[arg(long, env = "INFLUXDB_HOST", default_value = "localhost")]
    pub influxdb_host: String,
    /// InfluxDB port.
    #[arg(long, env = "INFLUXDB_PORT", default_value_t = 8086)]
    pub influxdb_port: u16,
    /// InfluxDB 1.x user (HTTP Basic).
    #[arg(long, env = "INFLUXDB_USER")]
    pub influxdb_user: Option<String>,
    /// InfluxDB 1.x password.
    #[arg(long, env = "INFLUXDB_PASS", hide_env_values = true)]
    pub influxdb_pass: Option<String>,
    /// The database holding the measurements.
    #[arg(long, env = "INFLUXDB_DB", default_value = "k8s")]
    pub influxdb_db: String,
    /// Full URL, wins over host and port (e.g. https://influx.example:8086).
    #[arg(long, env = "INFLUXDB_URL")]
    pub influxdb_url: Option<String>,
    /// Token for InfluxDB 2.x/3.x through their v1-compatible API.
    #[arg(long, env = "INFLUXDB_TOKEN", hide_env_values = true)]
    pub influxdb_token: Option<String>,
}

impl InfluxArgs {
    pub fn to_config(&self) -> Result<InfluxConfig, ConfigError> {
        let url = match &self.influxdb_url {
            Some(raw) => Url::parse(raw)
                .ok()
                .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
                .ok_or_else(|| ConfigError::BadInfluxUrl(raw.clone()))?,
            None => {
                let host = self.influxdb_host.trim();
                Url::parse(&format!("http://{host}:{}", self.influxdb_port))
                    .ok()
                    .filter(|_| !host.is_empty() && !host.contains(['/', '@', '?', '#']))
                    .ok_or_else(|| ConfigError::BadInfluxHost(self.influxdb_host.clone()))?
            }
        };
        if self.influxdb_db.trim().is_empty() {
            return Err(ConfigError::EmptyDatabase);
        }
        let auth = match (
            &self.influxdb_user,
            &self.influxdb_pass,
            &self.influxdb_token,
        ) {
            (Some(_), _, Some(_)) => return Err(ConfigError::TokenAndUser),
            (None, None, Some(token)) => InfluxAuth::Token(SecretString::from(token.clone())),
            (Some(user), Some(pass), None) => InfluxAuth::Basic {
                user: user.clone(),
                password: SecretString::from(pass.clone()),
            },
            (Some(_), None, None) => return Err(ConfigError::InfluxUserWithoutPassword),
            (None, Some(_), _) => return Err(ConfigError::InfluxPasswordWithoutUser),
            (None, None, None) => InfluxAuth::None,
        };
        Ok(InfluxConfig {
            url,
            database: self.influxdb_db.clone(),
            auth,
            timeout: Duration::from_secs(30),
        })
    }
}

/// The seed's bootstrap API credential.
#[derive(Args, Debug, Clone)]
pub struct ApiArgs {
    /// Bootstrap API user name (X-USERNAME).
    #[arg(long, env = "API_USERNAME")]
    pub api_username: Option<String>,
    /// Bootstrap API password (X-PASSWORD).
    #[arg(long, env = "API_PASSWORD", hide_env_values = true)]
    pub api_password: Option<String>,
}

impl ApiArgs {
    pub fn credential(&self) -> Result<Option<(String, SecretString)>, ConfigError> {
        match (&self.api_username, &self.api_password) {
            (Some(u), Some(p)) if !u.is_empty() && !p.is_empty() => {
                Ok(Some((u.clone(), SecretString::from(p.clone()))))
            }
            (None, None) => Ok(None),
            _ => Err(ConfigError::HalfApiCredential),
        }
    }
}

/// Where logs go.
#[derive(Args, Debug, Clone)]
pub struct LogArgs {
    /// Directory for the rolling info.log and errors.log; empty for standard output only.
    #[arg(long, env = "KUBEMETER_LOG_DIR", default_value = "./logs", value_parser = log_dir)]
    pub log_dir: PathBuf,
}

/// A log folder, where empty is a value of its own: standard output only (clap's path parser
/// refuses empty values).
fn log_dir(s: &str) -> Result<PathBuf, String> {
    Ok(PathBuf::from(s))
}

/// Where users (and sessions, export runs) are kept.
#[derive(Args, Debug, Clone)]
pub struct DbArgs {
    /// sqlite://… or postgres://… (default: a SQLite file in KUBEMETER_DATA_DIR).
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// Directory of the SQLite file (and of the collector's spool).
    #[arg(long, env = "KUBEMETER_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,
}

impl DbArgs {
    pub fn url(&self) -> String {
        self.database_url
            .clone()
            .unwrap_or_else(|| crate::users::default_url(&self.data_dir))
    }

    /// Connects and applies the migrations.
    pub async fn open(&self) -> anyhow::Result<crate::users::Db> {
        let db = crate::users::Db::connect(&self.url()).await?;
        db.migrate().await?;
        Ok(db)
    }
}

/// What `serve` needs.
#[derive(Args, Debug, Clone)]
pub struct ServeArgs {
    #[command(flatten)]
    pub influx: InfluxArgs,
    #[command(flatten)]
    pub db: DbArgs,
    #[command(flatten)]
    pub api: ApiArgs,
    #[command(flatten)]
    pub log: LogArgs,
    #[command(flatten)]
    pub billing: BillingArgs,
    /// Address and port to listen on.
    #[arg(long, env = "KUBEMETER_LISTEN", default_value = "127.0.0.1:8000")]
    pub listen: SocketAddr,
    #[command(flatten)]
    pub limits: LimitArgs,
}

/// Bounds on the requests that make InfluxDB work hard (statements, aggregations, charts).
#[derive(Args, Debug, Clone)]
pub struct LimitArgs {
    /// How long a statement, aggregation or chart may take before it is stopped (504).
    #[arg(long, env = "KUBEMETER_REQUEST_TIMEOUT", default_value = "120s", value_parser = parse_duration)]
    pub request_timeout: Duration,
    /// Heavy requests one user may have running at once (more: 429).
    #[arg(long, env = "KUBEMETER_HEAVY_PER_USER", default_value_t = 2, value_parser = clap::value_parser!(u16).range(1..))]
    pub heavy_per_user: u16,
    /// Heavy requests running at once in this process (more wait up to 10 s, then 503).
    #[arg(long, env = "KUBEMETER_HEAVY_TOTAL", default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..))]
    pub heavy_total: u16,
}

impl LimitArgs {
    pub fn limits(&self) -> crate::heavy::HeavyLimits {
        crate::heavy::HeavyLimits {
            per_user: usize::from(self.heavy_per_user),
            total: usize::from(self.heavy_total),
            deadline: self.request_timeout,
            ..Default::default()
        }
    }
}

/// `KUBEMETER_SHARD`: `i/n`; `0/1` is the whole cluster, as if no shard were given (so that
/// a single replica still writes the namespace and cluster sums).
fn shard(s: &str) -> anyhow::Result<Option<crate::collector::Shard>> {
    if s.starts_with('/') {
        anyhow::bail!(
            "KUBEMETER_SHARD {s:?} has no replica index: the StatefulSet's pod-index label \
             needs Kubernetes 1.28 or later; set KUBEMETER_SHARD to i/n per replica instead"
        );
    }
    let shard = crate::collector::Shard::parse(s)
        .ok_or_else(|| anyhow::anyhow!("KUBEMETER_SHARD {s:?} is not i/n with i < n, e.g. 0/3"))?;
    Ok((shard.count > 1).then_some(shard))
}

/// What `collect` needs.
#[derive(Args, Debug, Clone)]
pub struct CollectArgs {
    #[command(flatten)]
    pub influx: InfluxArgs,
    #[command(flatten)]
    pub log: LogArgs,
    /// Kubernetes API server URL (default: kubeconfig or in-cluster config).
    #[arg(long, env = "KUBEMETER_KUBE_URL")]
    pub kube_url: Option<String>,
    /// One scrape round, flush, exit (for cron and tests).
    #[arg(long)]
    pub once: bool,
    /// Time between scrape rounds; recorded with what it writes (`collector/interval`), so
    /// statements measure the gap rule in it whoever reads them.
    #[arg(long, env = "KUBEMETER_SCRAPE_INTERVAL", default_value = "15s", value_parser = parse_duration)]
    pub scrape_interval: Duration,
    /// The `cluster_name` tag.
    #[arg(long, env = "KUBEMETER_CLUSTER_NAME", default_value = "default")]
    pub cluster_name: String,
    /// Pod (or, failing that, namespace) labels copied into `label_<key>` tags, e.g. team,cost-center.
    #[arg(long, env = "KUBEMETER_LABEL_TAGS", value_delimiter = ',')]
    pub label_tags: Vec<String>,
    /// Directory of the spool (and, for `serve`, the SQLite file).
    #[arg(long, env = "KUBEMETER_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,
    /// Most bytes the spool keeps while InfluxDB is away (a quantity: 512Mi, 1Gi, …).
    #[arg(long, env = "KUBEMETER_SPOOL_MAX_BYTES", default_value = "1Gi")]
    pub spool_max_bytes: String,
    /// Where the collector serves /metrics.
    #[arg(
        long,
        env = "KUBEMETER_METRICS_LISTEN",
        default_value = "127.0.0.1:9464"
    )]
    pub metrics_listen: SocketAddr,
    /// Nodes scraped at once.
    #[arg(long, env = "KUBEMETER_SCRAPE_CONCURRENCY", default_value_t = 32)]
    pub concurrency: usize,
    /// Longest wait for one node's summary.
    #[arg(long, env = "KUBEMETER_NODE_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub node_timeout: Duration,
    /// Scrape only this replica's share of the nodes: i/n (e.g. 0/3).
    #[arg(long, env = "KUBEMETER_SHARD")]
    pub shard: Option<String>,
    /// Read each kubelet directly (https://<node InternalIP>:10250) instead of through the API server.
    #[arg(long, env = "KUBEMETER_KUBELET_DIRECT")]
    pub kubelet_direct: bool,
    /// The kubelets' port, with --kubelet-direct.
    #[arg(long, env = "KUBEMETER_KUBELET_PORT", default_value_t = 10250)]
    pub kubelet_port: u16,
    /// http or https, with --kubelet-direct.
    #[arg(long, env = "KUBEMETER_KUBELET_SCHEME", default_value = "https")]
    pub kubelet_scheme: String,
    /// The memory gauge the hourly billing rollups integrate: working_set or usage (as the
    /// server's KUBEMETER_BILLING_MEMORY, so they match what it bills).
    #[arg(long, env = "KUBEMETER_BILLING_MEMORY", default_value = "working_set")]
    pub billing_memory: String,
    /// Bearer token file for the kubelets (default: the pod's service-account token).
    #[arg(long, env = "KUBEMETER_KUBELET_TOKEN_FILE")]
    pub kubelet_token_file: Option<PathBuf>,
    /// CA bundle that signed the kubelets' serving certificates.
    #[arg(long, env = "KUBEMETER_KUBELET_CA_FILE")]
    pub kubelet_ca_file: Option<PathBuf>,
    /// Accept any kubelet certificate (self-signed kubelet certificates; prefer a CA file).
    #[arg(long, env = "KUBEMETER_KUBELET_INSECURE_TLS")]
    pub kubelet_insecure_tls: bool,
    /// Each node's NVIDIA DCGM exporter, e.g. http://{address}:9400/metrics ({node} works too).
    #[arg(long, env = "KUBEMETER_DCGM_URL")]
    pub dcgm_url: Option<String>,
}

impl CollectArgs {
    pub fn settings(&self) -> anyhow::Result<crate::collector::CollectSettings> {
        use crate::api::request::LabelKey;
        use crate::collector::{quantity, writer::WriterConfig, CollectSettings};
        for key in &self.label_tags {
            if LabelKey::parse(key).is_none() {
                anyhow::bail!("KUBEMETER_LABEL_TAGS: {key:?} is not a Kubernetes label key (e.g. team or example.com/team)");
            }
        }
        let spool_max_bytes = quantity::whole(&self.spool_max_bytes)
            .filter(|b| *b > 0)
            .ok_or_else(|| {
                anyhow::anyhow!(
                    "KUBEMETER_SPOOL_MAX_BYTES {:?} is not a size; use e.g. 512Mi or 1Gi",
                    self.spool_max_bytes
                )
            })?;
        let shard = match &self.shard {
            None => None,
            Some(s) => shard(s)?,
        };
        if self.concurrency == 0 {
            anyhow::bail!("KUBEMETER_SCRAPE_CONCURRENCY must be at least 1");
        }
        Ok(CollectSettings {
            kube_url: self.kube_url.clone(),
            interval: self.scrape_interval,
            once: self.once,
            cluster_name: self.cluster_name.clone(),
            label_keys: self.label_tags.clone(),
            concurrency: self.concurrency,
            node_timeout: self.node_timeout,
            writer: WriterConfig {
                spool_dir: self.data_dir.join("spool"),
                spool_max_bytes: spool_max_bytes as u64,
            },
            metrics_listen: Some(self.metrics_listen),
            shard,
            kubelet: self.kubelet_direct()?,
            dcgm_url: self.dcgm_url.clone(),
            memory: memory_source(&self.billing_memory)?,
        })
    }

    fn kubelet_direct(&self) -> anyhow::Result<Option<crate::collector::KubeletDirect>> {
        if !self.kubelet_direct {
            return Ok(None);
        }
        if !matches!(self.kubelet_scheme.as_str(), "http" | "https") {
            anyhow::bail!(
                "KUBEMETER_KUBELET_SCHEME must be http or https, not {:?}",
                self.kubelet_scheme
            );
        }
        const SERVICE_ACCOUNT_TOKEN: &str = "/var/run/secrets/kubernetes.io/serviceaccount/token";
        let token_file = self.kubelet_token_file.clone().or_else(|| {
            let default = PathBuf::from(SERVICE_ACCOUNT_TOKEN);
            default.exists().then_some(default)
        });
        Ok(Some(crate::collector::KubeletDirect {
            scheme: self.kubelet_scheme.clone(),
            port: self.kubelet_port,
            token_file,
            ca_file: self.kubelet_ca_file.clone(),
            insecure_tls: self.kubelet_insecure_tls,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct T {
        #[command(flatten)]
        influx: InfluxArgs,
        #[command(flatten)]
        api: ApiArgs,
    }

    fn parse(args: &[&str]) -> T {
        T::try_parse_from(std::iter::once("t").chain(args.iter().copied())).unwrap()
    }

    #[test]
    fn host_and_port_make_the_url_unless_a_url_is_given() {
        let t = parse(&["--influxdb-host", "influx", "--influxdb-port", "9999"]);
        assert_eq!(
            t.influx.to_config().unwrap().url.as_str(),
            "http://influx:9999/"
        );
        let t = parse(&["--influxdb-url", "https://i.example:8443/prefix"]);
        assert_eq!(
            t.influx.to_config().unwrap().url.as_str(),
            "https://i.example:8443/prefix"
        );
    }

    #[test]
    fn wrong_settings_are_one_clear_sentence() {
        let t = parse(&["--influxdb-url", "influx:8086"]);
        assert!(t
            .influx
            .to_config()
            .unwrap_err()
            .to_string()
            .contains("INFLUXDB_URL"));
        let t = parse(&["--influxdb-user", "u"]);
        assert!(matches!(
            t.influx.to_config(),
            Err(ConfigError::InfluxUserWithoutPassword)
        ));
        let t = parse(&[
            "--influxdb-user",
            "u",
            "--influxdb-pass",
            "p",
            "--influxdb-token",
            "t",
        ]);
        assert!(matches!(
            t.influx.to_config(),
            Err(ConfigError::TokenAndUser)
        ));
        let t = parse(&["--api-username", "u"]);
        assert!(matches!(
            t.api.credential(),
            Err(ConfigError::HalfApiCredential)
        ));
    }

    #[test]
    fn an_empty_log_folder_is_accepted_and_means_standard_output_only() {
        #[derive(Parser)]
        struct L {
            #[command(flatten)]
            log: LogArgs,
        }
        let l = L::try_parse_from(["t", "--log-dir", ""]).unwrap();
        assert!(l.log.log_dir.as_os_str().is_empty());
        let l = L::try_parse_from(["t"]).unwrap();
        assert_eq!(l.log.log_dir, PathBuf::from("./logs"));
    }

    #[test]
    fn a_shard_of_one_is_the_whole_cluster_and_a_missing_index_says_why() {
        assert_eq!(shard("0/1").unwrap(), None);
        assert_eq!(
            shard("2/3").unwrap().map(|s| (s.index, s.count)),
            Some((2, 3))
        );
        let e = shard("/3").unwrap_err().to_string();
        assert!(e.contains("1.28"), "{e}");
        assert!(shard("3/3").is_err());
    }

    #[test]
    fn secrets_do_not_show_in_debug_output() {
        let t = parse(&["--influxdb-user", "u", "--influxdb-pass", "hunter2"]);
        let cfg = t.influx.to_config().unwrap();
        assert!(!format!("{cfg:?}").contains("hunter2"));
    }
}

/// How statements are computed: shared by `serve` and `export`.
#[derive(Args, Debug, Clone)]
pub struct BillingArgs {
    /// Price book (JSON) turning quantities into money; without one, statements show quantities.
    #[arg(long, env = "KUBEMETER_PRICES")]
    pub prices: Option<PathBuf>,
    /// Billing mode: usage, request or max (max of both), for every resource, or per resource
    /// as cpu=usage,memory=max,ephemeral_storage=request.
    #[arg(long, env = "KUBEMETER_BILLING_MODE", default_value = "max")]
    pub billing_mode: String,
    /// The memory gauge billed as usage: working_set or usage.
    #[arg(long, env = "KUBEMETER_BILLING_MEMORY", default_value = "working_set")]
    pub billing_memory: String,
}

/// [`BillingArgs`], checked: the price book read and validated at start, not at first use.
#[derive(Clone)]
pub struct BillingSettings {
    pub prices: Option<std::sync::Arc<crate::billing::PriceBook>>,
    pub modes: crate::billing::Modes,
    pub memory: crate::metering::MemorySource,
}

impl BillingArgs {
    pub fn settings(&self) -> anyhow::Result<BillingSettings> {
        let modes = crate::billing::Modes::parse(&self.billing_mode).ok_or_else(|| {
            anyhow::anyhow!(
                "KUBEMETER_BILLING_MODE {:?} is not a billing mode; use usage, request or max, \
                 or per resource, e.g. cpu=usage,memory=max",
                self.billing_mode
            )
        })?;
        let memory = memory_source(&self.billing_memory)?;
        let prices = match &self.prices {
            None => None,
            Some(path) => Some(std::sync::Arc::new(read_price_book(path)?)),
        };
        Ok(BillingSettings {
            prices,
            modes,
            memory,
        })
    }
}

/// `KUBEMETER_BILLING_MEMORY`: the memory gauge billed (and rolled up).
pub fn memory_source(name: &str) -> anyhow::Result<crate::metering::MemorySource> {
    use crate::metering::MemorySource;
    match name {
        "working_set" => Ok(MemorySource::WorkingSet),
        "usage" => Ok(MemorySource::Usage),
        other => anyhow::bail!(
            "KUBEMETER_BILLING_MEMORY {other:?} is not a memory gauge; use working_set or usage"
        ),
    }
}

fn read_price_book(path: &std::path::Path) -> anyhow::Result<crate::billing::PriceBook> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("KUBEMETER_PRICES: cannot read {}: {e}", path.display()))?;
    crate::billing::PriceBook::from_json(&text).map_err(|e| {
        anyhow::anyhow!(
            "KUBEMETER_PRICES: {} is not a valid price book: {e}",
            path.display()
        )
    })
}

impl Default for BillingSettings {
    /// The documented defaults: no prices, max(request, usage), working set.
    fn default() -> Self {
        BillingSettings {
            prices: None,
            modes: crate::billing::Modes::default(),
            memory: crate::metering::MemorySource::default(),
        }
    }
}

impl BillingSettings {
    /// The engine over `influx` with these settings.
    pub fn metering(&self, influx: crate::influx::InfluxClient) -> crate::metering::Metering {
        crate::metering::Metering {
            influx,
            prices: self.prices.clone(),
            memory: self.memory,
        }
    }
}
