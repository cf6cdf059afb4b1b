"""Matryoshka BatchTopK (jaxdisent.losses.sae_kinds, losses.sae.nested_reconstruction_loss).

Known answers: the group sizes and the nested loss against a plain NumPy transcription of
dictionary_learning's MatryoshkaBatchTopKTrainer.loss (weighted per-prefix squared errors,
averaged over prefixes); the method's dense step equals that transcription on the codes BatchTopK
selects; an SAE whose latents are planted in nesting order reconstructs exactly at every prefix.
1 vs 4 devices and dense vs sparse are in tests/test_sae_sparse.py; export / import in
tests/test_sae_formats.py.
"""

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxdisent.losses import sae as L
from jaxdisent.methods import make_method
from jaxdisent.methods.sae import matryoshka_groups

from conftest import ROOT
from test_sae import sae_config


def _numpy_matryoshka_loss(x, codes, w_dec, b_dec, sizes, weights):
  """dictionary_learning's loss, transcribed: x_reconstruct starts at b_dec, each group adds its
  codes @ its decoder rows, l2 = mean over the batch of the summed squared error times the
  group's weight; the loss is the mean of those weighted l2s."""
  recon = np.zeros_like(x) + b_dec
  losses, start = [], 0
  for size, weight in zip(sizes, weights):
    recon = recon + codes[:, start:start + size] @ w_dec[start:start + size]
    losses.append(((x - recon) ** 2).sum(-1).mean() * weight)
    start += size
  return float(np.mean(losses)), recon


def test_group_sizes_as_dictionary_learning():
  assert L.matryoshka_group_sizes(64, (0.0625, 0.0625, 0.125, 0.25, 0.5)) == (4, 4, 8, 16, 32)
  # int() floors every group but the last, which takes the rest
  assert L.matryoshka_group_sizes(10, (1 / 3, 1 / 3, 1 / 3)) == (3, 3, 4)
  assert L.matryoshka_group_sizes(100, (1.0,)) == (100,)
  with pytest.raises(ValueError, match="sum to 0.9"):
    L.matryoshka_group_sizes(64, (0.5, 0.4))
  with pytest.raises(ValueError, match="every group needs >= 1 latent"):
    L.matryoshka_group_sizes(8, (0.05, 0.95))
  with pytest.raises(ValueError, match="positive numbers"):
    L.matryoshka_group_sizes(8, (-0.5, 1.5))


def test_nested_loss_matches_the_numpy_transcription():
  rng = np.random.default_rng(0)
  x = rng.normal(size=(12, 5))
  codes = np.maximum(rng.normal(size=(12, 10)), 0)
  w_dec = rng.normal(size=(10, 5))
  b_dec = rng.normal(size=5)
  sizes, weights = (2, 3, 5), (0.5, 0.2, 1.3)
  want, want_recon = _numpy_matryoshka_loss(x, codes, w_dec, b_dec, sizes, weights)
  starts = np.cumsum((0,) + sizes[:-1])
  with jax.enable_x64(True):
    partials = [jnp.asarray(codes[:, s:s + n] @ w_dec[s:s + n]) for s, n in zip(starts, sizes)]
    loss, recon, errors = L.nested_reconstruction_loss(jnp.asarray(x), partials,
                                                       jnp.asarray(b_dec), weights)
    np.testing.assert_allclose(float(loss), want, rtol=1e-12)
    np.testing.assert_allclose(np.asarray(recon), want_recon, rtol=1e-12)
    # the full prefix is the plain reconstruction error
    np.testing.assert_allclose(float(errors[-1]),
                               ((x - (codes @ w_dec + b_dec)) ** 2).sum(-1).mean(), rtol=1e-12)


@pytest.mark.slow
def test_method_step_is_the_transcription_on_batchtopk_codes():
  config = sae_config(**{"model.kind": "matryoshka_batchtopk", "model.formulation": "dense",
                         "loss.auxk_alpha": 0.0, "loss.group_weights": (0.4, 0.1, 0.1, 0.2, 0.2)})
  method = make_method(config)
  assert method.group_sizes == (4, 4, 8, 16, 32)
  params, state = method.init(jax.random.key(0))
  x = jnp.asarray(method.data.batch(0, 1, 0, 64)["x"])
  loss, (metrics, _) = method.loss(params, state, {"x": x}, None, 5)
  scaled = np.asarray(x / state["input_scale"], np.float64)
  pre = np.asarray(method.model.apply({"params": params}, x / state["input_scale"],
                                      method=type(method.model).pre_acts))
  codes = np.asarray(L.batchtopk(jnp.asarray(pre), 3)[0], np.float64)   # the global batch's top k*B
  assert (codes > 0).sum() == 3 * 64
  want, _ = _numpy_matryoshka_loss(scaled, codes, np.asarray(params["W_dec"], np.float64),
                                   np.asarray(params["b_dec"], np.float64), method.group_sizes,
                                   (0.4, 0.1, 0.1, 0.2, 0.2))
  np.testing.assert_allclose(float(loss), want, rtol=1e-5)
  assert float(metrics["prefix_mse_min"]) < float(metrics["prefix_mse_max"])


def test_planted_nested_dictionary_reconstructs_at_every_prefix():
  """Data made of the first g latents' atoms only are reconstructed exactly by the g-prefix:
  prefix_r2 is ~1 at the prefix that holds them and for every longer one."""
  config = sae_config(**{"model.kind": "matryoshka_batchtopk", "model.k": 2,
                         "model.b_dec_init": "zeros"})
  method = make_method(config)
  params, state = method.init(jax.random.key(1))
  d, m = method.dim, int(config.model.dict_size)
  atoms = np.linalg.qr(np.random.default_rng(0).normal(size=(d, d)))[0].T   # orthonormal rows
  w_dec = np.zeros((m, d), np.float32)
  w_dec[:d] = atoms
  w_dec[d:] = np.random.default_rng(1).normal(size=(m - d, d)) * 1e-3
  params = dict(params, W_dec=jnp.asarray(w_dec), W_enc=jnp.asarray(w_dec.T),
                b_enc=jnp.zeros(m), b_dec=jnp.zeros(d))
  # samples use two of the first 4 atoms (the smallest prefix), positive coefficients
  rng = np.random.default_rng(2)
  coef = np.zeros((200, 4))
  for row in coef:
    row[rng.choice(4, 2, replace=False)] = rng.uniform(0.5, 1.5, 2)
  x = (coef @ atoms[:4]) * float(state["input_scale"])
  state = dict(state, threshold=jnp.float32(0.1))
  codes = np.asarray(method.encode(params, state, jnp.asarray(x, jnp.float32)))
  out = method.prefix_r2(params, state, x, codes)
  assert out["prefix_sizes"] == [4, 8, 16, 32, 64]
  np.testing.assert_allclose(out["prefix_r2"], 1.0, atol=1e-5)
  # the same data on latents 8..11 (the third group): the first two prefixes explain nothing
  w_moved = w_dec.copy()
  w_moved[8:12], w_moved[:4] = atoms[:4], w_dec[8:12]
  moved = dict(params, W_dec=jnp.asarray(w_moved), W_enc=jnp.asarray(w_moved.T))
  codes = np.asarray(method.encode(moved, state, jnp.asarray(x, jnp.float32)))
  r2 = method.prefix_r2(moved, state, x, codes)["prefix_r2"]
  assert r2[0] < 0.05 and r2[1] < 0.05 and r2[2] > 1 - 1e-5


def test_bad_matryoshka_settings_name_the_key():
  def groups(**over):
    return matryoshka_groups(sae_config(**{"model.kind": "matryoshka_batchtopk", **over}))
  assert groups() == ((4, 4, 8, 16, 32), (0.2,) * 5)   # 1/G each, as dictionary_learning
  with pytest.raises(ValueError, match="loss.group_weights has 2 entries but"):
    groups(**{"loss.group_weights": (1.0, 1.0)})
  with pytest.raises(ValueError, match="model.group_fractions=.* sum to"):
    groups(**{"model.group_fractions": (0.5, 0.25)})
  with pytest.raises(ValueError, match="loss.group_weights=.* >= 0"):
    groups(**{"model.group_fractions": (0.5, 0.5), "loss.group_weights": (1.0, -1.0)})
  with pytest.raises(ValueError, match="model.group_fractions"):
    make_method(sae_config(**{"model.kind": "matryoshka_batchtopk",
                              "model.group_fractions": (0.01, 0.99)}))


@pytest.mark.slow
def test_cli_trains_a_matryoshka_sae_and_refuses_bad_groups(tmp_path, capfd):
  """launch.train's entry point, in this process (a fresh process's CLI is tests/test_cli.py's)."""
  from launch.train import main  # pylint: disable=g-import-not-at-top
  base = [f"--config={os.path.join(ROOT, 'configs', 'sae_vlm_synthetic.py')}",
          "--config.model.kind=matryoshka_batchtopk", "--config.data.synthetic.dim=16",
          "--config.model.dict_size=32", "--config.model.init_batch=128",
          "--config.train.batch_size=32", "--config.train.num_steps=3",
          "--config.train.plots_at_end=false", "--config.evals.dictionary.num_pairs=64",
          "--config.evals.dictionary.plots=false"]
  capfd.readouterr()
  assert main(base + [f"--workdir={tmp_path / 'bad'}",
                      "--config.model.group_fractions=(0.5,0.25)"]) == 2
  err = capfd.readouterr().err
  lines = [l for l in err.splitlines() if l.strip()]
  assert lines[-1].startswith("[jaxdisent] error: ") and len(lines) == 1, err
  assert "model.group_fractions=(0.5, 0.25) sum to 0.75" in lines[-1]
  assert not (tmp_path / "bad" / "config.json").exists()
  good = main(base + [f"--workdir={tmp_path / 'good'}", "--config.model.group_fractions=(0.25,0.75)"])
  assert good == 0, capfd.readouterr().err[-3000:]
  from jaxdisent.evals import read_record  # pylint: disable=g-import-not-at-top
  record = read_record(str(tmp_path / "good"), 3)["evals"]["dictionary"]
  assert 0 < record["smallest_prefix_r2"] <= record["r2"] + 1e-9


def test_saelens_file_keeps_the_nesting_and_refuses_a_broken_one(tmp_path):
  import json
  from jaxdisent.io import sae_formats as F
  rng = np.random.default_rng(0)
  d, m = 6, 12
  params = {"W_enc": rng.normal(size=(d, m)).astype(np.float32),
            "b_enc": rng.normal(size=m).astype(np.float32),
            "W_dec": rng.normal(size=(m, d)).astype(np.float32),
            "b_dec": rng.normal(size=d).astype(np.float32)}
  sae = F.PortableSAE("matryoshka_batchtopk", 3, params, 1.0, 0.25, group_sizes=(3, 3, 6))
  out = str(tmp_path / "sae")
  F.export(sae, out, "saelens")
  back = F.load(out)
  assert back.kind == "matryoshka_batchtopk" and back.group_sizes == (3, 3, 6)
  assert back.threshold == 0.25 and back.k == 3
  cfg_path = os.path.join(out, "cfg.json")
  cfg = json.load(open(cfg_path))
  assert cfg["architecture"] == "jumprelu"
  for broken in (None, [3, 3], [3, 0, 9]):
    cfg["metadata"]["jaxdisent"]["group_sizes"] = broken
    json.dump(cfg, open(cfg_path, "w"))
    with pytest.raises(ValueError, match="needs metadata group_sizes, positive integers summing "
                                         "to d_sae=12"):
      F.load(out)
  with pytest.raises(ValueError, match="group_sizes"):
    F.export(F.PortableSAE("matryoshka_batchtopk", 3, params, 1.0, 0.25, group_sizes=(5, 5)),
             str(tmp_path / "bad"), "saelens")
