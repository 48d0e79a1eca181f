//! `kubemeter simulate`: a deterministic cluster the collector (or any Kubernetes client) can
//! read — list and watch of the API objects it needs, and each node's kubelet summary through
//! the API server's node proxy path — with nodes that can be made slow or failing on demand.

pub mod history;
pub mod model;
pub mod objects;

use actix_web::web::{self, Bytes};
use actix_web::{App, HttpRequest, HttpResponse, HttpServer};
use chrono::{DateTime, Utc};
use futures::StreamExt;
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::{HashMap, VecDeque};
use std::net::{SocketAddr, TcpListener};
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::sync::broadcast;

use self::model::{Model, SimConfig};
use self::objects::{objects_at, Kind, Objects};

/// How often the object set is recomputed (pods come and go, restart counts change).
const REFRESH: Duration = Duration::from_secs(2);
/// Watch events kept for clients that resume from a resource version.
const EVENTS_KEPT: usize = 100_000;
/// Longest a watch request stays open.
const MAX_WATCH: Duration = Duration::from_secs(300);

/// What a node's summary endpoint does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeMode {
    Ok,
    Fail,
    Slow(Duration),
}

impl NodeMode {
    /// `ok`, `fail` or `slow=<seconds>s`.
    pub fn parse(s: &str) -> Option<Self> {
        match s.trim() {
            "ok" => Some(NodeMode::Ok),
            "fail" => Some(NodeMode::Fail),
            other => {
                let secs = other
                    .strip_prefix("slow=")?
                    .trim_end_matches('s')
                    .parse::<f64>()
                    .ok()?;
                Some(NodeMode::Slow(Duration::from_secs_f64(secs)))
            }
        }
    }
}

#[derive(Debug, Clone)]
pub struct SimSettings {
    pub config: SimConfig,
    pub listen: SocketAddr,
    pub node_modes: Vec<(String, NodeMode)>,
    /// Also serve each node's kubelet at `127.0.0.<n+1>:<port>/stats/summary` (0: a free
    /// port), for collectors that read kubelets directly.
    pub kubelet_port: Option<u16>,
    /// The bearer token the simulated kubelets require, if any.
    pub kubelet_token: Option<String>,
}

/// Node `n`'s simulated kubelet address: one loopback address per node (127.0.0.0/8 is all
/// loopback on Linux), so every kubelet can listen on the same port as real ones do.
pub fn kubelet_ip(n: usize) -> Option<std::net::Ipv4Addr> {
    (n < 254).then(|| std::net::Ipv4Addr::new(127, 0, 0, n as u8 + 1))
}

#[derive(Debug)]
struct Event {
    rv: u64,
    kind: Kind,
    line: Bytes,
}

/// A list being read page by page: the objects as they were at its first page.
struct Paged {
    items: Arc<Vec<Value>>,
    rv: u64,
    created: std::time::Instant,
}

struct State {
    model: Model,
    pages: HashMap<u64, Paged>,
    next_list: u64,
    objects: Objects,
    versions: HashMap<(Kind, String, String), u64>,
    rv: u64,
    events: VecDeque<Arc<Event>>,
    modes: HashMap<String, NodeMode>,
}

/// Every request the simulator served, as `METHOD /path?query`, once started: what a client
/// (the collector) asked of the cluster, for the RBAC tests.
#[derive(Clone, Default)]
pub struct RequestLog(Arc<std::sync::Mutex<Option<Vec<String>>>>);

impl RequestLog {
    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Vec<String>>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn record(&self, method: &str, uri: &str) {
        if let Some(requests) = self.lock().as_mut() {
            requests.push(format!("{method} {uri}"));
        }
    }

    /// Starts recording (nothing is kept before, so a long-running demo keeps nothing).
    pub fn start(&self) {
        self.lock().get_or_insert_with(Vec::new);
    }

    pub fn requests(&self) -> Vec<String> {
        self.lock().clone().unwrap_or_default()
    }
}

struct Shared {
    requests: RequestLog,
    state: RwLock<State>,
    events: broadcast::Sender<Arc<Event>>,
    kubelet_port: Option<u16>,
    kubelet_token: Option<String>,
}

impl Shared {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Recomputes the cluster at `t` and records what changed as watch events.
    fn refresh(&self, t: DateTime<Utc>) {
        let new = {
            let state = self.read();
            objects_at(&state.model, t)
        };
        let mut state = self.write();
        let mut changes = Vec::new();
        for (key, obj) in &new {
            match state.objects.get(key) {
                None => changes.push(("ADDED", key.clone(), obj.clone())),
                Some(old) if old != obj => changes.push(("MODIFIED", key.clone(), obj.clone())),
                _ => {}
            }
        }
        for (key, obj) in &state.objects {
            if !new.contains_key(key) {
                changes.push(("DELETED", key.clone(), obj.clone()));
            }
        }
        for (kind_of_change, key, mut obj) in changes {
            state.rv += 1;
            let rv = state.rv;
            set_rv(&mut obj, rv);
            if kind_of_change == "DELETED" {
                state.versions.remove(&key);
            } else {
                state.versions.insert(key.clone(), rv);
            }
            let line = format!("{}\n", json!({"type": kind_of_change, "object": obj}));
            let event = Arc::new(Event {
                rv,
                kind: key.0,
                line: Bytes::from(line),
            });
            state.events.push_back(event.clone());
            if state.events.len() > EVENTS_KEPT {
                state.events.pop_front();
            }
            let _ = self.events.send(event);
        }
        state.objects = new;
    }
}

fn set_rv(obj: &mut Value, rv: u64) {
    if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.insert("resourceVersion".into(), Value::String(rv.to_string()));
    }
}

pub struct Simulator {
    port: u16,
    kubelet_port: Option<u16>,
    server: actix_web::dev::Server,
    shared: Arc<Shared>,
}

impl Simulator {
    /// Binds the listener and computes the cluster as of now.
    pub fn build(settings: SimSettings) -> anyhow::Result<Self> {
        Self::build_at(settings, Utc::now())
    }

    pub fn build_at(settings: SimSettings, epoch: DateTime<Utc>) -> anyhow::Result<Self> {
        let listener = TcpListener::bind(settings.listen)
            .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", settings.listen))?;
        let port = listener.local_addr()?.port();
        let model = Model::new(settings.config, epoch);
        let kubelets = bind_kubelets(settings.config.nodes, settings.kubelet_port)?;
        let kubelet_port = kubelets
            .first()
            .and_then(|l| l.local_addr().ok())
            .map(|a| a.port());
        let (tx, _) = broadcast::channel(4096);
        let shared = Arc::new(Shared {
            requests: RequestLog::default(),
            state: RwLock::new(State {
                model,
                pages: HashMap::new(),
                next_list: 0,
                objects: Objects::new(),
                versions: HashMap::new(),
                rv: 1,
                events: VecDeque::new(),
                modes: settings.node_modes.into_iter().collect(),
            }),
            events: tx,
            kubelet_port,
            kubelet_token: settings.kubelet_token,
        });
        shared.refresh(Utc::now());
        let data = web::Data::from(shared.clone());
        let mut server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .wrap_fn(|req, srv| {
                    if let Some(shared) = req.app_data::<web::Data<Shared>>() {
                        shared
                            .requests
                            .record(req.method().as_str(), &req.uri().to_string());
                    }
                    actix_web::dev::Service::call(srv, req)
                })
                .route("/version", web::get().to(version))
                .route("/stats/summary", web::get().to(kubelet_summary))
                .route("/metrics", web::get().to(dcgm_exporter))
                .route(
                    "/api/v1/nodes/{node}/proxy/stats/summary",
                    web::get().to(summary),
                )
                .route("/simulator/nodes/{node}/mode", web::put().to(set_mode))
                .route("/api/v1/{plural}", web::get().to(core_resource))
                .route(
                    "/apis/{group}/{version}/{plural}",
                    web::get().to(group_resource),
                )
        })
        // Watches are long streams: waiting for them to end would hold a stop for minutes.
        .shutdown_timeout(1)
        .listen(listener)?;
        for kubelet in kubelets {
            server = server.listen(kubelet)?;
        }
        Ok(Simulator {
            port,
            kubelet_port,
            server: server.run(),
            shared,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The port every simulated kubelet listens on, if they do.
    pub fn kubelet_port(&self) -> Option<u16> {
        self.kubelet_port
    }

    /// Makes a node's summary fail, slow or healthy again.
    pub fn set_node_mode(&self, node: &str, mode: NodeMode) {
        self.shared.write().modes.insert(node.to_string(), mode);
    }

    /// Stops the simulator from elsewhere (`kubemeter demo` stops its parts itself).
    pub fn handle(&self) -> actix_web::dev::ServerHandle {
        self.server.handle()
    }

    /// The log of requests this simulator serves (call `start` on it to record).
    pub fn request_log(&self) -> RequestLog {
        self.shared.requests.clone()
    }

    /// The model, to compute what the collector should have seen.
    pub fn model(&self) -> Model {
        self.shared.read().model.clone()
    }

    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let shared = self.shared.clone();
        let refresher = tokio::spawn(async move {
            loop {
                let started = std::time::Instant::now();
                shared.refresh(Utc::now());
                // Big clusters take a while to recompute: spend at most a tenth of a core on it,
                // so the simulator does not starve the collector and InfluxDB it is serving.
                tokio::time::sleep(REFRESH.max(started.elapsed() * 10)).await;
            }
        });
        let result = self.server.await;
        refresher.abort();
        result
    }
}

fn bind_kubelets(nodes: usize, port: Option<u16>) -> anyhow::Result<Vec<TcpListener>> {
    let Some(mut port) = port else {
        return Ok(Vec::new());
    };
    let mut listeners = Vec::new();
    for ip in (0..nodes).map_while(kubelet_ip) {
        let listener = TcpListener::bind((ip, port)).map_err(|e| {
            anyhow::anyhow!("cannot listen on {ip}:{port} for a simulated kubelet: {e}")
        })?;
        port = listener.local_addr()?.port();
        listeners.push(listener);
    }
    Ok(listeners)
}

async fn version() -> HttpResponse {
    HttpResponse::Ok().json(json!({
        "major": "1", "minor": "34", "gitVersion": "v1.34.0-kubemeter-simulator", "platform": "linux/amd64"
    }))
}

#[derive(Deserialize)]
struct ListParams {
    watch: Option<String>,
    #[serde(rename = "resourceVersion")]
    resource_version: Option<String>,
    #[serde(rename = "timeoutSeconds")]
    timeout_seconds: Option<u64>,
    limit: Option<usize>,
    #[serde(rename = "continue")]
    continue_token: Option<String>,
}

async fn core_resource(
    path: web::Path<String>,
    params: web::Query<ListParams>,
    shared: web::Data<Shared>,
) -> HttpResponse {
    resource(
        Kind::from_path("/api/v1", &path),
        params.into_inner(),
        shared,
    )
}

async fn group_resource(
    path: web::Path<(String, String, String)>,
    params: web::Query<ListParams>,
    shared: web::Data<Shared>,
) -> HttpResponse {
    let (group, version, plural) = path.into_inner();
    resource(
        Kind::from_path(&format!("/apis/{group}/{version}"), &plural),
        params.into_inner(),
        shared,
    )
}

fn resource(kind: Option<Kind>, params: ListParams, shared: web::Data<Shared>) -> HttpResponse {
    let Some(kind) = kind else {
        return status(
            404,
            "NotFound",
            "the simulator does not serve this resource",
        );
    };
    if matches!(params.watch.as_deref(), Some("true" | "1")) {
        let from = params
            .resource_version
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let timeout = Duration::from_secs(params.timeout_seconds.unwrap_or(300)).min(MAX_WATCH);
        return watch(kind, from, timeout, shared.into_inner());
    }
    let limit = params.limit.filter(|l| *l > 0).unwrap_or(usize::MAX);
    let (items, rv, offset, list_id) = match params.continue_token.as_deref().and_then(parse_token)
    {
        Some((id, offset)) => {
            let state = shared.read();
            let Some(paged) = state.pages.get(&id) else {
                return status(
                    410,
                    "Expired",
                    "the list's continue token has expired; list again",
                );
            };
            (paged.items.clone(), paged.rv, offset, id)
        }
        None => {
            let mut state = shared.write();
            let items: Vec<Value> = state
                .objects
                .range((kind, String::new(), String::new())..)
                .take_while(|((k, _, _), _)| *k == kind)
                .map(|(key, obj)| {
                    let mut obj = obj.clone();
                    set_rv(
                        &mut obj,
                        state.versions.get(key).copied().unwrap_or(state.rv),
                    );
                    obj
                })
                .collect();
            let (rv, id) = (state.rv, state.next_list);
            state.next_list += 1;
            let items = Arc::new(items);
            // Pages are served from the snapshot of the first page, as the API server does.
            state
                .pages
                .retain(|_, p| p.created.elapsed() < Duration::from_secs(60));
            if items.len() > limit {
                let created = std::time::Instant::now();
                state.pages.insert(
                    id,
                    Paged {
                        items: items.clone(),
                        rv,
                        created,
                    },
                );
            }
            (items, rv, 0, id)
        }
    };
    let end = offset.saturating_add(limit).min(items.len());
    let page: Vec<&Value> = items.get(offset..end).unwrap_or_default().iter().collect();
    let mut metadata = json!({"resourceVersion": rv.to_string()});
    if end < items.len() {
        metadata["continue"] = Value::String(format!("{list_id}:{end}"));
    }
    HttpResponse::Ok().json(json!({
        "apiVersion": kind.api_version(),
        "kind": kind.list_kind(),
        "metadata": metadata,
        "items": page,
    }))
}

fn parse_token(token: &str) -> Option<(u64, usize)> {
    let (id, offset) = token.split_once(':')?;
    Some((id.parse().ok()?, offset.parse().ok()?))
}

/// Events after `from`, then new ones as they happen, until `timeout`.
fn watch(kind: Kind, from: u64, timeout: Duration, shared: Arc<Shared>) -> HttpResponse {
    let (backlog, rx, expired) = {
        let state = shared.read();
        let rx = shared.events.subscribe();
        let oldest = state.events.front().map_or(state.rv, |e| e.rv);
        let expired = from + 1 < oldest && state.events.len() >= EVENTS_KEPT;
        let backlog: Vec<Bytes> = state
            .events
            .iter()
            .filter(|e| e.rv > from && e.kind == kind)
            .map(|e| e.line.clone())
            .collect();
        (backlog, rx, expired)
    };
    if expired {
        let gone = json!({"type": "ERROR", "object": {"kind": "Status", "apiVersion": "v1", "metadata": {},
            "status": "Failure", "message": "too old resource version", "reason": "Expired", "code": 410}});
        return HttpResponse::Ok()
            .content_type("application/json")
            .body(format!("{gone}\n"));
    }
    let deadline = tokio::time::Instant::now() + timeout;
    let live = futures::stream::unfold(rx, move |mut rx| async move {
        loop {
            tokio::select! {
                event = rx.recv() => match event {
                    Ok(e) if e.kind == kind && e.rv > from => return Some((e.line.clone(), rx)),
                    Ok(_) => continue,
                    // Lagged or closed: end the watch; the client resumes from its last version.
                    Err(_) => return None,
                },
                _ = tokio::time::sleep_until(deadline) => return None,
            }
        }
    });
    let stream = futures::stream::iter(backlog)
        .chain(live)
        .map(Ok::<_, actix_web::Error>);
    HttpResponse::Ok()
        .content_type("application/json")
        .streaming(stream)
}

/// The node whose simulated kubelet address was dialled.
fn dialled_node(req: &HttpRequest, shared: &Shared) -> Option<usize> {
    let local = req.app_config().local_addr();
    match local.ip() {
        std::net::IpAddr::V4(ip) if Some(local.port()) == shared.kubelet_port => {
            (0..shared.read().model.config.nodes).find(|n| kubelet_ip(*n) == Some(ip))
        }
        _ => None,
    }
}

/// `GET /metrics` on a node's address: its DCGM exporter.
async fn dcgm_exporter(req: HttpRequest, shared: web::Data<Shared>) -> HttpResponse {
    let Some(node) = dialled_node(&req, &shared) else {
        return status(404, "NotFound", "not a simulated node address");
    };
    let text = shared.read().model.dcgm_metrics(node, Utc::now());
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(text)
}

/// `GET /stats/summary` on a simulated kubelet: the node is the one whose address was dialled.
async fn kubelet_summary(req: HttpRequest, shared: web::Data<Shared>) -> HttpResponse {
    let Some(node) = dialled_node(&req, &shared) else {
        return status(404, "NotFound", "not a simulated kubelet address");
    };
    if let Some(token) = &shared.kubelet_token {
        let sent = req
            .headers()
            .get("authorization")
            .and_then(|v| v.to_str().ok());
        if sent != Some(format!("Bearer {token}").as_str()) {
            return status(
                401,
                "Unauthorized",
                "the kubelet wants the service account's bearer token",
            );
        }
    }
    serve_summary(Model::node_name(node), shared).await
}

async fn summary(req: HttpRequest, shared: web::Data<Shared>) -> HttpResponse {
    let node = req.match_info().get("node").unwrap_or_default().to_string();
    serve_summary(node, shared).await
}

async fn serve_summary(node: String, shared: web::Data<Shared>) -> HttpResponse {
    let (mode, index, model) = {
        let state = shared.read();
        let index = state.model.node_names().iter().position(|n| *n == node);
        (
            state.modes.get(&node).copied().unwrap_or(NodeMode::Ok),
            index,
            state.model.clone(),
        )
    };
    let Some(index) = index else {
        return status(404, "NotFound", &format!("nodes \"{node}\" not found"));
    };
    match mode {
        NodeMode::Fail => {
            return status(500, "InternalError", "the kubelet is failing (simulated)")
        }
        NodeMode::Slow(d) => tokio::time::sleep(d).await,
        NodeMode::Ok => {}
    }
    HttpResponse::Ok().json(model.summary(index, Utc::now()))
}

async fn set_mode(req: HttpRequest, body: String, shared: web::Data<Shared>) -> HttpResponse {
    let node = req.match_info().get("node").unwrap_or_default().to_string();
    match NodeMode::parse(&body) {
        Some(mode) => {
            shared.write().modes.insert(node, mode);
            HttpResponse::NoContent().finish()
        }
        None => HttpResponse::BadRequest().body("send ok, fail or slow=<seconds>s\n"),
    }
}

fn status(code: u16, reason: &str, message: &str) -> HttpResponse {
    let body = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": message, "reason": reason, "code": code});
    HttpResponse::build(actix_web::http::StatusCode::from_u16(code).unwrap_or_default()).json(body)
}
