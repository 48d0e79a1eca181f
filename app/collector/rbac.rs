//! What the collector asks of Kubernetes, as RBAC sees it. The ClusterRoles in
//! `k8s/base/rbac.yaml` (and `k8s/overlays/apiserver-proxy`) grant exactly this table, and the
//! collector makes no request outside it: tests check both, the second by recording every
//! request the collector sends to the simulated cluster.
//!
//! Watching one more kind is one more line in `WATCHED` (and in the ClusterRole).

/// One RBAC permission: a verb on a resource of an API group (`""` is the core group).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Access {
    pub group: &'static str,
    pub resource: &'static str,
    pub verb: &'static str,
}

/// `(API group, resource)` of every kind the collector lists and watches (`KubeView::start`).
pub const WATCHED: &[(&str, &str)] = &[
    ("", "nodes"),
    ("", "namespaces"),
    ("", "pods"),
    ("apps", "replicasets"),
    ("batch", "jobs"),
];

/// A kubelet's `/stats/summary`, read directly (`--kubelet-direct`): the kubelet authorizes it
/// as `get` on the `nodes/stats` subresource.
pub const KUBELET_DIRECT: Access = Access {
    group: "",
    resource: "nodes/stats",
    verb: "get",
};

/// The same through the API server (`/api/v1/nodes/<node>/proxy/stats/summary`): `get` on
/// `nodes/proxy`, which reaches everything a kubelet serves.
pub const KUBELET_VIA_API_SERVER: Access = Access {
    group: "",
    resource: "nodes/proxy",
    verb: "get",
};

/// Everything the collector needs, reading kubelets directly or through the API server.
pub fn needed(kubelet_direct: bool) -> Vec<Access> {
    let mut all: Vec<Access> = WATCHED
        .iter()
        .flat_map(|&(group, resource)| {
            ["list", "watch"].map(|verb| Access {
                group,
                resource,
                verb,
            })
        })
        .collect();
    all.push(if kubelet_direct {
        KUBELET_DIRECT
    } else {
        KUBELET_VIA_API_SERVER
    });
    all.sort();
    all
}

/// `(group, resource, verb)` that a `GET` of `path_and_query` on the API server or on a kubelet
/// needs, as the API server's and the kubelet's authorizers work it out; `None` for paths that
/// need no RBAC permission (`/version`, `/healthz`).
pub fn access_of_get(path_and_query: &str) -> Option<(String, String, String)> {
    let (path, query) = path_and_query
        .split_once('?')
        .unwrap_or((path_and_query, ""));
    let watch = query
        .split('&')
        .any(|kv| kv == "watch=true" || kv == "watch=1");
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let own = |g: &str, r: &str, v: &str| Some((g.to_string(), r.to_string(), v.to_string()));
    let collection = |g: &str, r: &str| own(g, r, if watch { "watch" } else { "list" });
    match parts.as_slice() {
        ["stats", ..] => own("", "nodes/stats", "get"),
        ["api", "v1", "nodes", _, "proxy", ..] => own("", "nodes/proxy", "get"),
        ["api", "v1", resource] => collection("", resource),
        ["apis", group, _version, resource] => collection(group, resource),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_watched_kind_needs_list_and_watch_and_nothing_more() {
        let direct = needed(true);
        assert_eq!(direct.len(), WATCHED.len() * 2 + 1);
        assert!(direct.contains(&Access {
            group: "apps",
            resource: "replicasets",
            verb: "watch"
        }));
        assert!(direct.contains(&KUBELET_DIRECT));
        assert!(!direct.contains(&KUBELET_VIA_API_SERVER));
        assert!(needed(false).contains(&KUBELET_VIA_API_SERVER));
        assert!(direct
            .iter()
            .all(|a| a.verb != "get" || a.resource.contains('/')));
    }

    #[test]
    fn requests_map_to_the_permissions_the_api_server_checks() {
        let t = |g: &str, r: &str, v: &str| Some((g.into(), r.into(), v.into()));
        assert_eq!(
            access_of_get("/api/v1/pods?limit=500"),
            t("", "pods", "list")
        );
        assert_eq!(
            access_of_get("/api/v1/pods?allowWatchBookmarks=true&watch=true&resourceVersion=3"),
            t("", "pods", "watch")
        );
        assert_eq!(
            access_of_get("/apis/apps/v1/replicasets?watch=1"),
            t("apps", "replicasets", "watch")
        );
        assert_eq!(
            access_of_get("/api/v1/nodes/node-001/proxy/stats/summary"),
            t("", "nodes/proxy", "get")
        );
        assert_eq!(access_of_get("/stats/summary"), t("", "nodes/stats", "get"));
        assert_eq!(access_of_get("/version"), None);
    }
}
