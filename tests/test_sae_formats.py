"""SAELens / sparsify export and import: files encode raw embeddings as we do (checked with plain
NumPy from the files alone), round trips, starting training from an imported SAE."""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

from jaxdisent.io import sae_formats as F
from jaxdisent.methods import make_method
from jaxdisent.runs import fit
from launch.export_sae import main as export_main

from test_sae import sae_config

EPS = float(np.finfo(np.float32).eps)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
  """A tiny BatchTopK, TopK and Matryoshka BatchTopK run on embedding files of norm 3 (so the
  input scale is not 1); the BatchTopK kinds' threshold is learned from step 2 on."""
  from jaxdisent.data.synthetic_vlm import SyntheticVLM
  data_dir = tmp_path_factory.mktemp("embeddings")
  image, text, _, _ = SyntheticVLM(dim=16, num_shared=6, num_image_only=5,
                                   num_text_only=5).pairs(jax.random.key(0), 1024)
  np.save(data_dir / "image.npy", 3.0 * np.asarray(image))
  np.save(data_dir / "text.npy", 3.0 * np.asarray(text))
  runs = {}
  for kind in ("batchtopk", "topk", "matryoshka_batchtopk"):
    workdir = str(tmp_path_factory.mktemp(kind))
    config = sae_config(**{"model.kind": kind, "train.num_steps": 20,
                           "train.checkpoint_every": 20, "data.source": "file",
                           "data.path": str(data_dir / "image.npy"),
                           "data.text_path": str(data_dir / "text.npy")})
    result = fit(config, workdir, quiet=True)
    runs[kind] = (workdir, result)
  return runs


def _raw_inputs(method, n=256):
  index = np.arange(n // 2)
  return np.concatenate([method.data.rows(index, "image"), method.data.rows(index, "text")])


def _codes_close(ours, theirs, magnitude, d_in):
  ours, theirs = np.asarray(ours), np.asarray(theirs)
  tol = F.tolerance(d_in, magnitude)
  np.testing.assert_allclose(theirs, ours, rtol=0, atol=tol)
  assert (ours > 0).sum() > 0


@pytest.mark.parametrize("kind,fmt", [("batchtopk", "saelens"), ("topk", "saelens"),
                                      ("topk", "sparsify"), ("matryoshka_batchtopk", "saelens")])
@pytest.mark.slow
def test_exported_files_encode_raw_embeddings_like_us(tmp_path, trained, kind, fmt):
  workdir, result = trained[kind]
  out = str(tmp_path / fmt)
  assert export_main([f"--workdir={workdir}", f"--format={fmt}", f"--out={out}"]) == 0
  method, state = result.method, result.state
  x = _raw_inputs(method)
  ours, ours_hat = method.reconstruct(state.params, state.model_state, jnp.asarray(x))
  encode = F.numpy_encode_saelens if fmt == "saelens" else F.numpy_encode_sparsify
  theirs = encode(out, x)
  scale = float(state.model_state["input_scale"])
  magnitude = float(np.abs(x).max() / scale * np.abs(np.asarray(state.params["W_enc"])).max())
  _codes_close(ours, theirs, magnitude * 4, method.dim)
  np.testing.assert_array_equal(np.asarray(ours) > 0, theirs > 0)   # the same active set
  recon = F.numpy_decode(out, theirs)
  np.testing.assert_allclose(recon, np.asarray(ours_hat), rtol=1e-4,
                             atol=F.tolerance(method.config.model.dict_size, float(np.abs(x).max())))
  # the scaling is folded in and declared
  cfg = json.loads(open(os.path.join(out, "cfg.json")).read())
  declared = cfg["metadata"]["jaxdisent"] if fmt == "saelens" else cfg["jaxdisent"]
  assert declared["input_scale"] == pytest.approx(scale) and scale != 1.0
  if fmt == "saelens":
    assert cfg["architecture"] == {"batchtopk": "jumprelu", "topk": "topk",
                                   "matryoshka_batchtopk": "jumprelu"}[kind]


@pytest.mark.parametrize("kind,fmt", [("batchtopk", "saelens"), ("topk", "sparsify"),
                                      ("matryoshka_batchtopk", "saelens")])
def test_round_trip_to_one_ulp_and_training_starts_from_it(tmp_path, trained, kind, fmt):
  workdir, result = trained[kind]
  method, state = result.method, result.state
  out = str(tmp_path / fmt)
  F.export(method.portable(state.params, state.model_state), out, fmt)
  back = F.load(out)
  assert back.kind == method.kind and back.k == method.k
  assert tuple(back.group_sizes) == ((4, 4, 8, 16, 32) if kind.startswith("matryoshka") else ())
  assert back.input_scale == pytest.approx(float(state.model_state["input_scale"]), rel=EPS)
  for name, value in state.params.items():   # fold (x s) then unfold (/ s): <= 1 ulp each way
    np.testing.assert_allclose(back.params[name], np.asarray(value), rtol=2 * EPS, atol=0,
                               err_msg=name)
  if method.kind in F.BATCHTOPK_KINDS:
    assert back.threshold == float(state.model_state["threshold"])
  # a new run starts from the imported SAE
  config = sae_config(**{"model.kind": method.kind, "model.init_from": out,
                         "data.source": "file", "data.path": method.config.data.path})
  params, model_state = make_method(config).init(jax.random.key(99))
  for name in state.params:
    np.testing.assert_array_equal(params[name], back.params[name])
  assert float(model_state["input_scale"]) == np.float32(back.input_scale)


def test_foreign_saelens_and_sparsify_files_round_trip_bitwise(tmp_path):
  rng = np.random.default_rng(0)
  d, m = 6, 10
  tensors = {"W_enc": rng.normal(size=(d, m)).astype(np.float32),
             "b_enc": rng.normal(size=m).astype(np.float32),
             "W_dec": rng.normal(size=(m, d)).astype(np.float32),
             "b_dec": rng.normal(size=d).astype(np.float32),
             "threshold": rng.uniform(0.1, 0.5, size=m).astype(np.float32)}
  foreign = tmp_path / "foreign_saelens"
  foreign.mkdir()
  save_file(tensors, str(foreign / F.SAELENS_WEIGHTS))
  (foreign / "cfg.json").write_text(json.dumps({"architecture": "jumprelu", "d_in": d, "d_sae": m,
                                                "apply_b_dec_to_input": True}))
  sae = F.load(str(foreign))
  assert sae.kind == "jumprelu" and sae.input_scale == 1.0
  F.export(sae, str(tmp_path / "again"), "saelens")
  again = load_file(str(tmp_path / "again" / F.SAELENS_WEIGHTS))
  for name in ("W_enc", "b_enc", "W_dec", "b_dec"):
    np.testing.assert_array_equal(again[name], tensors[name])
  # the threshold passes through log / exp: equal to float32 rounding
  np.testing.assert_allclose(again["threshold"], tensors["threshold"], rtol=2 * EPS)
  x = rng.normal(size=(20, d)).astype(np.float32)
  np.testing.assert_allclose(F.numpy_encode_saelens(str(tmp_path / "again"), x),
                             F.numpy_encode_saelens(str(foreign), x), atol=1e-5)

  sparse_dir = tmp_path / "foreign_sparsify"
  sparse_dir.mkdir()
  sp = {"encoder.weight": tensors["W_enc"].T.copy(), "encoder.bias": tensors["b_enc"],
        "W_dec": tensors["W_dec"], "b_dec": tensors["b_dec"]}
  save_file(sp, str(sparse_dir / F.SPARSIFY_WEIGHTS))
  (sparse_dir / "cfg.json").write_text(json.dumps({"activation": "topk", "k": 3, "num_latents": m,
                                                   "d_in": d, "expansion_factor": 1}))
  sae = F.load(str(sparse_dir))
  assert sae.kind == "topk" and sae.k == 3
  F.export(sae, str(tmp_path / "sp_again"), "sparsify")
  again = load_file(str(tmp_path / "sp_again" / F.SPARSIFY_WEIGHTS))
  for name, value in sp.items():
    np.testing.assert_array_equal(again[name], value)


def test_format_errors(tmp_path, trained):
  workdir, result = trained["batchtopk"]
  relu = F.PortableSAE("relu", 0, result.method.portable(result.state.params,
                                                         result.state.model_state).params)
  with pytest.raises(ValueError, match="sparsify has no 'relu'"):
    F.export(relu, str(tmp_path / "x"), "sparsify")
  fresh = F.PortableSAE("batchtopk", 3, relu.params, threshold=-1.0)
  with pytest.raises(ValueError, match="no inference threshold"):
    F.export(fresh, str(tmp_path / "y"), "saelens")
  with pytest.raises(FileNotFoundError, match="neither"):
    F.load(str(tmp_path))
  assert export_main([f"--workdir={workdir}", "--format=onnx", f"--out={tmp_path}/z"]) == 2
  out = str(tmp_path / "ok")
  F.export(result.method.portable(result.state.params, result.state.model_state), out, "saelens")
  with pytest.raises(ValueError, match="dict_size=64"):
    make_method(sae_config(**{"model.init_from": out, "model.dict_size": 32, "data.source": "file",
                              "data.path": result.method.config.data.path})).init(
        jax.random.key(0))


def test_export_sae_refuses_to_overwrite_an_sae_folder_or_a_file(tmp_path, trained, capsys):
  workdir, _ = trained["topk"]
  out = tmp_path / "user_sae"
  out.mkdir()
  (out / F.CFG).write_text('{"mine": true}')
  args = [f"--workdir={workdir}", "--format=sparsify"]
  assert export_main(args + [f"--out={out}"]) == 2
  assert "refusing to overwrite" in capsys.readouterr().err
  assert (out / F.CFG).read_text() == '{"mine": true}'           # the user's file is untouched
  assert sorted(os.listdir(out)) == [F.CFG]
  assert export_main(args + [f"--out={out / F.CFG}"]) == 2
  assert "is an existing file" in capsys.readouterr().err
  assert export_main(args + [f"--out={out}", "--overwrite=maybe"]) == 2
  assert export_main(args + [f"--out={out}", "--overwrite=true"]) == 0
  assert F.load(str(out)).kind == "topk"
  assert sorted(os.listdir(out)) == [F.CFG, F.SPARSIFY_WEIGHTS]  # no temporary files left
  # an --out inside the workdir is written under the workdir's lock: refused while another
  # process holds it, written once it is free
  import subprocess
  import sys
  inside = os.path.join(workdir, "export")
  assert export_main(args + [f"--out={workdir}"]) == 2
  assert "is the workdir itself" in capsys.readouterr().err
  holder = subprocess.Popen(
      [sys.executable, "-c", "import sys, time; from jaxdisent.train.lock import acquire; "
       "acquire(sys.argv[1], 'holding'); print('held', flush=True); time.sleep(60)", workdir],
      stdout=subprocess.PIPE, text=True)
  try:
    assert holder.stdout.readline().strip() == "held"
    assert export_main(args + [f"--out={inside}"]) == 2
    assert f"pid {holder.pid}" in capsys.readouterr().err
    assert not os.path.exists(inside)
  finally:
    holder.kill()
    holder.wait()
  assert export_main(args + [f"--out={inside}"]) == 0
  assert F.load(inside).kind == "topk"
