//! `GET /metrics` of `serve`: requests, errors and latencies per route, in Prometheus' text
//! format, and whether InfluxDB answered the last readiness check.

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{web, HttpResponse};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::Instant;

/// Latency buckets in seconds (Prometheus histogram `le` bounds).
const BUCKETS: [f64; 10] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0];

#[derive(Default)]
struct Route {
    by_status: BTreeMap<u16, u64>,
    buckets: [u64; BUCKETS.len()],
    sum: f64,
    count: u64,
}

#[derive(Default)]
pub struct HttpMetrics(Mutex<BTreeMap<String, Route>>);

impl HttpMetrics {
    pub fn observe(&self, route: &str, status: u16, seconds: f64) {
        let mut routes = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let r = routes.entry(route.to_string()).or_default();
        *r.by_status.entry(status).or_default() += 1;
        for (i, le) in BUCKETS.iter().enumerate() {
            if seconds <= *le {
                r.buckets[i] += 1;
            }
        }
        r.sum += seconds;
        r.count += 1;
    }

    pub fn render(&self) -> String {
        let routes = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let mut out = String::from(
            "# HELP kubemeter_http_requests_total HTTP requests by route and status.\n\
             # TYPE kubemeter_http_requests_total counter\n",
        );
        for (route, r) in routes.iter() {
            for (status, n) in &r.by_status {
                let _ = writeln!(
                    out,
                    "kubemeter_http_requests_total{{route=\"{route}\",status=\"{status}\"}} {n}"
                );
            }
        }
        out.push_str(
            "# HELP kubemeter_http_request_duration_seconds Time to answer, by route.\n\
             # TYPE kubemeter_http_request_duration_seconds histogram\n",
        );
        for (route, r) in routes.iter() {
            for (le, n) in BUCKETS.iter().zip(r.buckets) {
                let _ = writeln!(out, "kubemeter_http_request_duration_seconds_bucket{{route=\"{route}\",le=\"{le}\"}} {n}");
            }
            let _ = writeln!(out, "kubemeter_http_request_duration_seconds_bucket{{route=\"{route}\",le=\"+Inf\"}} {}", r.count);
            let _ = writeln!(
                out,
                "kubemeter_http_request_duration_seconds_sum{{route=\"{route}\"}} {}",
                r.sum
            );
            let _ = writeln!(
                out,
                "kubemeter_http_request_duration_seconds_count{{route=\"{route}\"}} {}",
                r.count
            );
        }
        out
    }
}

/// Middleware: times every request under its route pattern (never the raw path, so the
/// label set stays bounded whatever callers send).
pub async fn measure(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started = Instant::now();
    let metrics = req.app_data::<web::Data<HttpMetrics>>().cloned();
    let res = next.call(req).await?;
    if let Some(metrics) = metrics {
        let route = res
            .request()
            .match_pattern()
            .unwrap_or_else(|| "unmatched".into());
        metrics.observe(
            &route,
            res.status().as_u16(),
            started.elapsed().as_secs_f64(),
        );
    }
    Ok(res)
}

pub async fn render(metrics: web::Data<HttpMetrics>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(metrics.render())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_counted_by_status_and_bucketed_by_latency() {
        let m = HttpMetrics::default();
        m.observe("/api/{metric:.*}", 200, 0.003);
        m.observe("/api/{metric:.*}", 200, 0.2);
        m.observe("/api/{metric:.*}", 400, 0.001);
        let text = m.render();
        assert!(
            text.contains(
                "kubemeter_http_requests_total{route=\"/api/{metric:.*}\",status=\"200\"} 2"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "kubemeter_http_requests_total{route=\"/api/{metric:.*}\",status=\"400\"} 1"
            ),
            "{text}"
        );
        assert!(
            text.contains("_bucket{route=\"/api/{metric:.*}\",le=\"0.005\"} 2"),
            "{text}"
        );
        assert!(
            text.contains("_bucket{route=\"/api/{metric:.*}\",le=\"0.25\"} 3"),
            "{text}"
        );
        assert!(
            text.contains("_count{route=\"/api/{metric:.*}\"} 3"),
            "{text}"
        );
    }
}
