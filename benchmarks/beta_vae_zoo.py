"""A small beta-VAE zoo on dSprites: beta x seeds at one schedule, each scored at the reference sizes.

Trains (through the shared runner, ``jaxdisent.runs.run_cells``; the same cells and names as
``launch.sweep --grid=loss.beta=... --seeds=...``, so a finished sweep is reused, not retrained)
and evaluates every cell with the ``disentanglement`` evaluator at disentanglement_lib's sizes
(10,000 / 5,000 points), then exports one evaluation file per model to ``--out``:

  python benchmarks/beta_vae_zoo.py --workdir=runs/zoo [--betas=1,4,16] [--seeds=0,1]
      [--num_steps=3000] [--learning_rate=1e-4] [--out=docs/results/zoo/3k] [--export_only]
      [--train_only --export_dir=DIR [--vmap_cells]] [--import_dir=DIR]

OUT/beta<b>_seed<s>.json holds the evaluation record, the model's full config and the command
that reproduces it; OUT/summary.md and summary.json the mean +- std over seeds per beta, beside
Locatello et al.'s ranges. The weights are not committed (7.4 MB per checkpoint with Adam's state):
the command in each file retrains the model from scratch (the engine's training is deterministic
on a given machine and software stack). ``--export_only`` writes OUT from what has finished.

Training and evaluation can run on different machines, as for the learning curve:
``--train_only --export_dir=DIR`` trains every cell without evaluating (e.g. on a GPU, with
``--vmap_cells`` to train the seeds of a beta as one program) and writes DIR/beta<b>_seed<s>.tar.gz
(the final checkpoint, config and log, ~7.4 MiB each); ``--import_dir=DIR`` unpacks those into
WORKDIR and then evaluates every cell here.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
from beta_vae_curve import METRICS, PUBLISHED  # noqa: E402  the curve's metric list and ranges
CONFIG = "configs/beta_vae_dsprites.py"


def _error(message):
  print(f"[jaxdisent] error: {message}", file=sys.stderr)
  raise SystemExit(2)


def _parse(argv):
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--workdir", required=True)
  parser.add_argument("--betas", default="1,4,16")
  parser.add_argument("--seeds", default="0,1")
  parser.add_argument("--num_steps", type=int, default=3000)
  parser.add_argument("--learning_rate", type=float, default=1e-4)
  parser.add_argument("--out", default="", help="default docs/results/zoo/<num_steps>, e.g. 30k")
  parser.add_argument("--export_only", action="store_true")
  parser.add_argument("--train_only", action="store_true")
  parser.add_argument("--export_dir", default="")
  parser.add_argument("--import_dir", default="")
  parser.add_argument("--vmap_cells", action="store_true")
  args = parser.parse_args(argv)
  if args.train_only and not args.export_dir:
    _error("--train_only needs --export_dir=DIR (where each model's checkpoint archive goes)")
  if args.import_dir and not os.path.isdir(args.import_dir):
    _error(f"--import_dir={args.import_dir!r} is not a directory; give the folder holding the "
           "beta<b>_seed<s>.tar.gz archives written by --train_only --export_dir")
  try:
    args.betas = [str(float(b)).rstrip("0").rstrip(".") for b in args.betas.split(",") if b.strip()]
    args.seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
  except ValueError:
    _error("--betas and --seeds are comma-separated numbers, e.g. --betas=1,4,16 --seeds=0,1")
  if not args.betas or not args.seeds or min(args.seeds) < 0:
    _error("--betas and --seeds need at least one value each (seeds >= 0)")
  if any(float(b) < 0 for b in args.betas):
    _error("--betas must be >= 0")
  if args.num_steps < 1 or args.learning_rate <= 0:
    _error("--num_steps must be >= 1 and --learning_rate > 0")
  if not args.out:
    args.out = os.path.join(ROOT, "docs", "results", "zoo", schedule_name(args.num_steps))
  return args


def schedule_name(num_steps: int) -> str:
  """The folder of one schedule's zoo under docs/results/zoo: 3000 -> '3k', 1500 -> '1500'."""
  return f"{num_steps // 1000}k" if num_steps % 1000 == 0 else str(num_steps)


def _cells(args):
  base = [("optimizer.learning_rate", str(args.learning_rate)),
          ("train.num_steps", str(args.num_steps)),
          ("train.checkpoint_every", str(min(args.num_steps, 1000)))]
  if args.train_only:
    base.append(("train.eval_at_end", "false"))
  for beta in args.betas:
    for seed in args.seeds:
      yield beta, seed, f"beta={beta}_seed{seed}", [*base, ("loss.beta", beta), ("seed", str(seed))]


def _command(args, beta, seed):
  return (f"python -m launch.train --config={CONFIG} --workdir=runs/zoo/beta={beta}_seed{seed} "
          f"--config.loss.beta={beta} --config.seed={seed} "
          f"--config.optimizer.learning_rate={args.learning_rate:g} "
          f"--config.train.num_steps={args.num_steps} "
          f"--config.train.checkpoint_every={min(args.num_steps, 1000)} && "
          f"python -m launch.evaluate --workdir=runs/zoo/beta={beta}_seed{seed} "
          "--only=disentanglement")


def export(args):
  import numpy as np  # pylint: disable=g-import-not-at-top
  from jaxdisent.evals import read_record  # pylint: disable=g-import-not-at-top
  os.makedirs(args.out, exist_ok=True)
  rows = []
  for beta, seed, name, _ in _cells(args):
    directory = os.path.join(args.workdir, name)
    record = read_record(directory, args.num_steps) if os.path.isdir(directory) else None
    if record is None or "disentanglement" not in record["evals"]:
      print(f"[jaxdisent] zoo: {name} has no evaluation at step {args.num_steps} yet",
            file=sys.stderr)
      continue
    with open(os.path.join(directory, "config.json")) as f:
      config = json.load(f)
    entry = {"model": name, "beta": float(beta), "seed": seed, "step": args.num_steps,
             "command": _command(args, beta, seed), "evals": record["evals"], "config": config}
    with open(os.path.join(args.out, f"beta{beta}_seed{seed}.json"), "w") as f:
      json.dump(entry, f, indent=2, sort_keys=True)
    rows.append({"beta": float(beta), "seed": seed,
                 **{k: record["evals"]["disentanglement"].get(k) for k in METRICS},
                 "reconstruction": record["evals"].get("reconstruction", {}).get("reconstruction")})
  table = []
  for beta in args.betas:
    members = [r for r in rows if r["beta"] == float(beta)]
    if not members:
      continue
    entry = {"beta": float(beta), "seeds": len(members)}
    for key in (*METRICS, "reconstruction"):
      values = np.array([r[key] for r in members if r.get(key) is not None], float)
      entry[key] = {"mean": float(values.mean()), "std": float(values.std())} if len(values) else None
    table.append(entry)
  with open(os.path.join(args.out, "summary.json"), "w") as f:
    json.dump({"num_steps": args.num_steps, "learning_rate": args.learning_rate, "batch_size": 64,
               "num_train": 10_000, "num_eval": 5_000, "published_ranges": PUBLISHED,
               "models": rows, "table": table}, f, indent=2)
  lines = [f"beta-VAE zoo on procedural dSprites: {args.num_steps:,} steps at lr "
           f"{args.learning_rate:g}, batch 64; metrics at 10,000 / 5,000 points. Mean +- std "
           "(population) over seeds.", "",
           "| beta | seeds | " + " | ".join(METRICS) + " | reconstruction |",
           "|---" * (len(METRICS) + 3) + "|"]
  for entry in table:
    cells = [f"{entry[k]['mean']:.3f} +- {entry[k]['std']:.3f}" if entry[k] else "-"
             for k in METRICS]
    recon = entry["reconstruction"]
    lines.append(f"| {entry['beta']:g} | {entry['seeds']} | " + " | ".join(cells)
                 + (f" | {recon['mean']:.1f} +- {recon['std']:.1f} |" if recon else " | - |"))
  lines += ["", "Published (Locatello et al. 2019, beta-VAE on dSprites, 300k steps at lr 1e-4, "
            "our reading of the violin plots): " + ", ".join(
                f"{k} {lo}-{hi}" for k, (lo, hi) in PUBLISHED.items()) + ".", "",
            "Each model's file (beta<b>_seed<s>.json) has its command, config and full record."]
  with open(os.path.join(args.out, "summary.md"), "w") as f:
    f.write("\n".join(lines) + "\n")
  print("\n".join(lines))
  print(f"[jaxdisent] zoo: wrote {len(rows)} model files and summary.md/json to {args.out}",
        file=sys.stderr)
  return rows


def _archive(directory, beta, seed):
  return os.path.join(directory, f"beta{beta}_seed{seed}.tar.gz")   # names a device's $OUT keeps


def main(argv=None):
  args = _parse(argv)
  from beta_vae_curve import export_checkpoint, import_checkpoint  # pylint: disable=g-import-not-at-top
  if args.import_dir:
    for beta, seed, name, _ in _cells(args):
      path = _archive(args.import_dir, beta, seed)
      if not os.path.exists(path):
        print(f"[jaxdisent] zoo: no {os.path.basename(path)} in --import_dir; {name} trains here",
              file=sys.stderr)
        continue
      import_checkpoint(path, os.path.join(args.workdir, name), args.num_steps)
      print(f"[jaxdisent] zoo: imported {name} from {os.path.basename(path)}", file=sys.stderr)
  if not args.export_only:
    from jaxdisent.runs import run_cells  # pylint: disable=g-import-not-at-top
    from jaxdisent.train.lock import WorkdirBusyError  # pylint: disable=g-import-not-at-top
    from jaxdisent.usage import UsageError  # pylint: disable=g-import-not-at-top
    try:
      run_cells(os.path.join(ROOT, CONFIG), args.workdir,
                [(name, overrides) for _, _, name, overrides in _cells(args)],
                evaluate=not args.train_only, only=["disentanglement"],
                vmap_cells=args.vmap_cells)
    except (UsageError, WorkdirBusyError) as error:
      _error(str(error))
  if args.train_only:
    for beta, seed, name, _ in _cells(args):
      export_checkpoint(os.path.join(args.workdir, name), args.num_steps,
                        _archive(args.export_dir, beta, seed))
    print(f"[jaxdisent] zoo: every model trained and exported to {args.export_dir}; evaluate "
          f"with --import_dir={args.export_dir}", file=sys.stderr)
    return 0
  export(args)
  return 0


if __name__ == "__main__":
  sys.exit(main())
