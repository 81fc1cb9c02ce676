//! The texts the checks read ([`Sources`]), and what Outrider serves and exports, read from them.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use regex::Regex;

pub(crate) fn repo_root() -> &'static Path {
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
pub(crate) struct Sources {
    /// (file name, text) of every conf/k8s/*.yaml, sorted by name.
    pub(crate) manifests: Vec<(String, String)>,
    pub(crate) endpoints_rs: String,
    pub(crate) metrics_rs: Vec<String>,
    pub(crate) dockerfile: String,
    pub(crate) cargo_toml: String,
    pub(crate) reference_conf: String,
}

impl Sources {
    pub(crate) fn from_repo() -> Sources {
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
    pub(crate) fn edited(&self, file: &str, from: &str, to: &str) -> Sources {
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
pub(crate) fn admin_endpoints(endpoints_rs: &str) -> Vec<(String, String)> {
    let row = Regex::new(r#"path:\s*"([^"]+)",\s*method:\s*Method::([A-Z]+)"#).expect("regex");
    row.captures_iter(endpoints_rs)
        .map(|c| (c[1].to_string(), c[2].to_string()))
        .collect()
}

pub(crate) struct Exported {
    pub(crate) names: BTreeSet<String>,
    histograms: BTreeSet<String>,
}

impl Exported {
    /// The metric names the registry defines: string literals that are a whole `outrider_`
    /// name (test assertions quote whole series lines, which this leaves out). Histograms are
    /// the names passed to `histogram_vec` or `HistogramOpts::new`.
    pub(crate) fn from_sources(metrics_rs: &[String]) -> Exported {
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
    pub(crate) fn has_series(&self, series: &str) -> bool {
        self.names.contains(series)
            || ["_bucket", "_sum", "_count"].iter().any(|suffix| {
                series
                    .strip_suffix(suffix)
                    .is_some_and(|base| self.histograms.contains(base))
            })
    }
}
