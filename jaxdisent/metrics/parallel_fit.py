"""Fits the scikit-learn models of SAP, DCI and explicitness in parallel, with a progress bar.

Each task is one independent model of the reference (SAP: one ``LinearSVC`` per (code, factor);
DCI: one ``GradientBoostingClassifier`` per factor; explicitness: one ``LogisticRegression`` per
factor). They are fitted in worker processes (joblib's loky backend) exactly as they were fitted
one after the other: same estimator, same arguments, same data, same ``random_state``, so each
returns the same numbers (tests/test_parallel_fit.py compares the parallel and sequential values
bit for bit). Only the order in which they run changes; results are put back in task order.

``n_jobs`` defaults to ``JAXDISENT_SKLEARN_JOBS`` or the number of CPUs; 1 runs in-process. The
worker processes pin their BLAS to one thread each, so two workers on two cores do not fight.
"""

from __future__ import annotations

import os
import sys
import warnings

import numpy as np


def default_jobs() -> int:
  value = os.environ.get("JAXDISENT_SKLEARN_JOBS", "")
  if value:
    jobs = int(value)
    if jobs < 1:
      raise ValueError(f"JAXDISENT_SKLEARN_JOBS must be >= 1, got {value!r}")
    return jobs
  return max(1, os.cpu_count() or 1)


def run_tasks(fn, tasks, *, desc: str, n_jobs: int | None = None, cost=None, progress=None):
  """[fn(*task) for task in tasks], the tasks spread over ``n_jobs`` processes.

  ``cost(task)`` (optional) estimates a task's run time; tasks start in decreasing cost so the
  longest do not end up last. ``progress``: show a tqdm bar on stderr (default: when stderr is a
  terminal or JAXDISENT_PROGRESS=1).
  """
  tasks = list(tasks)
  n_jobs = default_jobs() if n_jobs is None else int(n_jobs)
  order = list(range(len(tasks)))
  if cost is not None:
    order.sort(key=lambda i: -cost(tasks[i]))
  bar = progress_bar(desc, len(tasks), progress)
  results = [None] * len(tasks)
  try:
    if n_jobs == 1 or len(tasks) <= 1:
      for i in order:
        results[i] = fn(*tasks[i])
        bar.update(1)
    else:
      from joblib import Parallel, delayed, parallel_config  # pylint: disable=g-import-not-at-top
      with parallel_config(backend="loky", inner_max_num_threads=1):
        outputs = Parallel(n_jobs=min(n_jobs, len(tasks)), return_as="generator_unordered",
                           batch_size=1, pre_dispatch="all")(
                               delayed(_indexed)(fn, i, tasks[i]) for i in order)
        for i, value in outputs:
          results[i] = value
          bar.update(1)
  finally:
    bar.close()
  return results


def _indexed(fn, index, task):
  return index, fn(*task)


class _NoBar:
  def update(self, n):
    pass

  def close(self):
    pass


def progress_bar(desc: str, total: int, progress: bool | None = None):
  """A tqdm bar on stderr when ``progress`` (default: stderr is a terminal or
  JAXDISENT_PROGRESS=1), else an object whose update/close do nothing."""
  if progress is None:
    progress = os.environ.get("JAXDISENT_PROGRESS", "") == "1" or sys.stderr.isatty()
  if not progress:
    return _NoBar()
  from tqdm.auto import tqdm  # pylint: disable=g-import-not-at-top
  return tqdm(total=total, desc=desc, file=sys.stderr, leave=True, dynamic_ncols=True)


# ---- the per-task fits (top-level functions, so worker processes can import them) -------------


def sap_cell(code_train_N, factor_train_N, code_test_M, factor_test_M, C):
  """Test accuracy of LinearSVC(C, class_weight='balanced') on one code for one factor."""
  from sklearn.svm import LinearSVC  # pylint: disable=g-import-not-at-top
  clf = LinearSVC(C=C, class_weight="balanced")
  clf.fit(code_train_N[:, None], factor_train_N)
  return np.mean(clf.predict(code_test_M[:, None]) == factor_test_M)


def dci_factor(codes_train, factor_train_N, codes_test, factor_test_M, importance, seed):
  """(|feature importances|, train accuracy, test accuracy) of one factor's classifier."""
  from sklearn import ensemble  # pylint: disable=g-import-not-at-top
  if importance == "gbt":
    model = ensemble.GradientBoostingClassifier(random_state=seed)
  elif importance == "random_forest":
    model = ensemble.RandomForestClassifier(n_estimators=100, max_features=None, n_jobs=-1,
                                            random_state=seed)
  else:
    raise ValueError(f"importance must be 'gbt' or 'random_forest', got {importance!r}")
  model.fit(codes_train, factor_train_N)
  return (np.abs(model.feature_importances_),
          np.mean(model.predict(codes_train) == factor_train_N),
          np.mean(model.predict(codes_test) == factor_test_M))


def explicitness_factor(x_train, factor_train_N, x_test, factor_test_M, macro_auc):
  """(train, test) macro ROC-AUC of one factor's LogisticRegression() on standardised codes."""
  from sklearn import linear_model  # pylint: disable=g-import-not-at-top
  from sklearn.exceptions import ConvergenceWarning  # pylint: disable=g-import-not-at-top
  with warnings.catch_warnings():
    warnings.simplefilter("ignore", ConvergenceWarning)
    clf = linear_model.LogisticRegression().fit(x_train, factor_train_N)
  return (macro_auc(factor_train_N, clf.predict_proba(x_train), clf.classes_),
          macro_auc(factor_test_M, clf.predict_proba(x_test), clf.classes_))
