//! The manifests in k8s/, as `kubectl kustomize` renders each overlay: every object parses into
//! its k8s-openapi type (and loses no field doing so), every container of kubemeter runs the
//! image `make image` builds with settings the app reads, and the collector's ClusterRoles
//! grant exactly what `collector::rbac` says it needs.

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::batch::v1::CronJob;
use k8s_openapi::api::core::v1::{
    ConfigMap, Container, Namespace, PodSpec, Secret, Service, ServiceAccount,
};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
use serde::Deserialize;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;

pub const OVERLAYS: [&str; 4] = [
    "k8s",
    "k8s/overlays/apiserver-proxy",
    "k8s/overlays/sharded",
    "k8s/overlays/all-in-one",
];

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// `kubectl kustomize DIR`, as JSON objects.
pub fn render(dir: &str) -> Vec<Value> {
    let out = Command::new("kubectl")
        .args(["kustomize", dir])
        .current_dir(root())
        .output()
        .expect("kubectl is installed (it comes with the machine image; see the README)");
    assert!(
        out.status.success(),
        "kubectl kustomize {dir} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    serde_yaml_ng::Deserializer::from_str(&text)
        .map(|doc| Value::deserialize(doc).unwrap())
        .filter(|v| !v.is_null())
        .collect()
}

/// The objects of `kind`, typed.
fn all<K: serde::de::DeserializeOwned>(objects: &[Value], kind: &str) -> Vec<K> {
    objects
        .iter()
        .filter(|o| o["kind"] == kind)
        .map(|o| serde_json::from_value(o.clone()).unwrap())
        .collect()
}

/// Parses `object` as `K` and serialises it back: a field k8s-openapi does not know (a typo,
/// a field at the wrong level) is lost on the way and shows as a difference.
fn round_trip<K>(object: &Value) -> Result<(), String>
where
    K: serde::de::DeserializeOwned + serde::Serialize,
{
    let typed: K = serde_json::from_value(object.clone()).map_err(|e| e.to_string())?;
    let back = serde_json::to_value(&typed).map_err(|e| e.to_string())?;
    let mut differences = Vec::new();
    diff("", object, &back, &mut differences);
    if differences.is_empty() {
        Ok(())
    } else {
        Err(format!("fields were lost or changed: {differences:?}"))
    }
}

/// The paths where `a` and `b` differ.
fn diff(path: &str, a: &Value, b: &Value, out: &mut Vec<String>) {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            for k in x.keys().chain(y.keys()).collect::<BTreeSet<_>>() {
                let (va, vb) = (
                    x.get(k).unwrap_or(&Value::Null),
                    y.get(k).unwrap_or(&Value::Null),
                );
                diff(&format!("{path}.{k}"), va, vb, out);
            }
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
            for (i, (va, vb)) in x.iter().zip(y).enumerate() {
                diff(&format!("{path}[{i}]"), va, vb, out);
            }
        }
        _ if a != b => out.push(format!("{path}: {a} became {b}")),
        _ => {}
    }
}

fn check_typed(object: &Value) -> Result<(), String> {
    match object["kind"].as_str().unwrap_or_default() {
        "Namespace" => round_trip::<Namespace>(object),
        "ConfigMap" => round_trip::<ConfigMap>(object),
        "Secret" => round_trip::<Secret>(object),
        "ServiceAccount" => round_trip::<ServiceAccount>(object),
        "ClusterRole" => round_trip::<ClusterRole>(object),
        "ClusterRoleBinding" => round_trip::<ClusterRoleBinding>(object),
        "Deployment" => round_trip::<Deployment>(object),
        "StatefulSet" => round_trip::<StatefulSet>(object),
        "CronJob" => round_trip::<CronJob>(object),
        "Service" => round_trip::<Service>(object),
        "PodDisruptionBudget" => round_trip::<PodDisruptionBudget>(object),
        "NetworkPolicy" => round_trip::<NetworkPolicy>(object),
        other => Err(format!("no k8s-openapi type is checked for kind {other}")),
    }
}

#[test]
fn every_overlay_renders_and_every_object_parses_into_its_kubernetes_type() {
    for dir in OVERLAYS {
        let objects = render(dir);
        assert!(objects.len() > 10, "{dir}: {} objects", objects.len());
        for o in &objects {
            let name = format!("{dir}: {} {}", o["kind"], o["metadata"]["name"]);
            check_typed(o).unwrap_or_else(|e| panic!("{name}: {e}"));
            let ns = o["metadata"]["namespace"].as_str();
            let cluster_scoped = ["Namespace", "ClusterRole", "ClusterRoleBinding"];
            if !cluster_scoped.contains(&o["kind"].as_str().unwrap_or_default()) {
                assert_eq!(ns, Some("kubemeter"), "{name} is in kubemeter's namespace");
            }
        }
    }
}

/// Every pod template of an overlay: `(owner name, pod spec, replicas)`.
fn pod_specs(objects: &[Value]) -> Vec<(String, PodSpec, Option<i32>)> {
    let mut out = Vec::new();
    for d in all::<Deployment>(objects, "Deployment") {
        let spec = d.spec;
        out.push((
            d.metadata.name.unwrap(),
            spec.template.spec.unwrap(),
            spec.replicas,
        ));
    }
    for s in all::<StatefulSet>(objects, "StatefulSet") {
        let spec = s.spec;
        out.push((
            s.metadata.name.unwrap(),
            spec.template.spec.unwrap(),
            spec.replicas,
        ));
    }
    for c in all::<CronJob>(objects, "CronJob") {
        let job = c.spec.job_template.spec.unwrap();
        out.push((c.metadata.name.unwrap(), job.template.spec.unwrap(), None));
    }
    out
}

fn image_name() -> String {
    let out = Command::new("make")
        .args(["-s", "image-name"])
        .current_dir(root())
        .output()
        .expect("make runs");
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// Containers that run kubemeter (their first argument is one of its subcommands).
fn kubemeter_containers(spec: &PodSpec) -> Vec<&Container> {
    use clap::CommandFactory;
    let cli = kubemeter::cli::Cli::command();
    spec.containers
        .iter()
        .filter(|c| {
            let first = c.args.as_ref().and_then(|a| a.first());
            first.is_some_and(|a| cli.find_subcommand(a).is_some())
        })
        .collect()
}

#[test]
fn every_kubemeter_container_runs_the_image_make_image_builds() {
    let image = image_name();
    assert_eq!(image, format!("kubemeter:{}", env!("CARGO_PKG_VERSION")));
    for dir in OVERLAYS {
        let objects = render(dir);
        let mut seen = 0;
        for (owner, spec, _) in pod_specs(&objects) {
            for c in &spec.containers {
                let runs_kubemeter = kubemeter_containers(&spec).contains(&c);
                let is_ours = c
                    .image
                    .as_deref()
                    .is_some_and(|i| i.starts_with("kubemeter"));
                assert_eq!(runs_kubemeter, is_ours, "{dir}: {owner}/{}", c.name);
                if runs_kubemeter {
                    assert_eq!(c.image.as_deref(), Some(image.as_str()), "{dir}: {owner}");
                    seen += 1;
                }
            }
        }
        assert_eq!(seen, 3, "{dir}: serve, collect and export");
    }
}

/// The image's `ENV` lines, from the Dockerfile.
fn image_env() -> BTreeMap<String, String> {
    let text = std::fs::read_to_string(root().join("Dockerfile")).unwrap();
    let joined = text.replace("\\\n", " ");
    let mut env = BTreeMap::new();
    for line in joined.lines().filter_map(|l| l.trim().strip_prefix("ENV ")) {
        for pair in line.split_whitespace() {
            let (k, v) = pair.split_once('=').expect("ENV KEY=VALUE");
            env.insert(k.to_string(), v.trim_matches('"').to_string());
        }
    }
    env
}

/// What a container's process sees: the image's ENV, then envFrom, then env (later wins), with
/// `$(NAME)` references expanded; values from fieldRef are `<field>`.
fn effective_env(c: &Container, objects: &[Value]) -> BTreeMap<String, String> {
    let mut env = image_env();
    for from in c.env_from.iter().flatten() {
        let (kind, name) = match (&from.config_map_ref, &from.secret_ref) {
            (Some(cm), _) => ("ConfigMap", cm.name.clone()),
            (None, Some(s)) => ("Secret", s.name.clone()),
            _ => panic!("{}: envFrom without a source", c.name),
        };
        let source = objects
            .iter()
            .find(|o| o["kind"] == kind && o["metadata"]["name"] == name.as_str())
            .unwrap_or_else(|| panic!("{}: envFrom names a missing {kind} {name}", c.name));
        let data = if kind == "Secret" {
            source["stringData"].as_object().cloned()
        } else {
            source["data"].as_object().cloned()
        };
        for (k, v) in data.unwrap_or_default() {
            env.insert(k, v.as_str().unwrap_or_default().to_string());
        }
    }
    for e in c.env.iter().flatten() {
        let value = match (&e.value, &e.value_from) {
            (Some(v), _) => expand(v, &env),
            (None, Some(_)) => "<field>".to_string(),
            (None, None) => String::new(),
        };
        env.insert(e.name.clone(), value);
    }
    env
}

fn expand(value: &str, env: &BTreeMap<String, String>) -> String {
    let mut out = value.to_string();
    for (k, v) in env {
        out = out.replace(&format!("$({k})"), v);
    }
    out
}

/// Every environment variable a subcommand reads: `(name, default, is a secret, required)`.
fn reads(subcommand: &str) -> Vec<(String, Option<String>, bool, bool)> {
    use clap::CommandFactory;
    let cli = kubemeter::cli::Cli::command();
    let cmd = cli.find_subcommand(subcommand).unwrap();
    cmd.get_arguments()
        .filter_map(|a| {
            let name = a.get_env()?.to_str()?.to_string();
            let default = a
                .get_default_values()
                .first()
                .map(|d| d.to_string_lossy().to_string());
            Some((
                name,
                default,
                a.is_hide_env_values_set(),
                a.is_required_set(),
            ))
        })
        .collect()
}

fn read_by_any_subcommand() -> BTreeSet<String> {
    use clap::CommandFactory;
    let cli = kubemeter::cli::Cli::command();
    cli.get_subcommands()
        .flat_map(|s| reads(s.get_name()))
        .map(|(name, ..)| name)
        .collect()
}

/// Variables that are not kubemeter's settings but that it (or its libraries) read.
const OTHER_READS: [&str; 3] = ["RUST_LOG", "SSL_CERT_FILE", "HOME"];

#[test]
fn every_setting_a_container_gives_is_one_kubemeter_reads_and_none_it_needs_is_missing() {
    let any = read_by_any_subcommand();
    for dir in OVERLAYS {
        let objects = render(dir);
        for (owner, spec, _) in pod_specs(&objects) {
            for c in kubemeter_containers(&spec) {
                let subcommand = c.args.as_ref().unwrap()[0].clone();
                let mine = reads(&subcommand);
                let what = format!("{dir}: {owner}/{} ({subcommand})", c.name);
                let referenced = |name: &str| {
                    let r = format!("$({name})");
                    c.args.iter().flatten().any(|a| a.contains(&r))
                        || c.env
                            .iter()
                            .flatten()
                            .any(|e| e.value.as_deref().is_some_and(|v| v.contains(&r)))
                };
                // Explicit env entries: read by this very subcommand (a typo reads nothing).
                for e in c.env.iter().flatten() {
                    let read = mine.iter().any(|(n, ..)| *n == e.name);
                    assert!(
                        read || referenced(&e.name) || OTHER_READS.contains(&e.name.as_str()),
                        "{what}: {} is set but {subcommand} never reads it",
                        e.name
                    );
                }
                let env = effective_env(c, &objects);
                for (name, value) in &env {
                    assert!(
                        !value.contains("$("),
                        "{what}: {name}={value} refers to a variable not defined above it"
                    );
                }
                for name in env.keys() {
                    assert!(
                        any.contains(name)
                            || referenced(name)
                            || OTHER_READS.contains(&name.as_str()),
                        "{what}: {name} is set but kubemeter never reads it"
                    );
                }
                for (name, default, secret, required) in &mine {
                    assert!(
                        env.contains_key(name) || default.is_some() || !required,
                        "{what}: {name} is needed and has no default"
                    );
                    let literal = c
                        .env
                        .iter()
                        .flatten()
                        .any(|e| e.name == *name && e.value.is_some());
                    assert!(
                        !(*secret && literal),
                        "{what}: the secret {name} is written into the manifest; use the Secret"
                    );
                }
            }
        }
    }
}

/// The effective value of a setting: the container's environment, else the flag's default.
fn setting(env: &BTreeMap<String, String>, subcommand: &str, name: &str) -> Option<String> {
    env.get(name).cloned().or_else(|| {
        reads(subcommand)
            .into_iter()
            .find(|(n, ..)| n == name)
            .and_then(|(_, d, ..)| d)
    })
}

#[test]
fn kubemeter_works_in_its_pods_with_a_read_only_root_as_a_non_root_user() {
    for dir in OVERLAYS {
        let objects = render(dir);
        for (owner, spec, _) in pod_specs(&objects) {
            let pod = spec.security_context.clone().unwrap_or_default();
            assert_eq!(pod.run_as_non_root, Some(true), "{dir}: {owner}");
            let seccomp = pod.seccomp_profile.as_ref().map(|s| s.type_.as_str());
            assert_eq!(seccomp, Some("RuntimeDefault"), "{dir}: {owner}");
            for c in &spec.containers {
                let what = format!("{dir}: {owner}/{}", c.name);
                let sc = c.security_context.clone().unwrap_or_default();
                assert_eq!(sc.allow_privilege_escalation, Some(false), "{what}");
                let drop = sc.capabilities.and_then(|c| c.drop).unwrap_or_default();
                assert_eq!(drop, ["ALL"], "{what}");
                let limits = c.resources.as_ref().and_then(|r| r.limits.clone());
                assert!(
                    limits.is_some_and(|l| l.contains_key("memory")),
                    "{what}: a memory limit"
                );
            }
            for c in kubemeter_containers(&spec) {
                check_kubemeter_container(dir, &owner, c, &spec, &objects);
            }
        }
    }
}

fn check_kubemeter_container(
    dir: &str,
    owner: &str,
    c: &Container,
    spec: &PodSpec,
    objects: &[Value],
) {
    let what = format!("{dir}: {owner}/{}", c.name);
    let subcommand = c.args.as_ref().unwrap()[0].as_str();
    let sc = c.security_context.clone().unwrap_or_default();
    assert_eq!(sc.read_only_root_filesystem, Some(true), "{what}");
    let env = effective_env(c, objects);
    let mounts: Vec<String> = c
        .volume_mounts
        .iter()
        .flatten()
        .map(|m| m.mount_path.clone())
        .collect();
    let writable = |path: &str| mounts.iter().any(|m| path.starts_with(m.as_str()));
    let log_dir = setting(&env, subcommand, "KUBEMETER_LOG_DIR").unwrap_or_default();
    assert!(
        log_dir.is_empty() || writable(&log_dir),
        "{what}: logs to {log_dir:?} on a read-only root"
    );
    if subcommand != "export" {
        let data = setting(&env, subcommand, "KUBEMETER_DATA_DIR").unwrap_or_default();
        assert!(
            writable(&data),
            "{what}: KUBEMETER_DATA_DIR {data:?} is not on a volume"
        );
    }
    // Whatever a probe or Service reaches must be where kubemeter listens, on every address.
    for port in c.ports.iter().flatten() {
        let var = match subcommand {
            "serve" => "KUBEMETER_LISTEN",
            _ => "KUBEMETER_METRICS_LISTEN",
        };
        let listen = setting(&env, subcommand, var).unwrap();
        let addr: std::net::SocketAddr = listen.parse().unwrap();
        assert!(
            addr.ip().is_unspecified(),
            "{what}: {var} {listen} is not reachable from outside the pod"
        );
        assert_eq!(i32::from(addr.port()), port.container_port, "{what}: {var}");
    }
    let probes = [&c.startup_probe, &c.readiness_probe, &c.liveness_probe];
    for probe in probes.into_iter().flatten() {
        let port = &probe.http_get.as_ref().expect("HTTP probes").port;
        let named = |n: &str| {
            c.ports
                .iter()
                .flatten()
                .any(|p| p.name.as_deref() == Some(n))
        };
        match port {
            k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::String(n) => {
                assert!(named(n), "{what}: a probe names port {n}")
            }
            other => panic!("{what}: probe port {other:?} should be a named port"),
        }
    }
    let _ = spec;
}

/// `(group, resource, verb)` granted to the collector's service account.
fn granted_to_collector(objects: &[Value]) -> BTreeSet<(String, String, String)> {
    let roles: BTreeMap<String, ClusterRole> = all::<ClusterRole>(objects, "ClusterRole")
        .into_iter()
        .map(|r| (r.metadata.name.clone().unwrap(), r))
        .collect();
    let mut granted = BTreeSet::new();
    for b in all::<ClusterRoleBinding>(objects, "ClusterRoleBinding") {
        let ours = b.subjects.iter().flatten().any(|s| {
            s.kind == "ServiceAccount"
                && s.name == "kubemeter-collector"
                && s.namespace.as_deref() == Some("kubemeter")
        });
        if !ours {
            continue;
        }
        let role = &roles[&b.role_ref.name];
        for rule in role.rules.iter().flatten() {
            for g in rule.api_groups.iter().flatten() {
                for r in rule.resources.iter().flatten() {
                    for v in &rule.verbs {
                        assert!(
                            g != "*" && r != "*" && v != "*",
                            "no wildcards in {:?}",
                            role.metadata.name
                        );
                        granted.insert((g.clone(), r.clone(), v.clone()));
                    }
                }
            }
        }
    }
    granted
}

#[test]
fn the_collectors_cluster_roles_grant_exactly_what_the_code_needs() {
    use kubemeter::collector::rbac::needed;
    for dir in OVERLAYS {
        let objects = render(dir);
        let collector = pod_specs(&objects)
            .into_iter()
            .find(|(name, ..)| name == "kubemeter-collector")
            .expect("the collector");
        let c = &collector.1.containers[0];
        let env = effective_env(c, &objects);
        let direct = env
            .get("KUBEMETER_KUBELET_DIRECT")
            .is_some_and(|v| v == "true");
        let want: BTreeSet<(String, String, String)> = needed(direct)
            .into_iter()
            .map(|a| (a.group.into(), a.resource.into(), a.verb.into()))
            .collect();
        let got = granted_to_collector(&objects);
        let extra: Vec<_> = got.difference(&want).collect();
        let missing: Vec<_> = want.difference(&got).collect();
        assert!(
            extra.is_empty() && missing.is_empty(),
            "{dir}: granted but not needed {extra:?}; needed but not granted {missing:?}"
        );
    }
    // The default reads kubelets directly (nodes/stats); the variant goes through the API server.
    let proxy = granted_to_collector(&render("k8s/overlays/apiserver-proxy"));
    assert!(proxy.contains(&("".into(), "nodes/proxy".into(), "get".into())));
    assert!(!granted_to_collector(&render("k8s")).contains(&(
        "".into(),
        "nodes/proxy".into(),
        "get".into()
    )));
}

#[test]
fn each_collector_replica_scrapes_its_own_shard_of_as_many_as_there_are_replicas() {
    for dir in OVERLAYS {
        let objects = render(dir);
        let (_, spec, replicas) = pod_specs(&objects)
            .into_iter()
            .find(|(name, ..)| name == "kubemeter-collector")
            .unwrap();
        let env = effective_env(&spec.containers[0], &objects);
        let shard = env.get("KUBEMETER_SHARD").expect("KUBEMETER_SHARD");
        let (index, count) = shard.split_once('/').unwrap();
        assert_eq!(index, "<field>", "{dir}: the index comes from the pod");
        assert_eq!(
            count.parse::<i32>().ok(),
            replicas,
            "{dir}: shards = replicas"
        );
    }
    let sharded = render("k8s/overlays/sharded");
    let (_, _, replicas) = pod_specs(&sharded)
        .into_iter()
        .find(|(name, ..)| name == "kubemeter-collector")
        .unwrap();
    assert_eq!(replicas, Some(3));
}

#[test]
fn every_port_a_service_exposes_is_admitted_by_a_network_policy_behind_a_default_deny() {
    for dir in OVERLAYS {
        let objects = render(dir);
        let policies = all::<NetworkPolicy>(&objects, "NetworkPolicy");
        let deny_all = policies.iter().any(|p| {
            let spec = p.spec.as_ref().unwrap();
            let all = spec.pod_selector.clone().unwrap_or_default();
            all.match_labels.is_none_or(|l| l.is_empty())
                && all.match_expressions.is_none_or(|e| e.is_empty())
                && spec.ingress.is_none()
        });
        assert!(deny_all, "{dir}: a default deny of ingress");
        for svc in all::<Service>(&objects, "Service") {
            let spec = svc.spec.unwrap();
            let selector = spec.selector.unwrap_or_default();
            for port in spec.ports.unwrap_or_default() {
                let admitted = policies.iter().any(|p| {
                    let ps = p.spec.as_ref().unwrap();
                    let selects = ps
                        .pod_selector
                        .as_ref()
                        .and_then(|s| s.match_labels.as_ref())
                        .is_some_and(|l| {
                            !l.is_empty() && l.iter().all(|(k, v)| selector.get(k) == Some(v))
                        });
                    let target = port.target_port.clone();
                    selects
                        && ps.ingress.iter().flatten().any(|rule| {
                            rule.ports.iter().flatten().any(|p| {
                                let n = p.port.as_ref();
                                n == Some(
                                    &k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(
                                        port.port,
                                    ),
                                ) || (target.is_some() && n == target.as_ref())
                            })
                        })
                });
                assert!(
                    admitted,
                    "{dir}: Service {:?} port {} is not admitted",
                    svc.metadata.name, port.port
                );
            }
        }
    }
}

#[test]
fn the_readmes_configuration_table_lists_every_variable_kubemeter_reads() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let table =
        &readme[readme.find("## Configuration").unwrap()..readme.find("## Commands").unwrap()];
    for name in read_by_any_subcommand() {
        assert!(
            table.contains(&format!("`{name}`")),
            "{name} is missing from the README's configuration table"
        );
    }
}
