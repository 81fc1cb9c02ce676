//! The manifests, resolved into one [`World`].

use std::path::{Path, PathBuf};

use outrider::config::{compile, Policy};
use serde::Deserialize;
use serde_yaml_ng::{Mapping, Value};

use crate::k8s_manifests::sources::{admin_endpoints, Exported, Sources};
use crate::k8s_manifests::yaml::{at, named, resolve_port, seq_at, str_at};

// ---------------------------------------------------------------------------------------------
// The manifests, resolved.

pub(crate) struct Doc {
    pub(crate) file: String,
    pub(crate) value: Value,
}

pub(crate) struct World {
    pub(crate) docs: Vec<Doc>,
    pub(crate) deployment_name: String,
    pub(crate) pod: Value,
    pub(crate) pod_labels: Mapping,
    pub(crate) pod_annotations: Mapping,
    pub(crate) outrider: Value,
    pub(crate) config_path: PathBuf,
    pub(crate) config_map: String,
    pub(crate) policy: Policy,
    endpoints: Vec<(String, String)>,
    pub(crate) exported: Exported,
}

pub(crate) fn parse_docs(src: &Sources) -> Result<Vec<Doc>, String> {
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

pub(crate) fn of_kind<'a>(docs: &'a [Doc], kind: &str) -> Vec<&'a Doc> {
    docs.iter()
        .filter(|d| str_at(&d.value, &["kind"]) == Some(kind))
        .collect()
}

pub(crate) fn only<'a>(docs: &'a [Doc], kind: &str) -> Result<&'a Doc, String> {
    match of_kind(docs, kind).as_slice() {
        [one] => Ok(one),
        many => Err(format!(
            "expected one {kind} in conf/k8s, found {}",
            many.len()
        )),
    }
}

impl World {
    pub(crate) fn resolve(src: &Sources) -> Result<World, String> {
        let docs = parse_docs(src)?;
        // The app's Deployment is the one with the sidecar; others (the shared cache's
        // Redis) are workloads of their own.
        let with_sidecar: Vec<&Doc> = of_kind(&docs, "Deployment")
            .into_iter()
            .filter(|d| {
                let containers = seq_at(&d.value, &["spec", "template", "spec", "containers"]);
                named(containers, "outrider").is_some()
            })
            .collect();
        let deployment = match with_sidecar.as_slice() {
            [one] => &one.value,
            many => {
                return Err(format!(
                    "expected one Deployment with an outrider container in conf/k8s, found {}",
                    many.len()
                ))
            }
        };
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

    pub(crate) fn port_named(&self, name: &str) -> Option<u16> {
        resolve_port(&self.outrider, &Value::String(name.into()))
    }

    pub(crate) fn data_port(&self) -> Result<u16, String> {
        Ok(self
            .policy
            .server
            .listen
            .first()
            .ok_or("the policy has no server.listen")?
            .port())
    }

    pub(crate) fn admin_port(&self) -> u16 {
        self.policy.admin.listen.port()
    }

    pub(crate) fn serves_get(&self, path: &str) -> bool {
        self.endpoints.iter().any(|(p, m)| p == path && m == "GET")
    }
}

/// The pod template labels and containers of every Deployment in conf/k8s.
pub(crate) fn workloads(docs: &[Doc]) -> Vec<(Mapping, Vec<Value>)> {
    of_kind(docs, "Deployment")
        .into_iter()
        .map(|d| {
            let labels = at(&d.value, &["spec", "template", "metadata", "labels"])
                .and_then(Value::as_mapping)
                .cloned()
                .unwrap_or_default();
            let containers = seq_at(&d.value, &["spec", "template", "spec", "containers"]).to_vec();
            (labels, containers)
        })
        .collect()
}
