"""The fast evaluation path (large asynchronous encode batches, parallel scikit-learn fits, the
package's XLA flags) gives the same eval values as the previous path (batches of 512 copied to the
host one by one, fits one after the other) on a fixed model; and the evaluation encoder (flax
strided convolutions, faster without gradients) matches the training encoder (space-to-depth)."""

import types

import jax
import numpy as np
import pytest

from jaxdisent.evals.disentanglement import disentanglement_scores
from jaxdisent.methods import make_method
from jaxdisent.metrics import sampling

from conftest import Traces, tiny_vae_config

# Scores that are ratios of counts (accuracies, votes) or rank statistics: identical unless a code
# moves across a decision threshold by the encoders' float rounding (~1e-6 relative), which does
# not happen for these points. Continuous functions of the codes agree to that rounding.
COUNT_KEYS = ["sap", "dci_informativeness", "dci_informativeness_train", "factor_vae_score",
              "factor_vae_score_train", "beta_vae_score", "beta_vae_score_train",
              "factor_vae_active_dims"]
CONTINUOUS_KEYS = ["mig", "modularity", "dci_disentanglement", "dci_completeness",
                   "explicitness", "explicitness_train", "irs", "gaussian_total_correlation",
                   "mutual_info_between_codes"]


def _evaluate(method, params, workdir):
  return disentanglement_scores(method, types.SimpleNamespace(params=params), str(workdir),
                               num_train=70, num_eval=35, dci_importance="gbt",
                               log=lambda *a: None)


@pytest.mark.slow
def test_fast_eval_path_matches_previous_path(tmp_path, monkeypatch):
  method = make_method(tiny_vae_config())
  params, _ = method.init(jax.random.key(7))
  monkeypatch.delenv("JAXDISENT_SKLEARN_JOBS", raising=False)   # the default: one job per CPU
  fast = _evaluate(method, params, tmp_path / "fast")

  monkeypatch.setenv("JAXDISENT_SKLEARN_JOBS", "1")
  monkeypatch.setattr(sampling, "ENCODE_BATCH", 512)
  # the training model's encoder (space-to-depth) as the representation: same values
  method._forward_model = lambda: method.model  # pylint: disable=protected-access
  sampling._FUSED_CACHE.clear()
  slow = _evaluate(method, params, tmp_path / "slow")
  for key in COUNT_KEYS:
    assert fast[key] == slow[key], key
  for key in CONTINUOUS_KEYS:
    np.testing.assert_allclose(fast[key], slow[key], rtol=1e-4, atol=1e-6, err_msg=key)
  assert fast["captured_factor"] == slow["captured_factor"]


def test_a_new_checkpoint_reuses_the_evaluation_programs(tmp_path):
  """The encoder, render-and-encode and reconstruction programs take the parameters as arguments:
  evaluating other parameters traces (and so compiles) nothing again, and gives their values."""
  from jaxdisent.evals.base import EvalContext  # pylint: disable=g-import-not-at-top
  from jaxdisent.evals.disentanglement import reconstruction  # pylint: disable=g-import-not-at-top
  method = make_method(tiny_vae_config())
  p1, _ = method.init(jax.random.key(1))
  p2, _ = method.init(jax.random.key(2))
  key = jax.random.key(0)
  state = lambda p: types.SimpleNamespace(params=p, model_state={})
  ctx = lambda p: EvalContext(method=method, state=state(p), step=0, workdir=str(tmp_path),
                              log=lambda *a: None, name="reconstruction")
  codes1, factors1 = sampling.sample_codes_and_factors(method.data, method.representation_fn(p1),
                                                       40, key)
  rec1 = reconstruction(ctx(p1), {"num_examples": 16})
  with Traces() as traces:
    codes2, factors2 = sampling.sample_codes_and_factors(
        method.data, method.representation_fn(p2), 40, key)
    rec2 = reconstruction(ctx(p2), {"num_examples": 16})
  assert traces.names == []
  np.testing.assert_array_equal(factors1, factors2)
  assert not np.allclose(codes1, codes2) and rec1["reconstruction"] != rec2["reconstruction"]
  # the reused program gives bitwise what a freshly built one gives for p2 (the same program)
  sampling._FUSED_CACHE.clear()  # pylint: disable=protected-access
  fresh, _ = sampling.sample_codes_and_factors(method.data, method.representation_fn(p2), 40, key)
  np.testing.assert_array_equal(codes2, fresh)
