//! The tags kubemeter writes on every measurement of the catalogue: Heapster's (so that
//! Heapster-era dashboards and queries keep working) and kubemeter's own. Queries that people
//! keep outside the code (the Grafana dashboard in k8s/grafana) are checked against this list.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tag {
    pub name: &'static str,
    /// Heapster wrote it too.
    pub heapster: bool,
    pub help: &'static str,
}

const fn heapster(name: &'static str, help: &'static str) -> Tag {
    Tag {
        name,
        heapster: true,
        help,
    }
}

const fn ours(name: &'static str, help: &'static str) -> Tag {
    Tag {
        name,
        heapster: false,
        help,
    }
}

pub static TAGS: &[Tag] = &[
    heapster(
        "type",
        "The level: node, sys_container, pod, pod_container, ns or cluster.",
    ),
    heapster("cluster_name", "The cluster (KUBEMETER_CLUSTER_NAME)."),
    heapster("nodename", "The node's name."),
    heapster("hostname", "The node's host name (its Hostname address)."),
    heapster(
        "host_id",
        "The cloud provider's ID of the node (spec.providerID).",
    ),
    heapster("namespace_name", "The namespace's name."),
    heapster("namespace_id", "The namespace's UID."),
    heapster("pod_name", "The pod's name."),
    heapster("pod_id", "The pod's UID."),
    heapster(
        "container_name",
        "The container's name, or a system container's.",
    ),
    heapster("container_base_image", "The container's image."),
    heapster(
        "resource_id",
        "Which filesystem (`/`) of filesystem/* series.",
    ),
    heapster("labels", "The pod's labels as key:value,key:value."),
    heapster("make", "An accelerator's make (nvidia)."),
    heapster("model", "An accelerator's model."),
    heapster("accelerator_id", "An accelerator's ID (the GPU's UUID)."),
    ours("owner_kind", "The kind of the pod's immediate controller."),
    ours("owner_name", "The name of the pod's immediate controller."),
    ours(
        "workload_kind",
        "The kind of the pod's top-level owner (Deployment, CronJob, …).",
    ),
    ours("workload_name", "The name of the pod's top-level owner."),
];

/// `label_<key>`: one tag per label named in `KUBEMETER_LABEL_TAGS`.
pub const LABEL_PREFIX: &str = "label_";

/// The values of the `type` tag, from the node down to the container and up to the cluster.
pub const LEVELS: [&str; 6] = [
    "node",
    "sys_container",
    "pod",
    "pod_container",
    "ns",
    "cluster",
];

/// Whether kubemeter writes a tag of that name.
pub fn is_tag(name: &str) -> bool {
    TAGS.iter().any(|t| t.name == name)
        || name
            .strip_prefix(LABEL_PREFIX)
            .is_some_and(|key| !key.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heapsters_documented_tags_are_all_written() {
        let heapster = "pod_id pod_name container_base_image container_name host_id hostname \
            nodename labels namespace_id namespace_name resource_id make model accelerator_id";
        for name in heapster.split_whitespace() {
            let tag = TAGS.iter().find(|t| t.name == name);
            assert!(tag.is_some_and(|t| t.heapster), "{name}");
        }
        assert!(is_tag("label_team") && !is_tag("label_") && !is_tag("nodname"));
    }
}
