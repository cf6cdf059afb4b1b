"""GEM ablation: the full model against variants with one part removed, plus an oracle-accuracy sweep.

  python -m launch.gem_ablation --config=configs/gem_dsprites.py --workdir=runs/gem_ablation \
      [--variants=full,no_gnn,vae,no_adversarial,no_oracle_prior,beta_vae] [--seeds=0]
      [--accuracies=1.0,0.884,0.7,0.5,0.3,0.1] [--sweep_seeds=0,1,2,3,4]
      [--evaluators=gem_disentanglement] [--config.KEY=VALUE ...]

Variants (each trains through the shared engine in ROOT/<variant>_seed<s>; re-running resumes or
skips finished runs): ``full``; ``no_gnn`` (model.kind=none: the decoder reads z); ``vae``
(kl_weight=1: plain VAE instead of beta-VAE); ``no_adversarial`` (adversarial_weight=0);
``no_oracle_prior`` (oracle.kind=statistical + structure_weight=1: the graph is learned from the
model's own codes); ``beta_vae`` (no GNN, no graph terms, no adversarial term: the plain beta-VAE
on the same data); ``untrained`` (the control: the full model at initialisation, no training, so
its DisGraph is exactly the prior); ``prior_reversed`` / ``prior_uniform`` / ``prior_random`` /
``prior_drop_k`` / ``prior_spurious_k`` (the full model from a deliberately wrong prior,
``model.prior_corruption``, k = ``model.prior_corruption_k``; see jaxdisent/oracles/corrupt.py),
each to the same schedule; ``scm`` / ``scm_prior_reversed`` (the structured latent prior,
``model.prior='scm'`` with the oracle-score supervision of the pinned nodes, from the oracle's or
the reversed prior: can the data move A toward the truth?); ``truth_graph`` (oracle.kind=truth:
the data's own true graph as the prior, the upper control). Each run is scored by the
``graph_recovery`` evaluator and, after training, by ``--evaluators`` (default
``gem_disentanglement``; ``pair_disentanglement`` for the correlation-strength benchmark,
``docs/results/gem_correlation.md``); the table shows ``learned_*``, ``prior_*`` (the prior that
run started from) and ``learned_minus_prior_*`` (what training added).

The sweep scores ``oracle.num_images`` pool images with the simulated oracle at each accuracy
(``--sweep_seeds`` oracle seeds) and measures the recovery of the relation matrix it yields (the
prior the DisGraph is initialised from and pulled toward; no training). ROOT/ablation.md and
ablation.json hold the tables, ROOT/ablation.png and ROOT/oracle_sweep.png the plots.
"""

from __future__ import annotations

import json
import os
import sys

import numpy as np

from launch.common import UsageError, fail, load_config_from_args, parse_args, run_main

VARIANTS = {
    "full": {},
    "no_gnn": {"model.kind": "none"},
    "vae": {"loss.kl_weight": 1.0},
    "no_adversarial": {"loss.adversarial_weight": 0.0},
    "no_oracle_prior": {"oracle.kind": "statistical", "loss.structure_weight": 1.0},
    "beta_vae": {"model.kind": "none", "loss.graph_prior_weight": 0.0,
                 "loss.sparsity_weight": 0.0, "loss.adversarial_weight": 0.0},
    "untrained": {},            # the full model evaluated at initialisation (no training step)
    "prior_reversed": {"model.prior_corruption": "reversed"},
    "prior_uniform": {"model.prior_corruption": "uniform"},
    "prior_random": {"model.prior_corruption": "random"},
    "prior_drop_k": {"model.prior_corruption": "drop_k"},
    "prior_spurious_k": {"model.prior_corruption": "spurious_k"},
    "scm": {"model.prior": "scm", "loss.supervision_weight": 1.0},
    "scm_prior_reversed": {"model.prior": "scm", "loss.supervision_weight": 1.0,
                           "model.prior_corruption": "reversed"},
    "truth_graph": {"oracle.kind": "truth"},
}
KEYS = ("learned_auroc", "prior_auroc", "learned_minus_prior_auroc", "learned_auprc",
        "learned_minus_prior_auprc", "learned_shd", "learned_direction_accuracy", "recon",
        "mig", "irs", "dci_disentanglement", "factor_vae_score", "pair_separation",
        "pair_dci_disentanglement", "grid_mig")


def _fmt(mean, std, n):
  return f"{mean:.3f}" if n == 1 else f"{mean:.3f} +- {std:.3f}"


def summarize(rows, variants):
  table, lines = {}, []
  keys = [k for k in KEYS if any(k in r for r in rows)]
  lines.append("| variant | seeds | " + " | ".join(keys) + " |")
  lines.append("|---|---|" + "---|" * len(keys))
  for variant in variants:
    runs = [r for r in rows if r["variant"] == variant]
    table[variant] = {k: (float(np.mean([r[k] for r in runs])), float(np.std([r[k] for r in runs])))
                      for k in keys if runs and all(k in r for r in runs)}
    cells = [_fmt(*table[variant][k], len(runs)) if k in table[variant] else "-" for k in keys]
    lines.append(f"| {variant} | {len(runs)} | " + " | ".join(cells) + " |")
  return table, "\n".join(lines) + "\n"


def _evaluate_untrained(config, workdir, log, evaluators=("gem_disentanglement",)):
  """The control row: the model at initialisation (its DisGraph is exactly the prior), scored by
  the same evaluators; written as WORKDIR/eval/step_0.json."""
  from jaxdisent.runs import evaluate_untrained  # pylint: disable=g-import-not-at-top
  return evaluate_untrained(config, workdir, only=["graph_recovery", *evaluators], log=log)


def oracle_sweep(base_config, accuracies, seeds):
  """Recovery of the simulated oracle's relation matrix vs its accuracy (no training)."""
  from jaxdisent.data import make_source  # pylint: disable=g-import-not-at-top
  from jaxdisent.oracles import directed_relations  # pylint: disable=g-import-not-at-top
  from jaxdisent.metrics.graph import graph_recovery  # pylint: disable=g-import-not-at-top
  from jaxdisent.oracles import oracle_scores  # pylint: disable=g-import-not-at-top
  source = make_source(base_config.data, "graph")
  truth = source.true_adjacency()
  count = min(int(base_config.oracle.num_images), source.pool_size)
  rows = []
  for accuracy in accuracies:
    for seed in seeds:
      oracle = base_config.oracle.copy_and_resolve_references()
      oracle.kind, oracle.accuracy, oracle.seed = "simulated", float(accuracy), int(seed)
      scores = oracle_scores(source, oracle, np.arange(count))
      cols = [source.attribute_names.index(a) for a in scores.attributes]
      relations = directed_relations(scores.scores, scores.valid, oracle.get("ridge", 1e-3),
                                     oracle.get("gain", 2.0),
                                     basis=oracle.get("basis", "poly"))
      rows.append({"accuracy": float(accuracy), "seed": int(seed),
                   **graph_recovery(relations, truth[np.ix_(cols, cols)])})
  lines = ["| oracle accuracy | seeds | AUROC | AUPRC | direction accuracy |", "|---|---|---|---|---|"]
  summary = {}
  for accuracy in accuracies:
    runs = [r for r in rows if r["accuracy"] == float(accuracy)]
    stats = {k: (float(np.mean([r[k] for r in runs])), float(np.std([r[k] for r in runs])))
             for k in ("auroc", "auprc", "direction_accuracy")}
    summary[str(accuracy)] = stats
    lines.append(f"| {accuracy:g} | {len(runs)} | " + " | ".join(
        f"{stats[k][0]:.3f} +- {stats[k][1]:.3f}" for k in ("auroc", "auprc",
                                                             "direction_accuracy")) + " |")
  return rows, summary, "\n".join(lines) + "\n"


def plot(table, variants, sweep, path_bars, path_sweep, title):
  from jaxdisent.viz.ablation_plots import variant_bars  # pylint: disable=g-import-not-at-top
  from jaxdisent.viz.graph_plots import save_oracle_accuracy_sweep  # pylint: disable=g-import-not-at-top
  variant_bars(table, variants, ["learned_auroc", "learned_direction_accuracy", "mig",
                                 "dci_disentanglement", "recon"], path_bars, title,
               lower_is_better=("recon",))
  if sweep:
    save_oracle_accuracy_sweep(sweep, path_sweep, title=title)


def main(argv) -> int:
  try:
    overrides, flags = parse_args(argv, {
        "config": "configs/gem_dsprites.py", "root": None, "workdir": None, "variants": ",".join(VARIANTS),
        "seeds": "0", "accuracies": "1.0,0.884,0.7,0.5,0.3,0.1", "sweep_seeds": "0,1,2,3,4",
        "evaluators": "gem_disentanglement"})
    if flags["root"] and not flags["workdir"]:
      print("[jaxdisent] note: --root is deprecated; use --workdir", file=sys.stderr)
    flags["root"] = flags["workdir"] or flags["root"]
    if not flags["root"]:
      raise UsageError("--workdir=DIR is required")
    variants = [v for v in flags["variants"].split(",") if v]
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
      raise UsageError(f"unknown variant(s) {unknown}; choose from {sorted(VARIANTS)}")
    seeds = [int(s) for s in flags["seeds"].split(",") if s]
    accuracies = [float(a) for a in flags["accuracies"].split(",") if a]
    sweep_seeds = [int(s) for s in flags["sweep_seeds"].split(",") if s]
    base = load_config_from_args(flags["config"], overrides)
    if base.method != "gem":
      raise UsageError(f"{flags['config']} is a {base.method!r} config; the ablation needs gem")
    evaluators = [e for e in flags["evaluators"].split(",") if e]
    undeclared = [e for e in evaluators if e not in base.get("evals", {})]
    if undeclared:
      raise UsageError(f"--evaluators={flags['evaluators']}: {undeclared} not declared in "
                       f"{flags['config']}'s evals ({sorted(base.get('evals', {}))})")
  except (UsageError, ValueError, KeyError, FileNotFoundError) as error:
    return fail(str(error))
  from absl import logging  # pylint: disable=g-import-not-at-top
  from jaxdisent.evals import read_record  # pylint: disable=g-import-not-at-top
  from jaxdisent.runs import run_cells  # pylint: disable=g-import-not-at-top
  logging.set_verbosity(logging.WARNING)
  root = flags["root"]
  os.makedirs(root, exist_ok=True)
  log = lambda *a: print(*a, file=sys.stderr, flush=True)
  # The trained variants are a cell list for the shared runner (each cell ROOT/<variant>_seed<s>,
  # resumed or skipped when finished, scored by gem_disentanglement after training's evaluators).
  cells = [(f"{variant}_seed{seed}",
            [*overrides, *[(k, str(v)) for k, v in VARIANTS[variant].items()], ("seed", str(seed))])
           for variant in variants if variant != "untrained" for seed in seeds]
  trained = {}
  if cells:
    try:
      for row in run_cells(flags["config"], root, cells, evaluate=bool(evaluators),
                           only=evaluators, log=log):
        trained[row["run"]] = {k.split("/", 2)[-1]: v for k, v in row.items()
                               if k.startswith("eval/")}
    except RuntimeError as error:  # a preempted cell
      return fail(str(error))
  rows = []
  for variant in variants:
    for seed in seeds:
      name = f"{variant}_seed{seed}"
      if variant == "untrained":
        config = load_config_from_args(flags["config"], [*overrides, ("seed", str(seed))])
        workdir = os.path.join(root, name)
        log(f"[ablation] {variant} seed {seed} -> {workdir}")
        record = _evaluate_untrained(config, workdir, log, evaluators)   # reuses step_0.json
        flat = {}
        for scores in record["evals"].values():
          flat.update({k: v for k, v in scores.items() if k != "seconds"})
      else:
        flat = trained[name]
      rows.append({"variant": variant, "seed": seed, **flat})
  table, markdown = summarize(rows, variants)
  sweep_rows, sweep, sweep_md = oracle_sweep(base, accuracies, sweep_seeds) if accuracies else (
      [], {}, "")
  name = base.data.source
  with open(os.path.join(root, "ablation.md"), "w") as f:
    f.write(f"### {name}: variants\n\n{markdown}\n### {name}: oracle-accuracy sweep\n\n{sweep_md}")
  with open(os.path.join(root, "ablation.json"), "w") as f:
    json.dump({"rows": rows, "summary": table, "sweep_rows": sweep_rows, "sweep": sweep}, f,
              indent=2)
  plot(table, variants, sweep, os.path.join(root, "ablation.png"),
       os.path.join(root, "oracle_sweep.png"), name)
  print(markdown)
  print(sweep_md)
  log(f"[ablation] wrote {root}/ablation.md, ablation.json, ablation.png, oracle_sweep.png")
  return 0


if __name__ == "__main__":
  sys.exit(run_main(main, doc=__doc__))
