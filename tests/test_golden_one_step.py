"""Golden values: each method's loss and a parameter checksum after its first steps, from a seed.

A refactor that is meant to change no number (moving code, renaming, a new module layout) must
reproduce these; one that changes the numbers on purpose regenerates them and says why:

  JAXDISENT_REGENERATE_GOLDEN=1 python -m pytest tests/test_golden_one_step.py -n 0

Float64 on one device (the engine contract's ``Float64`` wrapper), 2 steps. What is compared and
why the tolerances hold: the first loss is computed from the initial parameters (rtol 1e-9: float64
rounding differences between CPUs are ~1e-16 per operation); the second loss and the parameter
checksums come after one Adam update, whose first step moves every parameter by +-lr * g / |g|,
so a gradient entry that is zero up to rounding could move by lr on another CPU: checked at rtol
1e-6 of the checksum (a changed computation moves them by far more: a different initialisation,
batch, loss term or optimiser setting changes the first loss itself).
"""

import json
import os

import jax
import numpy as np
import pytest

from jaxdisent.methods import make_method
from jaxdisent.runs import fit
from jaxdisent.train.logging import read_metrics

from conftest import TINY_CONFIGS
from test_engine_contract import NAMES, NO_END, Float64

GOLDEN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "golden_one_step.json")
REGENERATE = os.environ.get("JAXDISENT_REGENERATE_GOLDEN") == "1"


def _measure(name, workdir):
  config = TINY_CONFIGS[name](**{"train.num_steps": 2, "train.checkpoint_every": 100,
                                 "train.log_every": 1, **NO_END})
  with jax.enable_x64(True):
    result = fit(config, workdir, devices=jax.devices()[:1], quiet=True,
                 method=Float64(make_method(config)))
  params = [np.asarray(x, np.float64) for x in jax.tree.leaves(result.state.params)]
  losses = [m["loss"] for m in read_metrics(os.path.join(workdir, "metrics.jsonl")) if "loss" in m]
  return {"loss_step_1": float(losses[0]), "loss_step_2": float(losses[1]),
          "param_sum": float(sum(p.sum() for p in params)),
          "param_sum_squares": float(sum((p * p).sum() for p in params)),
          "num_params": int(sum(p.size for p in params))}


@pytest.mark.parametrize("name", NAMES)
def test_golden_one_step(tmp_path, name):
  measured = _measure(name, str(tmp_path / name))
  golden = json.load(open(GOLDEN)) if os.path.exists(GOLDEN) else {}
  if REGENERATE:
    golden[name] = measured
    with open(GOLDEN, "w") as f:
      json.dump(golden, f, indent=2, sort_keys=True)
    return
  assert name in golden, f"no golden values for {name}: regenerate (see the module docstring)"
  expected = golden[name]
  assert measured["num_params"] == expected["num_params"]
  np.testing.assert_allclose(measured["loss_step_1"], expected["loss_step_1"], rtol=1e-9)
  for key in ("loss_step_2", "param_sum_squares"):
    np.testing.assert_allclose(measured[key], expected[key], rtol=1e-6, err_msg=key)
  scale = np.sqrt(expected["param_sum_squares"] * expected["num_params"])
  np.testing.assert_allclose(measured["param_sum"], expected["param_sum"], rtol=0,
                             atol=1e-6 * scale, err_msg="param_sum")


@pytest.mark.parametrize("name", ["beta_vae", "gem"])
def test_jitted_vae_init_is_bitwise_the_eager_init(name):
  """BetaVAEMethod and GEMMethod jit the flax init of their convolutional models (one program
  instead of ~200 op-by-op ones): the parameters must be the eager init's, bit for bit, or every
  seed's run would change."""
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  method = make_method(TINY_CONFIGS[name]())
  params, _ = method.init(jax.random.key(3))
  vae = method.model if name == "beta_vae" else method.vae
  if name == "gem":
    params = params["vae"]
    key = jax.random.split(jax.random.key(3), 3)[0]
  else:
    key = jax.random.key(3)
  eager = vae.init(key, jnp.zeros((1, 64, 64, 1)), jnp.zeros((1, method.latent_dim)))["params"]
  for a, b in zip(jax.tree.leaves(eager), jax.tree.leaves(params), strict=True):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
  # a second method built from the same config reuses the compiled init (models.jit_init)
  from jaxdisent.models import jit_init  # pylint: disable=g-import-not-at-top
  compiled = jit_init._cache_size()  # pylint: disable=protected-access
  make_method(TINY_CONFIGS[name]()).init(jax.random.key(4))
  assert jit_init._cache_size() == compiled  # pylint: disable=protected-access
