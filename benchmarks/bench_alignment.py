"""Alignment-metric throughput: jaxdisent (blocked, O(n d^2) / O(n^2)) vs the dense way the
platonic-representation code computes them (full n x n kernels in PyTorch, O(n^3) unbiased HSIC),
side by side; and jaxdisent's peak memory at n = 100,000.

  pip install -e '.[bench]'
  python benchmarks/bench_alignment.py [--sizes=4096,20000] [--dim=768] [--k=10]
  python benchmarks/bench_alignment.py --peak_memory=100000   # ours only, one subprocess per metric

Reference cases whose dense cost is out of reach on this machine are skipped and say so.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def torch_reference():
  import torch  # pylint: disable=g-import-not-at-top

  def knn(f, k):
    sims = f @ f.T
    sims.fill_diagonal_(-1e8)
    return sims.topk(k, dim=1).indices

  def mutual_knn(a, b, k):
    n = a.shape[0]
    ma = torch.zeros(n, n).scatter_(1, knn(a, k), 1.0)
    mb = torch.zeros(n, n).scatter_(1, knn(b, k), 1.0)
    return ((ma * mb).sum(1) / k).mean().item()

  def hsic_unbiased(K, L):
    m = K.shape[0]
    Kt, Lt = K.clone().fill_diagonal_(0), L.clone().fill_diagonal_(0)
    value = (Kt * Lt.T).sum() + Kt.sum() * Lt.sum() / ((m - 1) * (m - 2)) - 2 * (Kt @ Lt).sum() / (m - 2)
    return value / (m * (m - 3))

  def hsic_biased(K, L):
    H = torch.eye(K.shape[0], dtype=K.dtype) - 1.0 / K.shape[0]
    return torch.trace(K @ H @ L @ H)

  def cka(a, b, unbiased):
    K, L = a @ a.T, b @ b.T
    h = hsic_unbiased if unbiased else hsic_biased
    return (h(K, L) / torch.sqrt(h(K, K) * h(L, L))).item()

  def cknna(a, b, k):
    n = a.shape[0]
    K, L = a @ a.T, b @ b.T

    def sim(K, L):
      ma = torch.zeros(n, n).scatter_(1, K.clone().fill_diagonal_(float("-inf")).topk(k, 1).indices, 1.0)
      mb = torch.zeros(n, n).scatter_(1, L.clone().fill_diagonal_(float("-inf")).topk(k, 1).indices, 1.0)
      mask = ma * mb
      return hsic_unbiased(mask * K, mask * L)

    return (sim(K, L) / (torch.sqrt(sim(K, K) * sim(L, L)) + 1e-6)).item()

  return {"mutual_knn": lambda a, b, k: mutual_knn(a, b, k),
          "cka_linear": lambda a, b, k: cka(a, b, False),
          "unbiased_cka_linear": lambda a, b, k: cka(a, b, True),
          "cknna": cknna}


def ours():
  from jaxdisent.metrics import alignment as A  # pylint: disable=g-import-not-at-top
  return {"mutual_knn": lambda a, b, k: A.mutual_knn(a, b, k=k),
          "cka_linear": lambda a, b, k: A.cka(a, b),
          "unbiased_cka_linear": lambda a, b, k: A.unbiased_cka(a, b),
          "cknna": lambda a, b, k: A.cknna(a, b, k=k),
          "unbiased_cka_rbf": lambda a, b, k: A.unbiased_cka(a, b, kernel="rbf"),
          "svcca": lambda a, b, k: A.svcca(a, b)}


# dense reference cost grows as n^3 for these; skip them above this n on a 2-core machine
CUBIC = {"unbiased_cka_linear", "cka_linear", "cknna"}


def features(n, dim, seed):
  import numpy as np  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(seed)
  a = rng.normal(size=(n, dim)).astype(np.float32)
  b = np.tanh(a @ rng.normal(size=(dim, dim)).astype(np.float32) / np.float32(np.sqrt(dim)))
  b = b + 0.5 * rng.normal(size=b.shape).astype(np.float32)
  a /= np.linalg.norm(a, axis=1, keepdims=True)
  b /= np.linalg.norm(b, axis=1, keepdims=True)
  return a, b


def timed(fn):
  start = time.perf_counter()
  value = fn()
  return value, time.perf_counter() - start


def compare(sizes, dim, k, max_cubic_n):
  import torch  # pylint: disable=g-import-not-at-top
  mine, theirs = ours(), torch_reference()
  print(f"alignment metrics, d={dim}, k={k}, 2-core CPU; reference = dense PyTorch "
        f"{torch.__version__} (platonic-rep style)")
  for n in sizes:
    a, b = features(n, dim, 0)
    ta, tb = torch.from_numpy(a), torch.from_numpy(b)
    for name, fn in mine.items():
      _, t_first = timed(lambda: fn(a, b, k))  # first call compiles for this shape
      value, t_ours = timed(lambda: fn(a, b, k))
      line = f"  n={n:6d} {name:20s} ours {t_ours:8.2f} s (first call {t_first:6.2f} s) ({value:.4f})"
      if name in theirs and (name not in CUBIC or n <= max_cubic_n):
        ref_value, t_ref = timed(lambda: theirs[name](ta, tb, k))
        line += f"  reference {t_ref:8.2f} s ({ref_value:.4f})  speed-up {t_ref / t_ours:6.1f}x"
      elif name in theirs:
        line += f"  reference skipped (dense O(n^3): ~{(n / max_cubic_n) ** 3:.0f}x the n={max_cubic_n} time)"
      print(line, flush=True)


def peak_memory(n, dim, k, names):
  """Each metric in a fresh subprocess; report its peak resident memory."""
  for name in names:
    code = (f"import sys; sys.path.insert(0, {ROOT!r}); sys.path.insert(0, {os.path.dirname(os.path.abspath(__file__))!r});"
            f"import bench_alignment as B, time, resource; a, b = B.features({n}, {dim}, 0);"
            f"t = time.perf_counter(); v = B.ours()[{name!r}](a, b, {k});"
            f"print(v, time.perf_counter() - t, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if out.returncode != 0:
      print(f"  n={n} {name:20s} FAILED: {out.stderr[-400:]}")
      continue
    value, seconds, rss_kb = out.stdout.split()[-3:]
    print(f"  n={n} {name:20s} {float(seconds):8.1f} s  peak RSS {int(rss_kb) / 2**20:5.2f} GiB  "
          f"(value {float(value):.4f}; the two {n}x{dim} float32 inputs alone are "
          f"{2 * n * dim * 4 / 2**30:.2f} GiB)", flush=True)


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--sizes", default="4096,20000")
  parser.add_argument("--dim", type=int, default=768)
  parser.add_argument("--k", type=int, default=10)
  parser.add_argument("--max_cubic_n", type=int, default=4096)
  parser.add_argument("--peak_memory", type=int, default=0)
  parser.add_argument("--metrics", default="mutual_knn,unbiased_cka_linear,cknna,unbiased_cka_rbf,svcca",
                      help="metrics for --peak_memory")
  args = parser.parse_args()
  if args.peak_memory:
    peak_memory(args.peak_memory, args.dim, args.k, args.metrics.split(","))
    return
  try:
    import torch  # pylint: disable=g-import-not-at-top,unused-import
  except ImportError:
    sys.exit("the reference side needs PyTorch: pip install -e '.[bench]'")
  compare([int(s) for s in args.sizes.split(",")], args.dim, args.k, args.max_cubic_n)


if __name__ == "__main__":
  main()
