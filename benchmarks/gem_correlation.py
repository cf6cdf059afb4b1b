"""Does correlation in the training data hurt disentanglement, and does a graph prior help? (issue 22)

Correlated dSprites (``data.correlation = rho``: shape -> scale and posX -> posY at latent
correlation rho; jaxdisent/data/correlated_dsprites.py) at each ``--correlations`` value, each
``--variants`` variant of ``launch.gem_ablation`` (beta_vae: the plain beta-VAE on the same data;
truth_graph: GEM given the true graph; full: GEM with the 88.4% simulated oracle's prior;
prior_reversed: GEM from the reversed prior; scm: the structured latent prior), each seed, trained
through the shared runner to the config's schedule, then scored by the ``pair_disentanglement``
evaluator on the *uniform* dSprites grid (is each factor of a correlated pair captured by a code
that does not also carry the other: ``pair_separation``, ``pair_dci_disentanglement``) and by
``graph_recovery`` at the end of training.

  python benchmarks/gem_correlation.py --workdir=runs/gem_corr [--correlations=0,0.5,0.9]
      [--variants=beta_vae,truth_graph,full,prior_reversed,scm] [--seeds=0,1,2]
      [--num_steps=600] [--out=docs/results/gem_correlation] [--collect_only]

Cells run seed-major (every variant and strength of seed 0 first), each in
WORKDIR/rho<r>/<variant>_seed<s>; a re-run resumes an interrupted cell, skips finished ones and
evaluates only what has no pair_disentanglement record. ``--collect_only`` writes the table from
what has finished. Writes OUT.json (every run), OUT.md (mean +- std over seeds, n) and OUT.png.
The expected shape if the idea works (Traeuble et al. 2021 for the first half): the beta-VAE's pair
separation falls as rho grows; the graph-prior variants stay flatter.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KEYS = ("pair_separation", "pair_dci_disentanglement", "grid_mig", "pair_separation_shape_scale",
        "pair_separation_posX_posY", "learned_auroc", "prior_auroc", "recon")


def _cells(args):
  from launch.gem_ablation import VARIANTS
  unknown = [v for v in args.variants if v not in VARIANTS or v == "untrained"]
  if unknown:
    raise SystemExit(f"[jaxdisent] error: unknown variant(s) {unknown}; choose from "
                     f"{sorted(set(VARIANTS) - {'untrained'})}")
  for seed in args.seeds:
    for rho in args.correlations:
      for variant in args.variants:
        overrides = [("data.correlation", str(rho)), ("seed", str(seed)),
                     ("train.num_steps", str(args.num_steps)),
                     ("train.checkpoint_every", str(min(args.num_steps, 300))),
                     *[(k, str(v)) for k, v in VARIANTS[variant].items()]]
        yield rho, variant, seed, overrides


def _scores(workdir):
  from jaxdisent.evals import read_record
  steps = sorted(int(n[len("step_"):-len(".json")]) for n in os.listdir(os.path.join(workdir, "eval"))
                 if n.startswith("step_") and n.endswith(".json")) if os.path.isdir(
                     os.path.join(workdir, "eval")) else []
  flat = {}
  for step in steps:
    record = read_record(workdir, step) or {"evals": {}}
    for scores in record["evals"].values():
      flat.update({k: v for k, v in scores.items() if k != "seconds"})
    flat["step"] = step
  return flat


def run(args, log):
  from jaxdisent.runs import evaluate_workdir, run_cells
  config = os.path.join(ROOT, "configs", "gem_dsprites.py")
  cells = list(_cells(args))
  for index, (rho, variant, seed, overrides) in enumerate(cells, 1):
    root = os.path.join(args.workdir, f"rho{rho:g}")
    name = f"{variant}_seed{seed}"
    start = time.time()
    log(f"[gem_correlation] {index}/{len(cells)} rho={rho:g} {name}")
    run_cells(config, root, [(name, overrides)], evaluate=False, log=lambda *a: None)
    if "pair_separation" not in _scores(os.path.join(root, name)):
      evaluate_workdir(os.path.join(root, name), only=["pair_disentanglement"],
                       log=lambda *a: None)
    got = _scores(os.path.join(root, name))
    log(f"[gem_correlation]   done in {time.time() - start:.0f} s: pair_separation "
        f"{got.get('pair_separation', float('nan')):.3f}, learned_auroc "
        f"{got.get('learned_auroc', float('nan')):.3f}")


def collect(args):
  import numpy as np
  rows = []
  for rho, variant, seed, _ in _cells(args):
    workdir = os.path.join(args.workdir, f"rho{rho:g}", f"{variant}_seed{seed}")
    got = _scores(workdir)
    if "pair_separation" in got:
      rows.append({"correlation": rho, "variant": variant, "seed": seed,
                   **{k: got[k] for k in ("step", *KEYS) if k in got}})
  summary, lines = {}, []
  keys = [k for k in KEYS if any(k in r for r in rows)]
  lines.append("| variant | rho | seeds | " + " | ".join(keys) + " |")
  lines.append("|---|---|---|" + "---|" * len(keys))
  for variant in args.variants:
    for rho in args.correlations:
      runs = [r for r in rows if r["variant"] == variant and r["correlation"] == rho]
      if not runs:
        continue
      stats = {k: (float(np.mean([r[k] for r in runs])), float(np.std([r[k] for r in runs])))
               for k in keys if all(k in r for r in runs)}
      summary.setdefault(variant, {})[f"{rho:g}"] = {"n": len(runs), **stats}
      cells = [f"{stats[k][0]:.3f} +- {stats[k][1]:.3f}" if k in stats else "-" for k in keys]
      lines.append(f"| {variant} | {rho:g} | {len(runs)} | " + " | ".join(cells) + " |")
  markdown = "\n".join(lines) + "\n"
  os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
  with open(args.out + ".json", "w") as f:
    json.dump({"num_steps": args.num_steps, "rows": rows, "summary": summary}, f, indent=1)
  with open(args.out + ".md", "w") as f:
    f.write(markdown)
  _plot(summary, args, args.out + ".png")
  return markdown


def _plot(summary, args, path):
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
  for ax, key in zip(axes, ("pair_separation", "pair_dci_disentanglement")):
    for variant, by_rho in summary.items():
      points = sorted((float(r), s[key]) for r, s in by_rho.items() if key in s)
      if points:
        x = [p[0] for p in points]
        ax.errorbar(x, [p[1][0] for p in points], yerr=[p[1][1] for p in points], marker="o",
                    capsize=3, label=variant)
    ax.set_xlabel("correlation of each pair (rho)")
    ax.set_ylabel(key)
    ax.grid(alpha=0.3)
  axes[0].legend(fontsize=8)
  fig.suptitle(f"correlated dSprites, {args.num_steps} steps, mean +- sd over seeds "
               "(pairs scored on the uniform grid)", fontsize=9)
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--workdir", required=True)
  parser.add_argument("--correlations", default="0,0.5,0.9")
  parser.add_argument("--variants", default="beta_vae,truth_graph,full,prior_reversed,scm")
  parser.add_argument("--seeds", default="0,1,2")
  parser.add_argument("--num_steps", type=int, default=600)
  parser.add_argument("--out", default=os.path.join(ROOT, "docs", "results", "gem_correlation"))
  parser.add_argument("--collect_only", action="store_true")
  args = parser.parse_args(argv)
  try:
    args.correlations = [float(r) for r in args.correlations.split(",") if r]
    args.seeds = [int(s) for s in args.seeds.split(",") if s]
  except ValueError as error:
    print(f"[jaxdisent] error: --correlations / --seeds: {error}", file=sys.stderr)
    return 2
  args.variants = [v for v in args.variants.split(",") if v]
  if args.num_steps < 1 or not args.correlations or not args.seeds or not args.variants:
    print("[jaxdisent] error: need --num_steps >= 1 and at least one correlation, seed and "
          "variant", file=sys.stderr)
    return 2
  log = lambda *a: print(*a, file=sys.stderr, flush=True)
  if not args.collect_only:
    run(args, log)
  print(collect(args))
  log(f"[gem_correlation] wrote {args.out}.json, .md, .png")
  return 0


if __name__ == "__main__":
  sys.exit(main())
