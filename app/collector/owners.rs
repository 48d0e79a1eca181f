//! Who owns a pod: the immediate controller (`owner_kind`/`owner_name`) and the top-level
//! workload (`workload_kind`/`workload_name`), found by walking controller `ownerReferences`
//! upward. When a ReplicaSet or Job is already gone, the names still tell: a Deployment's
//! ReplicaSet is `<deployment>-<pod-template-hash>`, a CronJob's Job is
//! `<cronjob>-<scheduled minute>`.

/// A controller reference (`ownerReferences[]` with `controller: true`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnerRef {
    pub kind: String,
    pub name: String,
}

impl OwnerRef {
    pub fn new(kind: &str, name: &str) -> Self {
        OwnerRef {
            kind: kind.to_string(),
            name: name.to_string(),
        }
    }
}

/// What ingest freezes into the tags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    /// The immediate controller; `None` for a bare pod.
    pub owner: Option<OwnerRef>,
    pub workload: OwnerRef,
}

/// What we know about a pod, trimmed from the API object.
#[derive(Debug, Clone, Default)]
pub struct PodMeta {
    pub name: String,
    pub namespace: String,
    pub node_name: String,
    pub controller: Option<OwnerRef>,
    /// The `pod-template-hash` label.
    pub template_hash: Option<String>,
    /// A static pod's mirror (annotation `kubernetes.io/config.mirror`).
    pub mirror: bool,
}

/// What the owner graph knows about a controller object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parent {
    /// We have not seen the object (deleted, or not watched).
    Unknown,
    /// The object exists and has no controller: it is the top.
    Top,
    /// The object's own controller.
    Controller(OwnerRef),
}

pub trait OwnerGraph {
    fn parent(&self, namespace: &str, owner: &OwnerRef) -> Parent;
}

/// Longest chain we follow (Pod → ReplicaSet → Deployment is two); guards against cycles.
const MAX_DEPTH: usize = 8;

pub fn resolve(pod: &PodMeta, graph: &impl OwnerGraph) -> Owner {
    if pod.mirror || pod.controller.as_ref().is_some_and(|c| c.kind == "Node") {
        let node = OwnerRef::new("Node", &pod.node_name);
        return Owner {
            owner: Some(node.clone()),
            workload: node,
        };
    }
    let Some(first) = pod.controller.clone() else {
        return Owner {
            owner: None,
            workload: OwnerRef::new("Pod", &pod.name),
        };
    };
    let mut top = first.clone();
    for _ in 0..MAX_DEPTH {
        match graph.parent(&pod.namespace, &top) {
            Parent::Controller(parent) => top = parent,
            Parent::Top => break,
            Parent::Unknown => {
                top = guess_parent(&top, pod.template_hash.as_deref()).unwrap_or(top);
                break;
            }
        }
    }
    Owner {
        owner: Some(first),
        workload: top,
    }
}

/// The parent of a controller we cannot see, from naming conventions.
fn guess_parent(owner: &OwnerRef, template_hash: Option<&str>) -> Option<OwnerRef> {
    match owner.kind.as_str() {
        "ReplicaSet" => {
            let hash = template_hash?;
            let deployment = owner.name.strip_suffix(hash)?.strip_suffix('-')?;
            (!deployment.is_empty()).then(|| OwnerRef::new("Deployment", deployment))
        }
        "Job" => {
            let (cronjob, minute) = owner.name.rsplit_once('-')?;
            let scheduled = minute.len() >= 8 && minute.bytes().all(|b| b.is_ascii_digit());
            (scheduled && !cronjob.is_empty()).then(|| OwnerRef::new("CronJob", cronjob))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[derive(Default)]
    struct Graph(HashMap<(String, String), Option<OwnerRef>>);

    impl Graph {
        fn with(mut self, kind: &str, name: &str, parent: Option<(&str, &str)>) -> Self {
            self.0.insert(
                (kind.into(), name.into()),
                parent.map(|(k, n)| OwnerRef::new(k, n)),
            );
            self
        }
    }

    impl OwnerGraph for Graph {
        fn parent(&self, _ns: &str, owner: &OwnerRef) -> Parent {
            match self.0.get(&(owner.kind.clone(), owner.name.clone())) {
                None => Parent::Unknown,
                Some(None) => Parent::Top,
                Some(Some(p)) => Parent::Controller(p.clone()),
            }
        }
    }

    fn pod(controller: Option<(&str, &str)>) -> PodMeta {
        PodMeta {
            name: "p-1".into(),
            namespace: "ns".into(),
            node_name: "node-01".into(),
            controller: controller.map(|(k, n)| OwnerRef::new(k, n)),
            template_hash: None,
            mirror: false,
        }
    }

    fn workload(owner: &Owner) -> (&str, &str) {
        (owner.workload.kind.as_str(), owner.workload.name.as_str())
    }

    #[test]
    fn a_deployment_pod_belongs_to_the_deployment_through_its_replicaset() {
        let g = Graph::default()
            .with("ReplicaSet", "web-5d8f9", Some(("Deployment", "web")))
            .with("Deployment", "web", None);
        let o = resolve(&pod(Some(("ReplicaSet", "web-5d8f9"))), &g);
        assert_eq!(o.owner, Some(OwnerRef::new("ReplicaSet", "web-5d8f9")));
        assert_eq!(workload(&o), ("Deployment", "web"));
    }

    #[test]
    fn a_cronjob_pod_belongs_to_the_cronjob_through_its_job() {
        let g = Graph::default()
            .with("Job", "nightly-28000000", Some(("CronJob", "nightly")))
            .with("CronJob", "nightly", None);
        let o = resolve(&pod(Some(("Job", "nightly-28000000"))), &g);
        assert_eq!(o.owner, Some(OwnerRef::new("Job", "nightly-28000000")));
        assert_eq!(workload(&o), ("CronJob", "nightly"));
    }

    #[test]
    fn statefulsets_daemonsets_jobs_and_replication_controllers_are_their_own_workload() {
        for kind in ["StatefulSet", "DaemonSet", "Job", "ReplicationController"] {
            let g = Graph::default().with(kind, "x", None);
            let o = resolve(&pod(Some((kind, "x"))), &g);
            assert_eq!(workload(&o), (kind, "x"));
        }
    }

    #[test]
    fn an_orphaned_replicaset_is_its_own_workload() {
        let g = Graph::default().with("ReplicaSet", "legacy-abc12", None);
        let o = resolve(&pod(Some(("ReplicaSet", "legacy-abc12"))), &g);
        assert_eq!(workload(&o), ("ReplicaSet", "legacy-abc12"));
    }

    #[test]
    fn a_vanished_replicaset_is_traced_to_its_deployment_by_the_template_hash() {
        let mut p = pod(Some(("ReplicaSet", "api-server-6b7c9d")));
        p.template_hash = Some("6b7c9d".into());
        assert_eq!(
            workload(&resolve(&p, &Graph::default())),
            ("Deployment", "api-server")
        );
        // Without the label the name alone proves nothing.
        p.template_hash = None;
        assert_eq!(
            workload(&resolve(&p, &Graph::default())),
            ("ReplicaSet", "api-server-6b7c9d")
        );
    }

    #[test]
    fn a_vanished_cronjob_job_is_traced_to_its_cronjob_by_the_scheduled_minute() {
        let o = resolve(&pod(Some(("Job", "backup-db-29012345"))), &Graph::default());
        assert_eq!(workload(&o), ("CronJob", "backup-db"));
        let o = resolve(&pod(Some(("Job", "migrate-v2"))), &Graph::default());
        assert_eq!(workload(&o), ("Job", "migrate-v2"));
    }

    #[test]
    fn a_static_pod_belongs_to_its_node() {
        let mut p = pod(Some(("Node", "node-01")));
        assert_eq!(
            workload(&resolve(&p, &Graph::default())),
            ("Node", "node-01")
        );
        p.controller = None;
        p.mirror = true;
        assert_eq!(
            workload(&resolve(&p, &Graph::default())),
            ("Node", "node-01")
        );
    }

    #[test]
    fn a_bare_pod_is_its_own_workload_without_an_owner() {
        let o = resolve(&pod(None), &Graph::default());
        assert_eq!(o.owner, None);
        assert_eq!(workload(&o), ("Pod", "p-1"));
    }

    #[test]
    fn a_cycle_in_the_owner_graph_ends() {
        let g = Graph::default()
            .with("ReplicaSet", "a", Some(("ReplicaSet", "b")))
            .with("ReplicaSet", "b", Some(("ReplicaSet", "a")));
        let o = resolve(&pod(Some(("ReplicaSet", "a"))), &g);
        assert_eq!(o.workload.kind, "ReplicaSet");
    }
}
