//! Statements wherever they are offered — `POST`/`GET /api/billing`, the dashboard's billing
//! page and its CSV download, `kubemeter export` to a file or to a billing system — come from
//! one engine: the same period gives the same bytes everywhere. The quantities themselves are
//! checked against hand-worked numbers in `billing.rs`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use chrono::{DurationRound, Utc};
use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::{
    fresh_influx, fresh_sql_databases, meter, spawn_app_with, start_collector, start_simulator,
    TestApp, PASSWORD, USER,
};
use crate::web::{add_user, Visitor};
use kubemeter::api::billing::StatementParams;
use kubemeter::billing::Modes;
use kubemeter::config::BillingSettings;
use kubemeter::influx::InfluxClient;
use kubemeter::jobs::export::{self, Destination, ExportError, Retry};
use kubemeter::metering::{Metering, Quiet};
use kubemeter::users::{Db, Role};

/// A simulated cluster (2 nodes × 4 pod slots) scraped three times, a second apart, and the
/// window around it: `[this hour − 1 h, this hour + 1 h)`.
async fn metered_cluster() -> (InfluxClient, String, String) {
    let (url, _model) = start_simulator(2, 4, vec![]);
    let influx = fresh_influx().await;
    let mut run = start_collector(&url, &influx, Duration::from_secs(5)).await;
    for _ in 0..3 {
        run.collector.round().await;
        // Kubelet sample times are whole seconds: the next round must be a later second.
        tokio::time::sleep(Duration::from_millis(1100)).await;
    }
    run.finish().await;
    // Metered from the raw samples, as the collector's metering and job do.
    let now = Utc::now().timestamp_nanos_opt().unwrap();
    let metering = BillingSettings::default().metering(influx.clone());
    meter(&metering, now - 3_600_000_000_000, now).await;
    let hour = Utc::now()
        .duration_trunc(chrono::Duration::hours(1))
        .unwrap();
    let fmt = |t: chrono::DateTime<Utc>| t.format("%Y-%m-%dT%H:%M:%SZ").to_string();
    (
        influx,
        fmt(hour - chrono::Duration::hours(1)),
        fmt(hour + chrono::Duration::hours(1)),
    )
}

/// `export::export` with the default modes and no progress shown.
async fn run_export(
    metering: &Metering,
    db: &Db,
    p: &StatementParams,
    destination: &Destination,
    retry: Retry,
) -> Result<export::ExportRun, ExportError> {
    export::export(
        metering,
        Modes::default(),
        db,
        p,
        destination,
        retry,
        &Quiet,
    )
    .await
}

async fn get_billing(app: &TestApp, query: &str) -> reqwest::Response {
    app.http
        .get(format!("{}/api/billing?{query}", app.address))
        .header("X-USERNAME", USER)
        .header("X-PASSWORD", PASSWORD)
        .send()
        .await
        .unwrap()
}

async fn post_billing(app: &TestApp, body: &str) -> reqwest::Response {
    app.post("billing", body).await
}

fn params(from: &str, to: &str, by: &str, format: &str) -> StatementParams {
    let fields = [("from", from), ("to", to), ("by", by), ("format", format)]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    StatementParams::parse(&fields, Utc::now()).unwrap()
}

#[tokio::test]
async fn the_api_the_dashboard_and_an_export_give_the_same_statement() {
    let (influx, from, to) = metered_cluster().await;
    let dbs = fresh_sql_databases().await;
    let db = dbs[0].1.clone();
    add_user(&db, "alice", Role::Admin, &[]).await;
    let app = spawn_app_with(influx.config().clone(), Some(db.clone())).await;

    let q = format!("from={from}&to={to}&by=namespace");
    let json = get_billing(&app, &q).await;
    assert_eq!(json.status(), 200);
    assert_eq!(
        json.headers()["content-type"].to_str().unwrap(),
        "application/json"
    );
    let json_text = json.text().await.unwrap();
    let statement: Value = serde_json::from_str(&json_text).unwrap();
    let rows = statement["rows"].as_array().unwrap();
    assert!(
        !rows.is_empty(),
        "the simulated namespaces are billed: {statement}"
    );
    assert_eq!(statement["by"], "namespace");
    // kube-system is billed like any namespace: statements are for finance, not the seed's
    // cluster-wide aggregations.
    let namespaces: Vec<&str> = rows
        .iter()
        .map(|r| r["namespace"].as_str().unwrap())
        .collect();
    let mut sorted = namespaces.clone();
    sorted.sort();
    assert_eq!(namespaces, sorted, "rows are sorted by key");
    let cpu: f64 = rows
        .iter()
        .map(|r| r["cpu_usage_core_hours"].as_f64().unwrap())
        .sum();
    assert!(cpu > 0.0, "three scrapes a second apart show CPU used");

    // POST with a JSON body is the same statement, byte for byte.
    let body = format!(r#"{{"from":"{from}","to":"{to}","by":"namespace"}}"#);
    let posted = post_billing(&app, &body).await.text().await.unwrap();
    assert_eq!(posted, json_text);

    // CSV from the API, from the dashboard's download and from `export` to a file.
    let csv = get_billing(&app, &format!("{q}&format=csv")).await;
    assert_eq!(csv.status(), 200);
    assert_eq!(
        csv.headers()["content-disposition"].to_str().unwrap(),
        format!(
            "attachment; filename=\"{}\"",
            params(&from, &to, "namespace", "csv").file_name()
        )
    );
    let api_csv = csv.text().await.unwrap();
    assert_eq!(
        api_csv.lines().count(),
        rows.len() + 2,
        "header, rows, totals"
    );

    let mut visitor = Visitor::new(&app);
    visitor.sign_in("alice", "alice-password").await;
    let (status, html, _) = visitor.get(&format!("/web/billing?{q}")).await;
    assert_eq!(status, 200);
    assert!(html.contains("Download CSV"), "{html}");
    for ns in &namespaces {
        assert!(
            html.contains(&format!("<td>{ns}</td>")),
            "{ns} is a row of the page"
        );
    }
    let (status, web_csv, _) = visitor.get(&format!("/web/billing.csv?{q}")).await;
    assert_eq!(status, 200);
    assert_eq!(web_csv, api_csv);

    let settings = BillingSettings::default();
    let metering = settings.metering(influx.clone());
    let out = crate::helpers::temp_dir("export").join("october.csv");
    let p = params(&from, &to, "namespace", "csv");
    let destination = Destination::File(out.clone());
    let run = run_export(&metering, &db, &p, &destination, Retry::default())
        .await
        .unwrap();
    let file = std::fs::read_to_string(&out).unwrap();
    assert_eq!(file, api_csv);
    assert_eq!(run.sha256, export::sha256_hex(api_csv.as_bytes()));
    assert_eq!(run.rows, rows.len());

    // The same export again: the same bytes, and a second record with the same digest.
    let again = run_export(&metering, &db, &p, &destination, Retry::default())
        .await
        .unwrap();
    assert_eq!(std::fs::read_to_string(&out).unwrap(), api_csv);
    assert_eq!(again.sha256, run.sha256);
    let recorded = export::recorded_runs(&db, 10).await.unwrap();
    assert_eq!(recorded.len(), 2);
    assert!(recorded.iter().all(|r| r.sha256 == run.sha256
        && r.grouping == "namespace"
        && r.rows == rows.len() as i64));
}

#[tokio::test]
async fn a_statement_the_billing_system_cannot_take_yet_is_retried_until_it_can() {
    let (influx, from, to) = metered_cluster().await;
    let received = Arc::new(Mutex::new(Vec::<(String, String, String)>::new()));
    let answers = Arc::new(Mutex::new(Vec::new()));
    let url = billing_system(received.clone(), answers.clone()).await;
    let metering = BillingSettings::default().metering(influx);
    let p = params(&from, &to, "workload", "json");
    let destination = Destination::Post {
        url: reqwest::Url::parse(&url).unwrap(),
        token: Some("s3cret".to_string().into()),
    };
    let retry = Retry {
        attempts: 3,
        first_wait: Duration::from_millis(20),
    };
    for (label, db) in fresh_sql_databases().await {
        received.lock().unwrap().clear();
        *answers.lock().unwrap() = vec![503, 429, 200];
        let run = run_export(&metering, &db, &p, &destination, retry)
            .await
            .unwrap_or_else(|e| panic!("{label}: {e}"));
        let got = received.lock().unwrap().clone();
        assert_eq!(got.len(), 3, "{label}: two refusals, then taken");
        let (body, key, auth) = got.last().unwrap().clone();
        assert_eq!(key, export::sha256_hex(body.as_bytes()), "{label}");
        assert_eq!(run.sha256, key, "{label}");
        assert_eq!(auth, "Bearer s3cret", "{label}");
        let statement: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(statement["by"], "workload", "{label}");

        let recorded = export::recorded_runs(&db, 10).await.unwrap();
        assert_eq!(recorded.len(), 1, "{label}");
        assert_eq!(recorded[0].sha256, run.sha256, "{label}");
        assert_eq!(recorded[0].grouping, "workload", "{label}");
        assert_eq!(recorded[0].format, "json", "{label}");
        assert_eq!(recorded[0].period_from, p.window.from, "{label}");
        assert_eq!(recorded[0].period_to, p.window.to, "{label}");
        // The URL is recorded without its query string, where secrets hide.
        assert_eq!(
            recorded[0].destination,
            url.split('?').next().unwrap(),
            "{label}"
        );
    }
}

#[tokio::test]
async fn a_refused_statement_is_not_retried_and_not_recorded() {
    let influx = fresh_influx().await;
    let received = Arc::new(Mutex::new(Vec::new()));
    let url = billing_system(received.clone(), Arc::new(Mutex::new(vec![422]))).await;
    let metering = BillingSettings::default().metering(influx);
    let dbs = fresh_sql_databases().await;
    let db = &dbs[0].1;
    let p = params("2026-10-01", "2026-11-01", "namespace", "csv");
    let destination = Destination::Post {
        url: reqwest::Url::parse(&url).unwrap(),
        token: None,
    };
    let err = run_export(&metering, db, &p, &destination, Retry::default())
        .await
        .unwrap_err();
    assert!(
        matches!(err, ExportError::Refused { status: 422, .. }),
        "{err}"
    );
    assert!(
        err.to_string().contains("we do not take this period"),
        "{err}"
    );
    assert_eq!(received.lock().unwrap().len(), 1);
    assert!(export::recorded_runs(db, 10).await.unwrap().is_empty());
}

/// A billing system that answers each POST with the next status of `answers` (the last one
/// repeated) and keeps `(body, Idempotency-Key, Authorization)` of each.
async fn billing_system(
    received: Arc<Mutex<Vec<(String, String, String)>>>,
    answers: Arc<Mutex<Vec<u16>>>,
) -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = HttpServer::new(move || {
        let (received, answers) = (received.clone(), answers.clone());
        App::new().default_service(web::to(move |req: HttpRequest, body: web::Bytes| {
            let (received, answers) = (received.clone(), answers.clone());
            async move {
                let header = |n: &str| {
                    req.headers()
                        .get(n)
                        .map(|v| v.to_str().unwrap().to_string())
                        .unwrap_or_default()
                };
                received.lock().unwrap().push((
                    String::from_utf8(body.to_vec()).unwrap(),
                    header("idempotency-key"),
                    header("authorization"),
                ));
                let status = {
                    let mut a = answers.lock().unwrap();
                    if a.len() > 1 {
                        a.remove(0)
                    } else {
                        a[0]
                    }
                };
                let mut resp =
                    HttpResponse::build(actix_web::http::StatusCode::from_u16(status).unwrap());
                if status == 429 {
                    resp.insert_header(("Retry-After", "0"));
                }
                resp.body(if status == 422 {
                    "we do not take this period"
                } else {
                    ""
                })
            }
        }))
    })
    .workers(1)
    .listen(listener)
    .unwrap()
    .run();
    tokio::spawn(server);
    format!("http://127.0.0.1:{port}/statements?key=secret")
}

#[tokio::test]
async fn bad_billing_requests_get_a_sentence_and_the_right_status() {
    let influx = fresh_influx().await;
    let dbs = fresh_sql_databases().await;
    let db: Db = dbs[0].1.clone();
    add_user(&db, "viewer", Role::Viewer, &[]).await;
    let app = spawn_app_with(influx.config().clone(), Some(db)).await;

    let cases = [
        ("from=2026-10-01", "from: give both from and to"),
        ("from=2026-10-02&to=2026-10-01", "to: must be after from"),
        ("from=2020-01-01&to=2026-10-01", "longer than 366 days"),
        ("by=team", "by: \"team\" is not a grouping"),
        ("mode=cheap", "mode: \"cheap\" is not a billing mode"),
        ("format=xml", "format: \"xml\" is not a format"),
        ("form=2026-10-01", "unknown field \"form\""),
    ];
    for (query, expected) in cases {
        let resp = get_billing(&app, query).await;
        assert_eq!(resp.status(), 400, "{query}");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["code"], 400);
        let message = body["message"].as_str().unwrap();
        assert!(message.contains(expected), "{query}: {message}");
    }
    let body: Value = post_billing(&app, r#"{"from": 20261001}"#)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(body["code"], 400);
    assert!(body["message"]
        .as_str()
        .unwrap()
        .contains("must be a string"));

    let put = app
        .http
        .put(format!("{}/api/billing", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(put.headers()["allow"], "GET, POST");

    let anonymous = app
        .http
        .get(format!("{}/api/billing", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
    let viewer = app
        .post_as("billing", "", Some("viewer"), Some("viewer-password"))
        .await;
    assert_eq!(
        viewer.status(),
        403,
        "viewers use the dashboard, not the API"
    );

    let page = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(format!("{}/web/billing.csv?by=pod", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 303, "the download needs a session");
    assert!(page.headers()["location"]
        .to_str()
        .unwrap()
        .starts_with("/web/login/?next="));
}

#[tokio::test]
async fn a_user_limited_to_namespaces_is_billed_for_those_only() {
    let (influx, from, to) = metered_cluster().await;
    let dbs = fresh_sql_databases().await;
    let db = dbs[0].1.clone();
    let app = spawn_app_with(influx.config().clone(), Some(db.clone())).await;
    let q = format!("from={from}&to={to}&by=pod");
    let all: Value = get_billing(&app, &q).await.json().await.unwrap();
    let namespaces: std::collections::BTreeSet<String> = all["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["namespace"].as_str().unwrap().to_string())
        .collect();
    assert!(namespaces.len() >= 2, "{namespaces:?}");
    let one = namespaces.iter().next().unwrap().clone();
    add_user(&db, "team", Role::Api, &[&one]).await;
    let resp = app
        .http
        .get(format!("{}/api/billing?{q}", app.address))
        .header("X-USERNAME", "team")
        .header("X-PASSWORD", "team-password")
        .send()
        .await
        .unwrap();
    let mine: Value = resp.json().await.unwrap();
    let rows = mine["rows"].as_array().unwrap();
    assert!(!rows.is_empty());
    assert!(
        rows.iter().all(|r| r["namespace"] == one.as_str()),
        "{mine}"
    );
    // The totals are the visible rows' totals, not the cluster's.
    let expected: Vec<&Value> = all["rows"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["namespace"] == one.as_str())
        .collect();
    assert_eq!(rows.iter().collect::<Vec<_>>(), expected);
    assert_ne!(mine["totals"], all["totals"]);
}

#[tokio::test]
async fn the_openapi_document_describes_the_billing_fields_the_api_takes() {
    let influx = fresh_influx().await;
    let app = spawn_app_with(influx.config().clone(), None).await;
    let doc: Value = app
        .http
        .get(format!("{}/api/openapi.json", app.address))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let post = &doc["paths"]["/api/billing"]["post"];
    let fields = post["requestBody"]["content"]["application/json"]["schema"]["properties"]
        .as_object()
        .unwrap();
    let get_params: Vec<&str> = doc["paths"]["/api/billing"]["get"]["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["in"] == "query")
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        get_params,
        fields.keys().map(String::as_str).collect::<Vec<_>>()
    );
    // Every documented field with its example is accepted, together.
    let query: Vec<String> = fields
        .iter()
        .map(|(name, schema)| {
            let value = schema["example"]
                .as_str()
                .or(schema["default"].as_str())
                .unwrap();
            format!("{name}={value}")
        })
        .collect();
    let resp = get_billing(&app, &query.join("&")).await;
    assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());
    for format in fields["format"]["enum"].as_array().unwrap() {
        let resp = get_billing(&app, &format!("format={}", format.as_str().unwrap())).await;
        assert_eq!(resp.status(), 200, "{format}");
    }
}
