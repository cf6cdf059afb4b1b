"""DecAlign ablation: the full model against variants with a loss term switched off or replaced,
over paired seeds.

  python -m launch.decalign_ablation --config=configs/decalign_synthetic.py --workdir=runs/decalign_ablation \
      [--variants=full,no_heterogeneity,no_homogeneity,no_decoupling,task_only] [--seeds=0,1,2] \
      [--baseline=task_only] [--config.train.num_steps=1000 ...]

  python -m launch.decalign_ablation --config=configs/decalign_shortcut.py --workdir=runs/shortcut \
      --variants=full,task_only,instance_align --seeds=0,1,2,3,4,5,6,7,8,9,10,11 --config.data.num_train=300

Variants (VARIANTS below): the term switches (full, no_heterogeneity, no_homogeneity,
no_decoupling, task_only); ``instance_align`` = task + a paired instance-level InfoNCE between the
common features of the same example across modalities (the positive control, weight 0.1;
``instance_align_w1`` the same at weight 1.0, so that a null control is not one weight's);
``common_head`` = task only with the head reading the common features alone (``model.head_input``:
the unique branch can no longer carry the shortcut) and ``common_head_align`` the same plus the
instance InfoNCE (does alignment help once the head cannot read the unique branch?); ``full_raw`` = full
without the scale-invariant option; the alignment strategies of the paper's ablation, each the full
model with one part replaced: ``hete_moments`` / ``hete_mmd`` / ``hete_contrastive`` (heterogeneity
by moment matching, by MMD only, by paired contrastive instead of prototype OT) and
``homo_moments`` / ``homo_mmd`` (homogeneity by moments only / MMD only).

Each run trains through the shared engine in WORKDIR/<variant>_seed<s> (re-running resumes or skips
finished runs). A seed fixes the data (sources that draw their examples from the run's seed, as
the shortcut benchmark) and the initialisation, so the variants of one seed are paired.

Model selection: when the config evaluates during training (``train.eval_every``) and sets
``evals.decalign.patience``, a run's result is the test evaluation at the step with the lowest
``eval/decalign/valid_mae`` (``valid_waf1`` highest for classification), searching the logged
evaluations in order and stopping after ``patience`` evaluations without improvement -- what the
official trainer's early stopping returns (training itself runs all steps). Otherwise it is the
final evaluation.

``--collect=W1,W2,... --out=STEM [--by=data.num_train]`` gathers the paired entries of finished
ablations that differ in one config key (``--by``: data.num_train by default, or e.g.
data.shortcut.rho_train, data.shortcut.test_offset) into STEM.md (table, with the baseline's own
test metric) and STEM.png (each difference with its 95% interval against that key).

WORKDIR/ablation.md / ablation.json hold mean +- std over seeds per variant and a ``paired`` entry
per variant: the test MAE (1 - WAF1 for classification) minus the baseline's on the same seed,
``{"diff_mean", "ci95": [lo, hi] (Student t over seeds), "n", "sd"}``; WORKDIR/ablation.png plots
the means.
"""

from __future__ import annotations

import json
import os
import sys

import numpy as np

from launch.common import UsageError, fail, load_config_from_args, parse_args, run_main
from jaxdisent.runs import parse_seeds, run_cells

TASK_ONLY = {"loss.heterogeneity": False, "loss.homogeneity": False, "loss.decoupling": False}
VARIANTS = {
    "full": {},
    "no_heterogeneity": {"loss.heterogeneity": False},
    "no_homogeneity": {"loss.homogeneity": False},
    "no_decoupling": {"loss.decoupling": False},
    "task_only": TASK_ONLY,
    "instance_align": {**TASK_ONLY, "loss.instance_align_weight": 0.1},
    "instance_align_w1": {**TASK_ONLY, "loss.instance_align_weight": 1.0},
    "common_head": {**TASK_ONLY, "model.head_input": "common"},
    "common_head_align": {**TASK_ONLY, "model.head_input": "common", "loss.instance_align_weight": 0.1},
    "full_raw": {"loss.scale_invariant": False},
    "hete_moments": {"loss.heterogeneity_strategy": "moments"},
    "hete_mmd": {"loss.heterogeneity_strategy": "mmd"},
    "hete_contrastive": {"loss.heterogeneity_strategy": "contrastive"},
    "homo_moments": {"loss.mmd_weight": 0.0},
    "homo_mmd": {"loss.moment_weight": 0.0},
}
KEYS = ("mae", "corr", "acc2", "f1", "acc7", "wacc", "waf1", "probe_unique_to_own_unique",
        "probe_common_to_common", "probe_common_to_unique", "probe_unique_to_common",
        "unique_common_cos2", "unique_norm", "head_std", "valid_mae", "selected_step")


def select_evaluation(rows: list[dict], patience: int, key: str = "eval/decalign/valid_mae",
                      higher_is_better: bool = False) -> dict | None:
  """The evaluation row early stopping on `key` returns: scan the rows with `key` in step order,
  keep the best, stop after `patience` rows without improvement (patience 0: the last row)."""
  evals = sorted((r for r in rows if key in r), key=lambda r: r["step"])
  if not evals:
    return None
  if patience <= 0:
    return evals[-1]
  best, since = None, 0
  for row in evals:
    value = row[key] if not higher_is_better else -row[key]
    if best is None or value < best[0]:
      best, since = (value, row), 0
    else:
      since += 1
      if since >= patience:
        break
  return best[1]


def paired_differences(rows: list[dict], variants: list[str], baseline: str, key: str = "mae",
                       sign: float = 1.0) -> dict:
  """Per variant: the mean over seeds of sign * (variant - baseline) on the same seed, its
  Student-t 95% interval, sd and n (seeds present in both)."""
  from scipy import stats  # pylint: disable=g-import-not-at-top
  base = {r["seed"]: r[key] for r in rows if r["variant"] == baseline and key in r}
  out = {}
  for variant in variants:
    diffs = np.array([sign * (r[key] - base[r["seed"]]) for r in rows
                      if r["variant"] == variant and r["seed"] in base and key in r], float)
    n = len(diffs)
    entry = {"n": n, "diff_mean": float(diffs.mean()) if n else float("nan"), "key": key,
             "baseline": baseline}
    if n >= 2:
      sd = float(diffs.std(ddof=1))
      half = float(stats.t.ppf(0.975, n - 1)) * sd / np.sqrt(n)
      entry.update(sd=sd, ci95=[float(entry["diff_mean"] - half), float(entry["diff_mean"] + half)])
    else:
      entry.update(sd=float("nan"), ci95=[float("nan"), float("nan")])
    out[variant] = entry
  return out


def paired_markdown(paired: dict) -> str:
  lines = ["| variant | paired diff vs " + next(iter(paired.values()))["baseline"]
           + " (" + next(iter(paired.values()))["key"] + ") | 95% CI | n |", "|---|---|---|---|"]
  for variant, e in paired.items():
    lines.append(f"| {variant} | {e['diff_mean']:+.4f} | [{e['ci95'][0]:+.4f}, {e['ci95'][1]:+.4f}] "
                 f"| {e['n']} |")
  return "\n".join(lines) + "\n"


def read_selected(cell: str, patience: int, task: str) -> dict:
  """The selected evaluation of one run as {metric: value} (sentiment + decalign scalars)."""
  with open(os.path.join(cell, "metrics.jsonl")) as f:
    rows = [json.loads(line) for line in f if line.strip()]
  key = "eval/decalign/valid_mae" if task == "regression" else "eval/decalign/valid_waf1"
  row = select_evaluation(rows, patience, key, higher_is_better=task != "regression")
  if row is None:
    return {}
  out = {"selected_step": row["step"]}
  for prefix in ("eval/decalign/", "eval/sentiment/"):   # sentiment wins where both have a key
    out.update({k[len(prefix):]: v for k, v in row.items() if k.startswith(prefix)})
  return out


def summarize(rows, variants):
  table = {}
  for variant in variants:
    runs = [r for r in rows if r["variant"] == variant]
    table[variant] = {k: (float(np.mean([r[k] for r in runs])), float(np.std([r[k] for r in runs])))
                      for k in KEYS if all(k in r for r in runs)}
  keys = [k for k in KEYS if all(k in table[v] for v in variants)]
  lines = ["| variant | seeds | " + " | ".join(keys) + " |", "|---|---|" + "---|" * len(keys)]
  for variant in variants:
    n = sum(r["variant"] == variant for r in rows)
    cells = [f"{table[variant][k][0]:.3f} +- {table[variant][k][1]:.3f}" for k in keys]
    lines.append(f"| {variant} | {n} | " + " | ".join(cells) + " |")
  return table, "\n".join(lines) + "\n"


def plot(table, variants, path):
  from jaxdisent.viz.ablation_plots import variant_bars  # pylint: disable=g-import-not-at-top
  variant_bars(table, variants, ["mae", "corr", "f1", "acc7", "probe_unique_to_own_unique",
                                 "probe_common_to_common"], path,
               "DecAlign ablation (test split, mean +- std over seeds)", lower_is_better=("mae",),
               zoom=True)


def _config_value(config: dict, key: str):
  value = config
  for part in key.split("."):
    if not isinstance(value, dict) or part not in value:
      raise KeyError(f"--by={key}: the runs' config.json has no {key!r} "
                     "(give a dotted config key, e.g. data.num_train or data.shortcut.rho_train)")
    value = value[part]
  return value


def collect(workdirs: list[str], out_stem: str, by: str = "data.num_train") -> str:
  """Paired differences of several finished ablations that differ in one config key `by`
  (data.num_train by default; e.g. data.shortcut.rho_train or data.shortcut.test_offset) as a table
  (OUT.md, with the baseline's own mean test metric) and a plot of each variant's diff_mean with its
  95% interval against that key (OUT.png; a log axis for num_train, categories for non-numbers)."""
  points = []
  for workdir in workdirs:
    path = os.path.join(workdir, "ablation.json")
    if not os.path.exists(path):
      raise FileNotFoundError(f"{path} does not exist: run the ablation in {workdir} first")
    with open(path) as f:
      result = json.load(f)
    if "paired" not in result:
      raise ValueError(f"{path} has no paired entry (the baseline was not among the variants)")
    run = result["rows"][0]
    with open(os.path.join(workdir, f"{run['variant']}_seed{run['seed']}", "config.json")) as f:
      value = _config_value(json.load(f), by)
    points.append((value, result["paired"], result.get("summary", {})))
  numeric = all(isinstance(p[0], (int, float)) and not isinstance(p[0], bool) for p in points)
  if numeric:
    points.sort(key=lambda p: p[0])
  variants = []                                 # every non-baseline variant, first seen first
  for _, paired, _ in points:
    variants += [v for v in paired if v != paired[v]["baseline"] and v not in variants]
  if not variants:
    raise ValueError("the ablations hold only their baseline: nothing to compare")
  first = next(p[1] for p in points)
  entry = next(iter(first.values()))
  baseline, key = entry["baseline"], entry["key"]
  if any(e["baseline"] != baseline or e["key"] != key for _, p, _ in points for e in p.values()):
    raise ValueError("the ablations were summarised against different baselines or metrics")
  label = lambda v: ",".join(str(x) for x in v) if isinstance(v, (list, tuple)) else str(v)
  lines = [f"| {by} | " + " | ".join(f"{v} - {baseline} ({key}), 95% CI, n" for v in variants)
           + f" | {baseline} test {key} |", "|---|" + "---|" * (len(variants) + 1)]
  for value, paired, summary in points:
    cells = [f"{paired[v]['diff_mean']:+.4f} [{paired[v]['ci95'][0]:+.4f}, {paired[v]['ci95'][1]:+.4f}], "
             f"{paired[v]['n']}" if v in paired else "-" for v in variants]   # "-": not run there
    base = summary.get(baseline, {}).get(key)
    cells.append(f"{base[0]:.3f} +- {base[1]:.3f}" if base else "-")
    lines.append(f"| {label(value)} | " + " | ".join(cells) + " |")
  markdown = "\n".join(lines) + "\n"
  with open(out_stem + ".md", "w") as f:
    f.write(markdown)
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  fig, ax = plt.subplots(figsize=(5.0, 3.4))
  log_axis = numeric and by == "data.num_train"
  for i, variant in enumerate(variants):
    offset = 0.04 * (i - (len(variants) - 1) / 2)
    if log_axis:
      xs = np.array([p[0] for p in points], float) * (1.0 + offset)
    elif numeric:
      values = np.array([p[0] for p in points], float)
      span = float(values.max() - values.min()) or 1.0
      xs = values + offset * span
    else:
      xs = np.arange(len(points)) + offset * 4
    present = np.array([variant in p[1] for p in points])
    xs = xs[present]
    means = np.array([p[1][variant]["diff_mean"] for p in points if variant in p[1]])
    ci = np.array([p[1][variant]["ci95"] for p in points if variant in p[1]])
    ax.errorbar(xs, means, yerr=[means - ci[:, 0], ci[:, 1] - means], marker="o", capsize=3,
                label=variant)
  ax.axhline(0.0, color="k", lw=0.8)
  if log_axis:
    ax.set_xscale("log")
  if not numeric:
    ax.set_xticks(np.arange(len(points)), [label(p[0]) for p in points], fontsize=7)
  ax.set_xlabel(by)
  ax.set_ylabel(f"test {key} minus {baseline}'s (paired)")
  ax.set_title("paired difference over seeds, 95% CI", fontsize=9)
  ax.legend(fontsize=8)
  fig.tight_layout()
  fig.savefig(out_stem + ".png", dpi=110)
  plt.close(fig)
  return markdown


def main(argv) -> int:
  try:
    overrides, flags = parse_args(argv, {"config": "configs/decalign_synthetic.py", "workdir": None,
                                         "root": None, "variants": ",".join(list(VARIANTS)[:5]),
                                         "seeds": "0,1,2", "baseline": "task_only", "collect": None,
                                         "out": None, "by": "data.num_train"})
    if flags["collect"]:
      if not flags["out"]:
        raise UsageError("--collect=W1,W2,... needs --out=PATH_STEM (writes PATH_STEM.md and .png)")
      try:
        print(collect([w for w in flags["collect"].split(",") if w], flags["out"], flags["by"]))
      except (KeyError, ValueError, FileNotFoundError) as error:
        return fail(str(error).strip("'\""))
      return 0
    if flags["root"] and not flags["workdir"]:
      print("[jaxdisent] note: --root is deprecated; use --workdir", file=sys.stderr)
      flags["workdir"] = flags["root"]
    if not flags["workdir"]:
      raise UsageError("--workdir=DIR is required")
    variants = [v for v in flags["variants"].split(",") if v]
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
      raise UsageError(f"unknown variant(s) {unknown}; choose from {sorted(VARIANTS)}")
    if flags["baseline"] not in VARIANTS:
      raise UsageError(f"--baseline={flags['baseline']}: choose from {sorted(VARIANTS)}")
    seeds = parse_seeds(flags["seeds"])
    base = load_config_from_args(flags["config"], overrides)
    if base.method != "decalign":
      raise UsageError(f"{flags['config']} is a {base.method!r} config; the ablation needs decalign")
    cells = [(f"{variant}_seed{seed}",
              [*overrides, *((k, str(v).lower()) for k, v in VARIANTS[variant].items()),
               ("seed", str(seed))]) for seed in seeds for variant in variants]   # pairs first
    root = flags["workdir"]
    sweep_rows = run_cells(flags["config"], root, cells)
  except UsageError as error:
    return fail(str(error))
  except (ValueError, KeyError, FileNotFoundError, RuntimeError) as error:
    return fail(str(error))
  patience = int(base.evals.get("decalign", {}).get("patience", 0) or 0) if "evals" in base else 0
  selecting = patience > 0 and int(base.train.get("eval_every", 0) or 0) > 0
  task = base.loss.task
  rows = []
  for row, (variant, seed) in zip(sweep_rows, [(v, s) for s in seeds for v in variants]):
    final = {}
    for prefix in ("eval/decalign/", "eval/sentiment/"):
      final.update({k[len(prefix):]: v for k, v in row.items() if k.startswith(prefix)})
    chosen = read_selected(os.path.join(root, row["run"]), patience, task) if selecting else {}
    rows.append({"variant": variant, "seed": seed, **(chosen or final)})
  table, markdown = summarize(rows, variants)
  result = {"rows": rows, "summary": table,
            "selection": (f"test metrics at the evaluation with the best valid metric, early "
                          f"stopping patience {patience} evaluations") if selecting else "final step"}
  if flags["baseline"] in variants:
    key, sign = ("mae", 1.0) if task == "regression" else ("waf1", -1.0)
    result["paired"] = paired_differences(rows, variants, flags["baseline"], key, sign)
    markdown += "\n" + paired_markdown(result["paired"])
  with open(os.path.join(root, "ablation.md"), "w") as f:
    f.write(markdown)
  with open(os.path.join(root, "ablation.json"), "w") as f:
    json.dump(result, f, indent=2)
  plot(table, variants, os.path.join(root, "ablation.png"))
  print(markdown)
  print(f"[ablation] wrote {root}/ablation.md, ablation.json, ablation.png", file=sys.stderr)
  return 0


if __name__ == "__main__":
  sys.exit(run_main(main, doc=__doc__))
