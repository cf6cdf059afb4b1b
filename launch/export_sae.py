"""Export a trained jaxdisent SAE to SAELens's or sparsify's directory format.

  python -m launch.export_sae --workdir=runs/sae --format=saelens|sparsify --out=DIR [--step=N]
      [--overwrite=true]

--out must be a new (or empty) directory: one that already holds an SAE (cfg.json or a weights
file) is refused unless --overwrite=true, and a file is always refused. Files are written under
temporary names and renamed into place; an --out inside the workdir is written under the
workdir's lock.

The input scaling used in training is folded into the exported weights, so the files encode raw
embeddings (see jaxdisent/io/sae_formats.py). BatchTopK exports to SAELens as JumpReLU with its
learned inference threshold; to sparsify as TopK with the same k. Load the result back (e.g. to
continue training) with --config.model.init_from=DIR.
"""

from __future__ import annotations

import contextlib
import os
import sys

from launch.common import UsageError, fail, parse_args, parse_int, run_main


def _inside(path, folder) -> bool:
  path, folder = os.path.realpath(path), os.path.realpath(folder)
  return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def export_workdir(workdir, fmt, out, step=None, log=print, overwrite=False):
  from jaxdisent.io import sae_formats  # pylint: disable=g-import-not-at-top
  from jaxdisent.train.lock import workdir_lock  # pylint: disable=g-import-not-at-top
  from jaxdisent.runs import restore_latest  # pylint: disable=g-import-not-at-top
  if fmt not in sae_formats.FORMATS:
    raise UsageError(f"--format must be one of {', '.join(sae_formats.FORMATS)}, got {fmt!r}")
  sae_formats.check_out_dir(out, overwrite)  # before restoring the checkpoint
  if os.path.realpath(out) == os.path.realpath(workdir):
    raise UsageError(f"--out={out} is the workdir itself; pass a new directory (e.g. {out}/export)")
  config, method, state, step = restore_latest(workdir, step)
  if config.method != "sae":
    raise ValueError(f"{workdir} is a {config.method!r} run; only SAE runs export")
  sae = method.portable(state.params, state.model_state)
  lock = (workdir_lock(workdir, f"exporting the SAE to {out}") if _inside(out, workdir)
          else contextlib.nullcontext())
  with lock:
    sae_formats.export(sae, out, fmt, overwrite=overwrite)
  note = " (as TopK: sparsify has no threshold activation)" if (
      fmt == "sparsify" and sae.kind in sae_formats.BATCHTOPK_KINDS) else ""
  log(f"[jaxdisent] {sae.kind} SAE, {sae.d_in} -> {sae.d_sae}, step {step} -> {fmt} {out}{note}")
  return out


def main(argv) -> int:
  try:
    _, flags = parse_args(argv, {"workdir": None, "format": "saelens", "out": None, "step": None,
                                 "overwrite": "false"})
    if not flags["workdir"] or not flags["out"]:
      raise UsageError("--workdir=DIR and --out=DIR are required")
    step = parse_int("step", flags["step"], minimum=0) if flags["step"] else None
    if flags["overwrite"].lower() not in ("true", "false", "1", "0"):
      raise UsageError(f"--overwrite={flags['overwrite']}: expected true or false")
    overwrite = flags["overwrite"].lower() in ("true", "1")
  except (UsageError, ValueError) as error:
    return fail(str(error))
  from jaxdisent.train.checkpoint import CheckpointError  # pylint: disable=g-import-not-at-top
  from jaxdisent.train.lock import WorkdirBusyError  # pylint: disable=g-import-not-at-top
  try:
    export_workdir(flags["workdir"], flags["format"], flags["out"], step,
                   log=lambda *a: print(*a, file=sys.stderr), overwrite=overwrite)
  except (UsageError, OSError, ValueError, CheckpointError, WorkdirBusyError) as error:
    return fail(str(error))
  return 0


if __name__ == "__main__":
  sys.exit(run_main(main, doc=__doc__))
