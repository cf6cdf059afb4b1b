"""train.compute_dtype='bfloat16' (jaxdisent/train/precision.py): every method trains, parameters,
optimizer state and model state stay float32, the losses track the float32 run within a stated
bound; BatchTopK's threshold stays exact with bfloat16's ties, on 1 and 4 devices."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import PartitionSpec as P

from jaxdisent.runs import fit
from jaxdisent.train.logging import read_metrics
from jaxdisent.train.parallel import make_mesh
from jaxdisent.train import precision

from conftest import TINY_CONFIGS

# Stated bound (not derived): each step's loss within 8 bfloat16 units of roundoff (u = 2^-8),
# relative, of the float32 run's; observed at most 1.3% (SAE), 0.7% (DecAlign), < 0.01% (VAEs).
LOSS_RTOL = 8 * 2.0 ** -8
STEPS = 5


def _run(name, dtype, workdir):
  config = TINY_CONFIGS[name](**{"train.num_steps": STEPS, "train.checkpoint_every": 100,
                                 "train.eval_at_end": False, "train.plots_at_end": False,
                                 "train.compute_dtype": dtype})
  result = fit(config, str(workdir), quiet=True, devices=jax.devices()[:1])
  losses = [m["loss"] for m in read_metrics(str(workdir / "metrics.jsonl")) if "loss" in m]
  return config, result.state, np.asarray(losses)


@pytest.mark.parametrize("name", [pytest.param("beta_vae"), pytest.param("sae_batchtopk"),
                                  pytest.param("decalign", marks=pytest.mark.slow),
                                  pytest.param("gem", marks=pytest.mark.slow)])
def test_bfloat16_training_tracks_float32(tmp_path, name):
  config, f32, loss32 = _run(name, "float32", tmp_path / "f32")
  _, bf16, loss16 = _run(name, "bfloat16", tmp_path / "bf16")
  assert len(loss16) == STEPS and np.all(np.isfinite(loss16))
  np.testing.assert_allclose(loss16, loss32, rtol=LOSS_RTOL)
  for a, b in zip(jax.tree.leaves((f32.params, f32.opt_state, f32.model_state)),
                  jax.tree.leaves((bf16.params, bf16.opt_state, bf16.model_state)), strict=True):
    assert np.asarray(a).dtype == np.asarray(b).dtype     # float32 state, int counters as they were
  # the compute did change (bf16 rounding reached the parameters) ...
  diffs = [float(np.max(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64))))
           for a, b in zip(jax.tree.leaves(f32.params), jax.tree.leaves(bf16.params))]
  assert max(diffs) > 0
  # ... within what two Adam trajectories from one init can separate: each coordinate moves at
  # most lr (1 - b1) / sqrt(1 - b2) per step (3.16 lr at the defaults), so two runs 2x that
  lr = float(config.optimizer.learning_rate) or 1e-3
  b1, b2 = float(config.optimizer.get("b1", 0.9)), float(config.optimizer.get("b2", 0.999))
  graph_lr = float(config.optimizer.get("graph_learning_rate", 0.0) or 0.0)
  assert max(diffs) <= 2 * STEPS * max(lr, graph_lr) * (1 - b1) / np.sqrt(1 - b2) * 1.01


def test_the_loss_sees_bfloat16_and_returns_float32():
  seen = {}

  class Probe:
    def loss(self, params, model_state, batch, rng, step, axis_name=None):
      seen.update(params=params["w"].dtype, x=batch["x"].dtype, index=batch["index"].dtype)
      out = jnp.sum(params["w"] * batch["x"])
      return out, ({"m": out}, {"ema": model_state["ema"] + out, "count": model_state["count"] + 1})
  loss, (metrics, state) = precision.mixed_loss(
      Probe(), jnp.bfloat16, {"w": jnp.ones(3)}, {"ema": jnp.zeros(()), "count": jnp.int32(0)},
      {"x": jnp.ones(3), "index": jnp.arange(3)}, None, 0, None)
  assert seen == {"params": jnp.bfloat16, "x": jnp.bfloat16, "index": jnp.int32}
  assert loss.dtype == jnp.float32 and metrics["m"].dtype == jnp.float32
  assert state["ema"].dtype == jnp.float32 and state["count"].dtype == jnp.int32


def test_unknown_compute_dtype_is_one_clear_error(tmp_path):
  config = TINY_CONFIGS["beta_vae"](**{"train.compute_dtype": "float16"})
  with pytest.raises(ValueError, match="train.compute_dtype='float16'.*bfloat16"):
    fit(config, str(tmp_path / "x"), quiet=True)


@pytest.mark.slow
def test_batchtopk_threshold_is_exact_with_bfloat16_ties():
  """bfloat16 pre-activations on a coarse grid: many entries tie at the k*B-th largest value.
  The threshold is that value exactly; the dense selection keeps exactly the entries >= it; the
  list selection either equals it or flags the overflow its caller answers with the dense path --
  on 1 and 4 devices."""
  from jaxdisent.losses import sae as L
  raw = jax.nn.relu(jax.random.normal(jax.random.key(3), (32, 48)))
  pre = (jnp.round(raw * 8) / 8).astype(jnp.bfloat16)          # values on a 1/8 grid: ties
  k = 4
  values = np.sort(np.asarray(pre, np.float32).ravel())[::-1]
  kth = values[k * 32 - 1]
  assert np.sum(values == kth) > 3                               # a real tie at the threshold
  want, kth_dense = L.batchtopk(pre, k)
  assert float(kth_dense) == kth
  np.testing.assert_array_equal(np.asarray(want) != 0, (np.asarray(pre, np.float32) >= kth)
                                & (np.asarray(pre, np.float32) > 0))
  for n in (1, 4):
    def per_device(p):
      dense, kth_d = L.batchtopk(p, k, "data")
      codes, kth_l, overflow = L.batchtopk_list(p, k, k * 32 // n * 2, "data", 16)
      listed = jnp.zeros(p.shape, jnp.float32).at[codes.rows, codes.cols].add(
          codes.values.astype(jnp.float32))
      return dense.astype(jnp.float32), kth_d, listed, kth_l, overflow
    run = jax.jit(jax.shard_map(per_device, mesh=make_mesh(jax.devices()[:n]), in_specs=P("data"),
                                out_specs=(P("data"), P(), P("data"), P(), P()),
                                check_vma=False))
    dense, kth_d, listed, kth_l, overflow = run(pre)
    np.testing.assert_array_equal(np.asarray(dense), np.asarray(want, np.float32))
    assert float(kth_d) == kth and float(kth_l) == kth
    if not bool(overflow):
      np.testing.assert_array_equal(np.asarray(listed), np.asarray(dense))


def test_batchtopk_threshold_is_exact_in_float64():
  """A float32 threshold would round 1 - 1e-12 up to 1.0 and drop the only kept entry."""
  from jaxdisent.losses import sae as L
  with jax.enable_x64(True):
    pre = jnp.asarray([[1 - 1e-12, 0.5, 0.25, 0.1]], jnp.float64)
    codes, kth = L.batchtopk(pre, 1)
    assert kth.dtype == jnp.float64 and float(kth) == 1 - 1e-12
    np.testing.assert_array_equal(np.asarray(codes), [[1 - 1e-12, 0, 0, 0]])
    values = np.random.default_rng(0).random(1000)
    assert float(L.kth_largest_nonnegative(jnp.asarray(values), 37)) == np.sort(values)[::-1][36]
