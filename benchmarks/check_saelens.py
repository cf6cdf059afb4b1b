"""Check an exported SAE against SAELens (and sparsify) themselves, when they are installed.

  python -m launch.export_sae --workdir=runs/sae --format=saelens --out=/tmp/sae_saelens
  python benchmarks/check_saelens.py --saelens=/tmp/sae_saelens --workdir=runs/sae [--rows=1024]
  python benchmarks/check_saelens.py --sparsify=/tmp/sae_sparsify --workdir=runs/sae

Loads the directory with ``sae_lens.SAE.load_from_disk`` (or ``sparsify.SparseCoder
.load_from_disk``), encodes raw embeddings from the run's data with it, and compares with
jaxdisent's own encoding of the same rows (method.encode on the restored checkpoint): max abs
difference of the codes, agreement of the active sets, and the reconstruction error. The tests
check the same against plain NumPy transcriptions of the two formats (tests/test_sae_formats.py);
this script is for when the real libraries are at hand (pip install sae-lens / sparsify).
"""

from __future__ import annotations

import argparse
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def raw_rows(method, rows):
  import jax  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  data = method.data
  if hasattr(data, "pairs"):
    image, text, _, _ = data.pairs(jax.random.key(11), rows // 2)
    return np.concatenate([np.asarray(image), np.asarray(text)])
  return data.rows(np.arange(min(rows, data.num_rows)))


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--workdir", required=True)
  parser.add_argument("--saelens", default="")
  parser.add_argument("--sparsify", default="")
  parser.add_argument("--rows", type=int, default=1024)
  args = parser.parse_args()
  if bool(args.saelens) == bool(args.sparsify):
    sys.exit("give one of --saelens=DIR or --sparsify=DIR")
  import numpy as np  # pylint: disable=g-import-not-at-top
  import torch  # pylint: disable=g-import-not-at-top
  from jaxdisent.runs import restore_latest  # pylint: disable=g-import-not-at-top
  _, method, state, step = restore_latest(args.workdir)
  x = raw_rows(method, args.rows).astype(np.float32)
  ours = np.asarray(method.encode(state.params, state.model_state, x))
  if args.saelens:
    try:
      from sae_lens import SAE  # pylint: disable=g-import-not-at-top
    except ImportError:
      sys.exit("sae_lens is not installed (pip install sae-lens)")
    sae = SAE.load_from_disk(args.saelens, device="cpu")
    with torch.no_grad():
      theirs = sae.encode(torch.from_numpy(x)).numpy()
      recon = sae.decode(torch.from_numpy(theirs)).numpy()
    label = f"SAELens {type(sae).__name__}"
  else:
    try:
      from sparsify import SparseCoder  # pylint: disable=g-import-not-at-top
    except ImportError:
      sys.exit("sparsify is not installed (pip install eai-sparsify)")
    sae = SparseCoder.load_from_disk(args.sparsify, device="cpu")
    with torch.no_grad():
      top = sae.encode(torch.from_numpy(x))
      theirs = np.zeros_like(ours)
      np.put_along_axis(theirs, top.top_indices.numpy(), top.top_acts.numpy(), axis=1)
      recon = sae.decode(top.top_acts, top.top_indices).numpy()
    label = "sparsify SparseCoder"
  _, ours_hat = method.reconstruct(state.params, state.model_state, x)
  same_active = float(np.mean((ours > 0) == (theirs > 0)))
  print(f"{label} vs jaxdisent ({method.kind}, step {step}) on {len(x)} raw rows:")
  print(f"  max |codes difference|          {np.max(np.abs(ours - theirs)):.3e} "
        f"(max code {np.max(np.abs(ours)):.3e})")
  print(f"  active sets agree on            {100 * same_active:.4f}% of entries")
  print(f"  max |reconstruction difference| {np.max(np.abs(np.asarray(ours_hat) - recon)):.3e}")
  return 0 if same_active > 0.999 else 1


if __name__ == "__main__":
  sys.exit(main())
