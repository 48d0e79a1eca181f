//! `kubemeter serve` as a process of its own (the real binary), for tests that must watch its
//! memory or survive its death: the server runs under an address-space limit, so a regression
//! that allocates without bound fails the test instead of the machine.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use kubemeter::influx::InfluxConfig;

pub struct ServeProcess {
    child: Child,
    pub address: String,
    log_dir: std::path::PathBuf,
}

impl ServeProcess {
    /// Starts `serve` against `influx` and the SQL database `database_url`, with the bootstrap
    /// credential `user`/`password`, at most `address_space_mib` of virtual memory, and
    /// `env` on top; returns once `/healthz` answers.
    pub async fn start(
        influx: &InfluxConfig,
        database_url: &str,
        (user, password): (&str, &str),
        address_space_mib: u64,
        env: &[(&str, &str)],
    ) -> ServeProcess {
        let port = {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let log_dir = super::helpers::temp_dir("serve-logs");
        let limit_kib = address_space_mib * 1024;
        let child = Command::new("sh")
            .arg("-c")
            .arg(format!("ulimit -v {limit_kib} && exec \"$0\" serve"))
            .arg(env!("CARGO_BIN_EXE_kubemeter"))
            .env("INFLUXDB_URL", influx.url.as_str())
            .env("INFLUXDB_DB", &influx.database)
            .env("DATABASE_URL", database_url)
            .env("API_USERNAME", user)
            .env("API_PASSWORD", password)
            .env("KUBEMETER_LISTEN", format!("127.0.0.1:{port}"))
            .env("KUBEMETER_LOG_DIR", &log_dir)
            .env("RUST_LOG", "warn")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("kubemeter serve starts");
        let mut p = ServeProcess {
            child,
            address: format!("http://127.0.0.1:{port}"),
            log_dir,
        };
        p.wait_healthy().await;
        p
    }

    async fn wait_healthy(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        let http = reqwest::Client::new();
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("kubemeter serve exited at start: {status}");
            }
            let ok = http
                .get(format!("{}/healthz", self.address))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if ok {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "kubemeter serve did not answer /healthz"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Whether the process is still running.
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Resident memory of the server, in MiB.
    pub fn rss_mib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map_or(0, |kib| kib / 1024)
    }
}

impl ServeProcess {
    /// Everything the server has written to its log files so far.
    pub fn logs(&self) -> String {
        std::fs::read_dir(&self.log_dir)
            .map(|entries| {
                entries
                    .filter_map(Result::ok)
                    .filter_map(|e| std::fs::read_to_string(e.path()).ok())
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl Drop for ServeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
