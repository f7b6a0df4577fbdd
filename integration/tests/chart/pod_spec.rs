//! The pods the rendered workloads ask for, as Kubernetes' controllers would make them:
//! a StatefulSet's `replicas` pods `NAME-0…`, with stable host names under their
//! `serviceName` and one claim per `volumeClaimTemplate`; a Deployment's `replicas` pods;
//! a Job's pod; a bare Pod. Helm hooks are told apart by their annotation.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::manifests::{string_map, text_of, Manifests, POD_MAKING_KINDS_NOT_RUN};

/// When Helm creates the object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    /// With the release: the workloads.
    Install,
    /// A `post-install` hook: after the release's objects (here: after every pod is
    /// ready, as `helm install --wait` would).
    PostInstall,
    /// A `helm test` hook.
    Test,
}

/// How a pod's containers are restarted (`spec.restartPolicy`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RestartPolicy {
    Always,
    OnFailure,
    Never,
}

/// One pod to run.
#[derive(Clone, Debug)]
pub struct PodTemplate {
    /// The pod's name (`metadata.name`, and its host name).
    pub name: String,
    /// What made it: `StatefulSet/NAME`, `Deployment/NAME`, `Job/NAME`, `Pod/NAME`.
    pub owner: String,
    pub stage: Stage,
    /// Helm's `helm.sh/hook-weight` (hooks of one stage run lightest first).
    pub weight: i64,
    pub labels: BTreeMap<String, String>,
    pub spec: Value,
    /// The headless service of a StatefulSet pod (`spec.serviceName`): the pod is
    /// `NAME.SERVICE.NAMESPACE.svc…`.
    pub subdomain: Option<String>,
    /// Volume name → claim name (a StatefulSet's `volumeClaimTemplates`).
    pub claims: BTreeMap<String, String>,
    pub restart_policy: RestartPolicy,
    /// Retries of a failed Job pod (`backoffLimit`, default 6).
    pub retries_max: u32,
    /// The pod that must be ready before this one is created: the previous ordinal of a
    /// StatefulSet with `podManagementPolicy: OrderedReady` (Kubernetes' default).
    pub after: Option<String>,
}

/// Every pod the manifests describe, in manifest order.
pub fn pods_of(manifests: &Manifests) -> Vec<PodTemplate> {
    let mut pods = Vec::new();
    for object in &manifests.objects {
        let kind = object["kind"].as_str().unwrap_or_default();
        let name = text_of(&object["metadata"]["name"]);
        assert!(
            !POD_MAKING_KINDS_NOT_RUN.contains(&kind),
            "the chart renders a {kind} ({name}); this test runs StatefulSets, Deployments, Jobs and Pods only"
        );
        let annotations = string_map(&object["metadata"]["annotations"]);
        let hook = annotations.get("helm.sh/hook").cloned().unwrap_or_default();
        let hooks: Vec<&str> = hook.split(',').map(str::trim).collect();
        let stage = if hook.is_empty() {
            Stage::Install
        } else if hooks.iter().any(|hook| hook.starts_with("test")) {
            Stage::Test
        } else if hooks.contains(&"post-install") {
            Stage::PostInstall
        } else if hooks.contains(&"pre-install") {
            panic!("{kind} {name}: a pre-install hook; this test does not run those yet");
        } else {
            // post-upgrade, pre-delete, …: not part of an install.
            continue;
        };
        let weight = annotations
            .get("helm.sh/hook-weight")
            .map(|weight| {
                weight
                    .trim()
                    .parse()
                    .unwrap_or_else(|_| panic!("{kind} {name}: hook weight {weight:?}"))
            })
            .unwrap_or(0);
        match kind {
            "StatefulSet" => {
                let spec = &object["spec"];
                let replicas = spec["replicas"].as_u64().unwrap_or(1);
                let service = text_of(&spec["serviceName"]);
                let ordered = spec["podManagementPolicy"]
                    .as_str()
                    .unwrap_or("OrderedReady")
                    != "Parallel";
                for ordinal in 0..replicas {
                    let pod = format!("{name}-{ordinal}");
                    let mut template =
                        from_template(&spec["template"], &pod, kind, &name, stage, weight);
                    template
                        .labels
                        .insert("statefulset.kubernetes.io/pod-name".into(), pod.clone());
                    template
                        .labels
                        .insert("apps.kubernetes.io/pod-index".into(), ordinal.to_string());
                    template.subdomain = (!service.is_empty()).then(|| service.clone());
                    if ordered && ordinal > 0 {
                        template.after = Some(format!("{name}-{}", ordinal - 1));
                    }
                    for claim in spec["volumeClaimTemplates"]
                        .as_array()
                        .into_iter()
                        .flatten()
                    {
                        let volume = text_of(&claim["metadata"]["name"]);
                        template
                            .claims
                            .insert(volume.clone(), format!("{volume}-{pod}"));
                    }
                    pods.push(template);
                }
            }
            "Deployment" => {
                let spec = &object["spec"];
                let replicas = spec["replicas"].as_u64().unwrap_or(1);
                let hash = template_hash(&spec["template"]);
                for index in 0..replicas {
                    let pod = format!("{name}-{hash}-{index:05}");
                    pods.push(from_template(
                        &spec["template"],
                        &pod,
                        kind,
                        &name,
                        stage,
                        weight,
                    ));
                }
            }
            "Job" => {
                let spec = &object["spec"];
                let pod = format!(
                    "{name}-{}",
                    template_hash(&spec["template"]).get(..5).unwrap_or("00000")
                );
                let mut template =
                    from_template(&spec["template"], &pod, kind, &name, stage, weight);
                template.labels.insert("job-name".into(), name.clone());
                template.retries_max = spec["backoffLimit"]
                    .as_u64()
                    .map_or(6, |limit| u32::try_from(limit).unwrap_or(u32::MAX));
                pods.push(template);
            }
            "Pod" => {
                let mut template = from_template(object, &name, kind, &name, stage, weight);
                template.retries_max = 0;
                pods.push(template);
            }
            _ => {}
        }
    }
    pods
}

fn from_template(
    template: &Value,
    pod: &str,
    kind: &str,
    owner: &str,
    stage: Stage,
    weight: i64,
) -> PodTemplate {
    let spec = template["spec"].clone();
    let restart_policy = match spec["restartPolicy"].as_str() {
        None | Some("Always") => RestartPolicy::Always,
        Some("OnFailure") => RestartPolicy::OnFailure,
        Some("Never") => RestartPolicy::Never,
        Some(other) => panic!("{kind} {owner}: restartPolicy {other:?}"),
    };
    if matches!(kind, "Job" | "Pod") {
        assert!(
            restart_policy != RestartPolicy::Always || kind == "Pod",
            "{kind} {owner}: a Job's pods need restartPolicy OnFailure or Never"
        );
    }
    PodTemplate {
        name: pod.to_string(),
        owner: format!("{kind}/{owner}"),
        stage,
        weight,
        labels: string_map(&template["metadata"]["labels"]),
        spec,
        subdomain: None,
        claims: BTreeMap::new(),
        restart_policy,
        retries_max: 0,
        after: None,
    }
}

/// Ten hex digits naming a pod template, like a Deployment's `pod-template-hash`.
fn template_hash(template: &Value) -> String {
    use sha2::Digest as _;
    let digest = sha2::Sha256::digest(template.to_string().as_bytes());
    hex::encode(&digest[..5])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifests(objects: serde_json::Value) -> Manifests {
        Manifests {
            objects: objects.as_array().unwrap().clone(),
        }
    }

    fn pod_template(labels: serde_json::Value) -> serde_json::Value {
        serde_json::json!({
            "metadata": {"labels": labels},
            "spec": {"containers": [{"name": "c", "image": "shardlet/shardlet:1"}]}
        })
    }

    #[test]
    fn statefulset_pods_are_named_by_ordinal_with_claims_and_order() {
        let rendered = manifests(serde_json::json!([
            {"kind": "StatefulSet", "metadata": {"name": "meta"}, "spec": {
                "replicas": 3, "serviceName": "meta-headless",
                "template": pod_template(serde_json::json!({"app": "meta"})),
                "volumeClaimTemplates": [{"metadata": {"name": "data"}}]}},
            {"kind": "StatefulSet", "metadata": {"name": "node"}, "spec": {
                "replicas": 2, "serviceName": "nodes", "podManagementPolicy": "Parallel",
                "template": pod_template(serde_json::json!({"app": "node"}))}},
            {"kind": "Service", "metadata": {"name": "meta-headless"}, "spec": {}},
        ]));
        let pods = pods_of(&rendered);
        let names: Vec<&str> = pods.iter().map(|pod| pod.name.as_str()).collect();
        assert_eq!(names, ["meta-0", "meta-1", "meta-2", "node-0", "node-1"]);
        assert_eq!(pods[1].claims["data"], "data-meta-1");
        assert_eq!(pods[1].subdomain.as_deref(), Some("meta-headless"));
        assert_eq!(
            pods[2].labels["statefulset.kubernetes.io/pod-name"],
            "meta-2"
        );
        assert_eq!(pods[0].after, None);
        assert_eq!(
            pods[2].after.as_deref(),
            Some("meta-1"),
            "OrderedReady is the default"
        );
        assert_eq!(pods[4].after, None, "Parallel starts together");
        assert!(pods.iter().all(|pod| pod.stage == Stage::Install));
    }

    #[test]
    fn hooks_are_told_apart_and_upgrade_only_hooks_are_not_installed() {
        let job = |name: &str, hook: &str| {
            serde_json::json!({"kind": "Job", "metadata": {"name": name,
                "annotations": {"helm.sh/hook": hook, "helm.sh/hook-weight": "-5"}},
                "spec": {"backoffLimit": 3, "template": {"metadata": {},
                    "spec": {"restartPolicy": "OnFailure", "containers": []}}}})
        };
        let rendered = manifests(serde_json::json!([
            job("import", "post-install,post-upgrade"),
            job("upgrade-only", "post-upgrade"),
            {"kind": "Pod", "metadata": {"name": "t", "annotations": {"helm.sh/hook": "test"}},
             "spec": {"restartPolicy": "Never", "containers": []}},
        ]));
        let pods = pods_of(&rendered);
        assert_eq!(pods.len(), 2);
        assert_eq!(pods[0].stage, Stage::PostInstall);
        assert_eq!(pods[0].weight, -5);
        assert_eq!(pods[0].retries_max, 3);
        assert_eq!(pods[0].labels["job-name"], "import");
        assert_eq!(pods[1].stage, Stage::Test);
        assert_eq!(pods[1].restart_policy, RestartPolicy::Never);
    }
}
