"""SAP, DCI and explicitness give bit-identical values whether their fits run in-process or in
worker processes (the same models on the same data, only the schedule differs)."""

import numpy as np
import pytest

from jaxdisent import metrics
from jaxdisent.metrics import parallel_fit


def _data(seed=0, n_train=400, n_test=200):
  rng = np.random.RandomState(seed)
  sizes = (3, 5, 8)
  factors = np.stack([rng.randint(0, s, n_train + n_test) for s in sizes], axis=1)
  mixing = rng.randn(len(sizes), 4)
  codes = factors / np.array(sizes) @ mixing + 0.3 * rng.randn(n_train + n_test, 4)
  return codes[:n_train], factors[:n_train], codes[n_train:], factors[n_train:]


@pytest.mark.parametrize("metric", ["sap", "dci", "explicitness"])
@pytest.mark.slow
def test_parallel_fits_equal_sequential_bitwise(metric):
  data = _data()
  fn = getattr(metrics, metric)
  sequential = fn(*data, n_jobs=1)
  parallel = fn(*data, n_jobs=2)
  if isinstance(sequential, dict):
    assert sequential.keys() == parallel.keys()
    for key in sequential:
      np.testing.assert_array_equal(parallel[key], sequential[key], err_msg=key)
  else:
    assert parallel == sequential


def test_run_tasks_keeps_task_order_under_cost_ordering():
  out = parallel_fit.run_tasks(pow, [(2, 3), (3, 2), (5, 1)], desc="t", n_jobs=2,
                               cost=lambda task: task[1], progress=False)
  assert out == [8, 9, 5]


def test_bad_job_count_is_a_clear_error(monkeypatch):
  monkeypatch.setenv("JAXDISENT_SKLEARN_JOBS", "0")
  with pytest.raises(ValueError, match="JAXDISENT_SKLEARN_JOBS"):
    parallel_fit.default_jobs()
