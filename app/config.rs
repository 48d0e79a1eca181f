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

/// Where InfluxDB is (DESIGN.md §3).
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
    /// Directory for the rolling info.log and errors.log.
    #[arg(long, env = "KUBEMETER_LOG_DIR", default_value = "./logs")]
    pub log_dir: PathBuf,
}

/// What `serve` needs.
#[derive(Args, Debug, Clone)]
pub struct ServeArgs {
    #[command(flatten)]
    pub influx: InfluxArgs,
    #[command(flatten)]
    pub api: ApiArgs,
    #[command(flatten)]
    pub log: LogArgs,
    /// Address and port to listen on.
    #[arg(long, env = "KUBEMETER_LISTEN", default_value = "127.0.0.1:8000")]
    pub listen: SocketAddr,
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
    fn secrets_do_not_show_in_debug_output() {
        let t = parse(&["--influxdb-user", "u", "--influxdb-pass", "hunter2"]);
        let cfg = t.influx.to_config().unwrap();
        assert!(!format!("{cfg:?}").contains("hunter2"));
    }
}
