"""The engine contract, run for every registered method (a new method gets these for free).

What is guaranteed, and so what each test asserts:

* Resume, preemption and pmap vs shard_map on the same devices run the *same* computation on the
  same shapes: bitwise equal.
* 1 device vs 4 devices reduce the batch in a different order, so float32 results differ by
  rounding, and Adam divides by sqrt(v) + eps: a gradient entry that is zero up to rounding turns
  into a +-lr step, i.e. no bound on float32 parameters holds. We therefore run that comparison in
  float64 (``jax.enable_x64``; params, data and optimiser state cast by :class:`Float64`). Derived
  bound: a float64 reduction of n <= 2^20 terms has relative error <= n * 1.1e-16 ~ 1e-10 of the
  sum of absolute terms; Adam's update changes by at most lr / eps_adam times a gradient change, so
  after T steps |p_1 - p_4| <= T * (lr / eps_adam) * 1e-10 * scale (``_tolerance``; 1.5e-5 for
  the VAE's 3 steps at lr 5e-4), while a sharding bug (a missing pmean, a wrong slice, a per-shard
  statistic) moves parameters by ~lr per step (Adam's step size) and the losses by far more than
  float64 rounding (checked at rtol 1e-8).
* Restoring onto another device count copies the saved arrays: bitwise equal to what was saved.
"""

import functools
import os
import signal

import jax
import numpy as np
import pytest

from jaxdisent.methods import make_method
from jaxdisent.runs import fit
from jaxdisent.train import parallel
from jaxdisent.train.parallel import per_device_step
from jaxdisent.train.logging import read_metrics

from conftest import TINY_CONFIGS

ALL = sorted(TINY_CONFIGS)          # every registered method / variant
# Every method, and each variant whose loss couples the examples of a batch (beta-TCVAE's
# minibatch-weighted sampling, BatchTopK's batch-wide threshold): the others compute their loss
# per example and share their method's engine path.
NAMES = [name for name in ALL if name in ("beta_vae", "beta_tcvae", "sae_batchtopk", "decalign")
         or not name.startswith(("beta_", "annealed_", "sae_"))]


def _float64(tree):
  return jax.tree.map(
      lambda x: np.asarray(x, np.float64) if np.asarray(x).dtype == np.float32 else x, tree)


class Float64:
  """A method whose parameters, state and data are float64 (only valid under jax.enable_x64)."""

  def __init__(self, method):
    self._method = method
    import flax.linen as nn  # pylint: disable=g-import-not-at-top
    for name, module in list(vars(method).items()):   # modules that fix their compute dtype
      if isinstance(module, nn.Module) and hasattr(module, "dtype"):
        setattr(method, name, module.clone(dtype=np.float64))

  def __getattr__(self, name):
    return getattr(self._method, name)

  def init(self, rng):
    return _float64(self._method.init(rng))

  def local_batch(self, seed, step, start, size):
    return _float64(self._method.local_batch(seed, step, start, size))


def leaves(tree):
  return [np.asarray(x) for x in jax.tree.leaves(tree)]


def assert_bitwise(a, b):
  for x, y in zip(leaves(a), leaves(b), strict=True):
    np.testing.assert_array_equal(x, y)


# Tests that compare states, not evaluations, skip the end-of-run evaluators and plots: they
# would only add compilations (the resume test below keeps the evaluation and checks it).
NO_END = {"train.eval_at_end": False, "train.plots_at_end": False}


def _tolerance(config, steps):
  lr = float(config.optimizer.learning_rate) or 1e-3
  eps = float(config.optimizer.get("eps", 1e-8))
  return steps * (lr / eps) * 1e-10


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.slow
def test_one_vs_four_devices_float64(tmp_path, name):
  # DecAlign with dropout: its masks come from each example's global index, so dropout must not
  # break the agreement (with one key per device it would; test_decalign_official checks the rest)
  extra = {"model.dropout": 0.3} if name == "decalign" else {}
  config = TINY_CONFIGS[name](**{"train.num_steps": 3, "train.checkpoint_every": 100, **NO_END,
                                 **extra})
  with jax.enable_x64(True):
    one = fit(config, str(tmp_path / "one"), devices=jax.devices()[:1], quiet=True,
              method=Float64(make_method(config)))
    four = fit(config, str(tmp_path / "four"), devices=jax.devices()[:4], quiet=True,
               method=Float64(make_method(config)))
  assert jax.tree.leaves(one.state.params)[0].dtype == np.float64
  tol = _tolerance(config, 3)
  for x, y in zip(leaves(one.state.params), leaves(four.state.params), strict=True):
    scale = max(float(np.max(np.abs(x))), 1.0)
    np.testing.assert_allclose(x, y, rtol=0, atol=tol * scale)
  l1 = [m["loss"] for m in read_metrics(str(tmp_path / "one" / "metrics.jsonl")) if "loss" in m]
  l4 = [m["loss"] for m in read_metrics(str(tmp_path / "four" / "metrics.jsonl")) if "loss" in m]
  assert len(l1) == 3 and np.all(np.isfinite(l1))
  np.testing.assert_allclose(l1, l4, rtol=1e-8)


@pytest.mark.parametrize("name", [name for name in ALL if name not in NAMES])
def test_per_example_variants_train_with_finite_loss(tmp_path, name):
  config = TINY_CONFIGS[name](**{"train.num_steps": 2, "train.checkpoint_every": 100, **NO_END})
  result = fit(config, str(tmp_path / "run"), quiet=True)
  logged = [m for m in read_metrics(str(tmp_path / "run" / "metrics.jsonl")) if "loss" in m]
  assert [m["step"] for m in logged] == [1, 2] and result.step == 2
  assert all(np.isfinite(v) for m in logged for v in m.values() if isinstance(v, float))
  assert all(np.all(np.isfinite(x)) for x in leaves(result.state.params))


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.slow
@pytest.mark.xla_default_emitters   # bitwise across two program forms (tests/conftest.py)
def test_pmap_and_shard_map_are_bitwise_equal(tmp_path, name, monkeypatch):
  traced = []   # each mode traces the per-device step once per run, not again at step 2

  @functools.wraps(per_device_step)   # its name: the programs keep their compilation-cache keys
  def counted(*args, **kwargs):
    traced.append(1)
    return per_device_step(*args, **kwargs)

  monkeypatch.setattr(parallel, "per_device_step", counted)
  config = TINY_CONFIGS[name](**{"train.num_steps": 2, "train.checkpoint_every": 100, **NO_END})
  sharded = fit(config, str(tmp_path / "s"), quiet=True)
  assert len(traced) == 1
  config.train.parallel = "pmap"
  pmapped = fit(config, str(tmp_path / "p"), quiet=True)
  assert len(traced) == 2
  assert_bitwise(sharded.state.params, pmapped.state.params)
  assert_bitwise(sharded.state.opt_state, pmapped.state.opt_state)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.slow
def test_resume_and_preemption_are_bitwise_exact(tmp_path, name):
  config = TINY_CONFIGS[name](**{"train.plots_at_end": False})
  straight = fit(config, str(tmp_path / "straight"), quiet=True)
  # killed right after the step-2 checkpoint, then SIGTERM at step 3, then finished
  fit(TINY_CONFIGS[name](**{"train.num_steps": 2, "train.plots_at_end": False}),
      str(tmp_path / "resumed"), quiet=True)
  pre = fit(config, str(tmp_path / "resumed"), quiet=True,
            step_callback=lambda s: s == 3 and os.kill(os.getpid(), signal.SIGTERM))
  assert pre.preempted and pre.step == 3 and pre.resumed_from == 2
  resumed = fit(config, str(tmp_path / "resumed"), quiet=True)
  assert resumed.resumed_from == 3 and resumed.step == 4
  assert_bitwise(straight.state, resumed.state)
  untimed = lambda m: {k: v for k, v in m.items() if not k.endswith("/seconds")}
  a = [untimed(m) for m in read_metrics(str(tmp_path / "straight" / "metrics.jsonl"))]
  b = [untimed(m) for m in read_metrics(str(tmp_path / "resumed" / "metrics.jsonl"))]
  # every logged training value; and the final evaluation (the first run's evaluation at its own
  # end, step 2, stays in the resumed log: that run did finish there)
  assert [m for m in a if "loss" in m] == [m for m in b if "loss" in m]
  assert [m["step"] for m in a if "loss" in m] == [1, 2, 3, 4]
  assert a[-1] == b[-1] and a[-1]["step"] == 4 and "loss" not in a[-1]


# 4 -> 1, 1 -> 4 and both directions between pmap and shard_map for one method; 2 -> 1 for the
# others (restoring is method-agnostic: it only names the current devices' sharding).
LAYOUTS = [("shard_map", 4, "shard_map", 1), ("shard_map", 2, "shard_map", 1),
           ("pmap", 1, "shard_map", 4), ("pmap", 4, "shard_map", 2), ("shard_map", 2, "pmap", 4)]


@pytest.mark.parametrize("name,layout", [("beta_vae", layout) for layout in LAYOUTS] +
                         [(name, LAYOUTS[1]) for name in NAMES if name != "beta_vae"])
@pytest.mark.slow
def test_restore_on_another_device_count_is_exact(tmp_path, name, layout):
  from jaxdisent.runs import restore_latest
  mode_a, n_a, mode_b, n_b = layout
  config = TINY_CONFIGS[name](**{"train.num_steps": 2, "train.parallel": mode_a, **NO_END})
  saved = fit(config, str(tmp_path / "run"), devices=jax.devices()[:n_a], quiet=True)
  _, _, restored, step = restore_latest(str(tmp_path / "run"), devices=jax.devices()[:n_b])
  assert step == 2
  assert_bitwise(saved.state, restored)
  config.train.parallel = mode_b
  config.train.num_steps = 3
  more = fit(config, str(tmp_path / "run"), devices=jax.devices()[:n_b], quiet=True)
  assert more.resumed_from == 2 and more.step == 3
  assert np.all(np.isfinite(leaves(more.state.params)[0]))
