//! The Kubernetes example (`conf/k8s/*.yaml`) and the Dockerfile, checked against what Outrider
//! really listens on, serves and exports.
//!
//! Nothing is started: the manifests are parsed, the ConfigMap's policy is compiled with the
//! same `config::compile` the binary uses, and the admin endpoints and metric names are read
//! from the sources that define them. So a renamed endpoint, a metric dropped from the
//! registry, or a port changed on one side only fails here instead of in a cluster.
//!
//! Every check reports a problem rather than panicking, so that `every_check_can_fail` can
//! break the shipped files one way at a time and see each check catch it.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use outrider::config::{compile, Policy};
use regex::Regex;
use serde::Deserialize;
use serde_yaml_ng::{Mapping, Value};

fn repo_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(repo_root().join(rel)).unwrap_or_else(|e| panic!("read {rel}: {e}"))
}

/// The *.rs files of a source directory, sorted by name.
fn read_rs_dir(rel: &str) -> Vec<String> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(repo_root().join(rel))
        .unwrap_or_else(|e| panic!("list {rel}: {e}"))
        .map(|entry| entry.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|ext| ext == "rs"))
        .collect();
    paths.sort();
    paths
        .iter()
        .map(|p| std::fs::read_to_string(p).unwrap_or_else(|e| panic!("read {p:?}: {e}")))
        .collect()
}

/// Every text the checks read, so that a test can alter one before checking.
#[derive(Clone)]
struct Sources {
    /// (file name, text) of every conf/k8s/*.yaml, sorted by name.
    manifests: Vec<(String, String)>,
    endpoints_rs: String,
    metrics_rs: Vec<String>,
    dockerfile: String,
    cargo_toml: String,
    reference_conf: String,
}

impl Sources {
    fn from_repo() -> Sources {
        let dir = repo_root().join("conf/k8s");
        let mut manifests: Vec<(String, String)> = std::fs::read_dir(&dir)
            .expect("list conf/k8s")
            .map(|entry| entry.expect("directory entry").path())
            .filter(|p| {
                p.extension()
                    .is_some_and(|ext| ext == "yaml" || ext == "yml")
            })
            .map(|p| {
                let name = p
                    .file_name()
                    .expect("file name")
                    .to_string_lossy()
                    .into_owned();
                let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{p:?}: {e}"));
                (name, text)
            })
            .collect();
        manifests.sort();
        Sources {
            manifests,
            endpoints_rs: read("src/admin/endpoints.rs"),
            metrics_rs: read_rs_dir("src/metrics"),
            dockerfile: read("Dockerfile"),
            cargo_toml: read("Cargo.toml"),
            reference_conf: read("conf/outrider.toml"),
        }
    }

    /// A copy with the first `from` in `file` replaced by `to`; `file` is a conf/k8s file
    /// name or "Dockerfile".
    fn edited(&self, file: &str, from: &str, to: &str) -> Sources {
        let mut copy = self.clone();
        let text = if file == "Dockerfile" {
            &mut copy.dockerfile
        } else {
            &mut copy
                .manifests
                .iter_mut()
                .find(|(name, _)| name == file)
                .unwrap_or_else(|| panic!("no conf/k8s/{file}"))
                .1
        };
        assert!(
            text.contains(from),
            "{file} no longer contains {from:?}: update this edit"
        );
        *text = text.replacen(from, to, 1);
        copy
    }
}

// ---------------------------------------------------------------------------------------------
// What Outrider serves and exports, read from its sources.

/// (path, method) of every admin endpoint in `ENDPOINTS`.
fn admin_endpoints(endpoints_rs: &str) -> Vec<(String, String)> {
    let row = Regex::new(r#"path:\s*"([^"]+)",\s*method:\s*Method::([A-Z]+)"#).expect("regex");
    row.captures_iter(endpoints_rs)
        .map(|c| (c[1].to_string(), c[2].to_string()))
        .collect()
}

struct Exported {
    names: BTreeSet<String>,
    histograms: BTreeSet<String>,
}

impl Exported {
    /// The metric names the registry defines: string literals that are a whole `outrider_`
    /// name (test assertions quote whole series lines, which this leaves out). Histograms are
    /// the names passed to `histogram_vec` or `HistogramOpts::new`.
    fn from_sources(metrics_rs: &[String]) -> Exported {
        let literal = Regex::new(r#""(outrider_[a-z0-9_]+)""#).expect("regex");
        let histogram =
            Regex::new(r#"(?:histogram_vec|HistogramOpts::new)\(\s*"(outrider_[a-z0-9_]+)""#)
                .expect("regex");
        let mut names = BTreeSet::new();
        let mut histograms = BTreeSet::new();
        for text in metrics_rs {
            names.extend(literal.captures_iter(text).map(|c| c[1].to_string()));
            histograms.extend(histogram.captures_iter(text).map(|c| c[1].to_string()));
        }
        Exported { names, histograms }
    }

    /// Whether Prometheus would hold a series of this name scraped from Outrider.
    fn has_series(&self, series: &str) -> bool {
        self.names.contains(series)
            || ["_bucket", "_sum", "_count"].iter().any(|suffix| {
                series
                    .strip_suffix(suffix)
                    .is_some_and(|base| self.histograms.contains(base))
            })
    }
}

// ---------------------------------------------------------------------------------------------
// YAML access.

fn at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter().try_fold(v, |v, key| v.get(key))
}

fn str_at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    at(v, path).and_then(Value::as_str)
}

fn seq_at<'a>(v: &'a Value, path: &[&str]) -> &'a [Value] {
    at(v, path)
        .and_then(Value::as_sequence)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

fn named<'a>(items: &'a [Value], name: &str) -> Option<&'a Value> {
    items.iter().find(|i| str_at(i, &["name"]) == Some(name))
}

/// Kubernetes' integer-or-string port: a number, or the name of one of the container's ports.
fn resolve_port(container: &Value, port: &Value) -> Option<u16> {
    match port {
        Value::Number(n) => n.as_u64().and_then(|n| u16::try_from(n).ok()),
        Value::String(name) => {
            let p = named(seq_at(container, &["ports"]), name)?;
            at(p, &["containerPort"])?
                .as_u64()
                .and_then(|n| u16::try_from(n).ok())
        }
        _ => None,
    }
}

/// Whether every label of `selector` is on the pod.
fn selects(selector: Option<&Value>, pod_labels: &Mapping) -> bool {
    match selector.and_then(Value::as_mapping) {
        Some(sel) if !sel.is_empty() => sel.iter().all(|(k, v)| pod_labels.get(k) == Some(v)),
        _ => false,
    }
}

/// A Kubernetes memory quantity ("128Mi", "1G", "1048576") in bytes.
fn quantity_bytes(q: &str) -> Option<u64> {
    let units: [(&str, u64); 8] = [
        ("Ki", 1 << 10),
        ("Mi", 1 << 20),
        ("Gi", 1 << 30),
        ("Ti", 1 << 40),
        ("k", 1_000),
        ("M", 1_000_000),
        ("G", 1_000_000_000),
        ("T", 1_000_000_000_000),
    ];
    for (suffix, factor) in units {
        if let Some(n) = q.strip_suffix(suffix) {
            return n.parse::<u64>().ok().map(|n| n * factor);
        }
    }
    q.parse().ok()
}

/// A duration as Pingora applies it: rounded up to whole seconds.
fn whole_seconds(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

/// Pingora's final stop after the grace period (`graceful_shutdown_timeout_seconds` in
/// src/server.rs).
const FINAL_STOP_SECONDS: u64 = 1;

// ---------------------------------------------------------------------------------------------
// The manifests, resolved.

struct Doc {
    file: String,
    value: Value,
}

struct World {
    docs: Vec<Doc>,
    deployment_name: String,
    pod: Value,
    pod_labels: Mapping,
    pod_annotations: Mapping,
    outrider: Value,
    config_path: PathBuf,
    config_map: String,
    policy: Policy,
    endpoints: Vec<(String, String)>,
    exported: Exported,
}

fn parse_docs(src: &Sources) -> Result<Vec<Doc>, String> {
    let mut docs = Vec::new();
    for (file, text) in &src.manifests {
        for de in serde_yaml_ng::Deserializer::from_str(text) {
            let value = Value::deserialize(de).map_err(|e| format!("{file}: {e}"))?;
            if value.is_null() {
                continue;
            }
            for key in ["apiVersion", "kind"] {
                if str_at(&value, &[key]).is_none() {
                    return Err(format!("{file}: a document without {key}"));
                }
            }
            if str_at(&value, &["metadata", "name"]).is_none() {
                return Err(format!("{file}: a document without metadata.name"));
            }
            docs.push(Doc {
                file: file.clone(),
                value,
            });
        }
    }
    Ok(docs)
}

fn of_kind<'a>(docs: &'a [Doc], kind: &str) -> Vec<&'a Doc> {
    docs.iter()
        .filter(|d| str_at(&d.value, &["kind"]) == Some(kind))
        .collect()
}

fn only<'a>(docs: &'a [Doc], kind: &str) -> Result<&'a Doc, String> {
    match of_kind(docs, kind).as_slice() {
        [one] => Ok(one),
        many => Err(format!(
            "expected one {kind} in conf/k8s, found {}",
            many.len()
        )),
    }
}

impl World {
    fn resolve(src: &Sources) -> Result<World, String> {
        let docs = parse_docs(src)?;
        let deployment = &only(&docs, "Deployment")?.value;
        let deployment_name = str_at(deployment, &["metadata", "name"])
            .unwrap_or_default()
            .to_string();
        let pod = at(deployment, &["spec", "template", "spec"])
            .ok_or("Deployment: no spec.template.spec")?
            .clone();
        let mapping = |path: &[&str]| {
            at(deployment, path)
                .and_then(Value::as_mapping)
                .cloned()
                .unwrap_or_default()
        };
        let pod_labels = mapping(&["spec", "template", "metadata", "labels"]);
        let pod_annotations = mapping(&["spec", "template", "metadata", "annotations"]);
        let outrider = named(seq_at(&pod, &["containers"]), "outrider")
            .ok_or("Deployment: no container named outrider")?
            .clone();

        let args: Vec<&str> = seq_at(&outrider, &["args"])
            .iter()
            .filter_map(Value::as_str)
            .collect();
        let config_path = args
            .iter()
            .position(|a| *a == "--config")
            .and_then(|i| args.get(i + 1))
            .map(PathBuf::from)
            .ok_or("Deployment: the outrider container's args give no `--config PATH`")?;
        let config_dir = config_path.parent().ok_or("--config has no directory")?;
        let config_key = config_path
            .file_name()
            .ok_or("--config names no file")?
            .to_string_lossy()
            .into_owned();

        // The policy comes from the ConfigMap mounted on the --config directory; a wrong
        // mount is reported by `config_mount` and the policy read from the only candidate.
        let mounted = seq_at(&outrider, &["volumeMounts"]).iter().find(|m| {
            str_at(m, &["mountPath"]).map(Path::new) == Some(config_dir)
                && str_at(m, &["subPath"]).is_none()
        });
        let config_map = match mounted.and_then(|m| str_at(m, &["name"])) {
            Some(volume) => named(seq_at(&pod, &["volumes"]), volume)
                .and_then(|v| str_at(v, &["configMap", "name"]))
                .map(str::to_string),
            None => None,
        };
        let config_map = match config_map {
            Some(name) => name,
            None => {
                let holders: Vec<&str> = of_kind(&docs, "ConfigMap")
                    .into_iter()
                    .filter(|d| at(&d.value, &["data", &config_key]).is_some())
                    .filter_map(|d| str_at(&d.value, &["metadata", "name"]))
                    .collect();
                match holders.as_slice() {
                    [one] => one.to_string(),
                    _ => return Err(format!("no single ConfigMap holds {config_key}")),
                }
            }
        };
        let cm = of_kind(&docs, "ConfigMap")
            .into_iter()
            .find(|d| str_at(&d.value, &["metadata", "name"]) == Some(&config_map))
            .ok_or_else(|| {
                format!("the Deployment mounts ConfigMap {config_map}, not in conf/k8s")
            })?;
        let text = str_at(&cm.value, &["data", &config_key]).ok_or_else(|| {
            format!(
                "{}: ConfigMap {config_map} has no key {config_key} (the --config file name)",
                cm.file
            )
        })?;
        let policy = compile(text, &cm.file).map_err(|errors| {
            let lines: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
            format!(
                "the ConfigMap's policy does not compile (lines within data.{config_key}):\n{}",
                lines.join("\n")
            )
        })?;

        Ok(World {
            docs,
            deployment_name,
            pod,
            pod_labels,
            pod_annotations,
            outrider,
            config_path,
            config_map,
            policy,
            endpoints: admin_endpoints(&src.endpoints_rs),
            exported: Exported::from_sources(&src.metrics_rs),
        })
    }

    fn port_named(&self, name: &str) -> Option<u16> {
        resolve_port(&self.outrider, &Value::String(name.into()))
    }

    fn data_port(&self) -> Result<u16, String> {
        Ok(self
            .policy
            .server
            .listen
            .first()
            .ok_or("the policy has no server.listen")?
            .port())
    }

    fn admin_port(&self) -> u16 {
        self.policy.admin.listen.port()
    }

    fn serves_get(&self, path: &str) -> bool {
        self.endpoints.iter().any(|(p, m)| p == path && m == "GET")
    }
}

// ---------------------------------------------------------------------------------------------
// The checks. Each returns the first problem it finds.

type Check = Result<(), String>;

fn container_ports(w: &World) -> Check {
    let data = w.data_port()?;
    match w.port_named("http") {
        Some(p) if p == data => {}
        other => {
            return Err(format!(
                "outrider container port `http` is {other:?}, the policy's data port (server.listen) is {data}"
            ))
        }
    }
    match w.port_named("admin") {
        Some(p) if p == w.admin_port() => Ok(()),
        other => Err(format!(
            "outrider container port `admin` is {other:?}, the policy's admin port (admin.listen) is {}",
            w.admin_port()
        )),
    }
}

fn listeners_reachable(w: &World) -> Check {
    // The kubelet and Prometheus connect to the pod IP, never to the container's loopback.
    if w.policy.admin.listen.ip().is_loopback() {
        return Err(format!(
            "admin.listen {} is loopback: probes and scrapes on the pod IP cannot reach it",
            w.policy.admin.listen
        ));
    }
    match w.policy.server.listen.iter().find(|a| a.ip().is_loopback()) {
        Some(a) => Err(format!(
            "server.listen {a} is loopback: the Service cannot reach it"
        )),
        None => Ok(()),
    }
}

fn probes(w: &World) -> Check {
    for (probe, path) in [("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")] {
        let get = at(&w.outrider, &[probe, "httpGet"])
            .ok_or_else(|| format!("outrider has no {probe}.httpGet"))?;
        let got = str_at(get, &["path"]).unwrap_or_default();
        if got != path {
            return Err(format!("outrider {probe} asks {got:?}, expected {path:?}"));
        }
        if !w.serves_get(got) {
            return Err(format!(
                "outrider {probe} asks {got:?}, which is not a GET endpoint in src/admin/endpoints.rs"
            ));
        }
        let port = at(get, &["port"]).and_then(|p| resolve_port(&w.outrider, p));
        if port != Some(w.admin_port()) {
            return Err(format!(
                "outrider {probe} goes to port {port:?}, the admin port is {}",
                w.admin_port()
            ));
        }
    }
    Ok(())
}

fn app_probes_through_outrider(w: &World) -> Check {
    // The app binds loopback, so a probe of it on the pod IP must come through the data port.
    let data = w.data_port()?;
    for c in seq_at(&w.pod, &["containers"]) {
        let name = str_at(c, &["name"]).unwrap_or_default();
        if name == "outrider" {
            continue;
        }
        for probe in ["readinessProbe", "livenessProbe", "startupProbe"] {
            let Some(port) = at(c, &[probe, "httpGet", "port"]) else {
                continue;
            };
            let resolved = resolve_port(c, port);
            if resolved != Some(data) {
                return Err(format!(
                    "container {name} {probe} goes to port {resolved:?}, Outrider's data port is {data}"
                ));
            }
        }
    }
    Ok(())
}

fn liveness_outlasts_drain(w: &World) -> Check {
    // The admin listener closes with the data listeners when a drain starts; the liveness
    // probe must not give up on the container before the drain can end.
    let live = at(&w.outrider, &["livenessProbe"]).ok_or("outrider has no livenessProbe")?;
    let period = at(live, &["periodSeconds"])
        .and_then(Value::as_u64)
        .unwrap_or(10);
    let failures = at(live, &["failureThreshold"])
        .and_then(Value::as_u64)
        .unwrap_or(3);
    let drain = whole_seconds(w.policy.server.grace_period) + FINAL_STOP_SECONDS;
    if period * failures > drain {
        Ok(())
    } else {
        Err(format!(
            "livenessProbe gives up after {period}s x {failures} = {}s, within a drain of up to {drain}s",
            period * failures
        ))
    }
}

fn config_mount(w: &World) -> Check {
    let dir = w.config_path.parent().unwrap_or(Path::new("/"));
    let mounts = seq_at(&w.outrider, &["volumeMounts"]);
    if let Some(m) = mounts.iter().find(|m| str_at(m, &["subPath"]).is_some()) {
        let path = str_at(m, &["mountPath"]).unwrap_or_default();
        return Err(format!(
            "outrider mounts {path} with subPath: such a mount never sees a ConfigMap update"
        ));
    }
    let mount = mounts
        .iter()
        .find(|m| str_at(m, &["mountPath"]).map(Path::new) == Some(dir))
        .ok_or_else(|| {
            format!(
                "no volume mounted at {} (the directory of --config {})",
                dir.display(),
                w.config_path.display()
            )
        })?;
    let volume = str_at(mount, &["name"]).unwrap_or_default();
    let source =
        named(seq_at(&w.pod, &["volumes"]), volume).and_then(|v| str_at(v, &["configMap", "name"]));
    if source != Some(w.config_map.as_str()) {
        return Err(format!(
            "the mount at {} is volume {volume:?} from ConfigMap {source:?}, expected {}",
            dir.display(),
            w.config_map
        ));
    }
    Ok(())
}

fn writable_tmp(w: &World) -> Check {
    // Pingora keeps its upgrade socket in /tmp, and the root filesystem is read-only.
    let read_only = at(&w.outrider, &["securityContext", "readOnlyRootFilesystem"])
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let tmp = seq_at(&w.outrider, &["volumeMounts"])
        .iter()
        .find(|m| str_at(m, &["mountPath"]) == Some("/tmp"));
    match tmp {
        None if read_only => Err("readOnlyRootFilesystem without a volume at /tmp".into()),
        Some(m) if at(m, &["readOnly"]).and_then(Value::as_bool) == Some(true) => {
            Err("/tmp is mounted read-only".into())
        }
        _ => Ok(()),
    }
}

fn termination_grace(w: &World) -> Check {
    let grace = at(&w.pod, &["terminationGracePeriodSeconds"])
        .and_then(Value::as_u64)
        .unwrap_or(30);
    let drain = whole_seconds(w.policy.server.grace_period) + FINAL_STOP_SECONDS;
    if grace > drain {
        Ok(())
    } else {
        Err(format!(
            "terminationGracePeriodSeconds {grace} does not exceed server.grace_period {:?} \
             (+{FINAL_STOP_SECONDS}s final stop): SIGKILL would cut the drain short",
            w.policy.server.grace_period
        ))
    }
}

fn cache_fits_memory_limit(w: &World) -> Check {
    let limit = str_at(&w.outrider, &["resources", "limits", "memory"])
        .ok_or("outrider has no memory limit")?;
    let bytes = quantity_bytes(limit).ok_or_else(|| format!("unreadable quantity {limit:?}"))?;
    let cache = w.policy.cache_store.max_size;
    if cache < bytes {
        Ok(())
    } else {
        Err(format!(
            "[cache] max_size {cache} bytes does not fit the {limit} memory limit"
        ))
    }
}

fn service(w: &World) -> Check {
    let data = w.data_port()?;
    for doc in of_kind(&w.docs, "Service") {
        let name = str_at(&doc.value, &["metadata", "name"]).unwrap_or_default();
        if !selects(at(&doc.value, &["spec", "selector"]), &w.pod_labels) {
            return Err(format!(
                "Service {name}: its selector does not match the pod"
            ));
        }
        let ports = seq_at(&doc.value, &["spec", "ports"]);
        if ports.is_empty() {
            return Err(format!("Service {name} has no ports"));
        }
        for p in ports {
            // Kubernetes defaults targetPort to port.
            let target = at(p, &["targetPort"]).or_else(|| at(p, &["port"]));
            let resolved = target.and_then(|t| resolve_port(&w.outrider, t));
            if resolved == Some(w.admin_port()) {
                return Err(format!("Service {name} exposes the admin port"));
            }
            if resolved != Some(data) {
                return Err(format!(
                    "Service {name} targets port {resolved:?}, the data port is {data}"
                ));
            }
        }
    }
    Ok(())
}

fn pod_monitor(w: &World) -> Check {
    let pm = &only(&w.docs, "PodMonitor")?.value;
    if str_at(pm, &["apiVersion"]) != Some("monitoring.coreos.com/v1") {
        return Err("PodMonitor: apiVersion is not monitoring.coreos.com/v1".into());
    }
    if !selects(at(pm, &["spec", "selector", "matchLabels"]), &w.pod_labels) {
        return Err("PodMonitor: its selector does not match the pod".into());
    }
    let endpoints = seq_at(pm, &["spec", "podMetricsEndpoints"]);
    if endpoints.is_empty() {
        return Err("PodMonitor: no podMetricsEndpoints".into());
    }
    for e in endpoints {
        let port = str_at(e, &["port"]).unwrap_or_default();
        if w.port_named(port) != Some(w.admin_port()) {
            return Err(format!(
                "PodMonitor scrapes port {port:?}, not the outrider container's admin port"
            ));
        }
        let path = str_at(e, &["path"]).unwrap_or("/metrics");
        if path != "/metrics" || !w.serves_get(path) {
            return Err(format!("PodMonitor scrapes {path:?}, not /metrics"));
        }
    }
    Ok(())
}

fn scrape_annotations(w: &World) -> Check {
    let get = |k: &str| {
        w.pod_annotations
            .get(k)
            .and_then(Value::as_str)
            .unwrap_or_default()
    };
    if get("prometheus.io/scrape") != "true" {
        return Err("pod annotation prometheus.io/scrape is not \"true\"".into());
    }
    if get("prometheus.io/port") != w.admin_port().to_string() {
        return Err(format!(
            "pod annotation prometheus.io/port is {:?}, the admin port is {}",
            get("prometheus.io/port"),
            w.admin_port()
        ));
    }
    let path = get("prometheus.io/path");
    if path != "/metrics" || !w.serves_get(path) {
        return Err(format!("pod annotation prometheus.io/path is {path:?}"));
    }
    Ok(())
}

/// The adapter's rules: the parsed `rules` of the ConfigMap holding `config.yaml`.
fn adapter_rules(w: &World) -> Result<Vec<Value>, String> {
    let holders: Vec<&Doc> = of_kind(&w.docs, "ConfigMap")
        .into_iter()
        .filter(|d| at(&d.value, &["data", "config.yaml"]).is_some())
        .collect();
    let [doc] = holders.as_slice() else {
        return Err(format!(
            "expected one prometheus-adapter ConfigMap (key config.yaml), found {}",
            holders.len()
        ));
    };
    let text = str_at(&doc.value, &["data", "config.yaml"]).unwrap_or_default();
    let config: Value =
        serde_yaml_ng::from_str(text).map_err(|e| format!("{}: config.yaml: {e}", doc.file))?;
    let rules = seq_at(&config, &["rules"]).to_vec();
    if rules.is_empty() {
        return Err(format!("{}: config.yaml has no rules", doc.file));
    }
    Ok(rules)
}

fn adapter_metrics_exist(w: &World) -> Check {
    let name = Regex::new(r"\boutrider_[A-Za-z0-9_]+").expect("regex");
    for rule in adapter_rules(w)? {
        let mut seen = 0;
        for field in [
            &["seriesQuery"][..],
            &["metricsQuery"],
            &["name", "matches"],
        ] {
            for m in name.find_iter(str_at(&rule, field).unwrap_or_default()) {
                seen += 1;
                if !w.exported.has_series(m.as_str()) {
                    return Err(format!(
                        "adapter rule {}: {} is not a series Outrider exports",
                        field.join("."),
                        m.as_str()
                    ));
                }
            }
        }
        if seen == 0 {
            return Err("an adapter rule names no outrider_ series".into());
        }
    }
    Ok(())
}

fn hpa(w: &World) -> Check {
    let h = &only(&w.docs, "HorizontalPodAutoscaler")?.value;
    let target = at(h, &["spec", "scaleTargetRef"]).ok_or("HPA: no scaleTargetRef")?;
    let (kind, name) = (
        str_at(target, &["kind"]).unwrap_or_default(),
        str_at(target, &["name"]).unwrap_or_default(),
    );
    if kind != "Deployment" || name != w.deployment_name {
        return Err(format!(
            "HPA scaleTargetRef is {kind} {name}, the Deployment is {}",
            w.deployment_name
        ));
    }
    let provided: BTreeSet<String> = adapter_rules(w)?
        .iter()
        .filter_map(|r| str_at(r, &["name", "as"]).map(str::to_string))
        .collect();
    let metrics = seq_at(h, &["spec", "metrics"]);
    if metrics.is_empty() {
        return Err("HPA: no metrics".into());
    }
    for m in metrics {
        if let Some(metric) = str_at(m, &["pods", "metric", "name"]) {
            if !provided.contains(metric) {
                return Err(format!(
                    "HPA scales on {metric}, which no adapter rule provides (have {provided:?})"
                ));
            }
        }
    }
    Ok(())
}

type CheckFn = fn(&World) -> Check;

const K8S_CHECKS: &[(&str, CheckFn)] = &[
    ("container ports", container_ports),
    ("reachable listeners", listeners_reachable),
    ("probes", probes),
    ("app probes", app_probes_through_outrider),
    ("liveness vs drain", liveness_outlasts_drain),
    ("config mount", config_mount),
    ("writable /tmp", writable_tmp),
    ("termination grace", termination_grace),
    ("cache vs memory limit", cache_fits_memory_limit),
    ("service", service),
    ("pod monitor", pod_monitor),
    ("scrape annotations", scrape_annotations),
    ("adapter metrics", adapter_metrics_exist),
    ("hpa", hpa),
];

fn k8s_problems(src: &Sources) -> Vec<String> {
    match World::resolve(src) {
        Err(e) => vec![e],
        Ok(w) => K8S_CHECKS
            .iter()
            .filter_map(|(what, check)| check(&w).err().map(|e| format!("{what}: {e}")))
            .collect(),
    }
}

// ---------------------------------------------------------------------------------------------
// The Dockerfile.

/// Instructions with their continuation lines joined, comments dropped.
fn dockerfile_instructions(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let line = line.trim();
        if current.is_empty() && (line.is_empty() || line.starts_with('#')) {
            continue;
        }
        match line.strip_suffix('\\') {
            Some(head) => {
                current.push_str(head);
                current.push(' ');
            }
            None => {
                current.push_str(line);
                out.push(std::mem::take(&mut current));
            }
        }
    }
    out
}

fn dockerfile_problems(src: &Sources) -> Vec<String> {
    let mut problems = Vec::new();
    let instructions = dockerfile_instructions(&src.dockerfile);
    let args = |keyword: &str| -> Vec<Vec<String>> {
        instructions
            .iter()
            .filter_map(|i| {
                let (head, rest) = i.split_once(char::is_whitespace)?;
                head.eq_ignore_ascii_case(keyword)
                    .then(|| rest.split_whitespace().map(str::to_string).collect())
            })
            .collect()
    };

    // What the build context must hold; a COPY --from reads another stage instead.
    for copy in args("COPY") {
        if copy.iter().any(|a| a.starts_with("--from")) {
            continue;
        }
        let operands: Vec<&String> = copy.iter().filter(|a| !a.starts_with("--")).collect();
        for source in operands.iter().take(operands.len().saturating_sub(1)) {
            if !repo_root().join(source).exists() {
                problems.push(format!("Dockerfile copies {source}, which does not exist"));
            }
        }
    }

    let conf = match compile(&src.reference_conf, "conf/outrider.toml") {
        Ok(policy) => policy,
        Err(errors) => {
            let lines: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
            problems.push(format!(
                "conf/outrider.toml does not compile:\n{}",
                lines.join("\n")
            ));
            return problems;
        }
    };
    let admin_port = conf.admin.listen.port();
    let mut expected: Vec<u16> = conf.server.listen.iter().map(|a| a.port()).collect();
    expected.push(admin_port);
    expected.sort_unstable();
    let mut exposed: Vec<u16> = args("EXPOSE")
        .into_iter()
        .flatten()
        .filter_map(|p| p.split('/').next().and_then(|n| n.parse().ok()))
        .collect();
    exposed.sort_unstable();
    if exposed != expected {
        problems.push(format!(
            "Dockerfile exposes {exposed:?}; conf/outrider.toml listens on {expected:?}"
        ));
    }

    let endpoints = admin_endpoints(&src.endpoints_rs);
    let url = args("HEALTHCHECK")
        .into_iter()
        .flatten()
        .find_map(|a| a.strip_prefix("http://").map(str::to_string));
    match url {
        None => problems.push("Dockerfile has no HEALTHCHECK with an http:// URL".into()),
        Some(url) => {
            let (authority, path) = url.split_at(url.find('/').unwrap_or(url.len()));
            let port = authority
                .rsplit_once(':')
                .and_then(|(_, p)| p.parse::<u16>().ok());
            if path != "/healthz" || !endpoints.iter().any(|(p, m)| p == path && m == "GET") {
                problems.push(format!("HEALTHCHECK asks {path:?}, expected /healthz"));
            }
            if port != Some(admin_port) {
                problems.push(format!(
                    "HEALTHCHECK goes to port {port:?}, conf/outrider.toml's admin port is {admin_port}"
                ));
            }
        }
    }

    let profile_re = Regex::new(r"cargo build\b[^&;|]*--profile[= ](\S+)").expect("regex");
    match profile_re.captures(&src.dockerfile) {
        None => problems.push("Dockerfile does not run `cargo build --profile NAME`".into()),
        Some(c) => {
            let profile = &c[1];
            let manifest: toml::Table = match toml::from_str(&src.cargo_toml) {
                Ok(t) => t,
                Err(e) => {
                    problems.push(format!("Cargo.toml: {e}"));
                    return problems;
                }
            };
            let defined = manifest
                .get("profile")
                .and_then(|p| p.get(profile))
                .is_some();
            if !defined {
                problems.push(format!(
                    "Dockerfile builds --profile {profile}, which Cargo.toml does not define"
                ));
            }
            // Cargo puts a profile's output in target/<profile>/.
            if !src
                .dockerfile
                .contains(&format!("target/{profile}/outrider"))
            {
                problems.push(format!(
                    "Dockerfile does not take the binary from target/{profile}/"
                ));
            }
        }
    }
    problems
}

// ---------------------------------------------------------------------------------------------
// Tests.

#[test]
fn k8s_manifests_agree_with_outrider() {
    let problems = k8s_problems(&Sources::from_repo());
    assert!(problems.is_empty(), "conf/k8s:\n{}", problems.join("\n"));
}

#[test]
fn every_k8s_file_is_parsed() {
    let src = Sources::from_repo();
    let docs = parse_docs(&src).expect("conf/k8s parses");
    let kinds: BTreeSet<&str> = docs
        .iter()
        .filter_map(|d| str_at(&d.value, &["kind"]))
        .collect();
    for kind in [
        "Deployment",
        "ConfigMap",
        "Service",
        "PodMonitor",
        "HorizontalPodAutoscaler",
    ] {
        assert!(
            kinds.contains(kind),
            "no {kind} in conf/k8s (have {kinds:?})"
        );
    }
    for (file, _) in &src.manifests {
        assert!(
            docs.iter().any(|d| &d.file == file),
            "{file} holds no document"
        );
    }
}

#[test]
fn dockerfile_agrees_with_the_repository() {
    let problems = dockerfile_problems(&Sources::from_repo());
    assert!(problems.is_empty(), "Dockerfile:\n{}", problems.join("\n"));
}

/// The source scan finds the registry's names and tells histograms apart, else the adapter
/// check would pass or fail for the wrong reason.
#[test]
fn exported_metric_names_are_found() {
    let exported = Exported::from_sources(&Sources::from_repo().metrics_rs);
    for name in [
        "outrider_requests_total",
        "outrider_request_duration_seconds",
        "outrider_config_reloads_total",
        "outrider_cache_objects",
    ] {
        assert!(exported.names.contains(name), "{name} not found");
    }
    assert!(exported.has_series("outrider_request_duration_seconds_bucket"));
    assert!(exported.has_series("outrider_upstream_duration_seconds_count"));
    assert!(!exported.has_series("outrider_requests_total_bucket"));
    assert!(!exported.has_series("outrider_requests"));
}

/// Each check catches the mistake it is there for: the shipped files, broken one way at a time.
#[test]
fn every_check_can_fail() {
    let src = Sources::from_repo();
    let k8s: &[(&str, &str, &str, &str)] = &[
        // (file, text, replacement, expected in a problem)
        (
            "configmap.yaml",
            r#"listen = "0.0.0.0:8080""#,
            r#"listen = "0.0.0.0:8081""#,
            "data port",
        ),
        (
            "deployment.yaml",
            "containerPort: 9901",
            "containerPort: 9902",
            "admin port (admin.listen)",
        ),
        (
            "configmap.yaml",
            r#"listen = "0.0.0.0:9901""#,
            r#"listen = "127.0.0.1:9901""#,
            "admin.listen 127.0.0.1:9901 is loopback",
        ),
        (
            "configmap.yaml",
            r#"listen = "0.0.0.0:8080""#,
            r#"listen = "127.0.0.1:8080""#,
            "server.listen 127.0.0.1:8080 is loopback",
        ),
        (
            "configmap.yaml",
            "threads = 2",
            r#"threads = "two""#,
            "does not compile",
        ),
        (
            "deployment.yaml",
            "path: /readyz",
            "path: /ready",
            "readinessProbe asks \"/ready\"",
        ),
        (
            "deployment.yaml",
            "path: /healthz\n              port: admin",
            "path: /healthz\n              port: http",
            "livenessProbe goes to port Some(8080)",
        ),
        (
            "deployment.yaml",
            "port: 8080",
            "port: 3000",
            "container app readinessProbe goes to port Some(3000)",
        ),
        (
            "deployment.yaml",
            "periodSeconds: 15",
            "periodSeconds: 5",
            "livenessProbe gives up",
        ),
        (
            "deployment.yaml",
            "mountPath: /etc/outrider\n",
            "mountPath: /etc/outrider/outrider.toml\n              subPath: outrider.toml\n",
            "subPath",
        ),
        (
            "deployment.yaml",
            "mountPath: /etc/outrider\n",
            "mountPath: /etc/conf\n",
            "no volume mounted at /etc/outrider",
        ),
        (
            "deployment.yaml",
            "mountPath: /tmp",
            "mountPath: /scratch",
            "without a volume at /tmp",
        ),
        (
            "deployment.yaml",
            "terminationGracePeriodSeconds: 30",
            "terminationGracePeriodSeconds: 20",
            "terminationGracePeriodSeconds 20",
        ),
        (
            "configmap.yaml",
            r#"max_size = "48MiB""#,
            r#"max_size = "256MiB""#,
            "memory limit",
        ),
        (
            "service.yaml",
            "targetPort: http",
            "targetPort: admin",
            "exposes the admin port",
        ),
        (
            "service.yaml",
            "targetPort: http",
            "targetPort: 3000",
            "targets port Some(3000)",
        ),
        (
            "service.yaml",
            "  selector:\n    app.kubernetes.io/name: example-app",
            "  selector:\n    app.kubernetes.io/name: other-app",
            "selector does not match",
        ),
        (
            "podmonitor.yaml",
            "- port: admin",
            "- port: http",
            "scrapes port \"http\"",
        ),
        (
            "podmonitor.yaml",
            "path: /metrics",
            "path: /stats",
            "scrapes \"/stats\"",
        ),
        (
            "deployment.yaml",
            r#"prometheus.io/port: "9901""#,
            r#"prometheus.io/port: "8080""#,
            "prometheus.io/port is \"8080\"",
        ),
        (
            "hpa.yaml",
            "    kind: Deployment\n    name: example-app",
            "    kind: Deployment\n    name: other-app",
            "scaleTargetRef is Deployment other-app",
        ),
        (
            "hpa.yaml",
            "name: outrider_requests_per_second",
            "name: outrider_rps",
            "no adapter rule provides",
        ),
        (
            "prometheus-adapter-rules.yaml",
            "rate(outrider_requests_total{",
            "rate(outrider_requests_count{",
            "outrider_requests_count is not a series",
        ),
        (
            "prometheus-adapter-rules.yaml",
            "rate(outrider_requests_total{",
            "rate(outrider_requests_total_bucket{",
            "outrider_requests_total_bucket is not a series",
        ),
        (
            "prometheus-adapter-rules.yaml",
            "seriesQuery: 'outrider_request_duration_seconds_bucket",
            "seriesQuery: 'outrider_request_latency_seconds_bucket",
            "outrider_request_latency_seconds_bucket is not a series",
        ),
    ];
    for (file, from, to, expected) in k8s {
        let problems = k8s_problems(&src.edited(file, from, to));
        assert!(
            problems.iter().any(|p| p.contains(expected)),
            "{file}: {from:?} -> {to:?} should report {expected:?}; got {problems:#?}"
        );
    }

    let docker: &[(&str, &str, &str)] = &[
        ("EXPOSE 8080 9901", "EXPOSE 8080 9902", "Dockerfile exposes"),
        (
            "9901/healthz",
            "9901/health",
            "HEALTHCHECK asks \"/health\"",
        ),
        (
            "127.0.0.1:9901/",
            "127.0.0.1:9902/",
            "HEALTHCHECK goes to port",
        ),
        (
            "--profile dist",
            "--profile shipping",
            "--profile shipping, which Cargo.toml does not define",
        ),
        (
            "target/dist/outrider",
            "target/release/outrider",
            "target/dist/",
        ),
        (
            "COPY conf/outrider.toml",
            "COPY conf/absent.toml",
            "copies conf/absent.toml",
        ),
    ];
    for (from, to, expected) in docker {
        let problems = dockerfile_problems(&src.edited("Dockerfile", from, to));
        assert!(
            problems.iter().any(|p| p.contains(expected)),
            "Dockerfile: {from:?} -> {to:?} should report {expected:?}; got {problems:#?}"
        );
    }
}
