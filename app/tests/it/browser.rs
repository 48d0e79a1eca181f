//! The dashboard in a real headless Chromium, driven over the W3C WebDriver protocol by
//! Debian's chromedriver (`make test` installs both): sign in, see a chart and rows, open a
//! namespace URL and see only that namespace, download the billing CSV, sign out and be sent
//! back to the login page.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::helpers::{fresh_sql_databases, spawn_app_with_users, temp_dir, PASSWORD, USER};
use crate::web::{add_user, RANGE};
use kubemeter::users::Role;

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// chromedriver, stopped when dropped.
struct Driver {
    child: Child,
    url: String,
    http: reqwest::Client,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn program(env: &str, default: &str) -> String {
    let path = std::env::var(env).unwrap_or_else(|_| default.to_string());
    assert!(
        std::path::Path::new(&path).exists(),
        "{path} is missing: run the tests with `make test`, which installs Debian's chromium and chromium-driver (or set {env})"
    );
    path
}

impl Driver {
    async fn start() -> Driver {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(program(
            "KUBEMETER_TEST_CHROMEDRIVER",
            "/usr/bin/chromedriver",
        ))
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver starts");
        let driver = Driver {
            child,
            url: format!("http://127.0.0.1:{port}"),
            http: reqwest::Client::new(),
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let ready = driver
                .http
                .get(format!("{}/status", driver.url))
                .send()
                .await;
            if let Ok(r) = ready {
                if r.json::<Value>()
                    .await
                    .ok()
                    .and_then(|v| v["value"]["ready"].as_bool())
                    == Some(true)
                {
                    return driver;
                }
            }
            assert!(
                Instant::now() < deadline,
                "chromedriver did not become ready"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut req = self.http.request(method, format!("{}{path}", self.url));
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp: Value = req.send().await.unwrap().json().await.unwrap();
        if resp["value"].get("error").is_some() {
            panic!("WebDriver {path}: {resp}");
        }
        resp["value"].clone()
    }

    async fn session(&self) -> Session<'_> {
        let profile = temp_dir("chromium-profile");
        let args = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--window-size=1280,900",
        ];
        let mut args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        args.push(format!("--user-data-dir={}", profile.display()));
        let downloads = temp_dir("chromium-downloads");
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": program("KUBEMETER_TEST_CHROMIUM", "/usr/bin/chromium"),
                "args": args,
                "prefs": {
                    "download.default_directory": downloads.display().to_string(),
                    "download.prompt_for_download": false,
                },
            }
        }}});
        let value = self
            .call(reqwest::Method::POST, "/session", Some(caps))
            .await;
        Session {
            driver: self,
            id: value["sessionId"].as_str().unwrap().to_string(),
            downloads,
        }
    }
}

struct Session<'a> {
    driver: &'a Driver,
    id: String,
    /// Where the browser saves downloads.
    downloads: std::path::PathBuf,
}

impl Session<'_> {
    async fn post(&self, path: &str, body: Value) -> Value {
        let path = format!("/session/{}{path}", self.id);
        self.driver
            .call(reqwest::Method::POST, &path, Some(body))
            .await
    }

    async fn get(&self, path: &str) -> Value {
        let path = format!("/session/{}{path}", self.id);
        self.driver.call(reqwest::Method::GET, &path, None).await
    }

    async fn open(&self, url: &str) {
        self.post("/url", json!({ "url": url })).await;
    }

    async fn url(&self) -> String {
        self.get("/url").await.as_str().unwrap().to_string()
    }

    /// Waits until the page's URL satisfies `want` (a click's navigation is asynchronous).
    async fn wait_for_url(&self, what: &str, want: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let url = self.url().await;
            if want(&url) {
                return url;
            }
            assert!(Instant::now() < deadline, "still at {url}, expected {what}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn find_all(&self, css: &str) -> Vec<String> {
        let found = self
            .post("/elements", json!({"using": "css selector", "value": css}))
            .await;
        found
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                e[ELEMENT]
                    .as_str()
                    .unwrap_or_else(|| panic!("{css}: {found}"))
                    .to_string()
            })
            .collect()
    }

    async fn find(&self, css: &str) -> String {
        let all = self.find_all(css).await;
        assert_eq!(all.len(), 1, "exactly one {css}");
        all[0].clone()
    }

    async fn texts(&self, css: &str) -> Vec<String> {
        let mut out = Vec::new();
        for id in self.find_all(css).await {
            let text = self.get(&format!("/element/{id}/text")).await;
            out.push(text.as_str().unwrap().to_string());
        }
        out
    }

    async fn type_into(&self, css: &str, text: &str) {
        let id = self.find(css).await;
        self.post(&format!("/element/{id}/value"), json!({ "text": text }))
            .await;
    }

    async fn click(&self, css: &str) {
        let id = self.find(css).await;
        self.post(&format!("/element/{id}/click"), json!({})).await;
    }

    /// Saves a PNG of the page when KUBEMETER_TEST_SCREENSHOTS names a folder (to look at
    /// the pages after a change).
    async fn screenshot(&self, name: &str) {
        let Ok(dir) = std::env::var("KUBEMETER_TEST_SCREENSHOTS") else {
            return;
        };
        use base64_decode as decode;
        let png = self.get("/screenshot").await;
        std::fs::write(format!("{dir}/{name}.png"), decode(png.as_str().unwrap())).unwrap();
    }

    /// The file named `name` once the browser has finished saving it.
    async fn downloaded(&self, name: &str) -> Vec<u8> {
        let path = self.downloads.join(name);
        let deadline = Instant::now() + Duration::from_secs(20);
        while !path.exists() {
            assert!(Instant::now() < deadline, "{name} was not downloaded");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        std::fs::read(path).unwrap()
    }

    async fn close(self) {
        let path = format!("/session/{}", self.id);
        self.driver.call(reqwest::Method::DELETE, &path, None).await;
    }
}

#[tokio::test]
async fn in_a_real_browser_a_user_signs_in_reads_a_chart_and_rows_and_signs_out() {
    let (_, db) = fresh_sql_databases().await.remove(0);
    add_user(&db, "alice", Role::Viewer, &[]).await;
    let app = spawn_app_with_users(Some(db)).await;
    app.influx.write(cpu_counter()).await.unwrap();
    let metering = kubemeter::config::BillingSettings::default().metering(app.influx.clone());
    let dec1 = 1_512_086_400 * 1_000_000_000;
    crate::helpers::meter(&metering, dec1, dec1 + 180_000_000_000).await;
    let driver = Driver::start().await;
    let browser = driver.session().await;

    // A stats link opened before signing in goes through the login page and comes back.
    let stats = format!("{}/web/stats/cpu/usage_rate?{RANGE}", app.address);
    browser.open(&stats).await;
    browser
        .wait_for_url("the login page", |u| u.contains("/web/login/"))
        .await;
    browser.type_into("#username", "alice").await;
    browser.type_into("#password", "alice-password").await;
    browser.click("#signin").await;
    browser.wait_for_url("the stats page", |u| u == stats).await;

    // A chart with its total line, and the fixture's 12 pod points (4 pods × 3 samples).
    assert!(
        !browser.find_all("svg.chart path.series").await.is_empty(),
        "a chart"
    );
    assert_eq!(browser.find_all("table.points tbody tr").await.len(), 12);
    browser.screenshot("stats").await;
    let heading = browser.texts("main h1").await;
    assert_eq!(heading, ["cpu/usage_rate"]);

    // The seed's namespace URL shows that namespace only.
    browser
        .open(&format!(
            "{}/web/stats/cpu/usage_rate/cluster-3?{RANGE}",
            app.address
        ))
        .await;
    browser.screenshot("namespace").await;
    let namespaces = browser.texts("table.points tbody td:nth-child(4)").await;
    assert_eq!(namespaces, ["cluster-3"; 3]);
    let values = browser.texts("table.points tbody td:nth-child(7)").await;
    assert_eq!(values, ["70", "60", "50"], "newest first");

    // The billing page shows the statement, and its CSV download is the API's, byte for byte.
    let billing = "from=2017-12-01&to=2017-12-02&by=namespace";
    browser
        .open(&format!("{}/web/billing?{billing}", app.address))
        .await;
    browser.screenshot("billing").await;
    // web-1's app container is billed from its CPU counter; every other container of the
    // fixture has only Heapster's `cpu/usage_rate`, billed from the rate: all three
    // namespaces have a row.
    let keys = browser.texts("table.statement tbody td:first-child").await;
    assert_eq!(
        keys,
        ["cluster-3", "default", "kube-system"],
        "CPU from counters and rates is billed to its namespaces"
    );
    let headings = browser.texts("table.statement thead th").await;
    assert!(
        headings.iter().any(|h| h == "CPU from"),
        "rates are marked: {headings:?}"
    );
    browser.click("a.download").await;
    let csv = browser
        .downloaded("kubemeter-namespace-2017-12-01-2017-12-02.csv")
        .await;
    let api_csv = app
        .http
        .get(format!("{}/api/billing?{billing}&format=csv", app.address))
        .header("X-USERNAME", USER)
        .header("X-PASSWORD", PASSWORD)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(
        String::from_utf8(csv).unwrap(),
        String::from_utf8(api_csv.to_vec()).unwrap()
    );

    // Signing out lands on the login page, and the stats page asks to sign in again.
    browser.click("form.signout button").await;
    browser
        .wait_for_url("the login page", |u| u.ends_with("/web/login/"))
        .await;
    browser.open(&stats).await;
    browser
        .wait_for_url("the login page", |u| u.contains("/web/login/?next="))
        .await;
    assert_eq!(browser.find_all("#signin").await.len(), 1);
    browser.close().await;
}

/// web-1/app's cumulative CPU counter beside the fixture's rates: 0.5 core for two minutes.
fn cpu_counter() -> String {
    let tags = "type=pod_container,cluster_name=default,namespace_name=default,pod_name=web-1,\
                nodename=node-01,owner_kind=ReplicaSet,owner_name=web-5d8f9,\
                workload_kind=Deployment,workload_name=web,container_name=app";
    [
        (0, 500_000_000u64),
        (60, 30_500_000_000),
        (120, 60_500_000_000),
    ]
    .iter()
    .map(|(s, v)| {
        format!(
            "cpu/usage,{tags} value={v}i {}\n",
            (1_512_086_400i64 + s) * 1_000_000_000
        )
    })
    .collect()
}

/// Standard base64 (the WebDriver screenshot's encoding).
fn base64_decode(s: &str) -> Vec<u8> {
    let value = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        _ => 63,
    };
    let bytes: Vec<u8> = s.bytes().filter(|c| *c != b'=').map(value).collect();
    bytes
        .chunks(4)
        .flat_map(|c| {
            let n = c
                .iter()
                .enumerate()
                .fold(0u32, |n, (i, v)| n | (u32::from(*v) << (18 - 6 * i)));
            let take = c.len() - 1;
            [(n >> 16) as u8, (n >> 8) as u8, n as u8]
                .into_iter()
                .take(take)
        })
        .collect()
}
