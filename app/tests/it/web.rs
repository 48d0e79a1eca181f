//! The dashboard over HTTP: sign-in with CSRF and lockout, sessions ended server-side, the
//! numbers of the stats pages (worked out by hand from the fixture), scopes and error pages.
//! The same flow in a real browser is in `browser.rs`.

use crate::helpers::{fresh_sql_databases, spawn_app_with_users, TestApp};
use kubemeter::api::request::Namespace;
use kubemeter::users::{Db, NewUser, Role};
use reqwest::redirect::Policy;
use reqwest::StatusCode;
use secrecy::SecretString;

/// The fixture's window, [00:00, 00:03) on 2017-12-01: 15-second buckets, one sample each.
pub const RANGE: &str = "from=2017-12-01T00:00:00Z&to=2017-12-01T00:03:00Z";

pub async fn add_user(db: &Db, name: &str, role: Role, namespaces: &[&str]) {
    db.create_user(NewUser {
        username: name.into(),
        email: format!("{name}@example.com"),
        role,
        namespaces: namespaces
            .iter()
            .map(|n| Namespace::parse(n).unwrap())
            .collect(),
        password: SecretString::from(format!("{name}-password")),
    })
    .await
    .unwrap();
}

/// A browser-like client that does not follow redirects, with its own cookies.
pub struct Visitor<'a> {
    app: &'a TestApp,
    http: reqwest::Client,
    cookies: Vec<(String, String)>,
}

impl<'a> Visitor<'a> {
    pub fn new(app: &'a TestApp) -> Self {
        Visitor {
            app,
            http: reqwest::Client::builder()
                .redirect(Policy::none())
                .build()
                .unwrap(),
            cookies: Vec::new(),
        }
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    fn keep_cookies(&mut self, resp: &reqwest::Response) {
        for set in resp.headers().get_all("set-cookie") {
            let set = set.to_str().unwrap();
            let (pair, attrs) = set.split_once(';').unwrap_or((set, ""));
            let (k, v) = pair.split_once('=').unwrap();
            self.cookies.retain(|(name, _)| name != k);
            if !attrs.contains("Max-Age=0") {
                self.cookies.push((k.to_string(), v.to_string()));
            }
        }
    }

    pub async fn get(&mut self, path: &str) -> (StatusCode, String, Option<String>) {
        let resp = self
            .http
            .get(format!("{}{path}", self.app.address))
            .header("cookie", self.cookie_header())
            .send()
            .await
            .unwrap();
        self.finish(resp).await
    }

    pub async fn post(
        &mut self,
        path: &str,
        form: &[(&str, &str)],
    ) -> (StatusCode, String, Option<String>) {
        let resp = self
            .http
            .post(format!("{}{path}", self.app.address))
            .header("cookie", self.cookie_header())
            .form(form)
            .send()
            .await
            .unwrap();
        self.finish(resp).await
    }

    async fn finish(&mut self, resp: reqwest::Response) -> (StatusCode, String, Option<String>) {
        self.keep_cookies(&resp);
        let status = resp.status();
        let location = resp
            .headers()
            .get("location")
            .map(|l| l.to_str().unwrap().to_string());
        (status, resp.text().await.unwrap(), location)
    }

    pub fn cookie(&self, name: &str) -> Option<String> {
        self.cookies
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    }

    /// Opens the login page and signs in; returns the sign-in answer.
    pub async fn sign_in(
        &mut self,
        user: &str,
        password: &str,
    ) -> (StatusCode, String, Option<String>) {
        let (status, page, _) = self.get("/web/login/").await;
        assert_eq!(status, 200, "{page}");
        let csrf = hidden(&page, "csrf_token");
        self.post(
            "/web/authentication/signin",
            &[
                ("username", user),
                ("password", password),
                ("csrf_token", &csrf),
                ("next", "/web/stats/index"),
            ],
        )
        .await
    }
}

/// The value of the hidden input `name` in a page.
pub fn hidden(page: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = page
        .find(&marker)
        .unwrap_or_else(|| panic!("no {name} in {page}"))
        + marker.len();
    page[start..].split('"').next().unwrap().to_string()
}

/// The cells of the table with class `class`, row by row.
pub fn table(page: &str, class: &str) -> Vec<Vec<String>> {
    let start = page
        .find(&format!("<table class=\"{class}\""))
        .unwrap_or_else(|| panic!("no table {class} in the page"));
    let body = &page[start..];
    let body = &body[body.find("<tbody>").unwrap()..body.find("</tbody>").unwrap()];
    body.split("<tr>")
        .skip(1)
        .map(|row| {
            row.split("<td")
                .skip(1)
                .map(|cell| {
                    let inner = &cell[cell.find('>').unwrap() + 1..cell.find("</td>").unwrap()];
                    strip_tags(inner)
                })
                .collect()
        })
        .collect()
}

fn strip_tags(s: &str) -> String {
    let mut out = String::new();
    let mut in_tag = false;
    for c in s.chars() {
        match c {
            '<' => in_tag = true,
            '>' => in_tag = false,
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    out.trim().to_string()
}

#[tokio::test]
async fn a_user_signs_in_with_a_csrf_token_and_signing_out_ends_the_session_on_the_server() {
    for (label, db) in fresh_sql_databases().await {
        add_user(&db, "alice", Role::Viewer, &[]).await;
        let app = spawn_app_with_users(Some(db)).await;
        let mut v = Visitor::new(&app);

        // Not signed in: sent to the login page, which brings you back afterwards.
        let (status, _, location) = v.get("/web/stats/cpu/usage_rate?range=6h").await;
        assert_eq!(status, 303, "{label}");
        assert_eq!(
            location.unwrap(),
            "/web/login/?next=/web/stats/cpu/usage_rate%3Frange%3D6h"
        );

        // A sign-in without the form's token is refused, even with the right password.
        let (status, page, _) = v
            .post(
                "/web/authentication/signin",
                &[("username", "alice"), ("password", "alice-password")],
            )
            .await;
        assert_eq!(status, 403, "{label}");
        assert!(page.contains("This form has expired"), "{page}");

        let (status, page, _) = v.sign_in("alice", "wrong").await;
        assert_eq!(status, 401, "{label}");
        assert!(
            page.contains("Username and password is not recognized"),
            "{page}"
        );
        assert!(v.cookie("kubemeter_session").is_none());

        let (status, _, location) = v.sign_in("alice", "alice-password").await;
        assert_eq!(status, 303, "{label}");
        assert_eq!(location.as_deref(), Some("/web/stats/index"));
        let token = v.cookie("kubemeter_session").expect("a session cookie");
        let (status, page, _) = v.get("/web/stats/index").await;
        assert_eq!(status, 200, "{label}: {page}");
        assert!(page.contains("alice"), "{page}");

        // Signing out needs the session's token, then the same cookie no longer works.
        let (status, _, _) = v
            .post("/web/authentication/signout", &[("csrf_token", "forged")])
            .await;
        assert_eq!(status, 403, "{label}");
        let csrf = hidden(&page, "csrf_token");
        let (status, _, location) = v
            .post("/web/authentication/signout", &[("csrf_token", &csrf)])
            .await;
        assert_eq!(
            (status.as_u16(), location.as_deref()),
            (303, Some("/web/login/")),
            "{label}"
        );
        assert!(
            v.cookie("kubemeter_session").is_none(),
            "the browser is told to forget it"
        );
        v.cookies.push(("kubemeter_session".into(), token));
        let (status, _, location) = v.get("/web/stats/index").await;
        assert_eq!(
            status, 303,
            "{label}: a replayed cookie of an ended session is refused"
        );
        assert!(location.unwrap().starts_with("/web/login/"));
    }
}

#[tokio::test]
async fn session_cookies_are_http_only_same_site_and_secure_behind_tls() {
    let (_, db) = fresh_sql_databases().await.remove(0);
    add_user(&db, "alice", Role::Admin, &[]).await;
    let app = spawn_app_with_users(Some(db)).await;
    let http = reqwest::Client::builder()
        .redirect(Policy::none())
        .build()
        .unwrap();
    for (proto, secure) in [("http", false), ("https", true)] {
        let login = http
            .get(format!("{}/web/login/", app.address))
            .header("x-forwarded-proto", proto)
            .send()
            .await
            .unwrap();
        let csrf_cookie = login.headers()["set-cookie"].to_str().unwrap().to_string();
        let page = login.text().await.unwrap();
        let token = hidden(&page, "csrf_token");
        let resp = http
            .post(format!("{}/web/authentication/signin", app.address))
            .header("x-forwarded-proto", proto)
            .header("cookie", csrf_cookie.split(';').next().unwrap())
            .form(&[
                ("username", "alice"),
                ("password", "alice-password"),
                ("csrf_token", &token),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 303);
        let session = resp
            .headers()
            .get_all("set-cookie")
            .iter()
            .map(|c| c.to_str().unwrap().to_string())
            .find(|c| c.starts_with("kubemeter_session="))
            .unwrap();
        for attr in ["HttpOnly", "SameSite=Lax", "Path=/web"] {
            assert!(session.contains(attr), "{session}");
        }
        assert_eq!(session.contains("Secure"), secure, "{proto}: {session}");
        let token = session["kubemeter_session=".len()..]
            .split(';')
            .next()
            .unwrap();
        assert!(
            token.len() == 64 && token.chars().all(|c| c.is_ascii_hexdigit()),
            "{session}"
        );
    }
}

#[tokio::test]
async fn repeated_failures_are_slowed_then_refused_even_with_the_right_password() {
    for (label, db) in fresh_sql_databases().await {
        add_user(&db, "alice", Role::Viewer, &[]).await;
        let app = spawn_app_with_users(Some(db)).await;
        let mut v = Visitor::new(&app);
        for i in 0..10 {
            let started = std::time::Instant::now();
            let (status, _, _) = v.sign_in("alice", "guess").await;
            assert_eq!(status, 401, "{label}: attempt {i}");
            if i >= 5 {
                // The policy: from the 5th failure on, 250 ms more per failure.
                let at_least = std::time::Duration::from_millis(250 * (i - 4));
                assert!(
                    started.elapsed() >= at_least,
                    "{label}: attempt {i} took {:?}",
                    started.elapsed()
                );
            }
        }
        let (status, page, _) = v.sign_in("alice", "alice-password").await;
        assert_eq!(status, 429, "{label}");
        assert!(page.contains("Too many failed sign-ins"), "{page}");
        assert!(v.cookie("kubemeter_session").is_none());
    }
}

#[tokio::test]
async fn with_influxdb_down_pages_say_so_and_sign_in_still_works() {
    let (_, db) = fresh_sql_databases().await.remove(0);
    add_user(&db, "alice", Role::Viewer, &[]).await;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = kubemeter::influx::InfluxConfig {
        url: format!("http://127.0.0.1:{port}").parse().unwrap(),
        database: "k8s".into(),
        auth: kubemeter::influx::client::InfluxAuth::None,
        timeout: std::time::Duration::from_secs(2),
    };
    let app = crate::helpers::spawn_app_with(config, Some(db)).await;
    let mut v = Visitor::new(&app);
    let (status, _, _) = v.sign_in("alice", "alice-password").await;
    assert_eq!(status, 303);
    let (status, page, _) = v.get("/web/stats/cpu/usage_rate/default").await;
    assert_eq!(status, 503);
    assert!(page.contains("InfluxDB cannot be reached"), "{page}");
}

#[tokio::test]
async fn stats_pages_show_the_usage_of_each_level_from_the_fixture() {
    let (_, db) = fresh_sql_databases().await.remove(0);
    add_user(&db, "alice", Role::Viewer, &[]).await;
    let app = spawn_app_with_users(Some(db)).await;
    let mut v = Visitor::new(&app);
    v.sign_in("alice", "alice-password").await;

    // All namespaces, pod level: per minute 110+200+50+5 = 365, then 385, 405.
    let (status, page, _) = v.get(&format!("/web/stats/cpu/usage_rate?{RANGE}")).await;
    assert_eq!(status, 200, "{page}");
    assert!(
        page.contains("<span class=\"big\">385 millicores</span> average · peak 405 millicores"),
        "{page}"
    );
    assert!(page.contains("<svg class=\"chart\""));
    let namespaces = table(&page, "breakdown");
    let summary: Vec<(&str, &str)> = namespaces
        .iter()
        .map(|r| (r[0].as_str(), r[1].as_str()))
        .collect();
    // default 110+200, 120+200, 130+200 → 320; cluster-3 50, 60, 70 → 60; kube-system 5.
    assert_eq!(
        summary,
        [
            ("default", "320 millicores"),
            ("cluster-3", "60 millicores"),
            ("kube-system", "5 millicores")
        ]
    );
    let points = table(&page, "points");
    assert_eq!(
        points.len(),
        12,
        "4 pods × 3 samples, the poison samples outside"
    );
    assert_eq!(points[0][1], "2017-12-01 00:02:00");
    assert!(
        points.iter().all(|r| r[4].is_empty()),
        "pod rows have no container"
    );

    // One namespace: its workloads, and only its points.
    let (status, page, _) = v
        .get(&format!("/web/stats/cpu/usage_rate/default?{RANGE}"))
        .await;
    assert_eq!(status, 200);
    assert!(
        page.contains("320 millicores</span> average · peak 330 millicores"),
        "{page}"
    );
    assert_eq!(
        table(&page, "breakdown")[0][..2],
        ["Deployment/web".to_string(), "320 millicores".into()]
    );
    let points = table(&page, "points");
    assert_eq!(points.len(), 6);
    assert!(points.iter().all(|r| r[3] == "default"));

    // Workload → pods; pod → containers.
    let (_, page, _) = v
        .get(&format!(
            "/web/stats/cpu/usage_rate/default?workload=Deployment/web&{RANGE}"
        ))
        .await;
    let pods: Vec<(String, String)> = table(&page, "breakdown")
        .into_iter()
        .map(|r| (r[0].clone(), r[1].clone()))
        .collect();
    assert_eq!(
        pods,
        [
            ("web-2".into(), "200 millicores".into()),
            ("web-1".into(), "120 millicores".into())
        ]
    );
    let (_, page, _) = v
        .get(&format!(
            "/web/stats/cpu/usage_rate/default?workload=Deployment/web&pod=web-1&{RANGE}"
        ))
        .await;
    let containers: Vec<(String, String)> = table(&page, "breakdown")
        .into_iter()
        .map(|r| (r[0].clone(), r[1].clone()))
        .collect();
    assert_eq!(
        containers,
        [
            ("app".into(), "110 millicores".into()),
            ("sidecar".into(), "10 millicores".into())
        ]
    );
    let points = table(&page, "points");
    assert_eq!(points.len(), 6);
    assert!(
        points.windows(2).all(|w| w[0][1] >= w[1][1]),
        "newest first: {points:?}"
    );
    let newest: Vec<(&str, &str)> = points[..2]
        .iter()
        .map(|r| (r[4].as_str(), r[6].as_str()))
        .collect();
    assert!(
        newest.contains(&("app", "120")) && newest.contains(&("sidecar", "10")),
        "{points:?}"
    );

    // A container-only metric, by its seed URL: uptime in milliseconds, readable.
    let (status, page, _) = v.get(&format!("/web/stats/uptime/default?{RANGE}")).await;
    assert_eq!(status, 200);
    let points = table(&page, "points");
    assert_eq!(points.len(), 6);
    assert!(
        points
            .iter()
            .any(|r| r[6] == "121000" && r[7] == "2 min 1 s"),
        "{points:?}"
    );

    // The index: averages of the three main metrics, and the top namespaces.
    let (status, page, _) = v.get(&format!("/web/stats/index?{RANGE}")).await;
    assert_eq!(status, 200, "{page}");
    assert!(
        page.contains("<span class=\"big\">385 millicores</span> average"),
        "{page}"
    );
    let start = page.find("Namespaces using most").unwrap();
    let tops = &page[start..];
    let (d, c) = (
        tops.find(">default<").unwrap(),
        tops.find(">cluster-3<").unwrap(),
    );
    assert!(d < c, "the largest namespace first");
}

#[tokio::test]
async fn a_user_limited_to_a_namespace_sees_nothing_else_on_any_page() {
    let (_, db) = fresh_sql_databases().await.remove(0);
    add_user(&db, "team3", Role::Viewer, &["cluster-3"]).await;
    let app = spawn_app_with_users(Some(db)).await;
    let mut v = Visitor::new(&app);
    v.sign_in("team3", "team3-password").await;

    let (status, page, _) = v.get(&format!("/web/stats/cpu/usage_rate?{RANGE}")).await;
    assert_eq!(status, 200);
    let points = table(&page, "points");
    assert_eq!(points.len(), 3);
    assert!(points.iter().all(|r| r[3] == "cluster-3"), "{points:?}");
    assert!(
        !page.contains("web-1") && !page.contains(">default<"),
        "{page}"
    );
    assert!(page.contains("60 millicores</span> average"));

    let (status, page, _) = v
        .get(&format!("/web/stats/cpu/usage_rate/default?{RANGE}"))
        .await;
    assert_eq!(status, 403);
    assert!(
        page.contains("may not read namespace &#34;default&#34;")
            || page.contains("may not read namespace &quot;default&quot;"),
        "{page}"
    );
    let (status, _, _) = v
        .get(&format!("/web/stats/cpu/node_capacity?{RANGE}"))
        .await;
    assert_eq!(status, 403);

    let (_, page, _) = v.get(&format!("/web/stats/index?{RANGE}")).await;
    assert!(page.contains("60 millicores</span> average"), "{page}");
    assert!(!page.contains(">default<"));
}

#[tokio::test]
async fn machine_accounts_stay_in_the_api_and_bad_pages_say_what_is_wrong() {
    let (_, db) = fresh_sql_databases().await.remove(0);
    add_user(&db, "billing-bot", Role::Api, &[]).await;
    add_user(&db, "alice", Role::Viewer, &[]).await;
    let app = spawn_app_with_users(Some(db)).await;

    let mut bot = Visitor::new(&app);
    let (status, page, _) = bot.sign_in("billing-bot", "billing-bot-password").await;
    assert_eq!(status, 403);
    assert!(page.contains("for the API only"), "{page}");

    let mut v = Visitor::new(&app);
    v.sign_in("alice", "alice-password").await;
    for (path, status, sentence) in [
        ("/web/stats/cpu/nothing", 404, "There is no metric"),
        (
            "/web/stats/cpu/usage_rate/Not_A_Namespace",
            400,
            "is not a namespace name",
        ),
        ("/web/stats/cpu/usage_rate?range=2w", 400, "unknown range"),
        (
            "/web/stats/cpu/usage_rate?from=yesterday&to=2017-12-02",
            400,
            "is not a time",
        ),
        (
            "/web/stats/cpu/usage_rate?pod=web-1",
            400,
            "choose a namespace first",
        ),
        (
            "/web/stats/cpu/node_capacity/default",
            400,
            "is a node metric",
        ),
    ] {
        let (got, page, _) = v.get(path).await;
        assert_eq!(got.as_u16(), status, "{path}: {page}");
        assert!(page.contains(sentence), "{path}: {page}");
    }
    // Every catalogue metric has a page.
    for metric in kubemeter::catalogue::METRICS {
        let (status, page, _) = v.get(&format!("/web/stats/{}?{RANGE}", metric.name)).await;
        assert_eq!(status, 200, "{}: {page}", metric.name);
    }
}
