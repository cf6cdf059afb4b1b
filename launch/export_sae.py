"""Export a trained jaxdisent SAE to SAELens's or sparsify's directory format.

  python -m launch.export_sae --workdir=runs/sae --format=saelens|sparsify --out=DIR [--step=N]

The input scaling used in training is folded into the exported weights, so the files encode raw
embeddings (see jaxdisent/io/sae_formats.py). BatchTopK exports to SAELens as JumpReLU with its
learned inference threshold; to sparsify as TopK with the same k. Load the result back (e.g. to
continue training) with --config.model.init_from=DIR.
"""

from __future__ import annotations

import sys

from launch.common import UsageError, fail, parse_args, run_main


def export_workdir(workdir, fmt, out, step=None, log=print):
  from jaxdisent.io import sae_formats  # pylint: disable=g-import-not-at-top
  from jaxdisent.train.restore import restore_latest  # pylint: disable=g-import-not-at-top
  if fmt not in sae_formats.FORMATS:
    raise UsageError(f"--format must be one of {', '.join(sae_formats.FORMATS)}, got {fmt!r}")
  config, method, state, step = restore_latest(workdir, step)
  if config.method != "sae":
    raise ValueError(f"{workdir} is a {config.method!r} run; only SAE runs export")
  sae = method.portable(state.params, state.model_state)
  sae_formats.export(sae, out, fmt)
  note = " (as TopK: sparsify has no threshold activation)" if (
      fmt == "sparsify" and sae.kind == "batchtopk") else ""
  log(f"[jaxdisent] {sae.kind} SAE, {sae.d_in} -> {sae.d_sae}, step {step} -> {fmt} {out}{note}")
  return out


def main(argv) -> int:
  try:
    _, flags = parse_args(argv, {"workdir": None, "format": "saelens", "out": None, "step": None})
    if not flags["workdir"] or not flags["out"]:
      raise UsageError("--workdir=DIR and --out=DIR are required")
    step = int(flags["step"]) if flags["step"] else None
  except (UsageError, ValueError) as error:
    return fail(str(error))
  from jaxdisent.train.checkpoint import CheckpointError  # pylint: disable=g-import-not-at-top
  try:
    export_workdir(flags["workdir"], flags["format"], flags["out"], step,
                   log=lambda *a: print(*a, file=sys.stderr))
  except (UsageError, FileNotFoundError, ValueError, CheckpointError) as error:
    return fail(str(error))
  return 0


if __name__ == "__main__":
  sys.exit(run_main(main, doc=__doc__))
