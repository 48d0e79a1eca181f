//! `GET /api/openapi.json`: the API described for client generators and reviewers, built from
//! the same catalogue and constants the handlers use, so it cannot drift from them.

use actix_web::HttpResponse;
use serde_json::{json, Value};

use super::request::{AGG_MODES, DEFAULT_LIMIT, FUNCS, MAX_BUCKETS, MAX_LIMIT};
use crate::catalogue::METRICS;

fn error(description: &str) -> Value {
    json!({"description": description, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}})
}

/// `GET` takes the statement's fields as a query string, `POST` as a JSON object of strings.
fn billing_operation(post: bool) -> Value {
    let mut parameters = vec![
        json!({"name": "X-USERNAME", "in": "header", "required": true, "schema": {"type": "string"}}),
        json!({"name": "X-PASSWORD", "in": "header", "required": true, "schema": {"type": "string", "format": "password"}}),
    ];
    let fields = billing_fields();
    if !post {
        for (name, schema) in fields.as_object().into_iter().flatten() {
            parameters
                .push(json!({"name": name, "in": "query", "required": false, "schema": schema}));
        }
    }
    let mut op = json!({
        "summary": "A billing statement {from, to, by, rows, totals} for a period, as JSON or CSV",
        "parameters": parameters,
        "responses": {
            "200": {"description": "The statement: JSON, or CSV (a header, one line per row, a total line) with format=csv.",
                    "content": {"application/json": {"schema": {"type": "object", "required": ["from", "to", "by", "rows", "totals"]}},
                                "text/csv": {"schema": {"type": "string"}}}},
            "400": error("A field is wrong; the message names it and what it accepts."),
            "401": error("Missing or unrecognised credentials."),
            "403": error("The account may not use the API (a viewer)."),
            "405": error("Only GET and POST."),
            "503": error("InfluxDB (or the user database) is unreachable.")
        }
    });
    if post {
        op["requestBody"] = json!({"required": false, "content": {"application/json": {"schema": {
            "type": "object", "properties": fields, "additionalProperties": false}}}});
    }
    op
}

fn billing_fields() -> Value {
    json!({
        "from": {"type": "string", "example": "2026-10-01", "description": format!("YYYY-MM-DD (midnight UTC), YYYY-MM-DDTHH:MM (UTC) or RFC 3339, {}; included. With to, or neither: the current month so far.", crate::vocab::time::SPAN_TEXT)},
        "to": {"type": "string", "example": "2026-11-01", "description": format!("Excluded; at most {} days after from.", super::billing::MAX_WINDOW_DAYS)},
        "by": {"type": "string", "default": "namespace", "description": "namespace, workload, pod, node or label:<key>. By node (for users who see every namespace) rows add cpu/memory capacity, idle and overcommit; a node that ran no pod gets a row of its own."},
        "mode": {"type": "string", "example": "max", "description": "usage, request or max, or per resource (cpu=usage,memory=max). Default: the server's KUBEMETER_BILLING_MODE."},
        "format": {"type": "string", "enum": ["json", "csv"], "default": "json"}
    })
}

pub fn document() -> Value {
    let metrics: Vec<&str> = METRICS.iter().map(|m| m.name).collect();
    let aggs: Vec<&str> = AGG_MODES.iter().map(|(name, _)| *name).collect();
    let funcs: Vec<&str> = FUNCS.iter().map(|(name, _)| *name).collect();
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "kubemeter",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "What every Kubernetes workload uses, for billing. Compatible with the kube_monitoring API.",
        },
        "paths": {
            "/api/{metric}": {
                "post": {
                    "summary": "Raw points or aggregations of one metric",
                    "parameters": [
                        {"name": "metric", "in": "path", "required": true,
                         "description": "A catalogue metric; slashes stay as they are (cpu/usage_rate).",
                         "schema": {"type": "string", "enum": metrics}},
                        {"name": "X-USERNAME", "in": "header", "required": true, "schema": {"type": "string"}},
                        {"name": "X-PASSWORD", "in": "header", "required": true, "schema": {"type": "string", "format": "password"}}
                    ],
                    "requestBody": {"required": false, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Query"}}}},
                    "responses": {
                        "200": {"description": "Rows (raw points newest first, or one row per group), or {code: 200, message: \"Query returns empty set\"}.",
                                "content": {"application/json": {"schema": {"oneOf": [
                                    {"type": "array", "items": {"type": "object", "additionalProperties": true}},
                                    {"$ref": "#/components/schemas/Error"}]}}}},
                        "400": error("A field is wrong; the message names it and what it accepts."),
                        "401": error("Missing or unrecognised credentials."),
                        "403": error("The account may not read this (role or namespace scope)."),
                        "404": error("No metric, or not a catalogue metric."),
                        "405": error("Only POST."),
                        "503": error("InfluxDB (or the user database) is unreachable.")
                    }
                }
            },
            "/api/billing": {
                "get": billing_operation(false),
                "post": billing_operation(true)
            },
            "/healthz": {"get": {"summary": "The process runs", "responses": {"200": {"description": "ok"}}}},
            "/readyz": {"get": {"summary": "InfluxDB and SQL reachable", "responses": {"200": {"description": "ready"}, "503": {"description": "not ready"}}}},
            "/metrics": {"get": {"summary": "Prometheus metrics", "responses": {"200": {"description": "text/plain"}}}}
        },
        "components": {"schemas": {
            "Error": {"type": "object", "required": ["code", "message"],
                      "properties": {"code": {"type": "integer"}, "message": {"type": "string"}}},
            "Query": {"type": "object", "properties": {
                "namespace": {"type": "string", "default": "default", "pattern": "^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$"},
                "limit": {"oneOf": [{"type": "integer", "minimum": 1, "maximum": MAX_LIMIT},
                                    {"type": "string", "pattern": "^[0-9]+$"}],
                          "default": DEFAULT_LIMIT,
                          "description": format!("Raw points only, 1 to {MAX_LIMIT}, as a number or a string.")},
                "agg": {"type": "string", "enum": aggs,
                        "description": "Also by-label:<label key>. Any other value (or none): raw points."},
                "fn": {"type": "string", "enum": funcs, "default": "sum"},
                "step": {"type": "string", "example": "1h",
                         "description": format!("Bucket width (s, m, h, d), 1 s to {} d, for time series; at most {MAX_BUCKETS} buckets.", crate::vocab::time::MAX_DURATION_SECS / 86_400)},
                "timeBeginInterval": {"type": "string", "example": "2017-12-01", "description": format!("YYYY-MM-DD, YYYY-MM-DDTHH:MM (UTC) or RFC 3339, {}; inclusive. Default: an hour before the end.", crate::vocab::time::SPAN_TEXT)},
                "timeEndInterval": {"type": "string", "example": "2017-12-31T00:00:00Z", "description": format!("YYYY-MM-DD, YYYY-MM-DDTHH:MM (UTC) or RFC 3339, {}; exclusive. Default: now.", crate::vocab::time::SPAN_TEXT)}
            }}
        }}
    })
}

pub async fn openapi() -> HttpResponse {
    HttpResponse::Ok().json(document())
}
