"""Compare two sets of per-layer features sample by sample: every metric for every layer pair.

  python -m launch.compare --a=A --b=B [--metric=all|cka|unbiased_cka|mutual_knn|cknna|svcca|
      cycle_knn|lcs_knn|edit_knn[,...]] [--k=10] [--out=report.json] [--l2_normalize=true]
      [--layer_axis=N] [--block_size=1024]

A and B are .npy, .npz or .safetensors files holding one (N, D) array per layer (or one array),
paired by row: row i of every layer of A and of B describes sample i. Layers are the .npz
arrays in file order, the .safetensors tensors in natural name order (layer_2 before layer_10);
a 3-D .npy array needs --layer_axis (0 for (L, N, D), 1 for platonic-rep's (N, L, D)).
Features are L2-normalised per row first (--l2_normalize=true, as platonic-rep does; it also
clips outliers at the 0.95 quantile, which we do not). SVCCA uses cca_dim = min(10, D_a, D_b).

Prints and, with --out, writes a JSON report: for every metric the L_A x L_B layer-pair matrix,
``{"max": v, "argmax": [i, j]}`` (layer indices; ``argmax_layers`` gives their names), and a heat
map PNG of the matrices beside it (report.png). Values equal the library functions of
jaxdisent.metrics.alignment on the same (normalised) arrays; each layer's k nearest neighbours are
searched once and shared by the k-NN metrics. Memory: one layer of A and one of B at a time (.npy
files are memory-mapped), neighbour searches in row blocks of --block_size rows, so 100k rows fit.
A value that is undefined for a pair (e.g. a constant layer) is null, with the reason in
``notes``.
"""

from __future__ import annotations

import json
import os
import re
import sys
import time

from launch.common import UsageError, parse_args, run_main

METRICS = ("cka", "unbiased_cka", "mutual_knn", "cknna", "svcca", "cycle_knn", "lcs_knn",
           "edit_knn")
KNN = ("mutual_knn", "cycle_knn", "lcs_knn", "edit_knn", "cknna")


def _natural_key(name):
  return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


class LayerFile:
  """Lazy access to the layers of one features file: names, row count, layer(i) -> (N, D)."""

  def __init__(self, path: str, flag: str, layer_axis: int | None = None):
    import numpy as np  # pylint: disable=g-import-not-at-top
    self.path, self.flag = path, flag
    if not os.path.exists(path):
      raise FileNotFoundError(f"--{flag}={path}: no such file")
    if os.path.isdir(path):
      raise ValueError(f"--{flag}={path} is a folder; give a .npy, .npz or .safetensors file")
    suffix = os.path.splitext(path)[1].lower()
    if suffix not in (".npy", ".npz", ".safetensors"):
      raise ValueError(f"--{flag}={path}: expected a .npy, .npz or .safetensors file")
    try:
      if suffix == ".npz":
        import zipfile  # pylint: disable=g-import-not-at-top
        if not zipfile.is_zipfile(path):
          raise ValueError("not a zip archive; an .npz is written by numpy.savez")
        archive = np.load(path, allow_pickle=False)
        self.names = list(archive.files)
        self._get = lambda i: archive[self.names[i]]
      elif suffix == ".safetensors":
        from safetensors import safe_open  # pylint: disable=g-import-not-at-top
        handle = safe_open(path, framework="numpy")
        self.names = sorted(handle.keys(), key=_natural_key)
        self._get = lambda i: handle.get_tensor(self.names[i])
      else:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except Exception as error:  # pylint: disable=broad-except  (zip, pickle, safetensors errors)
      raise ValueError(f"--{flag}={path} cannot be read ({type(error).__name__}: "
                       f"{str(error).splitlines()[0] if str(error) else 'corrupt file'})") from None
    if suffix == ".npy":
      if array.ndim == 3:
        if layer_axis not in (0, 1):
          raise ValueError(f"--{flag}={path} holds a 3-D array {array.shape}; say which axis is "
                           f"the layer: --layer_axis=0 for (L, N, D) or 1 for (N, L, D)")
        self.names = [f"layer_{i}" for i in range(array.shape[layer_axis])]
        self._get = (lambda i: array[i]) if layer_axis == 0 else (lambda i: array[:, i])
      else:
        self.names = [os.path.splitext(os.path.basename(path))[0]]
        self._get = lambda i: array
    if not self.names:
      raise ValueError(f"--{flag}={path} holds no arrays")
    self.rows = None
    for i in range(len(self.names)):
      shape = self._shape(i)
      if len(shape) != 2:
        raise ValueError(f"--{flag}={path}: layer {self.names[i]!r} has shape {shape}; every "
                         f"layer must be (N, D)")
      if self.rows is not None and shape[0] != self.rows:
        raise ValueError(f"--{flag}={path}: layer {self.names[i]!r} has {shape[0]} rows, layer "
                         f"{self.names[0]!r} {self.rows}; every layer must hold the same samples")
      self.rows = shape[0]

  def _shape(self, i):
    try:
      return tuple(self._get(i).shape)
    except Exception as error:  # pylint: disable=broad-except
      raise ValueError(f"--{self.flag}={self.path}: layer {self.names[i]!r} cannot be read "
                       f"({type(error).__name__}: {error})") from None

  def layer(self, i, l2_normalize: bool):
    """Layer i as a validated float32 (N, D) array (bfloat16 widened, optionally normalised)."""
    import numpy as np  # pylint: disable=g-import-not-at-top
    from jaxdisent.metrics import alignment  # pylint: disable=g-import-not-at-top
    name = f"--{self.flag} layer {self.names[i]!r}"
    try:
      x, _ = alignment._pair(self._get(i), np.zeros((self.rows, 1), np.float32))  # pylint: disable=protected-access
    except (TypeError, ValueError) as error:
      raise ValueError(f"{name} ({self.path}): {str(error).replace('feats_a', 'it')}") from None
    if l2_normalize:
      x = np.asarray(alignment.l2_normalize(x))
    return x


def parse_metrics(text: str):
  names = list(METRICS) if text == "all" else [m.strip() for m in text.split(",") if m.strip()]
  bad = [m for m in names if m not in METRICS]
  if bad or not names:
    raise UsageError(f"--metric={text}: {bad[0] if bad else 'empty'} is not a metric; use all or "
                     f"a comma list of {', '.join(METRICS)}")
  return list(dict.fromkeys(names))


def compare(file_a: LayerFile, file_b: LayerFile, metrics, k: int = 10, l2_normalize: bool = True,
            block_size: int = 1024, log=print) -> dict:
  """The report dict: per metric the layer-pair matrix (None where undefined), max and argmax."""
  import numpy as np  # pylint: disable=g-import-not-at-top
  from jaxdisent.metrics import alignment as A  # pylint: disable=g-import-not-at-top
  n = file_a.rows
  if file_b.rows != n:
    raise ValueError(f"--a has {n} rows and --b {file_b.rows}; both must describe the same samples "
                     f"row by row")
  if any(m in KNN for m in metrics):
    low = 2 if "cknna" in metrics else 1
    if not (isinstance(k, int) and low <= k <= n - 1):
      raise ValueError(f"--k={k} must be in [{low}, N - 1 = {n - 1}] for "
                       f"{', '.join(m for m in metrics if m in KNN)}")
  if "unbiased_cka" in metrics and n < 4:
    raise ValueError(f"unbiased_cka needs at least 4 rows; the files have {n}")
  if n < 2:
    raise ValueError(f"the files have {n} row(s); alignment needs at least 2 samples")
  la, lb = len(file_a.names), len(file_b.names)
  matrices = {m: np.full((la, lb), np.nan) for m in metrics}
  notes = []
  knn_b = {}
  start = time.time()
  need_knn = any(m in KNN for m in metrics)

  def neighbours(x, name):
    if np.all(x == x[:1]):
      notes.append(f"{name}: every row identical, so its nearest neighbours are all ties: k-NN "
                   f"metrics null")
      return None
    return A.knn_indices(x, k, block_size)

  pairs_done = 0
  for i in range(la):
    a = file_a.layer(i, l2_normalize)
    knn_a = neighbours(a, f"a[{file_a.names[i]}]") if need_knn else None
    for j in range(lb):
      b = file_b.layer(j, l2_normalize)
      if need_knn and j not in knn_b:
        knn_b[j] = neighbours(b, f"b[{file_b.names[j]}]")
      for metric in metrics:
        where = f"{metric} a[{file_a.names[i]}] b[{file_b.names[j]}]"
        try:
          if metric in ("cka", "unbiased_cka"):
            value = A.cka(a, b, unbiased=metric == "unbiased_cka", block_size=block_size)
          elif metric == "svcca":
            value = A.svcca(a, b, cca_dim=min(10, a.shape[1], b.shape[1], n - 1))
          elif knn_a is None or knn_b[j] is None:
            continue
          elif metric == "cknna":
            value = float(A.cknna_from_indices(a, b, knn_a, knn_b[j]))
          else:
            value = float(A.knn_metric_from_indices(knn_a, knn_b[j], metric))
        except ValueError as error:
          notes.append(f"{where}: {error}")
          continue
        matrices[metric][i, j] = value
      pairs_done += 1
      log(f"[compare] layer pair {pairs_done}/{la * lb} (a {file_a.names[i]}, b "
          f"{file_b.names[j]}) {time.time() - start:.1f}s")
  report = {"a": file_a.path, "b": file_b.path, "rows": n, "k": k,
            "l2_normalize": l2_normalize, "layers_a": file_a.names, "layers_b": file_b.names,
            "metrics": {}, "notes": notes, "seconds": round(time.time() - start, 2)}
  for metric, matrix in matrices.items():
    entry = {"matrix": [[None if np.isnan(v) else float(v) for v in row] for row in matrix],
             "max": None, "argmax": None, "argmax_layers": None}
    if not np.all(np.isnan(matrix)):
      best = np.unravel_index(np.nanargmax(matrix), matrix.shape)
      entry.update(max=float(matrix[best]), argmax=[int(best[0]), int(best[1])],
                   argmax_layers=[file_a.names[best[0]], file_b.names[best[1]]])
    report["metrics"][metric] = entry
  return report


def heatmaps(report: dict, path: str) -> str:
  """One panel per metric: the layer-pair matrix with its arg-max boxed."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  names = list(report["metrics"])
  cols = min(4, len(names))
  rows = -(-len(names) // cols)
  fig, axes = plt.subplots(rows, cols, figsize=(3.6 * cols, 3.2 * rows), squeeze=False)
  for ax in axes.flat[len(names):]:
    ax.axis("off")
  for ax, name in zip(axes.flat, names):
    entry = report["metrics"][name]
    matrix = np.array([[np.nan if v is None else v for v in row] for row in entry["matrix"]])
    image = ax.imshow(matrix, cmap="viridis", origin="lower", aspect="auto")
    fig.colorbar(image, ax=ax, shrink=0.8)
    if entry["argmax"] is not None:
      i, j = entry["argmax"]
      ax.add_patch(matplotlib.patches.Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, ec="red", lw=2))
      ax.set_title(f"{name}: max {entry['max']:.3f} at ({i}, {j})", fontsize=9)
    else:
      ax.set_title(f"{name}: undefined", fontsize=9)
    ax.set_xticks(range(matrix.shape[1]))
    ax.set_yticks(range(matrix.shape[0]))
    ax.set_xlabel("layer of B")
    ax.set_ylabel("layer of A")
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)
  return path


def _bool(flag, text):
  if text.lower() in ("1", "true", "yes"):
    return True
  if text.lower() in ("0", "false", "no"):
    return False
  raise UsageError(f"--{flag}={text}: expected true or false")


def main(argv) -> int:
  _, flags = parse_args(argv, {"a": None, "b": None, "metric": "all", "k": "10", "out": None,
                               "l2_normalize": "true", "layer_axis": None, "block_size": "1024"})
  if not flags["a"] or not flags["b"]:
    raise UsageError("--a=FEATURES_A and --b=FEATURES_B are required (.npy, .npz or .safetensors)")
  from launch.common import parse_int  # pylint: disable=g-import-not-at-top
  metrics = parse_metrics(flags["metric"])
  k = parse_int("k", flags["k"], minimum=1)
  block_size = parse_int("block_size", flags["block_size"], minimum=1)
  layer_axis = (parse_int("layer_axis", flags["layer_axis"], minimum=0)
                if flags["layer_axis"] is not None else None)
  l2 = _bool("l2_normalize", flags["l2_normalize"])
  out = flags["out"]
  if out:
    if os.path.isdir(out):
      raise UsageError(f"--out={out} is a folder; give a file name such as {out}/report.json")
    parent = os.path.dirname(os.path.abspath(out))
    if not os.path.isdir(parent):
      raise UsageError(f"--out={out}: folder {parent} does not exist")
  file_a = LayerFile(flags["a"], "a", layer_axis)
  file_b = LayerFile(flags["b"], "b", layer_axis)
  log = lambda *a: print(*a, file=sys.stderr, flush=True)
  report = compare(file_a, file_b, metrics, k, l2, block_size, log=log)
  for metric, entry in report["metrics"].items():
    where = (f"at a[{entry['argmax_layers'][0]}] x b[{entry['argmax_layers'][1]}] "
             f"{tuple(entry['argmax'])}" if entry["argmax"] else "(undefined for every pair)")
    value = f"{entry['max']:.4f}" if entry["max"] is not None else "null"
    print(f"{metric:13s} max {value} {where}")
  for note in report["notes"]:
    log(f"[compare] note: {note}")
  if out:
    plot = os.path.splitext(out)[0] + ".png"
    report["heatmap"] = os.path.basename(plot)
    tmp = out + ".tmp"
    with open(tmp, "w") as f:
      json.dump(report, f, indent=1)
    os.replace(tmp, out)
    heatmaps(report, plot)
    log(f"[compare] wrote {out} and {plot}")
  return 0


if __name__ == "__main__":
  sys.exit(run_main(main, doc=__doc__))
