#!/usr/bin/env python3
"""Writes helm/crd-schemas/*.json: JSON schemas of the custom resources the chart renders
(ServiceMonitor, PrometheusRule, cert-manager Certificate), for `check-jsonschema` in
scripts/chart_check.py.

Run once when the pins below change, in a throw-away virtualenv:

    python3 -m venv /tmp/crd-venv
    /tmp/crd-venv/bin/pip install cloudcoil.models.prometheus_operator==0.80.1.0 \
        cloudcoil.models.cert_manager==1.17.1.0
    /tmp/crd-venv/bin/python scripts/vendor-crd-schemas.py

Source: PyPI's cloudcoil model packages, which are generated from the upstream CRDs
(prometheus-operator v0.80.1, cert-manager v1.17.1) as pydantic models; pydantic exports
each model's JSON schema (field names as the API spells them). No registry we reach ships
the CRD YAML itself (helm/crd-schemas/README.md says what was looked at).

One change is made to what pydantic exports: every object that lists its properties
gets `additionalProperties: false`, which is what Kubernetes' strict field validation
(`kubectl apply --validate=strict`, the default since 1.27 for server-side apply) does
with a field the CRD does not declare; pydantic's export leaves objects open because
the models ignore unknown fields. And a Go pattern `^(?i)…` is written without the
inline flag, one class per letter (the same language; see `portable_patterns`).
"""

from __future__ import annotations

import importlib.metadata
import json
from pathlib import Path

OUT = Path(__file__).resolve().parent.parent / "helm" / "crd-schemas"


def close_objects(node):
    """additionalProperties: false on every object schema with declared properties."""
    if isinstance(node, dict):
        if "properties" in node and "additionalProperties" not in node:
            node["additionalProperties"] = False
        for value in node.values():
            close_objects(value)
    elif isinstance(node, list):
        for value in node:
            close_objects(value)
    return node


def case_insensitive(pattern: str) -> str:
    """`(abort|warn)` as `([aA][bB][oO][rR][tT]|[wW][aA][rR][nN])`: letters as classes."""
    return "".join(
        f"[{c.lower()}{c.upper()}]" if c.isalpha() else c for c in pattern
    )


def portable_patterns(node):
    """Go's `^(?i)…` written without the inline flag, as the same language.

    The CRDs' patterns are Go regular expressions; check-jsonschema checks a schema's
    patterns as ECMA-262 ones, which have no inline flags, and refused the whole schema
    file (PrometheusRule's partial_response_strategy, `^(?i)(abort|warn)?$`). Only
    patterns whose rest is letters, `|`, `(`, `)`, `?` and `$` are rewritten (a class
    per letter is exact there); anything else is left for a person to look at.
    """
    if isinstance(node, dict):
        pattern = node.get("pattern")
        if isinstance(pattern, str) and pattern.startswith("^(?i)"):
            rest = pattern[len("^(?i)"):]
            if all(c.isalpha() or c in "|()?$" for c in rest):
                node["pattern"] = "^" + case_insensitive(rest)
        for value in node.values():
            portable_patterns(value)
    elif isinstance(node, list):
        for value in node:
            portable_patterns(value)
    return node


def export(model, api_version: str, kind: str, source: str) -> dict:
    schema = model.model_json_schema(by_alias=True, mode="validation")
    close_objects(schema)
    portable_patterns(schema)
    # A manifest must say what it is; the models default these, a manifest may not.
    schema["properties"]["apiVersion"] = {"const": api_version}
    schema["properties"]["kind"] = {"const": kind}
    schema["required"] = sorted(set(schema.get("required", [])) | {"apiVersion", "kind", "metadata", "spec"})
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$comment"] = f"{api_version} {kind}, exported from {source} by scripts/vendor-crd-schemas.py"
    return schema


def main() -> None:
    from cloudcoil.models.cert_manager import v1 as cert_manager
    from cloudcoil.models.prometheus_operator import v1 as monitoring

    prometheus = "cloudcoil.models.prometheus_operator " + importlib.metadata.version(
        "cloudcoil.models.prometheus_operator"
    )
    certificates = "cloudcoil.models.cert_manager " + importlib.metadata.version(
        "cloudcoil.models.cert_manager"
    )
    schemas = {
        "servicemonitor.json": export(monitoring.ServiceMonitor, "monitoring.coreos.com/v1", "ServiceMonitor", prometheus),
        "prometheusrule.json": export(monitoring.PrometheusRule, "monitoring.coreos.com/v1", "PrometheusRule", prometheus),
        "certificate.json": export(cert_manager.Certificate, "cert-manager.io/v1", "Certificate", certificates),
    }
    OUT.mkdir(parents=True, exist_ok=True)
    for name, schema in schemas.items():
        (OUT / name).write_text(json.dumps(schema, indent=1, sort_keys=True) + "\n")
        print(f"wrote {OUT / name}")


if __name__ == "__main__":
    main()
