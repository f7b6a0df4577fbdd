"""The chart's own rules for what it renders, beyond Kubernetes' schemas (used by
scripts/chart_check.py; docs/kubernetes.md, "What was validated here").

Each check takes the rendered objects as `(template, object)` pairs and raises
`CheckFailed` naming every breach; BROKEN_POD_RULES are pods broken on purpose that the
checks must refuse, so a pass means something.
"""

from __future__ import annotations

import re


class CheckFailed(Exception):
    pass


def pod_specs(objects: list[tuple[str, dict]]):
    """(template, object name, pod spec) of every Pod, and of every workload's template."""
    for template, document in objects:
        kind = document["kind"]
        if kind == "Pod":
            yield template, document["metadata"]["name"], document["spec"]
        elif kind in ("Deployment", "StatefulSet", "Job", "DaemonSet", "ReplicaSet"):
            yield template, document["metadata"]["name"], document["spec"]["template"]["spec"]


def check_variable_references(objects: list[tuple[str, dict]], where: str) -> int:
    """Every `$(NAME)` in a container's command and args names one of its environment
    variables. The kubelet leaves an unknown reference as it is (so a typo reaches the
    program as literal text) and turns `$$` into `$` (so a shell's `$(…)` and `$$` must
    be written `$$(…)` and `$$$$`)."""
    reference = re.compile(r"\$\$|\$\(([^)]*)\)")
    errors = []
    checked = 0
    for template, name, spec in pod_specs(objects):
        for container in spec.get("initContainers", []) + spec.get("containers", []):
            defined = {variable["name"] for variable in container.get("env", [])}
            for text in container.get("command", []) + container.get("args", []):
                for match in reference.finditer(text):
                    if match.group(0) == "$$":
                        continue
                    checked += 1
                    if match.group(1) not in defined:
                        errors.append(
                            f"{where}: {template}: {name}, container {container['name']}: "
                            f"$({match.group(1)}) names no environment variable of the container "
                            "(the kubelet would pass it on literally; a shell's $(...) is written $$(...))"
                        )
    if errors:
        raise CheckFailed("\n".join(errors))
    return checked


def check_pod_rules(objects: list[tuple[str, dict]], where: str) -> int:
    """The chart's own rules for every pod (docs/kubernetes.md): only the `derive-keys`
    initContainers mount the cluster secret; no secret volume is readable by every user
    (the binaries refuse such key files); every container runs with a read-only root, no
    privilege escalation, all capabilities dropped, as non-root, with a memory request
    and limit; every long-running container has a readiness and a liveness probe."""
    errors = []
    checked = 0
    for template, name, spec in pod_specs(objects):
        checked += 1
        pod_non_root = spec.get("securityContext", {}).get("runAsNonRoot") is True
        volumes = {volume["name"]: volume for volume in spec.get("volumes", [])}
        for volume in volumes.values():
            mode = volume.get("secret", {}).get("defaultMode", 0o644 if "secret" in volume else 0)
            if mode & 0o007:
                errors.append(f"{name}: secret volume {volume['name']} has mode {mode:o}, readable by every user")
        long_running = spec.get("restartPolicy", "Always") == "Always"
        for init, container in [(True, c) for c in spec.get("initContainers", [])] + [
            (False, c) for c in spec.get("containers", [])
        ]:
            where_container = f"{name}, container {container['name']}"
            for mount in container.get("volumeMounts", []):
                if mount["name"] == "cluster-secret" and not (init and container["name"].startswith("derive")):
                    errors.append(f"{where_container}: mounts the cluster secret (only derive-keys may)")
            context = container.get("securityContext", {})
            if context.get("readOnlyRootFilesystem") is not True:
                errors.append(f"{where_container}: root file system not read-only")
            if context.get("allowPrivilegeEscalation") is not False:
                errors.append(f"{where_container}: privilege escalation not disabled")
            if "ALL" not in context.get("capabilities", {}).get("drop", []):
                errors.append(f"{where_container}: capabilities not dropped")
            if not (pod_non_root or context.get("runAsNonRoot") is True):
                errors.append(f"{where_container}: may run as root")
            resources = container.get("resources", {})
            if not (resources.get("requests", {}).get("memory") and resources.get("limits", {}).get("memory")):
                errors.append(f"{where_container}: no memory request and limit")
            if long_running and not init:
                for probe in ("readinessProbe", "livenessProbe"):
                    if probe not in container:
                        errors.append(f"{where_container}: no {probe}")
    if errors:
        raise CheckFailed(f"{where}: pod rules:\n  " + "\n  ".join(errors))
    return checked


def mount_cluster_secret(deployment: dict) -> None:
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    container["volumeMounts"].append({"name": "cluster-secret", "mountPath": "/secret"})


BROKEN_POD_RULES = [
    ("Deployment", "a server container mounting the cluster secret", mount_cluster_secret, ["mounts the cluster secret"]),
    ("StatefulSet", "a world-readable key volume",
     lambda o: o["spec"]["template"]["spec"]["volumes"][1]["secret"].update(defaultMode=0o444), ["readable by every user"]),
    ("StatefulSet", "a writable root file system",
     lambda o: o["spec"]["template"]["spec"]["containers"][0]["securityContext"].update(readOnlyRootFilesystem=False),
     ["root file system not read-only"]),
]
