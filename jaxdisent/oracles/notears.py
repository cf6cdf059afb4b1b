"""Linear NOTEARS [zheng2018]: a standalone structure learner, x (N, D) -> weighted DAG W (D, D).

Solves ``min_W L(W; X) + lambda1 |W|_1  s.t.  h(W) = tr(exp(W o W)) - D = 0`` with the augmented
Lagrangian of the reference code (xunzheng/notears, ``notears/linear.py``), step for step:

* W = W+ - W- with W+, W- >= 0 (the L1 term is then linear: lambda1 * sum(W+ + W-)), the diagonal
  held at 0 by the bounds; each subproblem ``L + rho/2 h^2 + alpha h + lambda1 sum(w)`` is minimised
  by L-BFGS-B from the previous solution;
* rho is multiplied by 10 until h falls below 1/4 of its previous value (or rho reaches
  ``rho_max``), then alpha += rho * h; stop when h <= ``h_tol`` or rho >= ``rho_max``
  (``max_iter`` dual steps at most);
* losses: ``l2`` 0.5/N |X - XW|^2 on column-centred X, ``logistic`` (binary X) and ``poisson``
  (count X), as in the reference;
* finally entries with |w| < ``w_threshold`` are set to 0.

The objective and its gradient are NumPy / SciPy in float64, as in the reference (the constraint
is driven to 1e-8 and rho to 1e16, far below float32's resolution); the bound-constrained
quasi-Newton step is SciPy's L-BFGS-B, as in the reference (JAX has no bound-constrained L-BFGS of
the same algorithm). L-BFGS-B evaluates the objective ~10^4 times per solve on 2 D^2 variables, so
each call must be cheap: a jitted JAX objective spent most of its time in dispatch and host
transfers (the reference benchmark's D=20 solves: 2.8-5.6 s each with JAX, 1.0-1.3 s now, same
graphs).
The gradient of h is the closed form exp(W o W)^T o 2W. BLAS runs single-threaded during the
solve (see the comment there).

``simulate_dag`` / ``simulate_parameter`` / ``simulate_linear_sem`` draw the reference's synthetic
benchmark (Erdos-Renyi DAG with a given number of edges, weights uniform in +-[0.5, 2], Gaussian
equal-variance noise) for tests and docs; they use a NumPy Generator, not the reference's global
seed, so the draws differ from the reference's for the same seed.
"""

from __future__ import annotations

import numpy as np
import scipy  # submodules load on first use (SciPy's lazy loading): a shorter start-up
from threadpoolctl import threadpool_limits  # a scikit-learn dependency

LOSS_TYPES = ("l2", "logistic", "poisson")


def _check_x(x_NxD, loss_type):
  x = np.asarray(x_NxD)
  if x.ndim != 2:
    raise ValueError(f"notears_linear needs an (N, D) sample matrix; got shape {x.shape}")
  if not np.issubdtype(x.dtype, np.number) or np.issubdtype(x.dtype, np.complexfloating):
    raise ValueError(f"notears_linear needs real-valued samples; got dtype {x.dtype}")
  x = x.astype(np.float64)
  n, d = x.shape
  if n < 2 or d < 2:
    raise ValueError(f"notears_linear needs at least 2 samples and 2 variables; got N={n}, D={d}")
  if not np.isfinite(x).all():
    raise ValueError("notears_linear: x contains NaN/inf; drop or impute those rows first")
  if loss_type not in LOSS_TYPES:
    raise ValueError(f"unknown loss_type {loss_type!r}; use one of {LOSS_TYPES}")
  if loss_type == "logistic" and not np.isin(x, (0.0, 1.0)).all():
    raise ValueError("loss_type='logistic' needs binary samples (0/1); use loss_type='l2' for "
                     "real-valued data")
  if loss_type == "poisson" and (x < 0).any():
    raise ValueError("loss_type='poisson' needs non-negative counts; use loss_type='l2' for "
                     "real-valued data")
  return x


def _objective(w, x, rho, alpha, lambda1, loss_type):
  """Augmented Lagrangian, its gradient in the doubled variables w = [W+, W-] (2 D^2,), and h.

  NumPy / SciPy in float64, as the reference computes them (module docstring: why not JAX).
  """
  n, d = x.shape
  weights = (w[:d * d] - w[d * d:]).reshape(d, d)
  m = x @ weights
  if loss_type == "l2":
    r = x - m
    loss = 0.5 / n * float(np.sum(r ** 2))
    g_loss = -1.0 / n * (x.T @ r)
  elif loss_type == "logistic":
    loss = 1.0 / n * float(np.sum(np.logaddexp(0.0, m) - x * m))
    g_loss = 1.0 / n * (x.T @ (scipy.special.expit(m) - x))
  else:  # poisson
    s = np.exp(m)
    loss = 1.0 / n * float(np.sum(s - x * m))
    g_loss = 1.0 / n * (x.T @ (s - x))
  return _with_acyclicity(w, weights, loss, g_loss, rho, alpha, lambda1)


def _with_acyclicity(w, weights, loss, g_loss, rho, alpha, lambda1):
  """(objective, gradient in w, h): the loss plus rho/2 h^2 + alpha h + lambda1 sum(w), with
  h = tr(exp(W o W)) - D and its gradient exp(W o W)^T o 2W; both NOTEARS objectives end here."""
  d = weights.shape[0]
  e = scipy.linalg.expm(weights * weights)
  h = float(np.trace(e)) - d
  g_h = e.T * weights * 2.0
  obj = loss + 0.5 * rho * h * h + alpha * h + lambda1 * float(np.sum(w))
  g_smooth = (g_loss + (rho * h + alpha) * g_h).reshape(-1)
  return obj, np.concatenate([g_smooth + lambda1, -g_smooth + lambda1]), h


def notears_linear(x_NxD, lambda1: float = 0.1, loss_type: str = "l2", w_threshold: float = 0.3,
                   *, max_iter: int = 100, h_tol: float = 1e-8, rho_max: float = 1e16):
  """The weighted DAG W (D, D) NOTEARS learns from samples x (N, D); W[i, j] != 0 means i -> j.

  Defaults are the reference's (``lambda1=0.1`` as in its README example, threshold 0.3). Returns
  a float64 NumPy array; entries with |w| < w_threshold are 0. See the module docstring.
  """
  for name, value in (("lambda1", lambda1), ("w_threshold", w_threshold)):
    if not (np.isfinite(value) and value >= 0):
      raise ValueError(f"notears_linear: {name} must be a finite number >= 0; got {value}")
  if int(max_iter) < 1 or not h_tol > 0 or not rho_max > 1:
    raise ValueError(f"notears_linear: need max_iter >= 1, h_tol > 0, rho_max > 1; got "
                     f"max_iter={max_iter}, h_tol={h_tol}, rho_max={rho_max}")
  x = _check_x(x_NxD, loss_type)
  n, d = x.shape
  if loss_type == "l2":
    x = x - x.mean(axis=0, keepdims=True)
  # One BLAS thread: L-BFGS-B's vector work on 2 D^2 variables is far too small to share, and a
  # multi-threaded OpenBLAS on a busy machine made each iteration ~50x slower (measured, D=20).
  with threadpool_limits(1, user_api="blas"):
    w = _augmented_lagrangian(
        lambda w_, rho_, alpha_: _objective(w_, x, rho_, alpha_, float(lambda1), loss_type),
        d, max_iter, h_tol, rho_max)
  return _threshold(w, d, w_threshold)


def notears_linear_from_covariance(cov_DxD, lambda1: float = 0.1, w_threshold: float = 0.3, *,
                                   max_iter: int = 100, h_tol: float = 1e-8,
                                   rho_max: float = 1e16):
  """``notears_linear`` with the l2 loss, from the (biased) covariance S = X_c^T X_c / N alone.

  The l2 loss only sees the data through S: 0.5/N |X_c - X_c W|^2 = 0.5 tr((I - W)^T S (I - W)),
  gradient -S (I - W); so this runs the same augmented Lagrangian on S (same L-BFGS-B steps, same
  threshold) in NumPy / SciPy, without JAX: it is what GEM's ``statistical`` oracle calls from a
  host callback inside the jitted training step on the moving-average code covariance (no samples
  kept). Returns the (D, D) float64 W, W[i, j] != 0 meaning i -> j.
  """
  for name, value in (("lambda1", lambda1), ("w_threshold", w_threshold)):
    if not (np.isfinite(value) and value >= 0):
      raise ValueError(f"notears_linear_from_covariance: {name} must be a finite number >= 0; "
                       f"got {value}")
  if int(max_iter) < 1 or not h_tol > 0 or not rho_max > 1:
    raise ValueError(f"notears_linear_from_covariance: need max_iter >= 1, h_tol > 0, rho_max > 1;"
                     f" got max_iter={max_iter}, h_tol={h_tol}, rho_max={rho_max}")
  cov = np.asarray(cov_DxD, np.float64)
  if cov.ndim != 2 or cov.shape[0] != cov.shape[1] or cov.shape[0] < 2:
    raise ValueError(f"notears_linear_from_covariance needs a (D, D) covariance, D >= 2; got "
                     f"shape {cov.shape}")
  if not np.isfinite(cov).all():
    raise ValueError("notears_linear_from_covariance: the covariance holds NaN/inf")
  d = cov.shape[0]
  eye = np.eye(d)

  def evaluate(w_, rho_, alpha_):
    weights = (w_[:d * d] - w_[d * d:]).reshape(d, d)
    residual = eye - weights
    s_res = cov @ residual
    loss = 0.5 * float(np.sum(residual * s_res))
    return _with_acyclicity(w_, weights, loss, -s_res, rho_, alpha_, float(lambda1))

  with threadpool_limits(1, user_api="blas"):
    w = _augmented_lagrangian(evaluate, d, max_iter, h_tol, rho_max)
  return _threshold(w, d, w_threshold)


def _augmented_lagrangian(evaluate, d, max_iter, h_tol, rho_max):
  """The reference's dual loop: L-BFGS-B on each subproblem, rho x10 until h falls below 1/4 of
  its previous value, alpha += rho h; ``evaluate(w, rho, alpha) -> (obj, grad, h)``."""
  off_diagonal = [(0.0, 0.0) if i == j else (0.0, None) for i in range(d) for j in range(d)]
  bounds = off_diagonal * 2
  rho, alpha, h = 1.0, 0.0, np.inf
  w = np.zeros(2 * d * d)
  for _ in range(int(max_iter)):
    w_new, h_new = w, h
    while rho < rho_max:
      fun = lambda w_, r=rho, a=alpha: evaluate(w_, r, a)[:2]
      w_new = scipy.optimize.minimize(fun, w, method="L-BFGS-B", jac=True, bounds=bounds).x
      h_new = evaluate(w_new, rho, alpha)[2]
      if h_new > 0.25 * h:
        rho *= 10.0
      else:
        break
    w, h = w_new, h_new
    alpha += rho * h
    if h <= h_tol or rho >= rho_max:
      break
  return w


def _threshold(w, d, w_threshold):
  weights = (w[:d * d] - w[d * d:]).reshape(d, d)
  weights[np.abs(weights) < w_threshold] = 0.0
  return weights


def is_dag(adjacency_DxD) -> bool:
  """True when the directed graph of the nonzero entries has no cycle (self-loops are cycles)."""
  remaining = np.asarray(adjacency_DxD) != 0
  alive = np.ones(len(remaining), bool)
  while alive.any():
    in_degree = remaining[np.ix_(alive, alive)].sum(axis=0)
    roots = np.flatnonzero(alive)[in_degree == 0]
    if not len(roots):
      return False
    alive[roots] = False
  return True


def simulate_dag(d: int, edges: int, rng: np.random.Generator) -> np.ndarray:
  """Binary Erdos-Renyi DAG (D, D): ``edges`` node pairs drawn uniformly without replacement,
  each oriented along a random topological order (the reference's ``simulate_dag(d, s0, 'ER')``)."""
  pairs = d * (d - 1) // 2
  if not 0 <= edges <= pairs:
    raise ValueError(f"a DAG on {d} nodes has 0..{pairs} edges; got edges={edges}")
  upper = np.argwhere(np.triu(np.ones((d, d), bool), k=1))
  chosen = upper[rng.choice(pairs, size=edges, replace=False)]
  order = rng.permutation(d)          # node order[k] is k-th in the topological order
  b = np.zeros((d, d))
  b[order[chosen[:, 0]], order[chosen[:, 1]]] = 1.0
  return b


def simulate_parameter(b_DxD, rng: np.random.Generator, w_ranges=((-2.0, -0.5), (0.5, 2.0))):
  """Weights of the edges of b: uniform in a range drawn uniformly among ``w_ranges``."""
  b = np.asarray(b_DxD, np.float64)
  which = rng.integers(len(w_ranges), size=b.shape)
  w = np.zeros_like(b)
  for k, (low, high) in enumerate(w_ranges):
    w += b * (which == k) * rng.uniform(low, high, size=b.shape)
  return w


def simulate_linear_sem(w_DxD, n: int, rng: np.random.Generator, noise_scale: float = 1.0):
  """n samples (n, D) of the linear Gaussian SEM x_j = sum_i W[i, j] x_i + e_j, e ~ N(0, scale^2);
  needs W to be a DAG. Solved in closed form: X = E (I - W)^-1."""
  w = np.asarray(w_DxD, np.float64)
  if not is_dag(w):
    raise ValueError("simulate_linear_sem needs a DAG W (it has a cycle)")
  noise = noise_scale * rng.standard_normal((int(n), len(w)))
  return noise @ np.linalg.inv(np.eye(len(w)) - w)
