"""A beta-VAE learning curve on dSprites: disentanglement metrics against training steps (issue 25).

One model (``configs/beta_vae_dsprites.py``, ``--beta`` default 16: the setting with the best
FactorVAE trend in the README's 1,200-step table) trained in segments to each ``--steps`` target and
evaluated there by the ``disentanglement`` evaluator at disentanglement_lib's sample sizes
(10,000 train / 5,000 eval points; ``--num_train`` / ``--num_eval`` to change). The control is the
same model at initialisation (no training step), scored by the same evaluator.

  python benchmarks/beta_vae_curve.py --workdir=runs/beta_curve
      [--steps=3000,10000,30000,100000] [--beta=16] [--learning_rate=1e-4] [--seed=0]
      [--out=docs/results/beta_vae_curve] [--collect_only]
      [--train_only --export_dir=DIR] [--import_dir=DIR]

Training and evaluation can run on different machines: ``--train_only --export_dir=DIR`` trains
to every target without evaluating and writes DIR/step_<N>.tar.gz (the step-N checkpoint, its
manifest, config.json and metrics.jsonl) as soon as each target is reached -- e.g. on a GPU, where
100k steps take minutes (``benchmarks/gpu_long_runs.sh``); ``--import_dir=DIR`` unpacks those
archives into WORKDIR/run and evaluates each imported step here (the evaluation is CPU-bound).

Resumable at any point: each segment resumes from the run's latest checkpoint (exact, the engine's
contract), a target whose evaluation record exists is not evaluated again, and a SIGTERM during
training saves a checkpoint and stops (run the same command again to go on). Writes OUT.json (one
row per evaluated step), OUT.md (the table, with Locatello et al.'s ranges) and OUT.png.

The learning rate defaults to disentanglement_lib's 1e-4 (the quick start uses 5e-4 to learn in
1,200 steps), so that the schedule length is the one difference from the reference protocol
(300k steps at 1e-4, batch 64).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG = os.path.join(ROOT, "configs", "beta_vae_dsprites.py")
METRICS = ("mig", "factor_vae_score", "dci_disentanglement", "beta_vae_score", "sap", "modularity",
           "irs")
# Our reading of Locatello et al. (2019)'s violin plots for beta-VAE on dSprites (300k steps, all
# betas pooled); approximate (README, "beta-VAE on dSprites: reproduction table").
PUBLISHED = {"mig": (0.05, 0.35), "factor_vae_score": (0.55, 0.85),
             "dci_disentanglement": (0.1, 0.45)}


def _error(message):
  print(f"[jaxdisent] error: {message}", file=sys.stderr)
  raise SystemExit(2)


def _log(*parts):
  print(*parts, file=sys.stderr, flush=True)


def _parse(argv):
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--workdir", required=True)
  parser.add_argument("--steps", default="3000,10000,30000,100000")
  parser.add_argument("--beta", type=float, default=16.0)
  parser.add_argument("--learning_rate", type=float, default=1e-4)
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--num_train", type=int, default=10_000)
  parser.add_argument("--num_eval", type=int, default=5_000)
  parser.add_argument("--checkpoint_every", type=int, default=1000)
  parser.add_argument("--out", default=os.path.join(ROOT, "docs", "results", "beta_vae_curve"))
  parser.add_argument("--collect_only", action="store_true")
  parser.add_argument("--train_only", action="store_true",
                      help="train to every target without evaluating; needs --export_dir")
  parser.add_argument("--export_dir", default="")
  parser.add_argument("--import_dir", default="")
  args = parser.parse_args(argv)
  if args.train_only and not args.export_dir:
    _error("--train_only needs --export_dir=DIR (where each target's checkpoint archive goes)")
  if args.import_dir and not os.path.isdir(args.import_dir):
    _error(f"--import_dir={args.import_dir!r} is not a directory; give the folder holding the "
           "step_<N>.tar.gz archives written by --train_only --export_dir")
  try:
    args.steps = sorted({int(s) for s in args.steps.split(",") if s.strip()})
  except ValueError:
    _error(f"--steps={args.steps!r} is not a comma-separated list of integers; e.g. "
           "--steps=3000,10000,30000,100000")
  if not args.steps or args.steps[0] < 1:
    _error("--steps needs positive step counts, e.g. --steps=3000,10000")
  if args.beta < 0 or args.learning_rate <= 0 or args.seed < 0:
    _error("--beta must be >= 0, --learning_rate > 0 and --seed >= 0")
  if args.num_train < 2 or args.num_eval < 2 or args.checkpoint_every < 1:
    _error("--num_train and --num_eval must be >= 2 and --checkpoint_every >= 1")
  return args


def _config(args, num_steps):
  from jaxdisent.runs import load_config_with_overrides  # pylint: disable=g-import-not-at-top
  return load_config_with_overrides(CONFIG, [
      ("loss.beta", str(args.beta)), ("optimizer.learning_rate", str(args.learning_rate)),
      ("seed", str(args.seed)), ("train.num_steps", str(num_steps)),
      ("train.checkpoint_every", str(min(num_steps, args.checkpoint_every))),
      ("train.log_every", "500"), ("train.plots_at_end", "false"),
      ("evals.disentanglement.num_train", str(args.num_train)),
      ("evals.disentanglement.num_eval", str(args.num_eval))]
      + ([("train.eval_at_end", "false")] if args.train_only else []))


def _archive_members(step):
  return (f"checkpoints/{step}", f"checkpoints/manifests/{step}.json", "config.json",
          "metrics.jsonl")


def export_checkpoint(run_dir, step, path, seconds=None):
  """Run `run_dir`'s step-`step` checkpoint (+ its manifest, config.json, metrics.jsonl and the
  training seconds) as one tar.gz at `path`, written atomically. Also used by beta_vae_zoo.py."""
  import io  # pylint: disable=g-import-not-at-top
  import tarfile  # pylint: disable=g-import-not-at-top
  if not os.path.isdir(os.path.join(run_dir, "checkpoints", str(step))):
    _error(f"no checkpoint of step {step} in {run_dir}/checkpoints to export")
  os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
  with tarfile.open(path + ".tmp", "w:gz") as tar:
    for member in _archive_members(step):
      if os.path.exists(os.path.join(run_dir, member)):
        tar.add(os.path.join(run_dir, member), arcname=member)
    payload = json.dumps({str(step): seconds} if seconds is not None else {}).encode()
    info = tarfile.TarInfo("train_seconds.json")
    info.size = len(payload)
    tar.addfile(info, io.BytesIO(payload))
  os.replace(path + ".tmp", path)
  _log(f"[jaxdisent] exported step {step} of {run_dir} to {path} "
       f"({os.path.getsize(path) / 2**20:.1f} MiB)")


def _run_identity(config: dict) -> dict:
  """What makes two workdirs the same run: everything but the schedule and evaluation settings."""
  return {k: v for k, v in config.items() if k not in ("train", "evals")}


def import_checkpoint(path, run_dir, step):
  """Unpack an :func:`export_checkpoint` archive of step `step` into `run_dir`, holding its lock;
  returns its training seconds ({str(step): s} or {}). A checkpoint of that step already there is
  kept. Refused with one line, before anything is unpacked: a member no exported archive holds, a
  `run_dir` that holds another run (its config differs beyond train.* / evals.*), or a log there
  that the archive's does not extend (replacing it would lose lines)."""
  import tarfile  # pylint: disable=g-import-not-at-top
  from jaxdisent.train.lock import WorkdirBusyError, workdir_lock  # pylint: disable=g-import-not-at-top
  name = os.path.basename(path)
  try:
    with workdir_lock(run_dir, "importing a checkpoint"), tarfile.open(path, "r:gz") as tar:
      names = tar.getnames()
      allowed = set(_archive_members(step)) | {"train_seconds.json"}
      bad = [n for n in names if not any(n == a or n.startswith(a + "/") for a in allowed)]
      if bad:
        _error(f"{name} holds {bad[0]!r}, which no exported archive of step {step} holds; "
               "refusing to unpack it")
      read = lambda member: tar.extractfile(member).read() if member in names else None
      theirs_config, theirs_log = read("config.json"), read("metrics.jsonl")
      ours_config = os.path.join(run_dir, "config.json")
      if theirs_config is not None and os.path.exists(ours_config):
        with open(ours_config) as f:
          if _run_identity(json.load(f)) != _run_identity(json.loads(theirs_config)):
            _error(f"{run_dir} holds another run than {name} (their configs differ beyond "
                   "train.* and evals.*); import into a new --workdir")
      ours_log = os.path.join(run_dir, "metrics.jsonl")
      if theirs_log is not None and os.path.exists(ours_log):
        with open(ours_log, "rb") as f:
          if not theirs_log.startswith(f.read()):
            _error(f"{run_dir}/metrics.jsonl has lines that {name}'s log does not; importing would "
                   "replace them. Import into a new --workdir")
      seconds = json.loads(read("train_seconds.json")) if "train_seconds.json" in names else {}
      members = [m for m in tar.getmembers() if m.name != "train_seconds.json"]
      if os.path.isdir(os.path.join(run_dir, "checkpoints", str(step))):
        members = [m for m in members if not m.name.startswith(f"checkpoints/{step}")]
      if hasattr(tarfile, "data_filter"):
        tar.extractall(run_dir, members=members, filter="data")
      else:   # Pythons before the extraction filters: the member names were checked above
        tar.extractall(run_dir, members=members)
  except WorkdirBusyError as error:
    _error(str(error))
  return seconds


def _export(run_dir, target, export_dir, seconds):
  export_checkpoint(run_dir, target, os.path.join(export_dir, f"step_{target}.tar.gz"), seconds)


def _import(args, run_dir, timing):
  """Unpack every IMPORT_DIR/step_<N>.tar.gz into WORKDIR/run (oldest first, so config.json and
  metrics.jsonl end as the longest run's); returns the imported steps."""
  import re  # pylint: disable=g-import-not-at-top
  found = sorted((int(m.group(1)), name) for name in os.listdir(args.import_dir)
                 if (m := re.fullmatch(r"step_(\d+)\.tar\.gz", name)))
  if not found:
    _error(f"--import_dir={args.import_dir!r} holds no step_<N>.tar.gz archive")
  for step, name in found:
    seconds = import_checkpoint(os.path.join(args.import_dir, name), run_dir, step)
    timing.update({k: v for k, v in seconds.items() if k not in timing})
    _log(f"[jaxdisent] curve: imported step {step} from {name}")
  return [step for step, _ in found]


def _row(record, step, seconds=None):
  evals = record["evals"]
  row = {"step": step, **{k: evals["disentanglement"].get(k) for k in METRICS},
         "eval_seconds": evals["disentanglement"].get("seconds")}
  if "reconstruction" in evals:
    row["reconstruction"] = evals["reconstruction"].get("reconstruction")
    row["kl"] = evals["reconstruction"].get("kl")
  if seconds is not None:
    row["train_seconds"] = seconds
  return row


def _evaluate_untrained(args, directory):
  """The control: the model at initialisation, scored by the same evaluators (eval/step_0.json)."""
  from jaxdisent.runs import evaluate_untrained  # pylint: disable=g-import-not-at-top
  record = evaluate_untrained(_config(args, args.steps[0]), directory,
                              only=["reconstruction", "disentanglement"], log=_log)
  return _row(record, 0)


def run(args):
  """Train and evaluate every target not yet done; holds WORKDIR's lock the whole time, so a
  second curve command on the same workdir is refused at once (one line naming the holder)."""
  from jaxdisent.train.lock import WorkdirBusyError, workdir_lock  # pylint: disable=g-import-not-at-top
  try:
    with workdir_lock(args.workdir, "beta_vae_curve"):
      return _run_locked(args)
  except WorkdirBusyError as error:
    _error(str(error))


def _write_atomically(path, text):
  """Readers (a concurrent --collect_only, git) never see a half-written file."""
  with open(path + ".tmp", "w") as f:
    f.write(text)
  os.replace(path + ".tmp", path)


def _latest_checkpoint(run_dir):
  """The newest step with a checkpoint folder under run_dir/checkpoints, or None."""
  directory = os.path.join(run_dir, "checkpoints")
  steps = [int(name) for name in (os.listdir(directory) if os.path.isdir(directory) else [])
           if name.isdigit()]
  return max(steps, default=None)


def _train_segment(args, target, run_dir, timing, timing_path) -> bool:
  """Train (resume) the run to `target`, adding the segment's seconds to train_seconds.json;
  False when a SIGTERM stopped it (its checkpoint is saved)."""
  from jaxdisent.runs import fit  # pylint: disable=g-import-not-at-top
  start = time.time()
  result = fit(_config(args, target), run_dir)
  if result.preempted:
    _log(f"[jaxdisent] stopped at step {result.step} (SIGTERM); the checkpoint is saved: run "
         "the same command again to go on")
    return False
  timing[str(target)] = timing.get(str(target), 0.0) + round(time.time() - start, 1)
  _write_atomically(timing_path, json.dumps(timing))
  return True


def _run_locked(args):
  from jaxdisent.evals import read_record  # pylint: disable=g-import-not-at-top
  from jaxdisent.runs import evaluate_workdir  # pylint: disable=g-import-not-at-top
  run_dir = os.path.join(args.workdir, "run")
  timing_path = os.path.join(args.workdir, "train_seconds.json")
  timing = json.load(open(timing_path)) if os.path.exists(timing_path) else {}
  if args.import_dir:
    imported = _import(args, run_dir, timing)
    _write_atomically(timing_path, json.dumps(timing))
    missing = sorted(set(args.steps) - set(imported))
    if missing:
      _log(f"[jaxdisent] curve: --import_dir has no archive of step(s) {missing}; they are "
           "trained here")
  for index, target in enumerate(args.steps):
    if args.train_only:
      if os.path.exists(os.path.join(args.export_dir, f"step_{target}.tar.gz")):
        continue
      latest = _latest_checkpoint(run_dir)
      if latest is not None and latest > target and not os.path.isdir(
          os.path.join(run_dir, "checkpoints", str(target))):
        # e.g. a GPU call whose $OUT starts empty, resuming a run that passed this target in an
        # earlier call (whose archive came back then): the checkpoint was rotated out
        _log(f"[jaxdisent] curve: step {target} is behind the run (step {latest}) and its "
             "checkpoint was rotated out, so it cannot be exported again; skipped (its archive "
             "was written when the run passed it)")
        continue
      if not _train_segment(args, target, run_dir, timing, timing_path):
        return 3
      _export(run_dir, target, args.export_dir, timing[str(target)])
      continue
    if read_record(run_dir, target) is None and os.path.isdir(
        os.path.join(run_dir, "checkpoints", str(target))) and args.import_dir:
      _log(f"[jaxdisent] curve: step {target} was trained elsewhere; evaluating at the reference "
           "sizes ...")
      # trained with eval_at_end off: the reconstruction column is evaluated here too
      evaluate_workdir(run_dir, step=target, only=["reconstruction", "disentanglement"], log=_log)
    if read_record(run_dir, target) is None:
      if not _train_segment(args, target, run_dir, timing, timing_path):
        return 3
      _log(f"[jaxdisent] curve: trained to step {target}; evaluating at the reference sizes ...")
      evaluate_workdir(run_dir, step=target, only=["disentanglement"], log=_log)
    if index == 0:
      _evaluate_untrained(args, os.path.join(args.workdir, "untrained"))
    collect(args)
  if args.train_only:
    _log(f"[jaxdisent] curve: every target trained and exported to {args.export_dir}; evaluate "
         f"with --import_dir={args.export_dir}")
  return 0


def collect(args):
  from jaxdisent.evals import read_record  # pylint: disable=g-import-not-at-top
  run_dir = os.path.join(args.workdir, "run")
  timing_path = os.path.join(args.workdir, "train_seconds.json")
  timing = json.load(open(timing_path)) if os.path.exists(timing_path) else {}
  rows = []
  control = read_record(os.path.join(args.workdir, "untrained"), 0)
  if control is not None:
    rows.append({**_row(control, 0), "model": "untrained (initialisation)"})
  for target in args.steps:
    record = read_record(run_dir, target)
    if record is not None and "disentanglement" in record["evals"]:
      rows.append({**_row(record, target, timing.get(str(target))), "model": "trained"})
  if not rows:
    _log(f"[jaxdisent] nothing evaluated yet under {args.workdir}")
    return rows
  setting = {"beta": args.beta, "learning_rate": args.learning_rate, "seed": args.seed,
             "batch_size": 64, "num_train": args.num_train, "num_eval": args.num_eval,
             "config": "configs/beta_vae_dsprites.py"}
  os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
  _write_atomically(args.out + ".json", json.dumps(
      {"setting": setting, "published_ranges": PUBLISHED, "rows": rows}, indent=2))
  lines = [f"beta-VAE on procedural dSprites, beta {args.beta:g}, lr {args.learning_rate:g}, "
           f"batch 64, seed {args.seed}; metrics at {args.num_train:,} / {args.num_eval:,} points"
           + (" (disentanglement_lib's sizes)" if (args.num_train, args.num_eval) == (10_000, 5_000)
              else " (disentanglement_lib uses 10,000 / 5,000)")
           + ". One seed: the spread over seeds is the zoo's job.", "",
           "| step | " + " | ".join(METRICS) + " | reconstruction | KL | train s (segment) |",
           "|---" * (len(METRICS) + 4) + "|"]
  fmt = lambda v: "-" if v is None else f"{v:.3f}" if isinstance(v, float) and abs(v) < 100 else (
      f"{v:.0f}" if isinstance(v, float) else str(v))
  for row in rows:
    label = "0 (untrained)" if row["model"].startswith("untrained") else f"{row['step']:,}"
    lines.append(f"| {label} | " + " | ".join(fmt(row.get(k)) for k in METRICS)
                 + f" | {fmt(row.get('reconstruction'))} | {fmt(row.get('kl'))} | "
                 + ("-" if row.get("train_seconds") is None else f"{row['train_seconds']:.0f}") + " |")
  lines += ["", "Published (Locatello et al. 2019, beta-VAE on dSprites, 300k steps, our reading "
            "of the violin plots): " + ", ".join(f"{k} {lo}-{hi}" for k, (lo, hi) in
                                                   PUBLISHED.items()) + "."]
  _write_atomically(args.out + ".md", "\n".join(lines) + "\n")
  _plot(rows, args.out + ".png")
  _log(f"[jaxdisent] wrote {args.out}.json, .md, .png ({len(rows)} rows)")
  return rows


def _plot(rows, path):
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  trained = [r for r in rows if r["model"] == "trained"]
  control = next((r for r in rows if r["model"] != "trained"), None)
  fig, axes = plt.subplots(1, 4, figsize=(16, 3.6))
  for ax, key in zip(axes, ("mig", "factor_vae_score", "dci_disentanglement", "beta_vae_score")):
    if trained:
      ax.plot([r["step"] for r in trained], [r[key] for r in trained], "o-", label="trained")
    if control is not None:
      ax.axhline(control[key], color="gray", ls=":", label="untrained")
    if key in PUBLISHED:
      lo, hi = PUBLISHED[key]
      ax.axhspan(lo, hi, color="tab:green", alpha=0.15, label="Locatello et al. (300k)")
    ax.set_xscale("log")
    ax.set_xlabel("training step")
    ax.set_title(key)
  axes[0].legend(fontsize=8)
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)


def main(argv=None):
  args = _parse(argv)
  if args.collect_only:
    collect(args)
    return 0
  return run(args)


if __name__ == "__main__":
  sys.exit(main())
