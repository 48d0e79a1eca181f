//! The cluster as the API server describes it: reflector stores (watch + list with backoff)
//! of nodes, namespaces, pods, ReplicaSets and Jobs, trimmed to what metering needs, and the
//! kubelet summaries read through the API server's node proxy.

use futures::StreamExt;
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Container, Namespace, Node, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Api, Client, Resource};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use super::owners::{resolve, Owner, OwnerGraph, OwnerRef, Parent, PodMeta};
use super::points::{Cluster, ContainerSpec, NodeInfo, PodInfo};
use super::quantity;
use super::summary::Summary;

const MIRROR_ANNOTATION: &str = "kubernetes.io/config.mirror";

#[derive(Debug, thiserror::Error)]
pub enum ScrapeError {
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    #[error("the API server's node proxy failed")]
    Request(#[source] kube::Error),
    #[error("the summary is not valid JSON")]
    Decode(#[source] serde_json::Error),
    #[error("the node has no address in its status")]
    NoAddress,
    #[error("the kubelet could not be reached")]
    Kubelet(#[source] reqwest::Error),
    #[error("the kubelet answered HTTP {0}")]
    KubeletStatus(u16),
    #[error("cannot read the service account token {0}")]
    Token(String, #[source] std::io::Error),
}

/// A node to scrape: its name and the address its kubelet answers on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeTarget {
    pub name: String,
    pub address: Option<String>,
}

/// Reading kubelets directly (`--kubelet-direct`) rather than through the API server.
#[derive(Debug, Clone)]
pub struct KubeletDirect {
    pub scheme: String,
    pub port: u16,
    /// Re-read on every request: projected service-account tokens rotate.
    pub token_file: Option<std::path::PathBuf>,
    pub ca_file: Option<std::path::PathBuf>,
    pub insecure_tls: bool,
}

/// Where summaries come from.
#[derive(Clone)]
pub enum SummarySource {
    ApiServer(Client),
    Kubelet {
        http: reqwest::Client,
        direct: KubeletDirect,
    },
}

impl SummarySource {
    pub fn new(client: Client, direct: Option<&KubeletDirect>) -> anyhow::Result<Self> {
        let Some(direct) = direct else {
            return Ok(SummarySource::ApiServer(client));
        };
        let mut http = reqwest::Client::builder().danger_accept_invalid_certs(direct.insecure_tls);
        if let Some(ca) = &direct.ca_file {
            let pem = std::fs::read(ca).map_err(|e| {
                anyhow::anyhow!("cannot read the kubelet CA file {}: {e}", ca.display())
            })?;
            let cert = reqwest::Certificate::from_pem(&pem).map_err(|e| {
                anyhow::anyhow!("the kubelet CA file {} is not PEM: {e}", ca.display())
            })?;
            http = http.add_root_certificate(cert);
        }
        Ok(SummarySource::Kubelet {
            http: http.build()?,
            direct: direct.clone(),
        })
    }

    pub async fn fetch(
        &self,
        node: &NodeTarget,
        timeout: Duration,
    ) -> Result<Summary, ScrapeError> {
        let text = tokio::time::timeout(timeout, self.fetch_text(node))
            .await
            .map_err(|_| ScrapeError::Timeout(timeout))??;
        serde_json::from_str(&text).map_err(ScrapeError::Decode)
    }

    async fn fetch_text(&self, node: &NodeTarget) -> Result<String, ScrapeError> {
        match self {
            SummarySource::ApiServer(client) => {
                let path = format!("/api/v1/nodes/{}/proxy/stats/summary", node.name);
                let request = http::Request::get(path)
                    .body(Vec::new())
                    .map_err(|e| ScrapeError::Request(kube::Error::HttpError(e)))?;
                client
                    .request_text(request)
                    .await
                    .map_err(ScrapeError::Request)
            }
            SummarySource::Kubelet { http, direct } => {
                let address = node.address.as_deref().ok_or(ScrapeError::NoAddress)?;
                let host = if address.contains(':') {
                    format!("[{address}]")
                } else {
                    address.to_string()
                };
                let url = format!("{}://{host}:{}/stats/summary", direct.scheme, direct.port);
                let mut req = http.get(url);
                if let Some(file) = &direct.token_file {
                    let token = std::fs::read_to_string(file)
                        .map_err(|e| ScrapeError::Token(file.display().to_string(), e))?;
                    req = req.bearer_auth(token.trim());
                }
                let resp = req.send().await.map_err(ScrapeError::Kubelet)?;
                if !resp.status().is_success() {
                    return Err(ScrapeError::KubeletStatus(resp.status().as_u16()));
                }
                resp.text().await.map_err(ScrapeError::Kubelet)
            }
        }
    }
}

/// Reflector stores of what the collector reads from the API server.
#[derive(Clone)]
pub struct KubeView {
    pub client: Client,
    nodes: Store<Node>,
    namespaces: Store<Namespace>,
    pods: PodStore,
    replicasets: Store<ReplicaSet>,
    jobs: Store<Job>,
}

/// A pod trimmed to what metering needs: a few hundred bytes instead of the API object's
/// several kilobytes, which is what keeps the collector small on big clusters.
#[derive(Debug, Clone)]
pub struct PodRecord {
    pub meta: PodMeta,
    pub uid: String,
    pub labels: BTreeMap<String, String>,
    pub host_network: bool,
    pub containers: Vec<(String, ContainerSpec)>,
}

impl PodRecord {
    pub fn from_pod(pod: &Pod) -> Self {
        let restarts: HashMap<&str, i64> = pod
            .status
            .as_ref()
            .and_then(|s| s.container_statuses.as_ref())
            .map(|cs| {
                cs.iter()
                    .map(|c| (c.name.as_str(), i64::from(c.restart_count)))
                    .collect()
            })
            .unwrap_or_default();
        let spec = pod.spec.as_ref();
        PodRecord {
            meta: pod_meta(pod),
            uid: pod.metadata.uid.clone().unwrap_or_default(),
            labels: pod.metadata.labels.clone().unwrap_or_default(),
            host_network: spec.and_then(|s| s.host_network).unwrap_or(false),
            containers: spec
                .map(|s| {
                    s.containers
                        .iter()
                        .map(|c| {
                            (
                                c.name.clone(),
                                container_spec(c, restarts.get(c.name.as_str()).copied()),
                            )
                        })
                        .collect()
                })
                .unwrap_or_default(),
        }
    }
}

#[derive(Default)]
struct PodStoreInner {
    pods: HashMap<(String, String), Arc<PodRecord>>,
    /// A relist in progress: replaces `pods` when it is complete.
    relist: Option<HashMap<(String, String), Arc<PodRecord>>>,
}

/// The pods, by `(namespace, name)`, kept up to date by a watch; like kube's reflector store
/// but holding `PodRecord`s.
#[derive(Clone)]
pub struct PodStore {
    inner: Arc<RwLock<PodStoreInner>>,
    ready: tokio::sync::watch::Receiver<bool>,
}

impl PodStore {
    fn start(client: &Client) -> Self {
        let inner = Arc::new(RwLock::new(PodStoreInner::default()));
        let (ready_tx, ready) = tokio::sync::watch::channel(false);
        let store = inner.clone();
        let stream =
            watcher(Api::<Pod>::all(client.clone()), watcher::Config::default()).default_backoff();
        tokio::spawn(async move {
            let mut stream = std::pin::pin!(stream);
            while let Some(event) = stream.next().await {
                match event {
                    Ok(event) => {
                        if apply(&store, event) {
                            let _ = ready_tx.send(true);
                        }
                    }
                    Err(e) => {
                        tracing::warn!(kind = "Pod", error = %e, "watch failed; retrying with backoff")
                    }
                }
            }
        });
        PodStore { inner, ready }
    }

    async fn wait_until_ready(&self) -> bool {
        let mut ready = self.ready.clone();
        let done = ready.wait_for(|r| *r).await.is_ok();
        done
    }

    fn all(&self) -> Vec<Arc<PodRecord>> {
        let inner = self.inner.read().unwrap_or_else(|p| p.into_inner());
        inner.pods.values().cloned().collect()
    }
}

fn key(pod: &Pod) -> (String, String) {
    (
        pod.metadata.namespace.clone().unwrap_or_default(),
        pod.metadata.name.clone().unwrap_or_default(),
    )
}

/// Applies one watch event; returns true when a (re)list completed.
fn apply(store: &RwLock<PodStoreInner>, event: watcher::Event<Pod>) -> bool {
    let mut inner = store.write().unwrap_or_else(|p| p.into_inner());
    match event {
        watcher::Event::Apply(pod) => {
            inner
                .pods
                .insert(key(&pod), Arc::new(PodRecord::from_pod(&pod)));
        }
        watcher::Event::Delete(pod) => {
            inner.pods.remove(&key(&pod));
        }
        watcher::Event::Init => inner.relist = Some(HashMap::new()),
        watcher::Event::InitApply(pod) => {
            let record = Arc::new(PodRecord::from_pod(&pod));
            inner
                .relist
                .get_or_insert_with(HashMap::new)
                .insert(key(&pod), record);
        }
        watcher::Event::InitDone => {
            inner.pods = inner.relist.take().unwrap_or_default();
            return true;
        }
    }
    false
}

fn reflect<K>(client: &Client, trim: fn(&mut K)) -> Store<K>
where
    K: Resource<DynamicType = ()>
        + Clone
        + std::fmt::Debug
        + serde::de::DeserializeOwned
        + Send
        + Sync
        + 'static,
{
    let (reader, writer) = reflector::store::<K>();
    let stream = watcher(Api::<K>::all(client.clone()), watcher::Config::default())
        .default_backoff()
        .modify(trim)
        .reflect(writer)
        .applied_objects();
    tokio::spawn(async move {
        let mut stream = std::pin::pin!(stream);
        while let Some(event) = stream.next().await {
            if let Err(e) = event {
                tracing::warn!(kind = K::kind(&()).as_ref(), error = %e, "watch failed; retrying with backoff");
            }
        }
    });
    reader
}

fn trim_meta(meta: &mut ObjectMeta) {
    meta.managed_fields = None;
    if let Some(annotations) = &mut meta.annotations {
        annotations.retain(|k, _| k == MIRROR_ANNOTATION);
    }
}

fn trim_node(node: &mut Node) {
    trim_meta(&mut node.metadata);
    if let Some(status) = &mut node.status {
        status.images = None;
        status.conditions = None;
    }
}

fn trim_owner<K: Resource>(obj: &mut K) {
    trim_meta(obj.meta_mut());
}

fn trim_rs(rs: &mut ReplicaSet) {
    trim_owner(rs);
    rs.spec = Default::default();
    rs.status = None;
}

fn trim_job(job: &mut Job) {
    trim_owner(job);
    job.spec = None;
    job.status = None;
}

fn trim_namespace(ns: &mut Namespace) {
    trim_owner(ns);
    ns.spec = None;
}

impl KubeView {
    /// Starts the watches; `ready` waits for their first lists. Each kind watched here is a
    /// line of `rbac::WATCHED`, which the ClusterRole grants.
    pub fn start(client: Client) -> Self {
        KubeView {
            nodes: reflect(&client, trim_node),
            namespaces: reflect(&client, trim_namespace),
            pods: PodStore::start(&client),
            replicasets: reflect(&client, trim_rs),
            jobs: reflect(&client, trim_job),
            client,
        }
    }

    pub async fn ready(&self) -> bool {
        self.nodes.wait_until_ready().await.is_ok()
            && self.namespaces.wait_until_ready().await.is_ok()
            && self.pods.wait_until_ready().await
            && self.replicasets.wait_until_ready().await.is_ok()
            && self.jobs.wait_until_ready().await.is_ok()
    }

    /// Nodes to scrape, sorted by name, with their kubelet's address (InternalIP first).
    pub fn node_targets(&self) -> Vec<NodeTarget> {
        let mut targets: Vec<NodeTarget> = self
            .nodes
            .state()
            .iter()
            .filter_map(|n| {
                let addresses = n
                    .status
                    .as_ref()
                    .and_then(|s| s.addresses.clone())
                    .unwrap_or_default();
                let pick = |kind: &str| {
                    addresses
                        .iter()
                        .find(|a| a.type_ == kind)
                        .map(|a| a.address.clone())
                };
                Some(NodeTarget {
                    name: n.metadata.name.clone()?,
                    address: pick("InternalIP")
                        .or_else(|| pick("ExternalIP"))
                        .or_else(|| pick("Hostname")),
                })
            })
            .collect();
        targets.sort_by(|a, b| a.name.cmp(&b.name));
        targets
    }

    /// The cluster now. `owners` caches resolved owners by pod UID: frozen at first sight.
    pub fn snapshot(
        &self,
        cluster_name: &str,
        label_keys: &[String],
        owners: &mut HashMap<String, Owner>,
    ) -> Cluster {
        let namespaces = self.namespaces.state();
        let namespace_labels: HashMap<String, BTreeMap<String, String>> = namespaces
            .iter()
            .filter_map(|ns| {
                Some((
                    ns.metadata.name.clone()?,
                    ns.metadata.labels.clone().unwrap_or_default(),
                ))
            })
            .collect();
        let mut pods = HashMap::new();
        let mut seen = std::collections::HashSet::new();
        for pod in self.pods.all() {
            let owner = owners
                .entry(pod.uid.clone())
                .or_insert_with(|| resolve(&pod.meta, self))
                .clone();
            seen.insert(pod.uid.clone());
            let ns_labels = namespace_labels.get(&pod.meta.namespace);
            let info = pod_info(&pod, owner, label_keys, ns_labels);
            pods.insert((pod.meta.namespace.clone(), pod.meta.name.clone()), info);
        }
        owners.retain(|uid, _| seen.contains(uid));
        let nodes = self
            .nodes
            .state()
            .iter()
            .filter_map(|n| Some((n.metadata.name.clone()?, node_info(n))))
            .collect();
        Cluster {
            name: cluster_name.to_string(),
            pods,
            nodes,
            namespace_ids: namespace_ids(namespaces.iter().map(|ns| &ns.metadata)),
        }
    }
}

impl OwnerGraph for KubeView {
    fn parent(&self, namespace: &str, owner: &OwnerRef) -> Parent {
        let meta = match owner.kind.as_str() {
            "ReplicaSet" => self
                .replicasets
                .get(&ObjectRef::new(&owner.name).within(namespace))
                .map(|o| o.metadata.clone()),
            "Job" => self
                .jobs
                .get(&ObjectRef::new(&owner.name).within(namespace))
                .map(|o| o.metadata.clone()),
            // Other kinds (Deployment, StatefulSet, DaemonSet, CronJob, …) are tops.
            _ => return Parent::Top,
        };
        match meta {
            None => Parent::Unknown,
            Some(meta) => controller_of(&meta).map_or(Parent::Top, Parent::Controller),
        }
    }
}

/// Each namespace's UID by name (Heapster's `namespace_id` tag).
pub fn namespace_ids<'a>(metas: impl Iterator<Item = &'a ObjectMeta>) -> HashMap<String, String> {
    metas
        .filter_map(|m| Some((m.name.clone()?, m.uid.clone()?)))
        .collect()
}

pub fn controller_of(meta: &ObjectMeta) -> Option<OwnerRef> {
    meta.owner_references
        .as_ref()?
        .iter()
        .find(|r| r.controller == Some(true))
        .map(|r| OwnerRef::new(&r.kind, &r.name))
}

fn pod_meta(pod: &Pod) -> PodMeta {
    let meta = &pod.metadata;
    PodMeta {
        name: meta.name.clone().unwrap_or_default(),
        namespace: meta.namespace.clone().unwrap_or_default(),
        node_name: pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.clone())
            .unwrap_or_default(),
        controller: controller_of(meta),
        template_hash: meta
            .labels
            .as_ref()
            .and_then(|l| l.get("pod-template-hash").cloned()),
        mirror: meta
            .annotations
            .as_ref()
            .is_some_and(|a| a.contains_key(MIRROR_ANNOTATION)),
    }
}

pub fn pod_info(
    pod: &PodRecord,
    owner: Owner,
    label_keys: &[String],
    namespace_labels: Option<&BTreeMap<String, String>>,
) -> PodInfo {
    let label_tags = label_keys
        .iter()
        .filter_map(|k| {
            let v = pod
                .labels
                .get(k)
                .or_else(|| namespace_labels.and_then(|n| n.get(k)))?;
            Some((format!("label_{k}"), v.clone()))
        })
        .collect();
    let heapster_labels = pod
        .labels
        .iter()
        .map(|(k, v)| format!("{k}:{v}"))
        .collect::<Vec<_>>()
        .join(",");
    PodInfo {
        uid: pod.uid.clone(),
        owner: Some(owner),
        label_tags,
        labels: heapster_labels,
        host_network: pod.host_network,
        containers: pod.containers.iter().cloned().collect(),
    }
}

fn container_spec(c: &Container, restart_count: Option<i64>) -> ContainerSpec {
    let res = c.resources.as_ref();
    let get = |which: Option<
        &BTreeMap<String, k8s_openapi::apimachinery::pkg::api::resource::Quantity>,
    >,
               key: &str| { which.and_then(|m| m.get(key)).map(|q| q.0.clone()) };
    let requests = res.and_then(|r| r.requests.as_ref());
    let limits = res.and_then(|r| r.limits.as_ref());
    let cpu = |m| get(m, "cpu").and_then(|q| quantity::millicores(&q));
    let bytes = |m, key| get(m, key).and_then(|q| quantity::whole(&q));
    ContainerSpec {
        image: c.image.clone().unwrap_or_default(),
        cpu_request_millicores: cpu(requests),
        cpu_limit_millicores: cpu(limits),
        memory_request_bytes: bytes(requests, "memory"),
        memory_limit_bytes: bytes(limits, "memory"),
        ephemeral_request_bytes: bytes(requests, "ephemeral-storage"),
        ephemeral_limit_bytes: bytes(limits, "ephemeral-storage"),
        gpu_request: bytes(requests, "nvidia.com/gpu"),
        gpu_limit: bytes(limits, "nvidia.com/gpu"),
        restart_count,
    }
}

pub fn node_info(node: &Node) -> NodeInfo {
    let status = node.status.as_ref();
    let q = |which: Option<
        &BTreeMap<String, k8s_openapi::apimachinery::pkg::api::resource::Quantity>,
    >,
             key: &str| {
        which
            .and_then(|m| m.get(key))
            .and_then(|q| quantity::parse(&q.0))
    };
    let capacity = status.and_then(|s| s.capacity.as_ref());
    let allocatable = status.and_then(|s| s.allocatable.as_ref());
    let hostname = status
        .and_then(|s| s.addresses.as_ref())
        .and_then(|a| a.iter().find(|a| a.type_ == "Hostname"))
        .map(|a| a.address.clone())
        .or_else(|| node.metadata.name.clone());
    NodeInfo {
        hostname,
        host_id: node.spec.as_ref().and_then(|s| s.provider_id.clone()),
        cpu_capacity_millicores: q(capacity, "cpu").map(|c| c * 1000.0),
        cpu_allocatable_millicores: q(allocatable, "cpu").map(|c| c * 1000.0),
        memory_capacity_bytes: q(capacity, "memory"),
        memory_allocatable_bytes: q(allocatable, "memory"),
    }
}
