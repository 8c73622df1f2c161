#!/usr/bin/env python3
"""Checks the monitoring assets: the Grafana dashboard's structure, that every recording rule a dashboard or
alert uses is defined, and (with --scrape) that every metric they query is exported by a running broker, so
the dashboard can never silently go empty.

    check_assets.py                       # structure only
    check_assets.py --scrape metrics.txt  # plus: names exist in a /metrics scrape
    check_assets.py --list                # print the metric names used
"""
import argparse
import json
import re
import sys
from pathlib import Path

# The assets ship in the Helm chart (a ConfigMap for Grafana, a PrometheusRule).
FILES = Path(__file__).resolve().parent.parent / "charts" / "strata-operator" / "files"
DASHBOARD = FILES / "strata-dashboard.json"
RULES = FILES / "strata-rules.yml"

# PromQL words that look like identifiers but are not metric names.
KEYWORDS = {
    "sum", "avg", "min", "max", "count", "rate", "irate", "increase", "by", "without", "on", "ignoring",
    "group_left", "group_right", "and", "or", "unless", "histogram_quantile", "offset", "bool", "topk",
    "bottomk", "abs", "clamp_min", "clamp_max", "label_values", "humanizePercentage", "humanize",
}
# Series Prometheus itself creates.
BUILTIN = {"up"}


def metric_names(expr: str) -> set:
    """Metric names in a PromQL expression (label matchers, ranges, label lists and strings removed)."""
    # Grafana's label_values(metric, label): the second argument is a label.
    e = re.sub(r"label_values\(([^,()]+),\s*\w+\)", r"(\1)", expr)
    e = re.sub(r'"(?:[^"\\]|\\.)*"', "", e)
    e = re.sub(r"\{[^}]*\}", " ", e)
    e = re.sub(r"\[[^\]]*\]", " ", e)
    e = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", e)
    names = set()
    for m in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", e):
        word = m.group(0)
        rest = e[m.end():].lstrip()
        if word in KEYWORDS or rest.startswith("(") or re.fullmatch(r"[0-9]+", word):
            continue
        names.add(word)
    return names


def rule_exprs():
    """(recording names, alert exprs and recording exprs) from the rules file, without a YAML dependency."""
    text = RULES.read_text()
    records = set(re.findall(r"^\s*- record:\s*(\S+)", text, re.M))
    exprs = []
    for m in re.finditer(r"^(\s*)expr:\s*(\|)?\s*(.*)$", text, re.M):
        if m.group(2):
            indent = len(m.group(1))
            block = []
            for line in text[m.end():].splitlines()[1:]:
                if line.strip() and len(line) - len(line.lstrip()) <= indent:
                    break
                block.append(line)
            exprs.append("\n".join(block))
        else:
            exprs.append(m.group(3))
    return records, exprs


def check_dashboard(dash: dict) -> list:
    errors = []
    for key in ("uid", "title", "panels", "templating", "schemaVersion"):
        if key not in dash:
            errors.append(f"dashboard lacks {key}")
    ids = [p.get("id") for p in dash.get("panels", [])]
    if len(ids) != len(set(ids)):
        errors.append(f"duplicate panel ids: {ids}")
    for p in dash.get("panels", []):
        where = f"panel {p.get('id')} {p.get('title')!r}"
        if not p.get("targets"):
            errors.append(f"{where}: no queries")
        gp = p.get("gridPos", {})
        if not all(isinstance(gp.get(k), int) for k in "xywh") or gp.get("x", 0) + gp.get("w", 0) > 24:
            errors.append(f"{where}: bad gridPos {gp}")
        for t in p.get("targets", []):
            if not t.get("expr") or not t.get("refId"):
                errors.append(f"{where}: target without expr/refId")
            if t.get("expr", "").count("(") != t.get("expr", "").count(")"):
                errors.append(f"{where}: unbalanced parentheses in {t.get('expr')}")
    return errors


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--scrape", help="a /metrics text scrape of a running broker")
    ap.add_argument("--list", action="store_true")
    args = ap.parse_args()

    dash = json.loads(DASHBOARD.read_text())
    errors = check_dashboard(dash)
    records, exprs = rule_exprs()
    exprs += [t["expr"] for p in dash["panels"] for t in p["targets"]]
    exprs += [v["query"] for v in dash["templating"]["list"] if v.get("type") == "query"]
    used = set().union(*(metric_names(e) for e in exprs)) - BUILTIN
    for name in sorted(n for n in used if ":" in n and n not in records):
        errors.append(f"recording rule {name} is used but not defined")
    exported_needed = sorted(n for n in used if ":" not in n)
    if args.list:
        print("\n".join(exported_needed))
    if args.scrape:
        scraped = set()
        for line in Path(args.scrape).read_text().splitlines():
            if line and not line.startswith("#"):
                scraped.add(re.match(r"[A-Za-z_:][A-Za-z0-9_:]*", line).group(0))
        for name in exported_needed:
            if name not in scraped:
                errors.append(f"metric {name} is queried by the dashboard or rules but not exported by the broker")
    for e in errors:
        print("ERROR:", e, file=sys.stderr)
    print(f"monitoring assets: {len(dash['panels'])} panels, {len(exprs)} queries, {len(exported_needed)} metric names"
          + (", all exported" if args.scrape and not errors else "") + (f", {len(errors)} errors" if errors else ", OK"))
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
