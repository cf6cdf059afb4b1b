"""launch.compare: every metric for every layer pair, equal to the library functions."""

import json
import os

import numpy as np
import pytest

from jaxdisent.metrics import alignment as A
from launch.common import run_main
from launch.compare import main as compare_main


def run(argv):
  return run_main(compare_main, argv)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
  folder = tmp_path_factory.mktemp("compare")
  rng = np.random.default_rng(0)
  x = rng.normal(size=(120, 8)).astype(np.float32)
  a = {f"layer_{i}": np.tanh(x @ rng.normal(size=(8, 8)) * (i + 1) / 3).astype(np.float32)
       for i in range(2)}
  # B's layer 2 is a rotation of A's layer 1: every metric peaks at (1, 2)
  rotation = np.linalg.qr(rng.normal(size=(8, 8)))[0].astype(np.float32)
  b = {"h0": rng.normal(size=(120, 6)).astype(np.float32),
       "h1": (a["layer_0"][:, :6] + rng.normal(size=(120, 6))).astype(np.float32),
       "h2": (a["layer_1"] @ rotation).astype(np.float32)}
  np.savez(folder / "a.npz", **a)
  from safetensors.numpy import save_file
  save_file(b, str(folder / "b.safetensors"))
  np.save(folder / "single.npy", a["layer_1"])
  return folder, a, b


@pytest.mark.slow
def test_report_equals_the_library_functions(files, tmp_path, capsys):
  folder, a, b = files
  out = tmp_path / "r.json"
  assert run([f"--a={folder}/a.npz", f"--b={folder}/b.safetensors", "--metric=all", "--k=5",
              f"--out={out}"]) == 0
  report = json.loads(out.read_text())
  assert report["layers_a"] == ["layer_0", "layer_1"] and report["layers_b"] == ["h0", "h1", "h2"]
  assert os.path.getsize(tmp_path / "r.png") > 1000
  library = {
      "cka": A.cka, "unbiased_cka": A.unbiased_cka,
      "svcca": lambda p, q: A.svcca(p, q, cca_dim=min(10, p.shape[1], q.shape[1])),
      "mutual_knn": lambda p, q: A.mutual_knn(p, q, k=5),
      "cycle_knn": lambda p, q: A.cycle_knn(p, q, k=5),
      "lcs_knn": lambda p, q: A.lcs_knn(p, q, k=5),
      "edit_knn": lambda p, q: A.edit_knn(p, q, k=5),
      "cknna": lambda p, q: A.cknna(p, q, k=5)}
  assert set(report["metrics"]) == set(library)
  for name, fn in library.items():
    entry = report["metrics"][name]
    expected = np.array([[fn(np.asarray(A.l2_normalize(a[la])), np.asarray(A.l2_normalize(b[lb])))
                          for lb in ("h0", "h1", "h2")] for la in ("layer_0", "layer_1")])
    np.testing.assert_allclose(np.array(entry["matrix"]), expected, rtol=1e-6, atol=1e-7,
                               err_msg=name)
    assert entry["argmax"] == [1, 2] and entry["argmax_layers"] == ["layer_1", "h2"], name
    assert entry["max"] == pytest.approx(expected.max(), rel=1e-6)
  printed = capsys.readouterr()
  assert "cka" in printed.out and "layer pair 6/6" in printed.err


def test_one_array_files_and_a_metric_subset(files, tmp_path):
  folder, a, _ = files
  out = tmp_path / "one.json"
  assert run([f"--a={folder}/single.npy", f"--b={folder}/a.npz", "--metric=cka,mutual_knn",
              "--l2_normalize=false", f"--out={out}"]) == 0
  report = json.loads(out.read_text())
  assert list(report["metrics"]) == ["cka", "mutual_knn"]
  assert report["metrics"]["cka"]["matrix"][0][1] == pytest.approx(1.0, abs=1e-5)  # same array
  assert report["metrics"]["cka"]["argmax"] == [0, 1]
  assert report["metrics"]["mutual_knn"]["matrix"][0][0] == A.mutual_knn(a["layer_1"], a["layer_0"])
  # a 3-D array with its layer axis
  np.save(tmp_path / "stack.npy", np.stack([a["layer_0"], a["layer_1"]], axis=1))  # (N, L, D)
  assert run([f"--a={tmp_path}/stack.npy", f"--b={folder}/a.npz", "--layer_axis=1",
              "--metric=cka", f"--out={tmp_path}/s.json"]) == 0
  matrix = np.array(json.loads((tmp_path / "s.json").read_text())["metrics"]["cka"]["matrix"])
  np.testing.assert_allclose(np.diag(matrix), 1.0, atol=1e-5)


def test_constant_layer_is_null_with_a_note(files, tmp_path):
  folder, a, _ = files
  np.savez(tmp_path / "c.npz", dead=np.ones((120, 4), np.float32), live=a["layer_0"])
  out = tmp_path / "c.json"
  assert run([f"--a={tmp_path}/c.npz", f"--b={folder}/a.npz", "--metric=cka,mutual_knn",
              f"--out={out}"]) == 0
  report = json.loads(out.read_text())
  assert report["metrics"]["cka"]["matrix"][0] == [None, None]
  assert report["metrics"]["mutual_knn"]["matrix"][0] == [None, None]
  assert report["metrics"]["cka"]["argmax"] == [1, 0]
  assert any("constant" in n for n in report["notes"])
  assert any("every row identical" in n for n in report["notes"])


def test_bad_inputs_are_one_line_errors(files, tmp_path, capsys):
  folder, a, _ = files
  np.save(tmp_path / "short.npy", a["layer_0"][:50])
  np.save(tmp_path / "nan.npy", np.where(a["layer_0"] > 0.5, np.nan, a["layer_0"]))
  (tmp_path / "broken.npz").write_bytes(b"not a zip file")
  (tmp_path / "broken.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{}")
  np.save(tmp_path / "cube.npy", np.zeros((2, 120, 3), np.float32))
  cases = [
      ([f"--a={folder}/a.npz"], "--b=FEATURES_B are required"),
      ([f"--a={folder}/a.npz", f"--b={tmp_path}/short.npy"], "must describe the same samples"),
      ([f"--a={folder}/a.npz", f"--b={tmp_path}/missing.npy"], "no such file"),
      ([f"--a={folder}/a.npz", f"--b={tmp_path}/broken.npz"], "broken.npz cannot be read"),
      ([f"--a={folder}/a.npz", f"--b={tmp_path}/broken.safetensors"], "cannot be read"),
      ([f"--a={folder}/a.npz", f"--b={tmp_path}/nan.npy"], "contains NaN"),
      ([f"--a={folder}/a.npz", f"--b={tmp_path}/cube.npy"], "--layer_axis=0"),
      ([f"--a={folder}/a.npz", f"--b={folder}/a.npz", "--metric=ckaa"], "ckaa is not a metric"),
      ([f"--a={folder}/a.npz", f"--b={folder}/a.npz", "--k=120"], "--k=120 must be in"),
      ([f"--a={folder}/a.npz", f"--b={folder}/a.npz", "--k=x"], "expected an integer"),
      ([f"--a={folder}/a.npz", f"--b={folder}/a.npz", f"--out={tmp_path}"], "is a folder"),
      ([f"--a={folder}/a.npz", f"--b={folder}/a.npz", f"--out={tmp_path}/no/r.json"],
       "does not exist"),
      ([f"--a={folder}", f"--b={folder}/a.npz"], "is a folder"),
  ]
  for argv, message in cases:
    assert run(argv) == 2, argv
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("[jaxdisent] error:") and message in err[0], (
        argv, err)
