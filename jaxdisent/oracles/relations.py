"""Relation discovery: attribute scores (N x A) -> an asymmetric weighted relation matrix (A x A).

Estimator (our choice; GEM does not publish its statistics), a continuous version of the PC
algorithm's two steps on the Pearson correlation C of the scores (pairwise complete: each pair
uses the rows where both answers are valid; C is shrunk toward I by ``ridge`` so it inverts):

1. Skeleton strength: the dependence of a and b that survives every conditioning set we try,
   ``S_ab = min(|r_ab|, min_c |r_ab.c|, |r_ab.rest|)`` - marginal correlation, partial correlation
   given each single other attribute c, and given all other attributes (Theta = C^-1,
   r_ab.rest = -Theta_ab / sqrt(Theta_aa Theta_bb)). Indirect chains a -> c -> b and independent
   causes of a common effect (dependent only once the effect is conditioned on) both drop out.
2. Direction share ``D_ab`` in [0, 1] (``D_ab + D_ba = 1`` before clipping):
   ``D_ab = clip(R2_b / (R2_a + R2_b) + gain * (E_ab - E_ba), 0, 1)`` where
   R2_b = 1 - 1/Theta_bb is how well the other attributes explain b ("an effect is better explained
   than its cause") and E_ab = max_c (|r_ac.b| - |r_ac|)_+ is collider evidence for a -> b <- c
   (conditioning on b makes a and c dependent: explaining away, PC's v-structure rule).

``W_ab = S_ab * D_ab``.

Bases (``basis``, config key ``oracle.basis``):

* ``'poly'`` (the default for scores, ``degree=3``): dependences are nonlinear partial R^2 values
  with a polynomial of the conditioning set that includes cross terms. With P_d(S) the standardised
  monomials of degree 1..d of the scores in S (all products, e.g. z_angle * z_light), the
  dependence of a and b given S is ``sqrt(max(pR2(b; a | S), pR2(a; b | S)))`` where
  ``pR2(b; a | S) = 1 - RSS(z_b ~ P_d(S + {a})) / RSS(z_b ~ P_d(S))`` (ridge least squares,
  ``ridge`` on the standardised monomials; S empty gives the plain polynomial R^2 of b on a). The
  three conditioning sets (empty, each single c, all others), the collider evidence and R2_b (now
  R^2 of z_b on P_d(all others)) are as above with this dependence in place of |r|. Each test uses
  the rows where a, b and S are all valid; R2 the rows with every attribute valid. Why: on Pendulum
  shadow length is an interaction of angle and light (exact values: R^2 0.31 on angle, light and
  their squares, 0.95 on their degree-3 polynomial with cross terms); without cross terms it
  looks unexplained, is oriented as a cause, and the spurious shadow_length - shadow_position
  edge survives conditioning on (angle, light).
  Cost: one small least-squares solve per test (A^3 tests); the "all others" set has
  C(A-1+d, d) - 1 monomials, refused above 2,000 (lower the degree or use ``'quadratic'``).
  Known limit: on noise-free factor values (the ``labels`` oracle) the shadows are deterministic
  functions of (angle, light) and no finite polynomial is exact, so the approximation residual of
  one shadow is explained by the other (partial R^2 0.87 given angle and light), the spurious
  shadow_length - shadow_position edge keeps its marginal strength (0.37, above the weakest true
  edge's 0.33) and Pendulum AUROC is 0.938 on exact values vs 1.000 with the simulated oracle at
  100% and 88.4% (whose answer noise makes the shadows conditionally independent again).
* ``'quadratic'`` (the default before; no cross terms): each attribute a is represented by two
  standardised features, its score z_a and its squared deviation q_a = z_a^2 (standardised), so
  U-shaped relations (pendulum: shadow length is non-monotone in the angle, |r| ~ 0.13) are seen.
  Every correlation above is then taken between feature sets: a marginal or partial correlation of
  (a, b) is the largest |partial correlation| over the four feature pairs (u in {z_a, q_a}, v in
  {z_b, q_b}), conditioning on c means on both of c's features, and R2_b is that of z_b given all
  other features.
* ``'linear'`` uses z alone (that is also what the in-step ``statistical`` oracle uses, via
  :func:`relations_from_correlation`).

From observational scores alone the direction of a relation without a
collider is not identifiable (Markov equivalence), so direction accuracy on such pairs is near
chance; the ranking measures (AUROC) are driven by the skeleton. Linear statistics also miss
non-monotone relations (pendulum: shadow length vs angle has |r| ~ 0.13).

The same function runs in NumPy (host, the oracle prior) and in jax.numpy (inside the training
step, the ``statistical`` oracle on the model's own codes).
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import jax.numpy as jnp
import scipy  # submodules load on first use (SciPy's lazy loading): a shorter start-up

MIN_ROWS = 8


def check_scores(scores_NxA, valid_NxA=None, names=None):
  """Validated float64 scores and mask; NaN in a valid entry and degenerate columns are errors."""
  scores = np.asarray(scores_NxA, np.float64)
  if scores.ndim != 2:
    raise ValueError(f"scores must be an (N, A) matrix, got shape {scores.shape}")
  valid = np.isfinite(scores) if valid_NxA is None else np.asarray(valid_NxA, bool)
  if valid.shape != scores.shape:
    raise ValueError(f"valid mask {valid.shape} does not match scores {scores.shape}")
  names = list(names) if names is not None else [f"attr{a}" for a in range(scores.shape[1])]
  if (valid & ~np.isfinite(scores)).any():
    raise ValueError("scores contain NaN/inf in entries marked valid; mark them invalid")
  counts = valid.sum(axis=0)
  few = [names[a] for a in np.flatnonzero(counts < MIN_ROWS)]
  if few:
    raise ValueError(f"attribute(s) {few} have fewer than {MIN_ROWS} valid scores; score more "
                     "images or drop them")
  constant = [names[a] for a in range(scores.shape[1])
              if np.nanstd(np.where(valid[:, a], scores[:, a], np.nan)) == 0]
  if constant:
    raise ValueError(f"attribute(s) {constant} have constant scores (no variation to relate)")
  return scores, valid


def pairwise_correlation(scores_NxA, valid_NxA):
  """Pearson correlation of every pair of columns over the rows where both are valid (NumPy)."""
  scores, valid = check_scores(scores_NxA, valid_NxA)
  mask = valid.astype(np.float64)
  x = np.where(valid, scores, 0.0)
  n = mask.T @ mask
  sx = x.T @ mask          # sum of a over rows where b valid: [a, b]
  sxx = (x * x).T @ mask
  sxy = x.T @ x
  mean_a, mean_b = sx / n, sx.T / n
  cov = sxy / n - mean_a * mean_b
  var_a = sxx / n - mean_a ** 2
  var_b = var_a.T
  corr = cov / np.sqrt(np.maximum(var_a * var_b, 1e-12))
  np.fill_diagonal(corr, 1.0)
  return np.clip(corr, -1.0, 1.0)


def relations_from_correlation(corr_AxA, ridge: float = 1e-3, gain: float = 2.0, xp=np):
  """W (A, A) of the module docstring from a correlation matrix; works with xp=np or jnp."""
  a = corr_AxA.shape[0]
  eye = xp.eye(a)
  r = (1.0 - ridge) * corr_AxA + ridge * eye
  theta = xp.linalg.inv(r)
  diag = xp.diagonal(theta)
  partial_rest = -theta / xp.sqrt(diag[:, None] * diag[None, :])
  # partial correlation of (a, b) given one c: [a, b, c]
  r_ac, r_bc = r[:, None, :], r[None, :, :]
  partial_one = (r[:, :, None] - r_ac * r_bc) / xp.sqrt(
      xp.clip((1.0 - r_ac ** 2) * (1.0 - r_bc ** 2), 1e-9, None))
  idx = xp.arange(a)
  c_is_a = idx[:, None, None] == idx[None, None, :]
  c_is_b = idx[None, :, None] == idx[None, None, :]
  given_one = xp.where(c_is_a | c_is_b, xp.inf, xp.abs(partial_one)).min(axis=2)
  strength = xp.minimum(xp.minimum(xp.abs(r), given_one), xp.abs(partial_rest)) * (1.0 - eye)
  explained = xp.clip(1.0 - 1.0 / diag, 1e-6, 1.0)
  share = explained[None, :] / (explained[:, None] + explained[None, :])
  # collider evidence for a -> b <- c: |r_ac.b| - |r_ac|, partial_one[a, c, b] -> [a, b, c]
  gain_in_dependence = xp.abs(xp.transpose(partial_one, (0, 2, 1))) - xp.abs(r)[:, None, :]
  invalid = c_is_a | c_is_b | (idx[:, None, None] == idx[None, :, None])
  evidence = xp.where(invalid, 0.0, xp.clip(gain_in_dependence, 0.0, None)).max(axis=2)
  evidence = evidence * (1.0 - eye)
  direction = xp.clip(share + gain * (evidence - evidence.T), 0.0, 1.0)
  return strength * direction * (1.0 - eye)


BASES = ("poly", "quadratic", "linear")
MAX_POLY_FEATURES = 2000


def directed_relations(scores_NxA, valid_NxA=None, ridge: float = 1e-3, gain: float = 2.0,
                       names=None, basis: str = "poly", degree: int = 3):
  """The relation matrix of a score matrix (host, NumPy); see the module docstring."""
  scores, valid = check_scores(scores_NxA, valid_NxA, names)
  if basis == "linear":
    return relations_from_correlation(pairwise_correlation(scores, valid), ridge, gain)
  if basis == "poly":
    return _poly_relations(scores, valid, ridge, gain, _check_degree(degree, scores.shape[1]))
  if basis != "quadratic":
    raise ValueError(f"unknown relation basis {basis!r}; use one of {BASES}")
  a = scores.shape[1]
  count = valid.sum(axis=0)
  mean = np.where(valid, scores, 0.0).sum(axis=0) / count
  std = np.sqrt(np.where(valid, (scores - mean) ** 2, 0.0).sum(axis=0) / count)
  z = np.where(valid, (scores - mean) / std, 0.0)
  q = z ** 2
  q_mean = np.where(valid, q, 0.0).sum(axis=0) / count
  q_std = np.sqrt(np.where(valid, (q - q_mean) ** 2, 0.0).sum(axis=0) / count)
  q = np.where(valid, (q - q_mean) / np.where(q_std > 0, q_std, 1.0), 0.0)
  features = np.concatenate([z, q], axis=1)
  feature_valid = np.concatenate([valid, valid & (q_std > 0)[None, :]], axis=1)
  corr = _pairwise_correlation_unchecked(features, feature_valid)
  return _block_relations(corr, a, ridge, gain)


def _check_degree(degree, a):
  if isinstance(degree, bool) or int(degree) != degree or not 1 <= int(degree) <= 5:
    raise ValueError(f"relation basis degree must be an integer in 1..5 (3 = cubic with cross "
                     f"terms); got {degree!r}")
  degree = int(degree)
  count = _monomial_count(a - 1, degree)
  if count > MAX_POLY_FEATURES:
    raise ValueError(f"basis='poly' of degree {degree} on {a} attributes conditions on {count} "
                     f"monomials (> {MAX_POLY_FEATURES}); use oracle.basis='quadratic' (or a lower "
                     "degree= in directed_relations)")
  return degree


def _monomial_count(k, degree):
  """Monomials of degree 1..degree in k variables."""
  return int(sum(math.comb(k + d - 1, d) for d in range(1, degree + 1)))


def _standardise(x, rows):
  """Columns of x standardised over the rows (constant columns -> 0)."""
  sub = x[rows]
  mean, std = sub.mean(axis=0), sub.std(axis=0)
  return np.where(std > 1e-12, (sub - mean) / np.where(std > 1e-12, std, 1.0), 0.0)


def _monomials(z_NxK, degree):
  """All monomials of degree 1..degree of the columns (cross terms included), (N, M)."""
  k = z_NxK.shape[1]
  cols = [np.prod(z_NxK[:, list(c)], axis=1) for d in range(1, degree + 1)
          for c in itertools.combinations_with_replacement(range(k), d)]
  return np.stack(cols, axis=1) if cols else np.zeros((len(z_NxK), 0))


def _poly_relations(scores, valid, ridge, gain, degree):
  """The estimator of the module docstring with ``basis='poly'`` (host, NumPy)."""
  n, a = scores.shape
  z = np.zeros_like(scores)           # standardised scores; invalid entries are never read
  for i in range(a):
    z[valid[:, i], i] = _standardise(scores[:, i:i + 1], valid[:, i])[:, 0]

  def rss(target, given, rows):
    """Mean squared residual of z_target (centred) after ridge least squares on the standardised
    monomials of z_given up to ``degree`` (cross terms included), over ``rows``."""
    t = z[rows, target] - z[rows, target].mean()
    if not given:
      return float(np.mean(t ** 2))
    basis = _standardise(_monomials(z[:, list(given)], degree), rows)
    gram = basis.T @ basis / len(t)
    coef = np.linalg.solve(gram + ridge * np.eye(len(gram)), basis.T @ t / len(t))
    return float(np.mean((t - basis @ coef) ** 2))

  cache = {}

  def dependence(i, j, given):
    """sqrt of the larger partial R^2: how much of z_j's variance left by a polynomial of z_given
    a polynomial of (z_given, z_i) explains, and the same with i and j swapped."""
    key = (min(i, j), max(i, j), tuple(sorted(given)))
    if key not in cache:
      rows = valid[:, i] & valid[:, j] & valid[:, list(given)].all(axis=1)
      if rows.sum() < MIN_ROWS:
        cache[key] = 0.0
      else:
        gains = []
        for target, extra in ((j, i), (i, j)):
          before = rss(target, given, rows)
          after = rss(target, tuple(given) + (extra,), rows)
          gains.append(max(0.0, 1.0 - after / before) if before > 1e-12 else 0.0)
        cache[key] = float(np.sqrt(max(gains)))
    return cache[key]

  others = lambda *skip: tuple(c for c in range(a) if c not in skip)
  marginal = np.zeros((a, a))
  strength = np.zeros((a, a))
  evidence = np.zeros((a, a))
  for i in range(a):
    for j in range(i + 1, a):
      marginal[i, j] = marginal[j, i] = dependence(i, j, ())
      values = [marginal[i, j], dependence(i, j, others(i, j))]
      for c in others(i, j):
        given_c = dependence(i, j, (c,))
        values.append(given_c)
        # collider evidence for i -> c <- j: conditioning on c makes i and j dependent
        gained = max(given_c - marginal[i, j], 0.0)
        evidence[i, c] = max(evidence[i, c], gained)
        evidence[j, c] = max(evidence[j, c], gained)
      strength[i, j] = strength[j, i] = min(values)
  rows = valid.all(axis=1)
  if rows.sum() < MIN_ROWS:
    raise ValueError(f"basis='poly' needs at least {MIN_ROWS} images with every attribute validly "
                     f"scored (has {int(rows.sum())}); score more images or use basis='quadratic'")
  explained = np.array([1.0 - rss(b, others(b), rows) / rss(b, (), rows) for b in range(a)])
  explained = np.clip(explained, 1e-6, 1.0)
  share = explained[None, :] / (explained[:, None] + explained[None, :])
  direction = np.clip(share + gain * (evidence - evidence.T), 0.0, 1.0)
  return strength * direction * (1.0 - np.eye(a))


def _pairwise_correlation_unchecked(x, valid):
  mask = valid.astype(np.float64)
  x = np.where(valid, x, 0.0)
  n = np.maximum(mask.T @ mask, 1.0)
  sx, sxx = x.T @ mask, (x * x).T @ mask
  mean_a, mean_b = sx / n, sx.T / n
  cov = (x.T @ x) / n - mean_a * mean_b
  var = sxx / n - mean_a ** 2
  corr = cov / np.sqrt(np.maximum(var * var.T, 1e-12))
  np.fill_diagonal(corr, 1.0)
  return np.clip(corr, -1.0, 1.0)


def _partial(corr, rows_Nx4):
  """|partial correlation| of features rows[:, 0], rows[:, 1] given rows[:, 2:] (batched)."""
  sub = corr[rows_Nx4[:, :, None], rows_Nx4[:, None, :]]
  theta = np.linalg.inv(sub)
  return np.abs(theta[:, 0, 1] / np.sqrt(theta[:, 0, 0] * theta[:, 1, 1]))


def _block_relations(corr_2Ax2A, a, ridge, gain):
  """The estimator on the (z, q) feature correlation; feature k of attribute i is i + k * a."""
  corr = (1.0 - ridge) * corr_2Ax2A + ridge * np.eye(2 * a)
  theta = np.linalg.inv(corr)
  diag = np.diagonal(theta)
  partial_rest = np.abs(theta / np.sqrt(diag[:, None] * diag[None, :]))
  pairs = [(0, 0), (0, 1), (1, 0), (1, 1)]
  block = lambda m: np.max([m[np.ix_(np.arange(a) + u * a, np.arange(a) + v * a)]
                            for u, v in pairs], axis=0)
  marginal, rest = block(np.abs(corr)), block(partial_rest)
  triples = [(i, j, c) for i in range(a) for j in range(a) for c in range(a)
             if len({i, j, c}) == 3]
  given_one = np.full((a, a), np.inf)
  evidence = np.zeros((a, a))
  if triples:
    t = np.array(triples)
    # dependence of (i, j) given c: max over feature pairs of |pcor(u_i, v_j | z_c, q_c)|
    rows = np.stack([np.stack([t[:, 0] + u * a, t[:, 1] + v * a, t[:, 2], t[:, 2] + a], 1)
                     for u, v in pairs])
    dependence = _partial(corr, rows.reshape(-1, 4)).reshape(4, -1).max(axis=0)
    np.minimum.at(given_one, (t[:, 0], t[:, 1]), dependence)
    # collider evidence for i -> c <- j: dependence of (i, j) given c minus their marginal one
    gained = np.clip(dependence - marginal[t[:, 0], t[:, 1]], 0.0, None)
    np.maximum.at(evidence, (t[:, 0], t[:, 2]), gained)
  strength = np.minimum(np.minimum(marginal, given_one), rest) * (1.0 - np.eye(a))
  explained = np.clip(1.0 - 1.0 / diag[:a], 1e-6, 1.0)
  share = explained[None, :] / (explained[:, None] + explained[None, :])
  direction = np.clip(share + gain * (evidence - evidence.T), 0.0, 1.0)
  return strength * direction * (1.0 - np.eye(a))


def rank_relations(weights_AxA, names):
  """[(source, target, weight)] sorted by decreasing weight, self-relations excluded."""
  w = np.asarray(weights_AxA)
  pairs = [(names[i], names[j], float(w[i, j])) for i in range(len(names))
           for j in range(len(names)) if i != j]
  return sorted(pairs, key=lambda t: -t[2])


def hungarian_assignment(similarity_DxA):
  """node_of_attribute (A,): the latent node matched to each attribute, maximising the summed
  similarity (scipy's Hungarian algorithm). Needs D >= A."""
  sim = np.asarray(similarity_DxA, np.float64)
  if sim.shape[0] < sim.shape[1]:
    raise ValueError(f"{sim.shape[1]} attributes cannot be matched to only {sim.shape[0]} latent "
                     "nodes; raise model.latent_dim")
  rows, cols = scipy.optimize.linear_sum_assignment(-np.nan_to_num(sim))
  out = np.zeros(sim.shape[1], np.int64)
  out[cols] = rows
  return out


def greedy_assignment(similarity_DxA):
  """jit-friendly matching used during training: repeatedly take the largest remaining entry
  and remove its row and column (exact when the best pairs do not compete; Hungarian otherwise
  can differ). Returns node_of_attribute (A,) int32."""
  d, a = similarity_DxA.shape
  sim = jnp.nan_to_num(jnp.asarray(similarity_DxA, jnp.float32), nan=-1.0)
  out = jnp.zeros((a,), jnp.int32)
  for _ in range(a):
    flat = jnp.argmax(sim)
    node, attr = flat // a, flat % a
    out = out.at[attr].set(node.astype(jnp.int32))
    sim = sim.at[node, :].set(-jnp.inf).at[:, attr].set(-jnp.inf)
  return out
