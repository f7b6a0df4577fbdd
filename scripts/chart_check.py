#!/usr/bin/env python3
"""Checks the Helm chart `helm/shardlet` without a cluster or a `helm` binary.

    python3 scripts/chart_check.py                      # every check (make test's `chart` phase)
    python3 scripts/chart_check.py render VALUES OUT_DIR [--name N] [--namespace NS]

The checks, for every value set `helm/shardlet/ci/*.yaml`:
  1. the values against `values.schema.json` (Helm's own validation, through the real
     Helm library: PyPI `helm-python-sdk`, which wraps Helm's Go SDK);
  2. `helm lint --strict` (same library): a warning fails;
  3. the chart rendered (same library), and every manifest validated against the
     Kubernetes OpenAPI schemas of KUBE_VERSION by `kubernetes-validate --strict`
     (unknown fields are errors);
  4. ServiceMonitor, PrometheusRule and cert-manager Certificate objects, which those
     schemas do not know, validated by `check-jsonschema` against the vendored schemas
     in helm/crd-schemas/ (where they come from: its README);
  5. the chart's own rules: every `$(NAME)` in a command names an environment variable
     of its container, and every pod keeps the pod rules (`check_pod_rules`: only the
     key-deriving initContainers mount the cluster secret, no world-readable secret
     volume, read-only root, no privilege escalation, capabilities dropped, non-root,
     memory bounded, probes on every server);
and that each validator refuses objects broken on purpose;
then the negative cases: value sets the chart must refuse, each with the words the
refusal must contain.

`render` writes what one value set renders to OUT_DIR: `manifests.yaml` (every object,
hooks and test pods included, in template order) and `NOTES.txt`. The process-level
chart test (integration/tests/chart) runs the pods of `ci/local.yaml` from it.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from chart_rules import BROKEN_POD_RULES, CheckFailed, check_pod_rules, check_variable_references

ROOT = Path(__file__).resolve().parent.parent
CHART = ROOT / "helm" / "shardlet"
CRD_SCHEMAS = ROOT / "helm" / "crd-schemas"
# The Kubernetes version the manifests are validated against (one kubernetes-validate
# ships; the chart's kubeVersion allows it).
KUBE_VERSION = "1.33.0"
# The pins of scripts/install-deps.sh; a different version installed is refused, so a
# result always means the same tools.
PINS = {
    "helm-python-sdk": "0.2.2",
    "kubernetes-validate": "1.33.1",
    "check-jsonschema": "0.33.3",
}
# Kinds outside Kubernetes' own schemas, and the vendored schema that checks each.
CRD_KINDS = {
    ("monitoring.coreos.com/v1", "ServiceMonitor"): "servicemonitor.json",
    ("monitoring.coreos.com/v1", "PrometheusRule"): "prometheusrule.json",
    ("cert-manager.io/v1", "Certificate"): "certificate.json",
}
RELEASE = "shardlet"
NAMESPACE = "shardlet"


def check_pins() -> None:
    wrong = []
    for package, version in PINS.items():
        try:
            installed = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            installed = "not installed"
        if installed != version:
            wrong.append(f"{package}=={version} (found: {installed})")
    if wrong:
        pins = " ".join(f"{package}=={version}" for package, version in PINS.items())
        raise CheckFailed(
            "chart_check needs " + ", ".join(wrong) + ": run scripts/install-deps.sh test"
            f" (installs what is missing), or python3 -m pip install {pins}"
        )


def load_values(path: Path) -> dict:
    import yaml

    with path.open() as file:
        values = yaml.safe_load(file)
    if values is None:
        return {}
    if not isinstance(values, dict):
        raise CheckFailed(f"{path}: a values file must be a mapping")
    return values


def render(values: dict, name: str = RELEASE, namespace: str = NAMESPACE) -> dict[str, str]:
    """Template path → rendered text, from the real Helm library (schema checked too)."""
    import helm_python

    chart = helm_python.Chart.load(str(CHART))
    try:
        chart.validate_schema(values)
        return chart.render(values, name=name, namespace=namespace, is_install=True)
    finally:
        chart.close()


def documents(rendered: dict[str, str]) -> list[tuple[str, dict]]:
    """Every object, in template order, with the template it came from."""
    import yaml

    objects = []
    for template in sorted(rendered):
        if not template.endswith((".yaml", ".yml")):
            continue
        for document in yaml.safe_load_all(rendered[template]):
            if document is None:
                continue
            if not isinstance(document, dict) or "kind" not in document:
                raise CheckFailed(f"{template}: a rendered document is not an object")
            objects.append((template, document))
    return objects


def validate_kubernetes(objects: list[tuple[str, dict]], where: str) -> tuple[int, list[tuple[str, dict]]]:
    """kubernetes-validate --strict on every object Kubernetes knows; returns how many,
    and the objects of CRD kinds for check-jsonschema."""
    import kubernetes_validate

    crd_objects = []
    checked = 0
    errors = []
    for template, document in objects:
        if (document.get("apiVersion"), document.get("kind")) in CRD_KINDS:
            crd_objects.append((template, document))
            continue
        try:
            kubernetes_validate.validate(document, KUBE_VERSION, strict=True)
            checked += 1
        except kubernetes_validate.ValidationError as error:
            path = "/".join(str(part) for part in error.path)
            errors.append(
                f"{where}: {template}: {document['kind']} {document['metadata'].get('name')}: "
                f"{path}: {error.message}"
            )
        except kubernetes_validate.SchemaNotFoundError:
            errors.append(
                f"{where}: {template}: no Kubernetes {KUBE_VERSION} schema for "
                f"{document.get('apiVersion')} {document.get('kind')}"
            )
    if errors:
        raise CheckFailed("\n".join(errors))
    return checked, crd_objects


def validate_crds(crd_objects: list[tuple[str, dict]], where: str) -> int:
    """check-jsonschema (the CLI, pinned) per CRD kind against the vendored schema."""
    by_schema: dict[str, list[tuple[str, dict]]] = {}
    for template, document in crd_objects:
        schema = CRD_KINDS[(document["apiVersion"], document["kind"])]
        by_schema.setdefault(schema, []).append((template, document))
    with tempfile.TemporaryDirectory(prefix="chart-check-") as directory:
        for schema, items in by_schema.items():
            files = []
            for index, (template, document) in enumerate(items):
                file = Path(directory) / f"{index}-{Path(template).stem}.json"
                file.write_text(json.dumps(document))
                files.append(str(file))
            result = subprocess.run(
                [
                    sys.executable, "-m", "check_jsonschema",
                    "--schemafile", str(CRD_SCHEMAS / schema),
                    *files,
                ],
                capture_output=True,
                text=True,
            )
            if result.returncode != 0:
                raise CheckFailed(
                    f"{where}: check-jsonschema refused {schema.removesuffix('.json')} objects:\n"
                    + result.stdout
                    + result.stderr
                )
    return len(crd_objects)


def lint(values: dict, where: str) -> None:
    import helm_python

    report = helm_python.lint(str(CHART), values, strict=True, namespace=NAMESPACE)
    problems = [
        f"{message.get('path')}: {message.get('error')}"
        for message in report.get("messages", [])
        if message.get("severity", 0) >= 2
    ]
    problems += report.get("errors") or []
    if problems:
        raise CheckFailed(f"{where}: helm lint --strict:\n  " + "\n  ".join(problems))


# Value sets the chart must refuse (the schema, or a template's check), and words its
# message must contain (so the refusal names what is wrong, not only that something is).
BAD_VALUES = [
    ("an unknown top-level key", {"replicaCount": 3}, ["replicaCount"]),
    ("a misspelled nested key", {"meta": {"replica": 3}}, ["replica"]),
    ("a wrong type", {"meta": {"replicas": "three"}}, ["replicas", "integer"]),
    ("an even number of metadata members", {"meta": {"replicas": 4}}, ["replicas"]),
    (
        "a zone name that is not a DNS label",
        {"regions": [{"name": "r1", "zones": [{"name": "Zone_A", "replicas": 1, "size": "1Gi"}]}]},
        ["name", "Zone_A"],
    ),
    (
        "one zone (3 copies need 2 zones at least)",
        {"regions": [{"name": "r1", "zones": [{"name": "a", "replicas": 5, "size": "1Gi"}]}]},
        ["regions", "2 places", "at most 2 per zone"],
    ),
    ("an unknown zone source", {"node": {"zoneFrom": "guess"}}, ["/node/zoneFrom", "podLabel"]),
    ("a wrong log format", {"logFormat": "xml"}, ["logFormat"]),
    (
        "an S3 key without its secret",
        {"s3Keys": {"keys": [{"access_key": "AKIAEXAMPLEEXAMPLE22", "owner": "x"}]}},
        ["secret_key"],
    ),
]


def check_bad_values() -> int:
    import helm_python

    for description, values, words in BAD_VALUES:
        try:
            render(values)
        except helm_python.HelmError as error:
            message = str(error)
            missing = [word for word in words if word not in message]
            if missing:
                raise CheckFailed(
                    f"bad values ({description}) were refused, but the message does not "
                    f"name {missing}: {message}"
                )
            continue
        raise CheckFailed(f"bad values ({description}) were accepted: {values}")
    return len(BAD_VALUES)


# Rendered objects broken on purpose: each validator must refuse its case, or a pass
# above would prove nothing. (kind, what is broken, how, words the refusal names)
BROKEN_MANIFESTS = [
    ("Deployment", "a misspelled probe field", lambda o: o["spec"]["template"]["spec"]["containers"][0]["livenessProbe"].update(httpGett={}), ["httpGett"]),
    ("StatefulSet", "a wrong type", lambda o: o["spec"].update(replicas="three"), ["replicas", "integer"]),
    ("ServiceMonitor", "a misspelled endpoint field", lambda o: o["spec"]["endpoints"][0].update(schema="https"), ["schema"]),
    ("Certificate", "an unknown key algorithm", lambda o: o["spec"]["privateKey"].update(algorithm="DSA"), ["algorithm", "DSA"]),
]


def check_validators_refuse(objects: list[tuple[str, dict]]) -> int:
    import copy

    for kind, description, breaks, words in BROKEN_POD_RULES:
        template, document = next((t, d) for t, d in objects if d["kind"] == kind)
        broken = copy.deepcopy(document)
        breaks(broken)
        try:
            check_pod_rules([(template, broken)], "broken")
        except CheckFailed as error:
            missing = [word for word in words if word not in str(error)]
            if missing:
                raise CheckFailed(f"{kind} with {description} was refused without naming {missing}: {error}")
            continue
        raise CheckFailed(f"{kind} with {description} passed the pod rules: they check nothing")
    for kind, description, breaks, words in BROKEN_MANIFESTS:
        found = [(template, document) for template, document in objects if document["kind"] == kind]
        if not found:
            raise CheckFailed(f"the broken-manifest check needs a {kind} in ci/tls.yaml")
        template, document = found[0]
        broken = copy.deepcopy(document)
        breaks(broken)
        try:
            crd_objects = validate_kubernetes([(template, broken)], "broken")[1]
            validate_crds(crd_objects, "broken")
        except CheckFailed as error:
            missing = [word for word in words if word not in str(error)]
            if missing:
                raise CheckFailed(f"{kind} with {description} was refused without naming {missing}: {error}")
            continue
        raise CheckFailed(f"{kind} with {description} passed validation: the validator checks nothing")
    return len(BROKEN_MANIFESTS) + len(BROKEN_POD_RULES)


def check_all() -> None:
    check_pins()
    sets = sorted((CHART / "ci").glob("*.yaml"))
    if not sets:
        raise CheckFailed(f"no value sets in {CHART / 'ci'}")
    for path in sets:
        started = time.monotonic()
        where = f"ci/{path.name}"
        values = load_values(path)
        lint(values, where)
        rendered = render(values)
        objects = documents(rendered)
        checked, crd_objects = validate_kubernetes(objects, where)
        crds = validate_crds(crd_objects, where)
        references = check_variable_references(objects, where)
        pods = check_pod_rules(objects, where)
        kinds: dict[str, int] = {}
        for _, document in objects:
            kinds[document["kind"]] = kinds.get(document["kind"], 0) + 1
        summary = ", ".join(f"{count} {kind}" for kind, count in sorted(kinds.items()))
        print(
            f"chart_check: {where}: {len(objects)} objects ({summary}); "
            f"{checked} valid for Kubernetes {KUBE_VERSION} (strict), {crds} against CRD schemas, "
            f"{references} $(VAR) references defined, {pods} pod specs keep the pod rules; "
            f"{time.monotonic() - started:.2f} s"
        )
    started = time.monotonic()
    broken = check_validators_refuse(documents(render(load_values(CHART / "ci" / "tls.yaml"))))
    print(f"chart_check: {broken} manifests broken on purpose refused by the validators; "
          f"{time.monotonic() - started:.2f} s")
    started = time.monotonic()
    refused = check_bad_values()
    print(f"chart_check: {refused} bad value sets refused, each naming the key; "
          f"{time.monotonic() - started:.2f} s")


def render_to(values_path: Path, out_dir: Path, name: str, namespace: str) -> None:
    import yaml

    check_pins()
    rendered = render(load_values(values_path), name=name, namespace=namespace)
    out_dir.mkdir(parents=True, exist_ok=True)
    objects = documents(rendered)
    with (out_dir / "manifests.yaml").open("w") as file:
        yaml.safe_dump_all([document for _, document in objects], file, sort_keys=False)
    notes = next((text for template, text in rendered.items() if template.endswith("NOTES.txt")), "")
    (out_dir / "NOTES.txt").write_text(notes)
    print(f"chart_check: {len(objects)} objects of {values_path} written to {out_dir / 'manifests.yaml'}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command")
    render_command = commands.add_parser("render", help="write what a value set renders")
    render_command.add_argument("values", type=Path)
    render_command.add_argument("out_dir", type=Path)
    render_command.add_argument("--name", default=RELEASE)
    render_command.add_argument("--namespace", default=NAMESPACE)
    arguments = parser.parse_args()
    started = time.monotonic()
    try:
        if arguments.command == "render":
            render_to(arguments.values, arguments.out_dir, arguments.name, arguments.namespace)
        else:
            check_all()
            print(f"chart_check: every check passed in {time.monotonic() - started:.2f} s")
    except CheckFailed as error:
        print(f"chart_check: FAILED: {error}", file=sys.stderr)
        return 1
    except Exception as error:  # the Helm library's own errors: name the step
        print(f"chart_check: FAILED: {type(error).__name__}: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
