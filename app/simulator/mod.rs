//! `kubemeter simulate`: a deterministic cluster the collector (or any Kubernetes client) can
//! read — list and watch of the API objects it needs, and each node's kubelet summary through
//! the API server's node proxy path — with nodes that can be made slow or failing on demand.

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
}

#[derive(Debug)]
struct Event {
    rv: u64,
    kind: Kind,
    line: Bytes,
}

struct State {
    model: Model,
    objects: Objects,
    versions: HashMap<(Kind, String, String), u64>,
    rv: u64,
    events: VecDeque<Arc<Event>>,
    modes: HashMap<String, NodeMode>,
}

struct Shared {
    state: RwLock<State>,
    events: broadcast::Sender<Arc<Event>>,
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
        let (tx, _) = broadcast::channel(4096);
        let shared = Arc::new(Shared {
            state: RwLock::new(State {
                model,
                objects: Objects::new(),
                versions: HashMap::new(),
                rv: 1,
                events: VecDeque::new(),
                modes: settings.node_modes.into_iter().collect(),
            }),
            events: tx,
        });
        shared.refresh(Utc::now());
        let data = web::Data::from(shared.clone());
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .route("/version", web::get().to(version))
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
        .listen(listener)?
        .run();
        Ok(Simulator {
            port,
            server,
            shared,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Makes a node's summary fail, slow or healthy again.
    pub fn set_node_mode(&self, node: &str, mode: NodeMode) {
        self.shared.write().modes.insert(node.to_string(), mode);
    }

    /// The model, to compute what the collector should have seen.
    pub fn model(&self) -> Model {
        self.shared.read().model.clone()
    }

    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let shared = self.shared.clone();
        let refresher = tokio::spawn(async move {
            let mut tick = tokio::time::interval(REFRESH);
            loop {
                tick.tick().await;
                shared.refresh(Utc::now());
            }
        });
        let result = self.server.await;
        refresher.abort();
        result
    }
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
    let state = shared.read();
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
    HttpResponse::Ok().json(json!({
        "apiVersion": kind.api_version(),
        "kind": kind.list_kind(),
        "metadata": {"resourceVersion": state.rv.to_string()},
        "items": items,
    }))
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

async fn summary(req: HttpRequest, shared: web::Data<Shared>) -> HttpResponse {
    let node = req.match_info().get("node").unwrap_or_default().to_string();
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
