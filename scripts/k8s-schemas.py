#!/usr/bin/env python3
"""
k8s-schemas.py - turns the Kubernetes JSON schemas of the PyPI package kubernetes-validate into the
standalone files kubeconform reads offline.

kubernetes-validate ships, per Kubernetes version, one schema per kind whose $refs point into a shared
"/api/_definitions.json" (resolved by its own Python loader); kubeconform cannot follow those. For each
top-level kind this writes one self-contained file with the definitions it needs under "$defs":

    k8s-schemas.py SRC_DIR OUT_DIR VERSION...      e.g. k8s-schemas.py site/kubernetes_validate/kubernetes-json-schema \\
                                                       .local/deploy/schemas 1.30.0

OUT_DIR/v1.30.0-standalone-strict/deployment-apps-v1.json and so on, the layout of kubeconform's default
schema location, so:  kubeconform -strict -kubernetes-version 1.30.0 -schema-location \\
    'OUT_DIR/{{ .NormalizedKubernetesVersion }}-standalone{{ .StrictSuffix }}/{{ .ResourceKind }}{{ .KindSuffix }}.json'
Both variants are written: -strict (no unknown fields) and plain. Standard library only.
"""
import json
import pathlib
import sys

PREFIX = "/api/_definitions.json#/$defs/"


def refs(node, out):
    if isinstance(node, dict):
        r = node.get("$ref")
        if isinstance(r, str):
            out.add(r.rsplit("/", 1)[1])
        for v in node.values():
            refs(v, out)
    elif isinstance(node, list):
        for v in node:
            refs(v, out)


def localize(node):
    """Rewrites both ref spellings ("/api/_definitions.json#/$defs/X", "#/$defs/X") to "#/$defs/X"."""
    if isinstance(node, dict):
        return {k: ("#/$defs/" + v.rsplit("/", 1)[1] if k == "$ref" and isinstance(v, str) else localize(v))
                for k, v in node.items()}
    if isinstance(node, list):
        return [localize(v) for v in node]
    return node


def convert(src, dst):
    defs = json.loads((src / "_definitions.json").read_text())["$defs"]
    dst.mkdir(parents=True, exist_ok=True)
    n = 0
    for f in sorted(src.glob("*.json")):
        if f.name in ("_definitions.json", "all.json"):
            continue
        schema = json.loads(f.read_text())
        if "x-kubernetes-group-version-kind" not in schema:
            continue  # not a kind of its own (a spec, a status, a list item)
        need, todo = set(), set()
        refs(schema, todo)
        while todo:
            name = todo.pop()
            if name in need or name not in defs:
                continue
            need.add(name)
            refs(defs[name], todo)
        schema.pop("$id", None)
        schema = localize(schema)
        schema["$defs"] = {k: localize(defs[k]) for k in sorted(need)}
        (dst / f.name).write_text(json.dumps(schema, separators=(",", ":")))
        n += 1
    return n


def main():
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    src, out = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
    for version in sys.argv[3:]:
        v = "v" + version.lstrip("v")
        for suffix in ("-strict", ""):
            d = src / f"{v}-local{suffix}"
            if not d.is_dir():
                sys.exit(f"k8s-schemas: {d}: no such directory (Kubernetes {version} not in this package?)")
            n = convert(d, out / f"{v}-standalone{suffix}")
            print(f"k8s-schemas: {n} kinds of Kubernetes {v}{suffix or ' (non-strict)'} in {out}/{v}-standalone{suffix}")


if __name__ == "__main__":
    main()
