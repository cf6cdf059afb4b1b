"""The bad-input tour: feed library functions and launchers bad input, classify every answer.

  python benchmarks/bad_input_tour.py [--only=library|launchers] [--out=tour.json] [--jobs=2]

Each case expects either an error or a defined value. An answer is
* ``clear``: the expected error as one line (library: ValueError / FileNotFoundError /
  CheckpointError / WorkdirBusyError naming the problem; launcher: exactly one
  ``[jaxdisent] error: ...`` line and exit 2), or the expected value;
* ``wrong``: the call succeeded where it should have failed, or returned a wrong value;
* ``traceback``: a raw traceback (launcher) or an exception of an unrelated type from deep inside
  (library: IndexError, KeyError, ZeroDivisionError, AttributeError, ...);
* ``unclear``: the right outcome with a message over several lines or a different exit code.
It prints one row per case and the table by set; nothing here is a test (tests/ holds those):
it is how the closing note's tour table is measured.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
import warnings
from concurrent.futures import ThreadPoolExecutor

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

CLEAR_TYPES = ("ValueError", "FileNotFoundError", "CheckpointError", "WorkdirBusyError",
               "UsageError", "NotADirectoryError", "IsADirectoryError", "PermissionError")


def _rng(seed=0):
  return np.random.default_rng(seed)


def library_cases(tmp):
  """(name, thunk, expect) with expect 'error', or a predicate on the returned value."""
  from jaxdisent import metrics
  from jaxdisent.metrics import alignment as A
  from jaxdisent.metrics import dictionary as D
  from jaxdisent.metrics import graph as G
  from jaxdisent.metrics import multimodal as MM
  from jaxdisent.train import config as C
  from jaxdisent.train import lock as L
  r = _rng()
  codes = r.normal(size=(200, 5))
  factors = r.integers(0, 4, size=(200, 3))
  feats = r.normal(size=(64, 16)).astype(np.float32)
  feats_b = (feats @ r.normal(size=(16, 16))).astype(np.float32)
  finite = lambda v: np.all(np.isfinite(np.asarray(list(v.values()) if isinstance(v, dict) else v,
                                                   dtype=float)))
  cka_ref = float(A.cka(feats, feats_b))
  close_to_ref = lambda v: abs(float(v) - cka_ref) < 1e-3

  cases = [
      # disentanglement metrics
      ("mig: one row", lambda: metrics.mig(codes[:1], factors[:1]), "error"),
      ("modularity: one row", lambda: metrics.modularity(codes[:1], factors[:1]), "error"),
      ("irs: one row", lambda: metrics.irs(codes[:1], factors[:1]), "error"),
      ("mig: NaN code", lambda: metrics.mig(np.where(np.eye(200, 5) > 0, np.nan, codes), factors),
       "error"),
      ("mig: rows differ", lambda: metrics.mig(codes, factors[:100]), "error"),
      ("mig: empty", lambda: metrics.mig(codes[:0], factors[:0]), "error"),
      ("mig: 1-D codes", lambda: metrics.mig(codes[:, 0], factors), "error"),
      ("mig: num_bins=0", lambda: metrics.mig(codes, factors, num_bins=0), "error"),
      ("sap: width mismatch train/test", lambda: metrics.sap(codes[:100], factors[:100],
                                                              codes[100:, :3], factors[100:]),
       "error"),
      ("explicitness: width mismatch", lambda: metrics.explicitness(
          codes[:100], factors[:100], codes[100:, :3], factors[100:]), "error"),
      ("dci: factor count mismatch", lambda: metrics.dci(codes[:100], factors[:100],
                                                         codes[100:], factors[100:, :2]), "error"),
      ("gaussian_total_correlation: one column", lambda: metrics.gaussian_total_correlation(
          codes[:, :1]), lambda v: np.isfinite(v)),
      ("mig: bfloat16 codes", lambda: metrics.mig(codes.astype("bfloat16"), factors),
       lambda v: np.isfinite(v)),
      # dictionary measures
      ("fvu: shape mismatch", lambda: D.fvu(feats, feats[:, :8]), "error"),
      ("fvu: constant input", lambda: D.fvu(np.ones((10, 4)), np.ones((10, 4))), "error_or_nan"),
      ("stability: width mismatch", lambda: D.stability(feats, feats[:, :8]), "error"),
      ("modality_dominance: rows differ", lambda: D.modality_dominance(
          np.abs(feats), np.abs(feats[:10])), "error"),
      ("modality_dominance: cutoffs reversed", lambda: D.modality_dominance(
          np.abs(feats), np.abs(feats_b), cutoffs=(0.6, -0.6)), "error"),
      ("monosemanticity: top_n=0", lambda: D.monosemanticity(np.abs(feats), feats, top_n=0),
       "error"),
      ("dense_fraction: threshold 2", lambda: D.dense_fraction(np.abs(feats), 2.0), "error"),
      # multimodal
      ("linear_probe_r2: constant target", lambda: MM.linear_probe_r2(
          feats, np.ones(64), feats, np.ones(64)), "error_or_nan"),
      ("linear_probe_r2: rows differ", lambda: MM.linear_probe_r2(feats, np.ones(10), feats,
                                                                   np.ones(64)), "error"),
      ("sentiment metrics: NaN prediction", lambda: MM.sentiment_regression_metrics(
          np.array([np.nan, 1.0]), np.array([0.0, 1.0])), "error"),
      # graph
      ("graph_recovery: non-binary truth", lambda: G.graph_recovery(
          r.random((4, 4)), r.random((4, 4))), "error"),
      ("graph_recovery: shapes differ", lambda: G.graph_recovery(np.zeros((4, 4)),
                                                                 np.eye(3)), "error"),
      ("auroc: one class only", lambda: G.auroc(np.array([0.1, 0.2]), np.array([1, 1])),
       "error_or_nan"),
      # alignment
      ("cka: features x 1e-6", lambda: A.cka(feats * 1e-6, feats_b * 1e-6), close_to_ref),
      ("cka: features x 1e8", lambda: A.cka(feats * 1e8, feats_b * 1e8), close_to_ref),
      ("cka: features x 1e-8 / 1e8", lambda: A.cka(feats * 1e-8, feats_b * 1e8), close_to_ref),
      ("unbiased_cka: features x 1e-7", lambda: A.unbiased_cka(feats * 1e-7, feats_b * 1e-7),
       lambda v: abs(v - float(A.unbiased_cka(feats, feats_b))) < 1e-3),
      ("cka rbf: sigma 0.1", lambda: A.cka(feats, feats_b, kernel="rbf", sigma=0.1),
       lambda v: np.isfinite(v)),
      ("cka rbf unbiased: sigma 0.1", lambda: A.cka(feats, feats_b, kernel="rbf", sigma=0.1,
                                                    unbiased=True), lambda v: np.isfinite(v)),
      ("cka: bfloat16", lambda: A.cka(feats.astype("bfloat16"), feats_b.astype("bfloat16")),
       lambda v: abs(v - cka_ref) < 2e-2),
      ("cka: rows differ", lambda: A.cka(feats, feats_b[:10]), "error"),
      ("cka: constant features", lambda: A.cka(np.ones((64, 4)), feats), "error_or_nan"),
      ("mutual_knn: identical rows", lambda: A.mutual_knn(np.ones((32, 4)), np.ones((32, 4)), k=3),
       "error_or_nan"),
      ("mutual_knn: k >= n", lambda: A.mutual_knn(feats, feats_b, k=64), "error"),
      ("mutual_knn: k=0", lambda: A.mutual_knn(feats, feats_b, k=0), "error"),
      ("svcca: cca_dim > width", lambda: A.svcca(feats, feats_b, cca_dim=100), "error"),
      ("cknna: NaN", lambda: A.cknna(np.full((16, 4), np.nan), feats[:16, :4], k=3), "error"),
      # config and workdir
      ("validate_domains: beta=-4", lambda: C.validate_domains(_cfg({"loss": {"beta": -4.0}})),
       "error"),
      ("validate_domains: nan lr", lambda: C.validate_domains(
          _cfg({"optimizer": {"learning_rate": float("nan")}})), "error"),
      ("load_config: syntax error", lambda: C.load_config(_write(tmp, "bad.py",
                                                                 "def get_config(:\n")), "error"),
      ("load_config: get_config raises", lambda: C.load_config(_write(
          tmp, "raises.py", "def get_config():\n  raise RuntimeError('x')\n")), "error"),
      ("lock: workdir is a file", lambda: L.acquire(_write(tmp, "afile", "x")), "error"),
  ]
  cases += _sae_format_cases(tmp)
  cases += _embedding_file_cases(tmp)
  return cases


def _sae_format_cases(tmp):
  try:
    from jaxdisent.io import sae_formats as F
  except ImportError:
    return []
  loader = getattr(F, "load_saelens", None) or getattr(F, "read_saelens", None)
  if loader is None:
    return []
  folder = os.path.join(tmp, "truncated_sae")
  os.makedirs(folder, exist_ok=True)
  with open(os.path.join(folder, "sae_weights.safetensors"), "wb") as f:
    f.write(b"\x10\x00\x00\x00\x00\x00\x00\x00{\"a\":")
  with open(os.path.join(folder, "cfg.json"), "w") as f:
    json.dump({"d_in": 4, "d_sae": 8, "architecture": "topk", "activation_fn_kwargs": {"k": 2}}, f)
  return [("SAELens import: truncated safetensors", lambda: loader(folder), "error"),
          ("SAELens import: missing folder", lambda: loader(os.path.join(tmp, "nope")), "error")]


def _embedding_file_cases(tmp):
  from jaxdisent.data import embeddings as E
  loader = getattr(E, "load_embeddings", None) or getattr(E, "read_embeddings", None)
  if loader is None:
    return []
  not_zip = _write(tmp, "notzip.npz", "this is not a zip file")
  truncated = os.path.join(tmp, "trunc.safetensors")
  with open(truncated, "wb") as f:
    f.write(b"\xff\xff\xff\xff\x00\x00\x00\x00{")
  return [("embeddings: non-zip .npz", lambda: loader(not_zip), "error_names:notzip.npz"),
          ("embeddings: truncated .safetensors", lambda: loader(truncated),
           "error_names:trunc.safetensors")]


def _cfg(tree):
  import ml_collections
  return ml_collections.ConfigDict(tree)


def _write(tmp, name, text):
  path = os.path.join(tmp, name)
  with open(path, "w") as f:
    f.write(text)
  return path


def run_library(tmp):
  rows = []
  for name, thunk, expect in library_cases(tmp):
    with warnings.catch_warnings(record=True) as caught:
      warnings.simplefilter("always")
      try:
        value = thunk()
        error = None
      except Exception as e:  # pylint: disable=broad-except
        value, error = None, e
    rows.append(dict(set="library", case=name, **_classify_library(value, error, expect, caught)))
  return rows


def _classify_library(value, error, expect, caught):
  if error is not None:
    kind = type(error).__name__
    text = str(error.args[0]) if error.args else str(error)
    detail = f"{kind}: {' '.join(text.split())[:160]}"
    if expect == "error" or (isinstance(expect, str) and expect.startswith("error")):
      if kind not in CLEAR_TYPES:
        return {"outcome": "traceback", "detail": detail}
      if expect.startswith("error_names:") and expect.split(":", 1)[1] not in text:
        return {"outcome": "unclear", "detail": "does not name the file: " + detail}
      return {"outcome": "clear" if "\n" not in text.strip() else "unclear", "detail": detail}
    return {"outcome": "traceback" if kind not in CLEAR_TYPES else "wrong", "detail": detail}
  shown = repr(value)[:120]
  if expect == "error_or_nan":
    numbers = np.asarray(list(value.values()) if isinstance(value, dict) else value, dtype=float)
    if np.all(np.isnan(numbers)) and caught:
      return {"outcome": "clear", "detail": f"NaN with warning: {caught[0].message}"[:160]}
    return {"outcome": "wrong", "detail": f"returned {shown} (expected an error or NaN + warning)"}
  if isinstance(expect, str):
    return {"outcome": "wrong", "detail": f"returned {shown} (expected an error)"}
  try:
    good = bool(expect(value))
  except Exception as e:  # pylint: disable=broad-except
    good, shown = False, f"{shown} ({e})"
  return {"outcome": "clear" if good else "wrong", "detail": f"returned {shown}"}


def launcher_cases(tmp):
  """(name, argv, expect) with expect 'error' (exit 2, one line) or 'ok' (exit 0)."""
  a_file = _write(tmp, "a_file", "x")
  bad_config = _write(tmp, "bad_config.py", "def get_config(:\n")
  import_config = _write(tmp, "import_config.py", "import no_such_module\n")
  vae = "--config=configs/beta_vae_dsprites.py"
  sae = "--config=configs/sae_vlm_synthetic.py"
  dec = "--config=configs/decalign_synthetic.py"
  w = lambda n: f"--workdir={os.path.join(tmp, n)}"
  cases = [
      ("train --help", ["launch.train", "--help"], "ok"),
      ("sweep --help", ["launch.sweep", "--help"], "ok"),
      ("evaluate --help", ["launch.evaluate", "--help"], "ok"),
      ("train: no --config", ["launch.train", w("t0")], "error"),
      ("train: no --workdir", ["launch.train", vae], "error"),
      ("train: config syntax error", ["launch.train", f"--config={bad_config}", w("t1")], "error"),
      ("train: config import error", ["launch.train", f"--config={import_config}", w("t2")],
       "error"),
      ("train: config is a folder", ["launch.train", "--config=configs", w("t3")], "error"),
      ("train: --config twice", ["launch.train", vae, sae, w("t4")], "error"),
      ("train: workdir is a file", ["launch.train", vae, f"--workdir={a_file}"], "error"),
      ("train: beta=-4", ["launch.train", vae, w("t5"), "--config.loss.beta=-4"], "error"),
      ("train: beta=nan", ["launch.train", vae, w("t6"), "--config.loss.beta=nan"], "error"),
      ("train: num_steps=0", ["launch.train", vae, w("t7"), "--config.train.num_steps=0"], "error"),
      ("train: lr=-1", ["launch.train", vae, w("t8"), "--config.optimizer.learning_rate=-1"],
       "error"),
      ("train: unknown key", ["launch.train", vae, w("t9"), "--config.loss.betta=4"], "error"),
      ("train: int key given a float", ["launch.train", vae, w("t10"),
                                        "--config.model.latent_dim=2.5"], "error"),
      ("train: positional argument", ["launch.train", vae, w("t11"), "extra"], "error"),
      ("train: unknown flag", ["launch.train", vae, w("t12"), "--lr=3"], "error"),
      ("train: --devices=0", ["launch.train", vae, w("t13"), "--devices=0"], "error"),
      ("train: SAE k > dict_size", ["launch.train", sae, w("t14"), "--config.model.k=1000",
                                    "--config.model.dict_size=64"], "error"),
      ("train: SAE k=0", ["launch.train", sae, w("t15"), "--config.model.k=0"], "error"),
      ("train: DecAlign batch > split", ["launch.train", dec, w("t16"),
                                         "--config.train.batch_size=100000"], "error"),
      ("train: b2=1", ["launch.train", vae, w("t17"), "--config.optimizer.b2=1.0"], "error"),
      ("train: unknown method data source", ["launch.train", vae, w("t18"),
                                             "--config.data.source=imagenet"], "error"),
      ("sweep: grid without values", ["launch.sweep", vae, w("s1"), "--grid=loss.beta"], "error"),
      ("sweep: --seeds=0,0", ["launch.sweep", vae, w("s2"), "--seeds=0,0"], "error"),
      ("sweep: --seeds=x", ["launch.sweep", vae, w("s3"), "--seeds=x"], "error"),
      ("sweep: workdir is a file", ["launch.sweep", vae, f"--workdir={a_file}"], "error"),
      ("sweep: unknown grid key", ["launch.sweep", vae, w("s4"), "--grid=loss.betta=1,2"],
       "error"),
      ("sweep: seed twice", ["launch.sweep", vae, w("s5"), "--grid=seed=0,1", "--seeds=0"],
       "error"),
      ("sae_sweep: workdir is a file", ["launch.sae_sweep", sae, f"--workdir={a_file}"], "error"),
      ("evaluate: not a run", ["launch.evaluate", w("e1")], "error"),
      ("evaluate: --step=abc", ["launch.evaluate", w("e2"), "--step=abc"], "error"),
      ("evaluate: workdir is a file", ["launch.evaluate", f"--workdir={a_file}"], "error"),
      ("explore: not a run", ["launch.explore", w("x1")], "error"),
      ("export_sae: not a run", ["launch.export_sae", w("x2"), f"--out={tmp}/exp"], "error"),
      ("multiprocess: --num_processes=0", ["launch.multiprocess", "--num_processes=0", "--",
                                           vae, w("m1")], "error"),
      ("oracle: no config", ["launch.oracle", w("o1")], "error"),
      ("alignment_study: bad grid", ["launch.alignment_study",
                                     "--config=configs/alignment_emergence.py", w("a1"),
                                     "--config.grid.num_unique=4,x"], "error"),
      ("decalign_ablation: unknown variant", ["launch.decalign_ablation", dec, w("d1"),
                                              "--variants=nope"], "error"),
  ]
  if os.path.exists(os.path.join(ROOT, "launch", "compare.py")):
    npy = os.path.join(tmp, "a.npy")
    np.save(npy, np.zeros((8, 4), np.float32))
    cases += [("compare: missing file", ["launch.compare", f"--a={tmp}/none.npy", f"--b={npy}"],
               "error"),
              ("compare: rows differ", ["launch.compare", f"--a={npy}",
                                        f"--b={_save(tmp, 'b.npy', np.zeros((5, 4)))}"], "error")]
  return cases


def _save(tmp, name, array):
  path = os.path.join(tmp, name)
  np.save(path, array)
  return path


def run_launcher(case):
  name, argv, expect = case
  env = dict(os.environ, JAX_PLATFORMS="cpu", TF_CPP_MIN_LOG_LEVEL="3")
  start = time.time()
  try:
    result = subprocess.run([sys.executable, "-m", *argv], cwd=ROOT, env=env, capture_output=True,
                            text=True, timeout=600, stdin=subprocess.DEVNULL)
  except subprocess.TimeoutExpired:
    return dict(set="launchers", case=name, outcome="wrong", detail="timed out (600 s)")
  err = result.stderr
  errors = [line for line in err.splitlines() if line.startswith("[jaxdisent] error:")]
  if "Traceback" in err:
    outcome, detail = "traceback", err.strip().splitlines()[-1][:160]
  elif expect == "ok":
    outcome = "clear" if result.returncode == 0 else "wrong"
    detail = f"exit {result.returncode}"
  elif result.returncode == 0:
    outcome, detail = "wrong", "exit 0 (expected an error)"
  elif result.returncode == 2 and len(errors) == 1:
    outcome, detail = "clear", errors[0][:160]
  else:
    outcome, detail = "unclear", f"exit {result.returncode}: {(errors or [err.strip()[-160:]])[0]}"
  return dict(set="launchers", case=name, outcome=outcome, detail=detail,
              seconds=round(time.time() - start, 1))


def main(argv) -> int:
  flags = dict(a.lstrip("-").split("=", 1) for a in argv if "=" in a)
  if any(a in ("-h", "--help") for a in argv):
    print(__doc__)
    return 0
  only = flags.get("only")
  rows = []
  with tempfile.TemporaryDirectory() as tmp:
    if only in (None, "library"):
      rows += run_library(tmp)
    if only in (None, "launchers"):
      cases = launcher_cases(tmp)
      with ThreadPoolExecutor(int(flags.get("jobs", 2))) as pool:
        for row in pool.map(run_launcher, cases):
          print(f"  {row['outcome']:9s} {row['case']}", file=sys.stderr, flush=True)
          rows.append(row)
  for row in rows:
    print(f"{row['set']:9s} {row['outcome']:9s} {row['case']:45s} {row['detail']}")
  print("\n| set | tried | clear / ok | unclear | wrong | raw traceback |\n|---|---|---|---|---|---|")
  for name in dict.fromkeys(r["set"] for r in rows):
    group = [r for r in rows if r["set"] == name]
    count = lambda o: sum(r["outcome"] == o for r in group)
    print(f"| {name} | {len(group)} | {count('clear')} | {count('unclear')} | {count('wrong')} | "
          f"{count('traceback')} |")
  if flags.get("out"):
    with open(flags["out"], "w") as f:
      json.dump(rows, f, indent=2)
  return 0


if __name__ == "__main__":
  sys.exit(main(sys.argv[1:]))
