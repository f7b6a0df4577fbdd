//! The rendered chart: `scripts/chart_check.py render VALUES OUT_DIR` (the real Helm
//! library), every YAML document under OUT_DIR read back as JSON (PyYAML, which the
//! chart check's pinned `kubernetes-validate` brings), and the objects the test needs.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

/// The repository the chart and its check script come from: this checkout, unless
/// `SHARDLET_CHART_ROOT` names another (a chart being developed elsewhere).
pub fn repository_root() -> PathBuf {
    std::env::var_os("SHARDLET_CHART_ROOT")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join(".."))
}

/// Every object the chart renders with `values` (a path relative to the repository).
pub struct Manifests {
    pub objects: Vec<Value>,
}

impl Manifests {
    /// Renders the chart into `out` and reads it back.
    pub fn render(values: &str, out: &Path) -> Self {
        let root = repository_root();
        assert!(
            root.join("scripts/chart_check.py").exists() && root.join(values).exists(),
            "{} has no scripts/chart_check.py or {values}: the chart and its check script are what this suite runs",
            root.display()
        );
        let rendered = Command::new("python3")
            .current_dir(&root)
            .args(["scripts/chart_check.py", "render", values])
            .arg(out)
            .output()
            .unwrap_or_else(|error| panic!("python3 scripts/chart_check.py does not run: {error}"));
        assert!(
            rendered.status.success(),
            "rendering the chart with {values} failed ({}):\n{}\n{}",
            rendered.status,
            String::from_utf8_lossy(&rendered.stdout),
            String::from_utf8_lossy(&rendered.stderr)
        );
        Self::read(out)
    }

    /// Every YAML document under `directory` (recursively), in file-name order.
    pub fn read(directory: &Path) -> Self {
        const TO_JSON: &str = r#"
import json, pathlib, sys, yaml
objects = []
for path in sorted(pathlib.Path(sys.argv[1]).rglob("*")):
    if path.suffix in (".yaml", ".yml") and path.is_file():
        for document in yaml.safe_load_all(path.read_text()):
            if document:
                objects.append(document)
json.dump(objects, sys.stdout)
"#;
        let read = Command::new("python3")
            .args(["-c", TO_JSON])
            .arg(directory)
            .output()
            .unwrap_or_else(|error| panic!("python3 does not run: {error}"));
        assert!(
            read.status.success(),
            "cannot read the rendered manifests in {}: {}",
            directory.display(),
            String::from_utf8_lossy(&read.stderr)
        );
        let objects: Vec<Value> = serde_json::from_slice(&read.stdout).expect("JSON from python");
        assert!(
            !objects.is_empty(),
            "no manifest rendered into {}",
            directory.display()
        );
        Self { objects }
    }

    pub fn of_kind<'a>(&'a self, kind: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
        self.objects
            .iter()
            .filter(move |object| object["kind"] == kind)
    }

    /// The data of Secret or ConfigMap `name` as bytes (`data` decoded from base64 for
    /// a Secret, `binaryData` for a ConfigMap, `stringData`/`data` as text).
    pub fn data_of(&self, kind: &str, name: &str) -> Option<BTreeMap<String, Vec<u8>>> {
        use base64::Engine as _;
        let object = self
            .of_kind(kind)
            .find(|object| object["metadata"]["name"] == name)?;
        let mut data = BTreeMap::new();
        let encoded = if kind == "Secret" {
            "data"
        } else {
            "binaryData"
        };
        if let Some(map) = object[encoded].as_object() {
            for (key, value) in map {
                let text = value.as_str().unwrap_or_default();
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(text)
                    .unwrap_or_else(|error| panic!("{kind} {name}: {key} is not base64: {error}"));
                data.insert(key.clone(), bytes);
            }
        }
        let plain = if kind == "Secret" {
            "stringData"
        } else {
            "data"
        };
        if let Some(map) = object[plain].as_object() {
            for (key, value) in map {
                data.insert(key.clone(), text_of(value).into_bytes());
            }
        }
        Some(data)
    }
}

/// A scalar as Kubernetes would hold it in a string field.
pub fn text_of(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// `metadata.labels` (or any string map) as a map.
pub fn string_map(value: &Value) -> BTreeMap<String, String> {
    value
        .as_object()
        .map(|map| {
            map.iter()
                .map(|(key, value)| (key.clone(), text_of(value)))
                .collect()
        })
        .unwrap_or_default()
}

/// Objects that make pods and that this test does not run: refused by name rather than
/// silently skipped.
pub const POD_MAKING_KINDS_NOT_RUN: [&str; 3] = ["DaemonSet", "ReplicaSet", "CronJob"];
