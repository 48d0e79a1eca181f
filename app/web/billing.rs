//! `/web/billing`: the billing statement as a table and a chart, by any grouping, and
//! `/web/billing.csv`: the same statement as the CSV download. Both parse the API's
//! parameters ([`StatementParams`]) and ask the same engine, so the page, the download, the
//! API and `kubemeter export` agree digit for digit.

use std::collections::BTreeMap;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse};
use askama::Template;
use chrono::{DateTime, SecondsFormat, Timelike, Utc};

use super::chart::Bar;
use super::layout::{query_string, Layout};
use super::{html, session, WebError};
use crate::api::billing::{query_fields, statement_response, Format, StatementParams};
use crate::billing::render::{table, Table};
use crate::billing::Statement;
use crate::metering::Quiet;
use crate::startup::AppState;

/// The layout's name for this page (not a metric).
pub const BILLING: &str = "billing";
const TOP: usize = 10;

/// Columns shown on the page, with their headings; the CSV has them all. Idle capacity is
/// only in statements by node; GPU efficiency only where GPUs were allocated and measured,
/// CPU's source only when some of it came from rates (see [`shown`]).
const SHOWN: [(&str, &str); 13] = [
    ("cpu_billed_core_hours", "CPU (core-hours)"),
    ("cpu_source", "CPU from"),
    ("memory_billed_gib_hours", "Memory (GiB-hours)"),
    ("gpu_hours", "GPU (hours)"),
    ("gpu_utilization", "GPU utilisation (used ÷ allocated)"),
    ("gpu_memory_utilization", "GPU memory (used ÷ total)"),
    ("network_in_gib", "Network in (GiB)"),
    ("network_out_gib", "Network out (GiB)"),
    (
        "ephemeral_storage_billed_gib_hours",
        "Ephemeral storage (GiB-hours)",
    ),
    ("cpu_idle_core_hours", "Idle CPU (core-hours)"),
    ("memory_idle_gib_hours", "Idle memory (GiB-hours)"),
    ("coverage", "Coverage"),
    ("cost_total", "Cost"),
];

pub struct Form {
    pub from: String,
    pub to: String,
    pub by: String,
    pub mode: String,
}

#[derive(Template)]
#[template(path = "billing.html")]
struct BillingPage {
    layout: Layout,
    form: Form,
    groupings: [&'static str; 4],
    modes: [(&'static str, &'static str); 4],
    summary: String,
    /// "Figures complete up to …" when the newest minutes are not metered yet.
    freshness: String,
    csv_href: String,
    headings: Vec<String>,
    rows: Vec<Vec<String>>,
    totals: Vec<String>,
    key_columns: usize,
    chart_title: String,
    bars: Vec<Bar>,
}

fn params(req: &HttpRequest, format: Format) -> Result<StatementParams, WebError> {
    let mut fields = query_fields(req.query_string())?;
    fields.insert("format".into(), format.extension().into());
    Ok(StatementParams::parse(&fields, Utc::now())?)
}

async fn statement(
    req: &HttpRequest,
    state: &AppState,
    format: Format,
) -> Result<(StatementParams, Statement, crate::auth::sessions::Session), WebError> {
    let session = session::signed_in(req, state).await?;
    let p = params(req, format)?;
    let q = p.query(state.billing.modes, session.principal.scope.clone());
    let user = &session.principal.username;
    let st = state
        .heavy
        .run(req, user, state.metering.statement(&q, &Quiet))
        .await??;
    Ok((p, st, session))
}

pub async fn download_csv(
    req: HttpRequest,
    state: actix_web::web::Data<AppState>,
) -> Result<HttpResponse, WebError> {
    let (p, st, _) = statement(&req, &state, Format::Csv).await?;
    Ok(statement_response(&p, &st))
}

pub async fn show_billing(
    req: HttpRequest,
    state: actix_web::web::Data<AppState>,
) -> Result<HttpResponse, WebError> {
    let (p, st, session) = statement(&req, &state, Format::Json).await?;
    let t = table(&st);
    let raw = query_fields(req.query_string())?;
    let page = page(
        &p,
        &st,
        &t,
        &raw,
        Layout::new("Billing".into(), &session, Some(BILLING), None),
    );
    Ok(html(StatusCode::OK, page.render()?))
}

fn page(
    p: &StatementParams,
    st: &Statement,
    t: &Table,
    raw: &BTreeMap<String, String>,
    layout: Layout,
) -> BillingPage {
    let keys = st.by.key_columns();
    let split = st.rows.iter().any(|r| r.window != st.window);
    // Rows split at price changes show their own period.
    let mut cols: Vec<(usize, String)> = Vec::new();
    if split {
        cols.push((1, "From".into()));
        cols.push((2, "To".into()));
    }
    cols.extend(keys.iter().enumerate().map(|(i, k)| (3 + i, heading(k))));
    let key_columns = cols.len();
    for (name, label) in SHOWN {
        if !shown(name, st, t) {
            continue;
        }
        if let Some(i) = t.column(name) {
            let label = match (name, &st.currency) {
                ("cost_total", Some(c)) => format!("{label} ({c})"),
                _ => label.to_string(),
            };
            cols.push((i, label));
        }
    }
    let pick = |line: &Vec<String>| cols.iter().map(|(i, _)| line[*i].clone()).collect();
    let (body, total) = t.lines.split_at(t.lines.len().saturating_sub(1));
    // The download names the page's window exactly, so it is the same statement even when
    // the default window ("this month so far") has moved on by the time of the click.
    let mut keep = vec![
        ("from", bound(p.window.from)),
        ("to", bound(p.window.to)),
        ("by", st.by.name()),
    ];
    if let Some(m) = raw.get("mode").filter(|m| !m.trim().is_empty()) {
        keep.push(("mode", m.clone()));
    }
    let (chart_title, bars) = chart_of(st, t);
    BillingPage {
        layout,
        form: Form {
            from: bound(p.window.from),
            to: bound(p.window.to),
            by: st.by.name(),
            mode: raw.get("mode").cloned().unwrap_or_default(),
        },
        groupings: ["namespace", "workload", "pod", "node"],
        modes: [
            ("", "configured default"),
            ("usage", "usage"),
            ("request", "request"),
            ("max", "max(request, usage)"),
        ],
        summary: summary(st, t),
        freshness: freshness(st),
        csv_href: format!("/web/billing.csv{}", query_string(&keep)),
        headings: cols.iter().map(|(_, h)| h.clone()).collect(),
        rows: body.iter().map(pick).collect(),
        totals: total.first().map(pick).unwrap_or_default(),
        key_columns,
        chart_title,
        bars,
    }
}

/// Up to when the figures are complete, when that is before the period's end.
fn freshness(st: &Statement) -> String {
    st.complete_to.map_or_else(String::new, |t| {
        let at = chrono::DateTime::from_timestamp_nanos(t).format("%Y-%m-%d %H:%M:%S UTC");
        format!(
            "Figures are complete up to {at}: what came after is not metered yet (the \
             newest minutes are metered within two minutes) or was not collected."
        )
    })
}

/// Whether column `name` says anything for this statement: cost only with a price book, GPU
/// efficiency only when measured against an allocation, where CPU came from only when not
/// all from counters (the usual case, which needs no column).
fn shown(name: &str, st: &Statement, t: &Table) -> bool {
    let total = |name: &str| {
        t.column(name)
            .and_then(|i| t.lines.last().map(|l| l[i].as_str()))
            .unwrap_or_default()
    };
    match name {
        "cost_total" => st.currency.is_some(),
        "gpu_utilization" | "gpu_memory_utilization" => !total(name).is_empty(),
        "cpu_source" => !matches!(total(name), "" | "counter"),
        _ => true,
    }
}

fn heading(key: &str) -> String {
    let mut h = key.replace('_', " ");
    if let Some(first) = h.get_mut(0..1) {
        first.make_ascii_uppercase();
    }
    h
}

/// `2026-10-01` for a midnight, the full RFC 3339 time otherwise: what the form sends back.
fn bound(t: i64) -> String {
    let t: DateTime<Utc> = DateTime::from_timestamp_nanos(t);
    if t.num_seconds_from_midnight() == 0 && t.nanosecond() == 0 {
        t.format("%Y-%m-%d").to_string()
    } else {
        t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
    }
}

fn summary(st: &Statement, t: &Table) -> String {
    let total = t.lines.last();
    let cell = |name: &str| {
        t.column(name)
            .and_then(|i| total.map(|l| l[i].clone()))
            .unwrap_or_default()
    };
    let modes = format!(
        "CPU {}, memory {}, ephemeral storage {}",
        st.modes.cpu.as_str(),
        st.modes.memory.as_str(),
        st.modes.ephemeral.as_str()
    );
    let cost = match &st.currency {
        Some(c) => format!("; total cost {} {c}", cell("cost_total")),
        None => "; no price book is configured (KUBEMETER_PRICES), so quantities only".into(),
    };
    format!(
        "{} rows, billed as {modes}; the cluster was observed {} of the period{cost}.",
        st.rows.len(),
        percent(&cell("coverage")),
    )
}

fn percent(fraction: &str) -> String {
    fraction
        .parse::<f64>()
        .map(|f| format!("{:.1} %", f * 100.0))
        .unwrap_or_default()
}

/// The largest rows by cost when priced, else by billed CPU; values as in the table.
fn chart_of(st: &Statement, t: &Table) -> (String, Vec<Bar>) {
    let (column, title) = if st.currency.is_some() {
        ("cost_total", "Largest rows by cost")
    } else {
        (
            "cpu_billed_core_hours",
            "Largest rows by billed CPU (core-hours)",
        )
    };
    let Some(i) = t.column(column) else {
        return (title.into(), Vec::new());
    };
    let keys = st.by.key_columns().len();
    let mut items: Vec<(String, String, f64)> = t.lines[..t.lines.len().saturating_sub(1)]
        .iter()
        .map(|l| {
            (
                l[3..3 + keys].join(" / "),
                l[i].clone(),
                l[i].parse().unwrap_or(0.0),
            )
        })
        .filter(|(_, _, v)| *v > 0.0)
        .collect();
    items.sort_by(|a, b| b.2.total_cmp(&a.2).then_with(|| a.0.cmp(&b.0)));
    items.truncate(TOP);
    let max = items.first().map_or(0.0, |i| i.2);
    let bars = items
        .into_iter()
        .map(|(label, value, v)| Bar {
            label,
            href: String::new(),
            value,
            percent: (v / max * 100.0).max(0.5),
        })
        .collect();
    (title.into(), bars)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::billing::quantities::{GPU_NS_PER_GPU_HOUR, PERCENT_NS_PER_GPU_HOUR};
    use crate::billing::{build_statement, CpuSource, GroupBy, Modes, PodUsage, Quantities};
    use crate::billing::{Usage, Window};

    /// A one-pod statement by namespace with `q`, its CPU from `source`.
    fn statement(q: Quantities, source: CpuSource) -> Statement {
        let w = Window::new(0, 3_600_000_000_000).unwrap();
        let pod = PodUsage {
            identity: Default::default(),
            usage: Usage {
                quantities: q,
                cpu_source: source,
                ..Default::default()
            },
        };
        build_statement(w, &GroupBy::Namespace, Modes::default(), None, |_| {
            vec![pod.clone()]
        })
    }

    fn shown_columns(st: &Statement) -> Vec<&'static str> {
        let t = table(st);
        SHOWN
            .iter()
            .map(|(name, _)| *name)
            .filter(|name| shown(name, st, &t) && t.column(name).is_some())
            .collect()
    }

    #[test]
    fn gpu_efficiency_and_the_cpu_source_are_shown_only_when_they_say_something() {
        let counter = CpuSource {
            counter: true,
            rate: false,
        };
        let plain = statement(Quantities::default(), counter);
        let columns = shown_columns(&plain);
        for hidden in [
            "cpu_source",
            "gpu_utilization",
            "gpu_memory_utilization",
            "cost_total",
        ] {
            assert!(!columns.contains(&hidden), "{hidden} in {columns:?}");
        }
        // A GPU allocated for an hour, 40 % busy, 4 of 16 GiB-hours of its memory used; CPU
        // from a Heapster rate.
        let gpu = Quantities {
            gpu: GPU_NS_PER_GPU_HOUR,
            gpu_util: PERCENT_NS_PER_GPU_HOUR * 2 / 5,
            gpu_memory_used: 4,
            gpu_memory_total: 16,
            ..Default::default()
        };
        let rate = CpuSource {
            counter: false,
            rate: true,
        };
        let st = statement(gpu, rate);
        let columns = shown_columns(&st);
        for visible in ["cpu_source", "gpu_utilization", "gpu_memory_utilization"] {
            assert!(columns.contains(&visible), "{visible} not in {columns:?}");
        }
        let t = table(&st);
        let total = t.lines.last().unwrap();
        let cell = |name| total[t.column(name).unwrap()].as_str();
        assert_eq!(cell("gpu_utilization"), "0.400000");
        assert_eq!(cell("gpu_memory_utilization"), "0.250000");
        assert_eq!(cell("cpu_source"), "rate");
    }
}
