#!/usr/bin/python3
"""Writes docs/results.md's comparison and its SVG plots from a run of experiments/bench/fusion_mini.fuse.

`make results` (scripts/results.sh) runs the benchmark, then this script, with the folder holding `runs/`
(one run directory per sweep point, as `fusec run` writes them) and the folder to write. Only the Python
standard library: the figures are read from each point's eval/results.json and metrics.jsonl, and the
manifests' SHA-256 identify the runs.

Usage: results_report.py RESULTS_DIR DOCS_DIR
"""
import hashlib
import json
import math
import os
import re
import statistics
import sys

FAMILIES = ["reverse", "sort", "add", "upper", "count", "replace"]


def read_points(runs):
    """Every sweep point: (sweep, parameters, eval results by model, metrics lines, manifest sha256)."""
    points = []
    for sweep in sorted(os.listdir(runs)):
        sweep_dir = os.path.join(runs, sweep)
        if not os.path.isdir(sweep_dir) or sweep == "cache":
            continue
        for point in sorted(os.listdir(sweep_dir)):
            point_dir = os.path.join(sweep_dir, point)
            results_path = os.path.join(point_dir, "eval", "results.json")
            if not os.path.exists(results_path):
                continue
            params = {}
            for key, pattern in [("objective", r"objective=([a-z_]+)"), ("seed", r"seed=(\d+)"),
                                 ("tau", r"tau=([0-9.e-]+?)(?:,|$)"), ("num_sources", r"num_sources=(\d+)")]:
                match = re.search(pattern, point)
                if match:
                    params[key] = match.group(1)
            with open(results_path) as f:
                results = {r["model"]: r for r in json.load(f)}
            metrics = []
            with open(os.path.join(point_dir, "metrics.jsonl")) as f:
                metrics = [json.loads(line) for line in f if line.strip()]
            with open(os.path.join(point_dir, "manifest.toml"), "rb") as f:
                manifest = hashlib.sha256(f.read()).hexdigest()
            points.append({"sweep": sweep, "point": point, "params": params, "results": results,
                           "metrics": metrics, "manifest": manifest})
    return points


def objective_name(params):
    return params.get("objective", "dpo").split("_")[0]


def collect(points):
    """Rows of the table: method name -> seed -> that model's evaluation (one per seed)."""
    rows = {}

    def add(method, seed, result):
        rows.setdefault(method, {})[seed] = result

    for p in points:
        seed, r, params = p["params"].get("seed", "1"), p["results"], p["params"]
        if p["sweep"] == "baselines":
            for source, skills in SOURCES:
                if source in r:
                    add(f"source {source} ({skills})", seed, r[source])
            add("initial target (warm-up)", seed, r["initial"])
            add("SFT (best response)", seed, r["sft"])
            add("SFT + " + {"dpo": "DPO", "simpo": "SimPO"}[objective_name(params)], seed, r["po"])
        elif p["sweep"] == "methods":
            add("FuseSFT", seed, r["fusesft"])
            add("FuseRL (FuseSFT + FusePO-" + {"dpo": "DPO", "simpo": "SimPO"}[objective_name(params)] + ")", seed,
                r["fusepo"])
            if objective_name(params) == "dpo":
                add("FuseRL-DPO, tau = 1.0", seed, r["fusepo"])
                add("FuseRL-DPO, 3 sources", seed, r["fusepo"])
                add("FuseSFT, 3 sources", seed, r["fusesft"])
        elif p["sweep"] == "wrpo_baseline":
            add("WRPO (SFT + WRPO on the target's own samples)", seed, r["po"])
        elif p["sweep"] == "rloo_methods":
            add("FuseRL (FuseSFT + FusePO-RLOO)", seed, r["fusepo"])
        elif p["sweep"] == "tau":
            add("FuseRL-DPO, tau = " + params["tau"], seed, r["fusepo"])
        elif p["sweep"] == "sources":
            n = params["num_sources"]
            add("FuseSFT, " + n + " source" + ("s" if n != "1" else ""), seed, r["fusesft"])
            add("FuseRL-DPO, " + n + " source" + ("s" if n != "1" else ""), seed, r["fusepo"])
    return rows


def mean_sd(values):
    if not values:
        return float("nan"), float("nan")
    return statistics.mean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def fmt(values, digits=3):
    m, s = mean_sd(values)
    return f"{m:.{digits}f} ± {s:.{digits}f}"


SOURCES = [("alpha", "Llama-shaped: reverse, upper"), ("beta", "Qwen2-shaped: sort, count"),
           ("gamma", "Mistral-shaped: add, replace")]

MAIN = [f"source {source} ({skills})" for source, skills in SOURCES] + ["initial target (warm-up)", "SFT (best response)", "SFT + DPO", "SFT + SimPO", "FuseSFT",
        "WRPO (SFT + WRPO on the target's own samples)", "FuseRL (FuseSFT + FusePO-DPO)",
        "FuseRL (FuseSFT + FusePO-SimPO)", "FuseRL (FuseSFT + FusePO-RLOO)"]


def sort_key(name):
    numbers = re.findall(r"[0-9.]+", name)
    return (re.sub(r"[0-9.]+", "", name), float(numbers[-1]) if numbers else 0.0)


def table(rows, names):
    lines = ["| method | seeds | score | exact match |", "|---|---|---|---|"]
    for name in names:
        if name not in rows:
            continue
        seeds = rows[name]
        scores = [r["score"] for r in seeds.values()]
        exact = [r["exact_match"] for r in seeds.values()]
        lines.append(f"| {name} | {len(seeds)} | {fmt(scores)} | {fmt(exact)} |")
    return "\n".join(lines)


def family_table(rows, names):
    lines = ["| method | " + " | ".join(FAMILIES) + " |", "|---|" + "---|" * len(FAMILIES)]
    for name in names:
        if name not in rows:
            continue
        cells = []
        for family in FAMILIES:
            values = [r["families"][family]["score"] for r in rows[name].values() if family in r.get("families", {})]
            cells.append(f"{mean_sd(values)[0]:.3f}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def svg_bars(rows, names, path):
    """A horizontal bar chart of the mean score per method, with one-standard-deviation whiskers."""
    names = [n for n in names if n in rows]
    width, left, bar, gap, top = 760, 300, 18, 8, 30
    height = top + len(names) * (bar + gap) + 40
    vmax = max(mean_sd([r["score"] for r in rows[n].values()])[0] + 0.05 for n in names)
    scale = (width - left - 40) / vmax
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" '
           f'font-size="12">',
           f'<text x="{left}" y="18" font-weight="bold">held-out mean true score (mean ± sd over seeds)</text>']
    for i, name in enumerate(names):
        m, s = mean_sd([r["score"] for r in rows[name].values()])
        y = top + i * (bar + gap)
        out.append(f'<text x="{left - 8}" y="{y + 13}" text-anchor="end">{name}</text>')
        out.append(f'<rect x="{left}" y="{y}" width="{m * scale:.1f}" height="{bar}" fill="#4878a8"/>')
        out.append(f'<line x1="{left + (m - s) * scale:.1f}" x2="{left + (m + s) * scale:.1f}" y1="{y + bar / 2}" '
                   f'y2="{y + bar / 2}" stroke="black"/>')
        out.append(f'<text x="{left + (m + s) * scale + 6:.1f}" y="{y + 13}">{m:.3f}</text>')
    axis_y = top + len(names) * (bar + gap) + 5
    out.append(f'<line x1="{left}" x2="{width - 40}" y1="{axis_y}" y2="{axis_y}" stroke="black"/>')
    tick = 0.0
    while tick <= vmax + 1e-9:
        x = left + tick * scale
        out.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{axis_y}" y2="{axis_y + 4}" stroke="black"/>')
        out.append(f'<text x="{x:.1f}" y="{axis_y + 16}" text-anchor="middle">{tick:.1f}</text>')
        tick += 0.1
    out.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(out) + "\n")


def svg_curves(points, path):
    """Training loss per step of each stage of seed 1 (FuseSFT and the FusePO objectives), smoothed."""
    series = []
    seen = set()
    for p in points:
        if p["params"].get("seed") != "1" or p["sweep"] not in ("baselines", "methods", "rloo_methods"):
            continue
        stages = {}
        for line in p["metrics"]:
            stages.setdefault(line["stage"].split("/")[-1], []).append(line["loss"])
        label = {"baselines": "SFT+" + objective_name(p["params"]), "methods": "FuseRL-" + objective_name(p["params"]),
                 "rloo_methods": "FuseRL-rloo"}[p["sweep"]]
        for stage, losses in stages.items():
            if (stage, tuple(losses)) in seen:  # a shared stage (the warm-up, SFT, FuseSFT) is drawn once
                continue
            seen.add((stage, tuple(losses)))
            series.append((f"{label} / {stage}", losses))
    panels = sorted({name.split(" / ")[1] for name, _ in series})
    colors = ["#4878a8", "#d0743c", "#6a9f58", "#b85a9e", "#c9b02f", "#5bb5c4"]
    panel_w, panel_h, margin = 360, 220, 50
    width = margin + len(panels) * (panel_w + margin)
    height = panel_h + 2 * margin + 20 * max(1, max(sum(1 for n, _ in series if n.endswith(" / " + s)) for s in panels))
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" '
           f'font-size="11">']
    for k, panel in enumerate(panels):
        x0 = margin + k * (panel_w + margin)
        members = [(n, l) for n, l in series if n.endswith(" / " + panel)]
        smoothed = []
        for name, losses in members:
            window = max(1, len(losses) // 50)
            smoothed.append((name, [statistics.mean(losses[max(0, i - window + 1):i + 1]) for i in range(len(losses))]))
        lo = min(min(v) for _, v in smoothed)
        hi = max(max(v) for _, v in smoothed)
        hi = hi if hi > lo else lo + 1
        out.append(f'<text x="{x0}" y="{margin - 20}" font-weight="bold">training loss: stage {panel} (seed 1)</text>')
        out.append(f'<rect x="{x0}" y="{margin}" width="{panel_w}" height="{panel_h}" fill="none" stroke="black"/>')
        out.append(f'<text x="{x0 - 4}" y="{margin + 10}" text-anchor="end">{hi:.2f}</text>')
        out.append(f'<text x="{x0 - 4}" y="{margin + panel_h}" text-anchor="end">{lo:.2f}</text>')
        for j, (name, values) in enumerate(smoothed):
            n = len(values)
            pts = " ".join(f"{x0 + panel_w * i / max(1, n - 1):.1f},{margin + panel_h * (hi - v) / (hi - lo):.1f}"
                           for i, v in enumerate(values))
            color = colors[j % len(colors)]
            out.append(f'<polyline fill="none" stroke="{color}" stroke-width="1.2" points="{pts}"/>')
            out.append(f'<text x="{x0}" y="{margin + panel_h + 20 + 16 * j}" fill="{color}">{name} '
                       f'({n} steps)</text>')
    out.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(out) + "\n")


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    results_dir, docs_dir = sys.argv[1], sys.argv[2]
    points = read_points(os.path.join(results_dir, "runs"))
    if not points:
        sys.exit(f"results_report: no evaluated sweep points under {results_dir}/runs")
    rows = collect(points)
    tau_names = sorted([n for n in rows if n.startswith("FuseRL-DPO, tau")], key=sort_key)
    source_names = sorted([n for n in rows if "source" in n and n.startswith(("FuseSFT", "FuseRL"))],
                          key=lambda n: (n.split(",")[0], sort_key(n)))
    svg_bars(rows, MAIN, os.path.join(docs_dir, "results_methods.svg"))
    svg_curves(points, os.path.join(docs_dir, "results_training_curves.svg"))
    seeds = sorted({p["params"].get("seed", "1") for p in points})
    # One `fusec run` of the file writes the same manifest (the whole file, every hash) into each point.
    manifests = sorted({p["manifest"] for p in points})
    text = f"""## The comparison (the paper's Table 1 in miniature)

`make results` runs `experiments/bench/fusion_mini.fuse` (every method from the demo's warmed-up target, on
the same data, held-out prompts and budget; seeds {", ".join(seeds)}: the target's initial weights and the
training order) and writes this section with `scripts/results_report.py`. The data is made by models: three
source models that fusec trains on fusion-mini's source data (each a specialist of two task families, of
another shape and size), sampled 5 times per prompt (temperature 0.8, top-p 0.95) by `sample(...)` and scored
by `gold_reward` (true score + Gaussian noise of sd 0.1) with `score(...)`; the sources, samples and rewards
are the same at every seed. Scores are the held-out mean true score (1 - normalised edit distance of the
greedy completion to the gold answer, 300 prompts), mean ± standard deviation over seeds. SFT is on each
prompt's best response; SFT + DPO/SimPO then pairs its best and worst response over all sources; FuseSFT is
the top 2 responses by reward with softmax weights; FusePO is one best-vs-worst pair per source (RLOO: the 5
samples of each source as a group) with softmax-over-sources weights (tau 1 unless stated). WRPO starts from
the SFT model, samples it 5 times on the preference prompts (`models: {{target: sft}}`), scores its samples like
the sources', and prefers the target's best own sample and the sources' best response to the target's worst
sample (beta 0.1, alpha rising to 0.1).

{table(rows, MAIN)}

Score per family (mean over seeds):

{family_table(rows, MAIN)}

Ablation, FusePO's source-weight temperature tau:

{table(rows, tau_names)}

Ablation, the number of sources (the first 1 to 3 of alpha, beta, gamma, in both stages):

{table(rows, source_names)}

Plots: [results_methods.svg](results_methods.svg) (the table above) and
[results_training_curves.svg](results_training_curves.svg) (the loss of each stage, seed 1).

Commands: `make results`, that is `fusec synth fusion-mini --out experiments/data/fusion-mini --seed 1
--prompts 20000 --noise 0.1`, then in `build/results/`:
`fusec run ../../experiments/bench/fusion_mini.fuse --cache cache`, then
`scripts/results_report.py build/results docs`. The run manifest (every source file, every node's hash),
SHA-256: {", ".join(f"`{m}`" for m in manifests)}; `fusec plan --from-manifest` replays it.
"""
    results_md = os.path.join(docs_dir, "results.md")
    with open(results_md) as f:
        current = f.read()
    marker = "## The comparison"
    head = current[:current.index(marker)] if marker in current else current.rstrip() + "\n\n"
    with open(results_md, "w") as f:
        f.write(head + text)
    print(f"results_report: {len(points)} sweep points -> {results_md}, results_methods.svg, "
          f"results_training_curves.svg")


if __name__ == "__main__":
    main()
