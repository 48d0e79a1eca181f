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
}

/// Reflector stores of what the collector reads from the API server.
#[derive(Clone)]
pub struct KubeView {
    pub client: Client,
    nodes: Store<Node>,
    namespaces: Store<Namespace>,
    pods: Store<Pod>,
    replicasets: Store<ReplicaSet>,
    jobs: Store<Job>,
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

fn trim_pod(pod: &mut Pod) {
    trim_meta(&mut pod.metadata);
    if let Some(spec) = &mut pod.spec {
        spec.volumes = None;
        spec.affinity = None;
        spec.tolerations = None;
        for c in &mut spec.containers {
            trim_container(c);
        }
        spec.init_containers = None;
    }
    if let Some(status) = &mut pod.status {
        status.conditions = None;
    }
}

fn trim_container(c: &mut Container) {
    c.env = None;
    c.env_from = None;
    c.command = None;
    c.args = None;
    c.volume_mounts = None;
    c.liveness_probe = None;
    c.readiness_probe = None;
    c.startup_probe = None;
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
    /// Starts the watches; `ready` waits for their first lists.
    pub fn start(client: Client) -> Self {
        KubeView {
            nodes: reflect(&client, trim_node),
            namespaces: reflect(&client, trim_namespace),
            pods: reflect(&client, trim_pod),
            replicasets: reflect(&client, trim_rs),
            jobs: reflect(&client, trim_job),
            client,
        }
    }

    pub async fn ready(&self) -> bool {
        self.nodes.wait_until_ready().await.is_ok()
            && self.namespaces.wait_until_ready().await.is_ok()
            && self.pods.wait_until_ready().await.is_ok()
            && self.replicasets.wait_until_ready().await.is_ok()
            && self.jobs.wait_until_ready().await.is_ok()
    }

    /// Node names, sorted.
    pub fn node_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .nodes
            .state()
            .iter()
            .filter_map(|n| n.metadata.name.clone())
            .collect();
        names.sort();
        names
    }

    /// The cluster now. `owners` caches resolved owners by pod UID: frozen at first sight.
    pub fn snapshot(
        &self,
        cluster_name: &str,
        label_keys: &[String],
        owners: &mut HashMap<String, Owner>,
    ) -> Cluster {
        let namespace_labels: HashMap<String, BTreeMap<String, String>> = self
            .namespaces
            .state()
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
        for pod in self.pods.state() {
            let (Some(name), Some(namespace)) =
                (pod.metadata.name.clone(), pod.metadata.namespace.clone())
            else {
                continue;
            };
            let uid = pod.metadata.uid.clone().unwrap_or_default();
            let owner = owners
                .entry(uid.clone())
                .or_insert_with(|| resolve(&pod_meta(&pod), self))
                .clone();
            seen.insert(uid.clone());
            let info = pod_info(
                &pod,
                uid,
                owner,
                label_keys,
                namespace_labels.get(&namespace),
            );
            pods.insert((namespace, name), info);
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

fn controller_of(meta: &ObjectMeta) -> Option<OwnerRef> {
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

fn pod_info(
    pod: &Pod,
    uid: String,
    owner: Owner,
    label_keys: &[String],
    namespace_labels: Option<&BTreeMap<String, String>>,
) -> PodInfo {
    let labels = pod.metadata.labels.clone().unwrap_or_default();
    let label_tags = label_keys
        .iter()
        .filter_map(|k| {
            let v = labels
                .get(k)
                .or_else(|| namespace_labels.and_then(|n| n.get(k)))?;
            Some((format!("label_{k}"), v.clone()))
        })
        .collect();
    let heapster_labels = labels
        .iter()
        .map(|(k, v)| format!("{k}:{v}"))
        .collect::<Vec<_>>()
        .join(",");
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
    let containers = spec
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
        .unwrap_or_default();
    PodInfo {
        uid,
        owner: Some(owner),
        label_tags,
        labels: heapster_labels,
        host_network: spec.and_then(|s| s.host_network).unwrap_or(false),
        containers,
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

fn node_info(node: &Node) -> NodeInfo {
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
    NodeInfo {
        cpu_capacity_millicores: q(capacity, "cpu").map(|c| c * 1000.0),
        cpu_allocatable_millicores: q(allocatable, "cpu").map(|c| c * 1000.0),
        memory_capacity_bytes: q(capacity, "memory"),
        memory_allocatable_bytes: q(allocatable, "memory"),
    }
}

/// One node's summary through the API server: `/api/v1/nodes/<node>/proxy/stats/summary`.
pub async fn fetch_summary(
    client: &Client,
    node: &str,
    timeout: Duration,
) -> Result<Summary, ScrapeError> {
    let path = format!("/api/v1/nodes/{node}/proxy/stats/summary");
    let request = http::Request::get(path)
        .body(Vec::new())
        // A node name from the API server is a valid path segment; only a bug could fail here.
        .map_err(|e| ScrapeError::Request(kube::Error::HttpError(e)))?;
    let text = tokio::time::timeout(timeout, client.request_text(request))
        .await
        .map_err(|_| ScrapeError::Timeout(timeout))?
        .map_err(ScrapeError::Request)?;
    serde_json::from_str(&text).map_err(ScrapeError::Decode)
}
