//! `make run`, as a newcomer starts it: with the default ports taken, it takes free ones and
//! says so, opens with a day of history, answers the README's curl example and serves the
//! login page, and stops cleanly on Ctrl-C. And `kubemeter demo` stops with an error naming
//! the part that failed instead of carrying on without it.

use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The README's first API example: `(path, headers, body)` of its `curl -X POST`.
fn readme_curl_example() -> (String, Vec<(String, String)>, String) {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let start = readme
        .find("curl -X POST http://127.0.0.1:8000/api/")
        .expect("the README has a curl example against the demo");
    let block = &readme[start
        ..readme[start..]
            .find("```")
            .map_or(readme.len(), |e| start + e)];
    let command = block.replace("\\\n", " ");
    let url = command.split_whitespace().nth(3).unwrap();
    let path = url.trim_start_matches("http://127.0.0.1:8000").to_string();
    let quoted: Vec<&str> = command.split('\'').skip(1).step_by(2).collect();
    let headers = quoted
        .iter()
        .filter_map(|q| q.split_once(": "))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let body = quoted
        .iter()
        .find(|q| q.starts_with('{'))
        .unwrap()
        .to_string();
    (path, headers, body)
}

/// Lines of the child's standard output and error, as they come.
fn lines_of(child: &mut Child) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    let out = child.stdout.take().unwrap();
    let err = child.stderr.take().unwrap();
    let tx2 = tx.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    std::thread::spawn(move || {
        for line in BufReader::new(err).lines().map_while(Result::ok) {
            let _ = tx2.send(line);
        }
    });
    rx
}

/// Everything printed until a line contains `marker` (or `limit` passes).
fn read_until(rx: &mpsc::Receiver<String>, marker: &str, limit: Duration) -> (String, bool) {
    let deadline = Instant::now() + limit;
    let mut seen = String::new();
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        match rx.recv_timeout(left) {
            Ok(line) => {
                seen.push_str(&line);
                seen.push('\n');
                if line.contains(marker) {
                    return (seen, true);
                }
            }
            Err(_) => break,
        }
    }
    (seen, false)
}

fn port_after(output: &str, prefix: &str) -> u16 {
    let rest = &output[output
        .find(prefix)
        .unwrap_or_else(|| panic!("{prefix} in {output}"))..];
    let after = &rest[prefix.len()..];
    let digits: String = after.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().unwrap()
}

/// Holds a port for the test's length if it is free (if not, someone else holds it: busy too).
fn occupy(port: u16) -> Option<TcpListener> {
    TcpListener::bind(("127.0.0.1", port)).ok()
}

fn wait_exit(child: &mut Child, limit: Duration) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    None
}

#[tokio::test]
async fn make_run_takes_free_ports_opens_with_a_day_of_history_and_stops_on_ctrl_c() {
    let _held = (occupy(8000), occupy(9464));
    let dir = crate::helpers::temp_dir("make-run");
    let influx_dir = dir.join("influxd");
    let mut child = Command::new("make")
        .args(["--no-print-directory", "run"])
        .arg(format!("KUBEMETER={}", env!("CARGO_BIN_EXE_kubemeter")))
        .arg(format!("INFLUX_DIR={}", influx_dir.display()))
        .current_dir(root())
        .env("KUBEMETER_DATA_DIR", dir.join("data"))
        .env("KUBEMETER_LOG_DIR", dir.join("logs"))
        .env_remove("KUBEMETER_LISTEN")
        .env_remove("KUBEMETER_METRICS_LISTEN")
        // Its own process group, as a terminal's foreground job: Ctrl-C reaches all of it.
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let rx = lines_of(&mut child);
    let (output, started) = read_until(&rx, "Press Ctrl-C to stop.", Duration::from_secs(300));
    if !started {
        let _ = child.kill();
        panic!("the demo did not start: {output}");
    }
    let port = port_after(&output, "kubemeter demo is running at http://127.0.0.1:");
    let metrics_port = port_after(&output, "Collector metrics: http://127.0.0.1:");
    assert_ne!(port, 8000, "{output}");
    assert_ne!(metrics_port, 9464, "{output}");
    assert!(output.contains("port 8000 is busy"), "{output}");
    assert!(output.contains("port 9464 is busy"), "{output}");

    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let (path, headers, body) = readme_curl_example();
    let mut req = http.post(format!("{base}{path}")).body(body);
    for (k, v) in &headers {
        req = req.header(k, v);
    }
    let resp = req.send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let rows: Value = resp.json().await.unwrap();
    let rows = rows.as_array().expect("rows");
    assert!(
        !rows.is_empty() && rows[0]["pod_name"].is_string(),
        "{rows:?}"
    );

    let login = http.get(format!("{base}/web/login/")).send().await.unwrap();
    assert_eq!(login.status(), 200);
    assert!(login.text().await.unwrap().contains("<form"));

    // The day before the demo started already has samples, every workload of the cluster.
    let now = chrono::Utc::now();
    let from = (now - chrono::Duration::hours(24)).to_rfc3339();
    let to = (now - chrono::Duration::hours(23)).to_rfc3339();
    let oldest_hour =
        format!(r#"{{"agg":"by-workload","timeBeginInterval":"{from}","timeEndInterval":"{to}"}}"#);
    let mut req = http
        .post(format!("{base}/api/cpu/usage_rate"))
        .body(oldest_hour);
    for (k, v) in &headers {
        req = req.header(k, v);
    }
    let history: Value = req.send().await.unwrap().json().await.unwrap();
    let workloads = history.as_array().map_or(0, Vec::len);
    assert!(workloads >= 10, "the history's first hour: {history}");

    // Ctrl-C, as a terminal sends it: to the whole process group.
    let group = format!("-{}", child.id());
    Command::new("kill")
        .args(["-INT", "--", &group])
        .status()
        .unwrap();
    let status = wait_exit(&mut child, Duration::from_secs(40));
    let (rest, _) = read_until(&rx, "\u{0}", Duration::from_millis(500));
    assert!(status.is_some(), "the demo stops within 40 s: {rest}");
    assert!(rest.contains("stopping the demo"), "{rest}");
    assert!(!rest.lines().any(|l| l.starts_with("error: ")), "{rest}");
    assert!(
        !influx_dir.join("pid").exists(),
        "make run stopped its influxd"
    );
}

/// `kubemeter demo` against the test influxd (a fresh database), with extra arguments.
fn demo(data_dir: &Path, args: &[&str]) -> Child {
    let influx = std::env::var("KUBEMETER_TEST_INFLUX_URL").unwrap();
    let db = format!("kubemeter_demo_{}_{}", std::process::id(), args.len());
    Command::new(env!("CARGO_BIN_EXE_kubemeter"))
        .arg("demo")
        .args(["--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0"])
        .args(args)
        .env("INFLUXDB_URL", influx)
        .env("INFLUXDB_DB", db)
        .env("KUBEMETER_DATA_DIR", data_dir)
        .env("KUBEMETER_LOG_DIR", "")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

#[test]
fn the_demo_stops_with_an_error_naming_the_part_that_failed() {
    let dir = crate::helpers::temp_dir("demo-fails");
    // A file where the collector's spool folder should be: the collector cannot start.
    std::fs::write(dir.join("spool"), "not a folder").unwrap();
    let mut child = demo(&dir, &["--history-hours", "0"]);
    let rx = lines_of(&mut child);
    let status = wait_exit(&mut child, Duration::from_secs(60));
    let (output, _) = read_until(&rx, "\u{0}", Duration::from_millis(500));
    let status =
        status.unwrap_or_else(|| panic!("the demo went on without its collector: {output}"));
    assert!(!status.success());
    assert!(output.contains("the demo's collector failed"), "{output}");
    assert!(output.contains("spool"), "says what to fix: {output}");
}

#[test]
fn the_demo_stops_cleanly_on_sigterm() {
    let dir = crate::helpers::temp_dir("demo-term");
    let mut child = demo(&dir, &["--history-hours", "1"]);
    let rx = lines_of(&mut child);
    let (output, started) = read_until(&rx, "Press Ctrl-C to stop.", Duration::from_secs(120));
    assert!(started, "{output}");
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let status = wait_exit(&mut child, Duration::from_secs(30));
    let (rest, _) = read_until(&rx, "\u{0}", Duration::from_millis(500));
    assert!(status.is_some_and(|s| s.success()), "{status:?}: {rest}");
    assert!(rest.contains("stopping the demo"), "{rest}");
}
