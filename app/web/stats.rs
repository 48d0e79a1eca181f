//! `/web/stats/index` (the cluster at a glance) and `/web/stats/<metric>[/<namespace>]` (a
//! metric's chart, its breakdown one level down, and its latest points).

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use chrono::Utc;
use serde::Deserialize;

use super::chart::{self, Bar, LineChart};
use super::format::{decimal, human, time};
use super::layout::{query_string, Layout, NavLink};
use super::range::{TimeRange, PRESETS};
use super::usage::{self, Drill, Selection, Usage};
use super::{html, session, WebError};
use crate::api::request::Namespace;
use crate::auth::sessions::Session;
use crate::catalogue::{self, name, Metric, PodLevel};
use crate::influx::ql::Select;
use crate::startup::AppState;

/// How many parts of the usage get their own line in a chart, and rows in the index's bars.
const CHART_PARTS: usize = 5;
const TOP: usize = 10;

#[derive(Deserialize, Default)]
pub struct PageQuery {
    range: Option<String>,
    from: Option<String>,
    to: Option<String>,
    workload: Option<String>,
    pod: Option<String>,
    container: Option<String>,
    /// The index's metric for the top namespaces and workloads.
    top: Option<String>,
}

/// The range picker: presets, a custom range, and the page's other parameters kept.
pub struct RangeForm {
    pub presets: Vec<(String, String, bool)>,
    pub from: String,
    pub to: String,
    pub hidden: Vec<(&'static str, String)>,
    pub custom: bool,
}

impl RangeForm {
    fn new(range: &TimeRange, hidden: Vec<(&'static str, String)>) -> RangeForm {
        let local = |t: chrono::DateTime<Utc>| t.format("%Y-%m-%dT%H:%M").to_string();
        RangeForm {
            presets: PRESETS
                .iter()
                .map(|(k, label, _)| (k.to_string(), label.to_string(), range.preset == Some(*k)))
                .collect(),
            from: local(range.from),
            to: local(range.to),
            hidden,
            custom: range.preset.is_none(),
        }
    }
}

fn time_range(q: &PageQuery) -> Result<TimeRange, WebError> {
    TimeRange::parse(
        q.range.as_deref(),
        q.from.as_deref(),
        q.to.as_deref(),
        Utc::now(),
    )
    .map_err(WebError::BadRequest)
}

async fn run(state: &AppState, s: &Select) -> Result<Vec<crate::influx::Series>, WebError> {
    Ok(state.influx.query(&s.to_influxql()).await?)
}

// ---------------------------------------------------------------- the index

pub struct Card {
    pub title: &'static str,
    pub href: String,
    pub average: String,
    pub peak: String,
    pub chart: Option<LineChart>,
}

#[derive(Template)]
#[template(path = "index.html")]
struct IndexPage {
    layout: Layout,
    range: RangeForm,
    range_label: String,
    cards: Vec<Card>,
    top_choices: Vec<NavLink>,
    top_metric: &'static str,
    top_namespaces: Vec<Bar>,
    top_workloads: Vec<Bar>,
}

const INDEX_METRICS: [&str; 3] = [name::CPU_USAGE_RATE, name::MEMORY_USAGE, name::GPU_USAGE];

pub async fn show_index(
    req: HttpRequest,
    query: web::Query<PageQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, WebError> {
    let session = session::signed_in(&req, &state).await?;
    let range = time_range(&query)?;
    let top_metric = INDEX_METRICS
        .into_iter()
        .find(|m| query.top.as_deref() == Some(*m))
        .unwrap_or(name::CPU_USAGE_RATE);
    let metrics: Vec<&'static Metric> = INDEX_METRICS
        .iter()
        .filter_map(|n| catalogue::find(n))
        .collect();
    let tags = ["namespace_name", "workload_kind", "workload_name"];
    let all = Selection::default();
    let statements = metrics
        .iter()
        .map(|m| {
            let level = usage::level(m, Drill::Cluster);
            usage::usage_statement(m, &all, &range, level, &tags, &session.principal.scope)
        })
        .collect::<Result<Vec<_>, _>>()?;
    let reads = futures::future::try_join_all(statements.iter().map(|s| run(&state, s)));
    let results = state
        .heavy
        .run(&req, &session.principal.username, reads)
        .await??;

    let keep = range.query_pairs();
    let mut cards = Vec::new();
    let (mut top_namespaces, mut top_workloads) = (Vec::new(), Vec::new());
    for (metric, series) in metrics.iter().zip(&results) {
        let by_ns = usage::fold(series, &["namespace_name"]);
        cards.push(Card {
            title: metric.name,
            href: format!("/web/stats/{}{}", metric.name, query_string(&keep)),
            average: human(by_ns.average, metric.unit),
            peak: human(by_ns.peak, metric.unit),
            chart: (!by_ns.total.is_empty()).then(|| {
                chart::line_chart(
                    &[("total".into(), by_ns.total.clone())],
                    range.from,
                    range.to,
                    range.step_seconds(),
                    metric.unit,
                )
            }),
        });
        if metric.name == top_metric {
            top_namespaces = top_bars(metric, &by_ns, &keep, |key| {
                (
                    key[0].clone(),
                    format!("/web/stats/{}/{}", metric.name, key[0]),
                    vec![],
                )
            });
            let by_workload = usage::fold(series, &tags);
            top_workloads = top_bars(metric, &by_workload, &keep, |key| {
                (
                    format!("{} / {}/{}", key[0], key[1], key[2]),
                    format!("/web/stats/{}/{}", metric.name, key[0]),
                    vec![("workload", format!("{}/{}", key[1], key[2]))],
                )
            });
        }
    }
    let top_choices = INDEX_METRICS
        .iter()
        .map(|m| {
            let mut pairs = keep.clone();
            pairs.push(("top", m.to_string()));
            NavLink {
                label: m.to_string(),
                href: format!("/web/stats/index{}", query_string(&pairs)),
                active: *m == top_metric,
            }
        })
        .collect();
    let page = IndexPage {
        layout: Layout::new("Cluster at a glance".into(), &session, None, None),
        range: RangeForm::new(&range, vec![("top", top_metric.to_string())]),
        range_label: range_label(&range),
        cards,
        top_choices,
        top_metric,
        top_namespaces,
        top_workloads,
    };
    Ok(html(StatusCode::OK, page.render()?))
}

fn top_bars(
    metric: &Metric,
    usage: &Usage,
    keep: &[(&'static str, String)],
    describe: impl Fn(&[String]) -> (String, String, Vec<(&'static str, String)>),
) -> Vec<Bar> {
    let items = usage
        .parts
        .iter()
        .filter(|p| p.key.iter().all(|k| !k.is_empty()))
        .take(TOP)
        .map(|p| {
            let (label, path, mut pairs) = describe(&p.key);
            pairs.extend(keep.iter().cloned());
            (label, format!("{path}{}", query_string(&pairs)), p.average)
        })
        .collect();
    chart::bars(items, metric.unit)
}

fn range_label(range: &TimeRange) -> String {
    match range.preset.and_then(|p| PRESETS.iter().find(|x| x.0 == p)) {
        Some((_, label, _)) => label.to_string(),
        None => format!("{} to {} UTC", time(range.from), time(range.to)),
    }
}

// ---------------------------------------------------------------- a metric's page

pub struct BreakdownRow {
    pub label: String,
    pub href: String,
    pub average: String,
    pub peak: String,
    pub share: String,
    pub color: &'static str,
}

pub struct PointRow {
    pub time: String,
    pub pod: String,
    pub namespace: String,
    pub container: String,
    pub node: String,
    pub value: String,
    pub readable: String,
}

#[derive(Template)]
#[template(path = "stats.html")]
struct StatsPage {
    layout: Layout,
    metric: &'static Metric,
    crumbs: Vec<NavLink>,
    range: RangeForm,
    range_label: String,
    chart: Option<LineChart>,
    average: String,
    peak: String,
    breakdown_title: &'static str,
    breakdown: Vec<BreakdownRow>,
    points: Vec<PointRow>,
}

/// `cpu/usage_rate`, `cpu/usage_rate/cluster-3`, `uptime/default`: the metric, and the
/// namespace when the path has one more segment than a metric's name.
fn resolve(rest: &str) -> Result<(&'static Metric, Option<Namespace>), WebError> {
    let rest = rest.trim_end_matches('/');
    if let Some(m) = catalogue::find(rest) {
        return Ok((m, None));
    }
    let unknown = || {
        WebError::NotFound(format!(
            "There is no metric {rest:?}. The sidebar lists every metric; a namespace goes \
             after the metric, as in /web/stats/cpu/usage_rate/default."
        ))
    };
    let (metric, ns) = rest.rsplit_once('/').ok_or_else(unknown)?;
    let metric = catalogue::find(metric).ok_or_else(unknown)?;
    let ns = Namespace::parse(ns).ok_or_else(|| {
        WebError::BadRequest(format!(
            "{ns:?} is not a namespace name (lower-case letters, digits and '-')"
        ))
    })?;
    if metric.pod_level == PodLevel::NodeOnly {
        return Err(WebError::BadRequest(format!(
            "{} is a node metric; it has no namespaces. See /web/stats/{}.",
            metric.name, metric.name
        )));
    }
    Ok((metric, Some(ns)))
}

pub async fn show_metric(
    req: HttpRequest,
    path: web::Path<String>,
    query: web::Query<PageQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, WebError> {
    let session = session::signed_in(&req, &state).await?;
    let (metric, namespace) = resolve(&path)?;
    let range = time_range(&query)?;
    let sel = Selection::parse(
        namespace,
        query.workload.as_deref(),
        query.pod.as_deref(),
        query.container.as_deref(),
    )
    .map_err(WebError::BadRequest)?;
    let user = session.principal.username.clone();
    let page = state
        .heavy
        .run(
            &req,
            &user,
            stats_page(&state, &session, metric, sel, range),
        )
        .await??;
    Ok(html(StatusCode::OK, page.render()?))
}

async fn stats_page(
    state: &AppState,
    session: &Session,
    metric: &'static Metric,
    sel: Selection,
    range: TimeRange,
) -> Result<StatsPage, WebError> {
    let scope = &session.principal.scope;
    let drill = sel.drill();
    let level = usage::level(metric, drill);
    let tags = usage::breakdown_tags(metric, drill);
    let chart_q = usage::usage_statement(metric, &sel, &range, level, tags, scope)?;
    let table_q = usage::table_statement(metric, &sel, &range, level, scope)?;
    let (series, rows) =
        futures::future::try_join(run(state, &chart_q), run(state, &table_q)).await?;
    let usage = usage::fold(&series, tags);

    let keep = range.query_pairs();
    let chart = (!usage.total.is_empty()).then(|| {
        let mut lines = vec![("total".to_string(), usage.total.clone())];
        if usage.parts.len() > 1 {
            lines.extend(
                usage
                    .parts
                    .iter()
                    .take(CHART_PARTS)
                    .map(|p| (label(&p.key), p.points.clone())),
            );
        }
        chart::line_chart(
            &lines,
            range.from,
            range.to,
            range.step_seconds(),
            metric.unit,
        )
    });
    let breakdown = usage
        .parts
        .iter()
        .enumerate()
        .filter(|_| !tags.is_empty())
        .map(|(i, p)| BreakdownRow {
            label: label(&p.key),
            href: drill_href(metric, &sel, &p.key, &keep),
            average: human(p.average, metric.unit),
            peak: human(p.peak, metric.unit),
            share: if usage.average > 0.0 {
                format!("{} %", decimal(p.average / usage.average * 100.0))
            } else {
                "–".into()
            },
            color: if i < CHART_PARTS && usage.parts.len() > 1 {
                chart::COLORS[i + 1]
            } else {
                ""
            },
        })
        .collect();
    let points = usage::points(&rows)
        .into_iter()
        .map(|p| PointRow {
            time: time(p.time),
            pod: p.pod,
            namespace: p.namespace,
            container: p.container,
            node: p.node,
            value: exact(p.value),
            readable: human(p.value, metric.unit),
        })
        .collect();
    let ns = sel.namespace.as_ref().map(|n| n.as_str().to_string());
    let title = match &ns {
        Some(ns) => format!("{} in {ns}", metric.name),
        None => metric.name.to_string(),
    };
    Ok(StatsPage {
        layout: Layout::new(title, session, Some(metric.name), ns.as_deref()),
        metric,
        crumbs: crumbs(metric, &sel, &keep),
        range: RangeForm::new(&range, drill_pairs(&sel)),
        range_label: range_label(&range),
        chart,
        average: human(usage.average, metric.unit),
        peak: human(usage.peak, metric.unit),
        breakdown_title: breakdown_title(metric, drill),
        breakdown,
        points,
    })
}

fn label(key: &[String]) -> String {
    let parts: Vec<&str> = key
        .iter()
        .map(String::as_str)
        .filter(|k| !k.is_empty())
        .collect();
    if parts.is_empty() {
        "(none)".into()
    } else {
        parts.join("/")
    }
}

fn exact(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

fn breakdown_title(metric: &Metric, drill: Drill) -> &'static str {
    if metric.pod_level == PodLevel::NodeOnly {
        return "Nodes";
    }
    match drill {
        Drill::Cluster => "Namespaces",
        Drill::Namespace => "Workloads",
        Drill::Workload => "Pods",
        Drill::Pod => "Containers",
        Drill::Container => "",
    }
}

/// The selection's own query parameters (the namespace is in the path).
fn drill_pairs(sel: &Selection) -> Vec<(&'static str, String)> {
    let mut pairs = Vec::new();
    if let Some(w) = &sel.workload {
        pairs.push(("workload", format!("{}/{}", w.kind, w.name)));
    }
    if let Some(p) = &sel.pod {
        pairs.push(("pod", p.clone()));
    }
    if let Some(c) = &sel.container {
        pairs.push(("container", c.clone()));
    }
    pairs
}

/// The page one level down for a breakdown row.
fn drill_href(
    metric: &Metric,
    sel: &Selection,
    key: &[String],
    keep: &[(&'static str, String)],
) -> String {
    let mut pairs = drill_pairs(sel);
    let ns = match (&sel.namespace, sel.drill()) {
        (None, _) if metric.pod_level == PodLevel::NodeOnly => return String::new(),
        (None, _) => key.first().cloned().unwrap_or_default(),
        (Some(ns), Drill::Namespace) => {
            pairs.push(("workload", key.join("/")));
            ns.as_str().to_string()
        }
        (Some(ns), Drill::Workload) => {
            pairs.push(("pod", key.join("")));
            ns.as_str().to_string()
        }
        (Some(ns), Drill::Pod) => {
            pairs.push(("container", key.join("")));
            ns.as_str().to_string()
        }
        (Some(_), _) => return String::new(),
    };
    pairs.extend(keep.iter().cloned());
    format!("/web/stats/{}/{ns}{}", metric.name, query_string(&pairs))
}

/// All namespaces › namespace › workload › pod › container, each a link.
fn crumbs(metric: &Metric, sel: &Selection, keep: &[(&'static str, String)]) -> Vec<NavLink> {
    let base = format!("/web/stats/{}", metric.name);
    let mut out = vec![NavLink {
        label: "all namespaces".into(),
        href: format!("{base}{}", query_string(keep)),
        active: false,
    }];
    let Some(ns) = &sel.namespace else { return out };
    let mut pairs: Vec<(&'static str, String)> = Vec::new();
    let mut push = |label: String, pairs: &[(&'static str, String)]| {
        let mut all = pairs.to_vec();
        all.extend(keep.iter().cloned());
        out.push(NavLink {
            label,
            href: format!("{base}/{}{}", ns.as_str(), query_string(&all)),
            active: false,
        });
    };
    push(ns.as_str().to_string(), &pairs);
    if let Some(w) = &sel.workload {
        pairs.push(("workload", format!("{}/{}", w.kind, w.name)));
        push(format!("{}/{}", w.kind, w.name), &pairs);
    }
    if let Some(p) = &sel.pod {
        pairs.push(("pod", p.clone()));
        push(p.clone(), &pairs);
    }
    if let Some(c) = &sel.container {
        pairs.push(("container", c.clone()));
        push(c.clone(), &pairs);
    }
    if let Some(last) = out.last_mut() {
        last.active = true;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_name_a_metric_and_maybe_a_namespace() {
        let (m, ns) = resolve("cpu/usage_rate/cluster-3").unwrap();
        assert_eq!(
            (m.name, ns.unwrap().as_str()),
            ("cpu/usage_rate", "cluster-3")
        );
        let (m, ns) = resolve("uptime").unwrap();
        assert_eq!((m.name, ns), ("uptime", None));
        let (m, ns) = resolve("nvidia.com/gpu/request/ml").unwrap();
        assert_eq!(
            (m.name, ns.unwrap().as_str()),
            ("nvidia.com/gpu/request", "ml")
        );
        assert!(matches!(resolve("cpu/nothing"), Err(WebError::NotFound(_))));
        assert!(matches!(
            resolve("cpu/usage_rate/Bad_NS"),
            Err(WebError::BadRequest(_))
        ));
        assert!(matches!(
            resolve("cpu/node_capacity/default"),
            Err(WebError::BadRequest(_))
        ));
    }

    #[test]
    fn a_namespace_row_drills_into_its_workload() {
        let cpu = catalogue::find("cpu/usage_rate").unwrap();
        let sel = Selection::parse(Namespace::parse("shop"), None, None, None).unwrap();
        let key = vec!["Deployment".to_string(), "web".to_string()];
        assert_eq!(
            drill_href(cpu, &sel, &key, &[("range", "6h".into())]),
            "/web/stats/cpu/usage_rate/shop?workload=Deployment/web&range=6h"
        );
        let crumbs = crumbs(
            cpu,
            &Selection::parse(
                Namespace::parse("shop"),
                Some("Deployment/web"),
                Some("web-1"),
                None,
            )
            .unwrap(),
            &[],
        );
        let labels: Vec<&str> = crumbs.iter().map(|c| c.label.as_str()).collect();
        assert_eq!(
            labels,
            ["all namespaces", "shop", "Deployment/web", "web-1"]
        );
        assert_eq!(
            crumbs[3].href,
            "/web/stats/cpu/usage_rate/shop?workload=Deployment/web&pod=web-1"
        );
    }
}
