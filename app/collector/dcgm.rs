//! GPU utilisation and memory from NVIDIA's DCGM exporter (Prometheus text on each node).
//! Each reading names the pod, namespace and container using the GPU; readings become the
//! container's `accelerators`, exactly as older kubelets reported them, so one encoder serves
//! both. On a shared GPU every pod gets the device's whole value: never add them across pods.

use std::collections::HashMap;

use super::summary::{AcceleratorStats, Summary};

const UTIL: &str = "DCGM_FI_DEV_GPU_UTIL";
const FB_USED: &str = "DCGM_FI_DEV_FB_USED";
const FB_FREE: &str = "DCGM_FI_DEV_FB_FREE";
const MIB: u64 = 1 << 20;

/// One GPU as one container sees it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GpuReading {
    pub namespace: String,
    pub pod: String,
    pub container: String,
    pub uuid: String,
    pub model: String,
    pub util_percent: Option<u64>,
    pub used_mib: Option<u64>,
    pub free_mib: Option<u64>,
}

/// `name{k="v",…} value` → (name, labels, value); `None` for comments and other lines.
fn parse_line(line: &str) -> Option<(&str, HashMap<&str, String>, f64)> {
    let line = line.trim();
    if line.starts_with('#') || line.is_empty() {
        return None;
    }
    let (name, rest) = match line.find('{') {
        Some(i) => (&line[..i], &line[i + 1..]),
        None => {
            let (name, value) = line.split_once(' ')?;
            return Some((name, HashMap::new(), value.trim().parse().ok()?));
        }
    };
    let mut labels = HashMap::new();
    let mut rest = rest;
    loop {
        rest = rest.trim_start_matches([',', ' ']);
        if let Some(after) = rest.strip_prefix('}') {
            let value = after.split_whitespace().next()?.parse().ok()?;
            return Some((name, labels, value));
        }
        let (key, after) = rest.split_once("=\"")?;
        let mut value = String::new();
        let mut chars = after.char_indices();
        let end = loop {
            match chars.next()? {
                (i, '"') => break i,
                (_, '\\') => match chars.next()?.1 {
                    'n' => value.push('\n'),
                    c => value.push(c),
                },
                (_, c) => value.push(c),
            }
        };
        labels.insert(key.trim(), value);
        rest = &after[end + 1..];
    }
}

/// The exporter's readings for GPUs that belong to a pod.
pub fn parse(text: &str) -> Vec<GpuReading> {
    let mut by_key: HashMap<(String, String, String, String), GpuReading> = HashMap::new();
    for (name, labels, value) in text.lines().filter_map(parse_line) {
        if ![UTIL, FB_USED, FB_FREE].contains(&name) {
            continue;
        }
        let get = |k: &str| labels.get(k).cloned().unwrap_or_default();
        let (namespace, pod, container, uuid) =
            (get("namespace"), get("pod"), get("container"), get("UUID"));
        if pod.is_empty() || namespace.is_empty() {
            continue;
        }
        let reading = by_key
            .entry((
                namespace.clone(),
                pod.clone(),
                container.clone(),
                uuid.clone(),
            ))
            .or_insert_with(|| GpuReading {
                namespace,
                pod,
                container,
                uuid,
                model: get("modelName"),
                ..GpuReading::default()
            });
        let v = value.max(0.0).round() as u64;
        match name {
            UTIL => reading.util_percent = Some(v),
            FB_USED => reading.used_mib = Some(v),
            _ => reading.free_mib = Some(v),
        }
    }
    let mut readings: Vec<GpuReading> = by_key.into_values().collect();
    readings.sort_by(|a, b| {
        (&a.namespace, &a.pod, &a.container, &a.uuid).cmp(&(
            &b.namespace,
            &b.pod,
            &b.container,
            &b.uuid,
        ))
    });
    readings
}

/// Puts the readings into the summary's containers (replacing what the kubelet said, if
/// anything). Returns how many readings found their container.
pub fn merge(summary: &mut Summary, readings: &[GpuReading]) -> usize {
    let mut by_container: HashMap<(&str, &str, &str), Vec<AcceleratorStats>> = HashMap::new();
    for r in readings {
        let (Some(util), Some(used)) = (r.util_percent, r.used_mib) else {
            continue;
        };
        by_container
            .entry((&r.namespace, &r.pod, &r.container))
            .or_default()
            .push(AcceleratorStats {
                make: "nvidia".into(),
                model: r.model.clone(),
                id: r.uuid.clone(),
                memory_total: (used + r.free_mib.unwrap_or(0)) * MIB,
                memory_used: used * MIB,
                duty_cycle: util,
            });
    }
    let mut merged = 0;
    for pod in &mut summary.pods {
        for c in &mut pod.containers {
            let key = (
                pod.pod_ref.namespace.as_str(),
                pod.pod_ref.name.as_str(),
                c.name.as_str(),
            );
            if let Some(acc) = by_container.remove(&key) {
                merged += acc.len();
                c.accelerators = Some(acc);
            }
        }
    }
    merged
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXPORTER: &str = r#"# HELP DCGM_FI_DEV_GPU_UTIL GPU utilization (in %).
# TYPE DCGM_FI_DEV_GPU_UTIL gauge
DCGM_FI_DEV_GPU_UTIL{gpu="0",UUID="GPU-aaaa",device="nvidia0",modelName="Tesla T4",Hostname="node-1",container="trainer",namespace="research",pod="train-1"} 87
DCGM_FI_DEV_GPU_UTIL{gpu="1",UUID="GPU-bbbb",device="nvidia1",modelName="Tesla T4",Hostname="node-1",container="",namespace="",pod=""} 0
# TYPE DCGM_FI_DEV_FB_USED gauge
DCGM_FI_DEV_FB_USED{gpu="0",UUID="GPU-aaaa",device="nvidia0",modelName="Tesla T4",Hostname="node-1",container="trainer",namespace="research",pod="train-1"} 4096
DCGM_FI_DEV_FB_FREE{gpu="0",UUID="GPU-aaaa",device="nvidia0",modelName="Tesla T4",Hostname="node-1",container="trainer",namespace="research",pod="train-1"} 11264
DCGM_FI_DEV_SM_CLOCK{gpu="0",UUID="GPU-aaaa",container="trainer",namespace="research",pod="train-1"} 1590
"#;

    #[test]
    fn readings_of_pods_gpus_are_collected_and_idle_gpus_ignored() {
        let readings = parse(EXPORTER);
        assert_eq!(
            readings,
            vec![GpuReading {
                namespace: "research".into(),
                pod: "train-1".into(),
                container: "trainer".into(),
                uuid: "GPU-aaaa".into(),
                model: "Tesla T4".into(),
                util_percent: Some(87),
                used_mib: Some(4096),
                free_mib: Some(11264),
            }]
        );
    }

    #[test]
    fn escaped_label_values_are_read_back() {
        let (name, labels, value) = parse_line(r#"m{a="x\"y",b="1\\2"} 3.5"#).unwrap();
        assert_eq!((name, value), ("m", 3.5));
        assert_eq!(labels["a"], "x\"y");
        assert_eq!(labels["b"], "1\\2");
    }
}
