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

from conftest import tiny_vae_config

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
