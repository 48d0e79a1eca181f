//! The simulated cluster as Kubernetes API objects (typed with k8s-openapi, so the JSON is the
//! API server's), keyed for the watch diff.

use chrono::{DateTime, Utc};
use k8s_openapi::api::apps::v1::{
    DaemonSet, DaemonSetSpec, Deployment, DeploymentSpec, ReplicaSet, ReplicaSetSpec, StatefulSet,
    StatefulSetSpec,
};
use k8s_openapi::api::batch::v1::{CronJob, CronJobSpec, Job, JobTemplateSpec};
use k8s_openapi::api::core::v1::{
    Container, ContainerStatus, Namespace, Node, NodeAddress, NodeSpec, NodeStatus, Pod, PodSpec,
    PodStatus, PodTemplateSpec, ResourceRequirements, Service, ServiceSpec,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
    LabelSelector, ObjectMeta, OwnerReference, Time,
};
use serde_json::Value;
use std::collections::BTreeMap;

use super::model::{
    mix, Model, SimPod, NAMESPACES, NODE_CPU_CORES, NODE_MEMORY_GIB, SYSTEM_NAMESPACE,
};

/// The resource types the simulator serves, with their list paths.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    Node,
    Namespace,
    Pod,
    Service,
    ReplicaSet,
    Deployment,
    StatefulSet,
    DaemonSet,
    Job,
    CronJob,
}

impl Kind {
    pub const ALL: [Kind; 10] = [
        Kind::Node,
        Kind::Namespace,
        Kind::Pod,
        Kind::Service,
        Kind::ReplicaSet,
        Kind::Deployment,
        Kind::StatefulSet,
        Kind::DaemonSet,
        Kind::Job,
        Kind::CronJob,
    ];

    /// `(group/version path prefix, plural)`.
    pub fn path(self) -> (&'static str, &'static str) {
        match self {
            Kind::Node => ("/api/v1", "nodes"),
            Kind::Namespace => ("/api/v1", "namespaces"),
            Kind::Pod => ("/api/v1", "pods"),
            Kind::Service => ("/api/v1", "services"),
            Kind::ReplicaSet => ("/apis/apps/v1", "replicasets"),
            Kind::Deployment => ("/apis/apps/v1", "deployments"),
            Kind::StatefulSet => ("/apis/apps/v1", "statefulsets"),
            Kind::DaemonSet => ("/apis/apps/v1", "daemonsets"),
            Kind::Job => ("/apis/batch/v1", "jobs"),
            Kind::CronJob => ("/apis/batch/v1", "cronjobs"),
        }
    }

    pub fn from_path(prefix: &str, plural: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.path() == (prefix, plural))
    }

    pub fn list_kind(self) -> String {
        format!("{self:?}List")
    }

    pub fn api_version(self) -> &'static str {
        match self.path().0 {
            "/api/v1" => "v1",
            "/apis/apps/v1" => "apps/v1",
            _ => "batch/v1",
        }
    }
}

/// `(kind, namespace, name)` → object JSON (without resourceVersion).
pub type Objects = BTreeMap<(Kind, String, String), Value>;

fn time(t: DateTime<Utc>) -> Option<Time> {
    k8s_openapi::jiff::Timestamp::from_second(t.timestamp())
        .ok()
        .map(Time)
}

fn uid_of(parts: &str) -> String {
    let x = parts.bytes().fold(0u64, |a, b| mix(a ^ u64::from(b)));
    format!(
        "{:08x}-0000-4000-8000-{:012x}",
        x >> 32,
        x & 0xffff_ffff_ffff
    )
}

fn meta(namespace: Option<&str>, name: &str, owner: Option<(&str, &str, &str)>) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_string()),
        namespace: namespace.map(str::to_string),
        uid: Some(uid_of(&format!("{}/{name}", namespace.unwrap_or("")))),
        owner_references: owner.map(|(api_version, kind, owner_name)| {
            vec![OwnerReference {
                api_version: api_version.into(),
                kind: kind.into(),
                name: owner_name.into(),
                uid: uid_of(&format!("{}/{owner_name}", namespace.unwrap_or(""))),
                controller: Some(true),
                block_owner_deletion: Some(true),
            }]
        }),
        ..ObjectMeta::default()
    }
}

fn labels(pairs: &[(&str, &str)]) -> Option<BTreeMap<String, String>> {
    Some(
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    )
}

fn selector(app: &str) -> LabelSelector {
    LabelSelector {
        match_labels: labels(&[("app", app)]),
        ..LabelSelector::default()
    }
}

fn quantities(pairs: &[(&str, String)]) -> Option<BTreeMap<String, Quantity>> {
    Some(
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), Quantity(v.clone())))
            .collect(),
    )
}

fn insert<T: serde::Serialize>(objects: &mut Objects, kind: Kind, ns: &str, name: &str, obj: &T) {
    if let Ok(v) = serde_json::to_value(obj) {
        objects.insert((kind, ns.to_string(), name.to_string()), v);
    }
}

/// Every API object of the cluster at `t`.
pub fn objects_at(model: &Model, t: DateTime<Utc>) -> Objects {
    let mut objects = Objects::new();
    for (n, name) in model.node_names().into_iter().enumerate() {
        let mut addresses = vec![NodeAddress {
            type_: "Hostname".into(),
            address: name.clone(),
        }];
        if let Some(ip) = super::kubelet_ip(n) {
            addresses.insert(
                0,
                NodeAddress {
                    type_: "InternalIP".into(),
                    address: ip.to_string(),
                },
            );
        }
        let node = Node {
            metadata: ObjectMeta {
                labels: labels(&[("kubernetes.io/hostname", &name)]),
                ..meta(None, &name, None)
            },
            spec: Some(NodeSpec {
                provider_id: Some(format!("kubemeter-simulator:///zone-a/{name}")),
                ..NodeSpec::default()
            }),
            status: Some(NodeStatus {
                addresses: Some(addresses),
                capacity: quantities(&[
                    ("cpu", NODE_CPU_CORES.to_string()),
                    ("memory", format!("{NODE_MEMORY_GIB}Gi")),
                    ("pods", "110".into()),
                ]),
                allocatable: quantities(&[
                    ("cpu", format!("{}m", NODE_CPU_CORES * 1000 - 200)),
                    ("memory", format!("{}Gi", NODE_MEMORY_GIB - 2)),
                    ("pods", "110".into()),
                ]),
                ..NodeStatus::default()
            }),
        };
        insert(&mut objects, Kind::Node, "", &name, &node);
    }
    for (i, ns) in NAMESPACES.iter().chain([&SYSTEM_NAMESPACE]).enumerate() {
        let cost_center = format!("cc-{}", 100 + i);
        let namespace = Namespace {
            metadata: ObjectMeta {
                labels: labels(&[("cost-center", &cost_center)]),
                ..meta(None, ns, None)
            },
            ..Namespace::default()
        };
        insert(&mut objects, Kind::Namespace, "", ns, &namespace);
    }
    for pod in model.pods_at(t) {
        insert_pod_and_owners(&mut objects, &pod);
    }
    objects
}

/// One pod's objects and its owners' (ReplicaSet, Job, …), as `objects_at` has them.
pub fn pod_objects(p: &SimPod) -> Objects {
    let mut objects = Objects::new();
    insert_pod_and_owners(&mut objects, p);
    objects
}

fn insert_pod_and_owners(objects: &mut Objects, p: &SimPod) {
    let ns = p.namespace.as_str();
    let app = &p.workload.1;
    let owner = p.owner.as_ref().map(|(kind, name)| {
        let api = match kind.as_str() {
            "Job" => "batch/v1",
            "Node" => "v1",
            _ => "apps/v1",
        };
        (api, kind.as_str(), name.as_str())
    });
    let mut pod_labels = vec![("app", app.as_str()), ("team", p.team)];
    if let Some(hash) = &p.template_hash {
        pod_labels.push(("pod-template-hash", hash));
    }
    let mut metadata = ObjectMeta {
        labels: labels(&pod_labels),
        creation_timestamp: time(p.start),
        ..meta(Some(ns), &p.name, owner)
    };
    metadata.uid = Some(p.uid.clone());
    if p.mirror {
        metadata.annotations = labels(&[("kubernetes.io/config.mirror", "0123456789abcdef")]);
    }
    let containers = p
        .containers
        .iter()
        .map(|c| {
            let mut requests = vec![
                ("cpu", format!("{}m", c.cpu_request_millicores)),
                ("memory", format!("{}Mi", c.memory_request >> 20)),
            ];
            let mut limits = vec![("memory", format!("{}Mi", (c.memory_request >> 20) * 2))];
            if c.gpus > 0 {
                requests.push(("nvidia.com/gpu", c.gpus.to_string()));
                limits.push(("nvidia.com/gpu", c.gpus.to_string()));
            }
            Container {
                name: c.name.clone(),
                image: Some(c.image.clone()),
                resources: Some(ResourceRequirements {
                    requests: quantities(&requests),
                    limits: quantities(&limits),
                    ..ResourceRequirements::default()
                }),
                ..Container::default()
            }
        })
        .collect();
    let statuses = p
        .containers
        .iter()
        .map(|c| ContainerStatus {
            name: c.name.clone(),
            image: c.image.clone(),
            image_id: format!("{}@sha256:{:064x}", c.image, 0),
            ready: true,
            restart_count: c.restarts,
            ..ContainerStatus::default()
        })
        .collect();
    let pod = Pod {
        metadata,
        spec: Some(PodSpec {
            node_name: Some(p.node.clone()),
            host_network: p.host_network.then_some(true),
            containers,
            ..PodSpec::default()
        }),
        status: Some(PodStatus {
            phase: Some("Running".into()),
            start_time: time(p.start),
            container_statuses: Some(statuses),
            ..PodStatus::default()
        }),
    };
    insert(objects, Kind::Pod, ns, &p.name, &pod);

    let template = PodTemplateSpec::default();
    match (
        p.owner.as_ref().map(|(k, n)| (k.as_str(), n.as_str())),
        p.workload.0.as_str(),
    ) {
        (Some(("ReplicaSet", rs)), "Deployment") => {
            let rs_obj = ReplicaSet {
                metadata: meta(Some(ns), rs, Some(("apps/v1", "Deployment", app))),
                spec: ReplicaSetSpec {
                    selector: selector(app),
                    ..ReplicaSetSpec::default()
                },
                status: None,
            };
            insert(objects, Kind::ReplicaSet, ns, rs, &rs_obj);
            let dep = Deployment {
                metadata: meta(Some(ns), app, None),
                spec: DeploymentSpec {
                    selector: selector(app),
                    template: template.clone(),
                    ..DeploymentSpec::default()
                },
                status: None,
            };
            insert(objects, Kind::Deployment, ns, app, &dep);
            let svc = Service {
                metadata: meta(Some(ns), app, None),
                spec: Some(ServiceSpec {
                    selector: labels(&[("app", app)]),
                    ..ServiceSpec::default()
                }),
                ..Service::default()
            };
            insert(objects, Kind::Service, ns, app, &svc);
        }
        (Some(("Job", job)), workload_kind) => {
            let parent =
                (workload_kind == "CronJob").then_some(("batch/v1", "CronJob", app.as_str()));
            let job_obj = Job {
                metadata: meta(Some(ns), job, parent),
                ..Job::default()
            };
            insert(objects, Kind::Job, ns, job, &job_obj);
            if workload_kind == "CronJob" {
                let cj = CronJob {
                    metadata: meta(Some(ns), app, None),
                    spec: CronJobSpec {
                        schedule: "*/5 * * * *".into(),
                        job_template: JobTemplateSpec::default(),
                        ..CronJobSpec::default()
                    },
                    status: None,
                };
                insert(objects, Kind::CronJob, ns, app, &cj);
            }
        }
        (Some(("StatefulSet", sts)), _) => {
            let obj = StatefulSet {
                metadata: meta(Some(ns), sts, None),
                spec: StatefulSetSpec {
                    selector: selector(sts),
                    template: template.clone(),
                    ..StatefulSetSpec::default()
                },
                status: None,
            };
            insert(objects, Kind::StatefulSet, ns, sts, &obj);
        }
        (Some(("DaemonSet", ds)), _) => {
            let obj = DaemonSet {
                metadata: meta(Some(ns), ds, None),
                spec: DaemonSetSpec {
                    selector: selector(ds),
                    template,
                    ..DaemonSetSpec::default()
                },
                status: None,
            };
            insert(objects, Kind::DaemonSet, ns, ds, &obj);
        }
        _ => {}
    }
}
