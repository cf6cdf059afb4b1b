"""Sampling-based disentanglement scores: BetaVAE, FactorVAE, IRS, and the (codes, factors) helper.

They draw factors from a :class:`jaxdisent.data.GroundTruthData` (uniformly over its grid), render
the images, and call ``represent_fn(images_BxHxWxC) -> codes_BxD`` (use the encoder *mean*, as
disentanglement_lib does). Defaults are disentanglement_lib's; sizes can be lowered by argument for
quick looks. Randomness comes from a JAX key, so results are reproducible but not numerically
identical to disentanglement_lib's NumPy RandomState draws.
"""

from __future__ import annotations

import collections
import warnings

import jax
import jax.numpy as jnp
import numpy as np

from jaxdisent.metrics import _host, parallel_fit
from jaxdisent.metrics.disentanglement import irs as validated_irs


# Images per jit call when encoding. Large batches amortise dispatch and keep both cores busy; at
# 64x64x1 a batch of 2048 needs ~0.4 GB of activations in the encoder.
ENCODE_BATCH = 2048


def _encode_factors(data, represent_fn, factors, batch_size: int, desc: str = "encode"):
  """Codes for factor rows, in batches; renders and encodes in one jit for procedural data.

  Batches are dispatched asynchronously and stay on the device; the host waits only for the batch
  two behind (to advance the progress bar and bound memory) and copies the codes back once.
  """
  if isinstance(represent_fn, CodeTable):
    return represent_fn.lookup(data, factors)
  batch_size = ENCODE_BATCH if batch_size is None else batch_size
  # small requests: the next power of two (>= 64) instead of padding to a full batch
  batch_size = min(batch_size, max(64, 1 << max(len(factors) - 1, 1).bit_length()))
  batches = range(0, len(factors), batch_size)
  bar = parallel_fit.progress_bar(desc, len(factors))
  try:
    if getattr(data, "jittable", False):
      fused = _fused(data, represent_fn)
      out = []
      for i in batches:
        chunk = factors[i:i + batch_size]
        pad = batch_size - len(chunk)  # keep one compiled shape
        padded = np.concatenate([chunk, np.repeat(chunk[:1], pad, axis=0)]) if pad else chunk
        out.append(fused(represent_fn, jnp.asarray(padded, jnp.int32))[:len(chunk)])
        if len(out) > 2:
          out[-3].block_until_ready()
          bar.update(out[-3].shape[0])
      codes = np.concatenate([np.asarray(c) for c in out], axis=0)
      bar.update(sum(c.shape[0] for c in out[-2:]))
      return _checked_codes(codes, len(factors))
    out = []
    for i in batches:
      out.append(_encode(represent_fn, data.images_from_factors(factors[i:i + batch_size]),
                         batch_size))
      bar.update(out[-1].shape[0])
    return np.concatenate(out, axis=0)
  finally:
    bar.close()


# Refuse to tabulate grids larger than this (codes of 10 dims in float32: 200 MB).
MAX_TABLE_SIZE = 5_000_000


class CodeTable:
  """The codes of every factor combination of a finite grid, encoded once; a drop-in
  ``represent_fn`` for the sampling metrics, which then look codes up instead of encoding.

  disentanglement_lib's BetaVAE and FactorVAE scores draw ~1.9M and ~1M images at its reference
  sizes, while dSprites has 737,280 distinct images: most draws repeat an image. Encoding the grid
  once (in the same batches of ``ENCODE_BATCH`` as direct encoding) and indexing it gives each
  drawn image the code its encoder gives it, so the metrics' definitions and their random draws are
  unchanged; only the work is. Codes can differ from encoding the draws directly by float rounding
  where XLA's convolution blocks a batch differently (it is per-image in exact arithmetic), so a
  vote or a nearest-class decision sitting exactly on a tie can in principle flip.
  ``worth_it(data, draws)`` says when the table is cheaper (draws exceed the grid).

  Called on images it is the wrapped ``represent_fn``.
  """

  def __init__(self, data, represent_fn, *, encode_batch: int | None = None):
    size = int(data.num_combinations)
    if size > MAX_TABLE_SIZE:
      raise ValueError(f"{getattr(data, 'name', type(data).__name__)} has {size:,} factor "
                       f"combinations; a code table is limited to {MAX_TABLE_SIZE:,}")
    _check_encode_batch(encode_batch)
    self.data = data
    self.represent_fn = represent_fn
    factors = np.asarray(data.index_to_factors(np.arange(size)), np.int32)
    self.codes = _encode_factors(data, represent_fn, factors, encode_batch,
                                 desc=f"codes (all {size:,} images)")

  @staticmethod
  def worth_it(data, draws: int) -> bool:
    size = getattr(data, "num_combinations", None)
    return size is not None and size <= MAX_TABLE_SIZE and draws > size

  def __call__(self, images):
    return self.represent_fn(images)

  def lookup(self, data, factors_NxK) -> np.ndarray:
    if data is not self.data:
      raise ValueError("this CodeTable was built for another dataset; build one for this data")
    return self.codes[self.data.factors_to_index(factors_NxK)]


# The last few fused programs (each keeps its data and, for a plain callable, that callable alive).
_FUSED_CACHE = collections.OrderedDict()
_FUSED_CACHE_SIZE = 4


def _fused(data, represent_fn):
  """``(represent_fn, factors) -> codes``, rendering and encoding in one program.

  A ``jax.tree_util.Partial`` (``models.vae.representation_fn``) goes in as an argument: its
  parameters stay program arguments, and the program is kept for the next evaluation with an equal
  function (same model, other parameters). Any other callable is closed over, one program per
  function object, as before.
  """
  if isinstance(represent_fn, jax.tree_util.Partial):
    key = (id(data), represent_fn.func)
    build = lambda: jax.jit(lambda rf, f: rf(data.images_from_factors(f)))
  else:
    key = (id(data), id(represent_fn))

    def build():
      program = jax.jit(lambda f: represent_fn(data.images_from_factors(f)))
      return lambda _, f: program(f)
  if key in _FUSED_CACHE:
    _FUSED_CACHE.move_to_end(key)
  else:
    _FUSED_CACHE[key] = build()
    while len(_FUSED_CACHE) > _FUSED_CACHE_SIZE:
      _FUSED_CACHE.popitem(last=False)
  return _FUSED_CACHE[key]


def _encode(represent_fn, images, batch_size: int):
  out = [np.asarray(represent_fn(images[i:i + batch_size]))
         for i in range(0, images.shape[0], batch_size)]
  return _checked_codes(np.concatenate(out, axis=0), images.shape[0])


def _checked_codes(codes, rows: int):
  if codes.ndim != 2 or codes.shape[0] != rows:
    raise ValueError(f"represent_fn must map (B, H, W, C) images to (B, D) codes; got {codes.shape} "
                     f"for {rows} images")
  if not np.issubdtype(codes.dtype, np.number) and jnp.issubdtype(codes.dtype, jnp.floating):
    codes = codes.astype(np.float32)                     # bfloat16 codes
  if not np.issubdtype(codes.dtype, np.number) or np.issubdtype(codes.dtype, np.complexfloating):
    raise TypeError(f"represent_fn must return real numeric codes; got dtype {codes.dtype}")
  if not np.isfinite(codes).all():
    raise ValueError("represent_fn returned NaN/inf codes")
  return codes


def _check_key(rng):
  """A JAX PRNG key (typed ``jax.random.key`` or raw ``PRNGKey``), else a clear TypeError."""
  typed = isinstance(rng, jax.Array) and jnp.issubdtype(rng.dtype, jax.dtypes.prng_key)
  raw = isinstance(rng, (jax.Array, np.ndarray)) and rng.shape == (2,) and rng.dtype == np.uint32
  if not (typed and rng.ndim == 0) and not raw:
    raise TypeError(f"rng must be one JAX PRNG key, e.g. jax.random.key(0); got {type(rng).__name__}"
                    + (f" of shape {rng.shape}" if hasattr(rng, "shape") else f" {rng!r}"))


def sample_codes_and_factors(data, represent_fn, num_points: int, rng, *,
                             batch_size: int | None = None, desc: str = "encode"):
  """(codes (N, D), factors (N, K)) for N factor combinations drawn uniformly from the grid.

  As disentanglement_lib's ``utils.generate_batch_factor_code`` [locatello2019], with a JAX key
  instead of a NumPy RandomState.

  Args:
    data: a ``jaxdisent.data.GroundTruthData`` (K factors on a finite grid) that renders the
      images.
    represent_fn: callable mapping (B, H, W, C) images to (B, D) real codes (the encoder
      mean), or a ``CodeTable`` of it.
    num_points: int >= 1, N, the number of factor combinations drawn.
    rng: one JAX PRNG key (``jax.random.key(0)`` or a raw ``PRNGKey``).
    batch_size: int >= 1, images per ``represent_fn`` call (None: ``ENCODE_BATCH``; fewer images
      use a smaller power of two >= 64).
    desc: str, the progress-bar label.

  Returns:
    (codes, factors): codes an (N, D) real NumPy array in ``represent_fn``'s dtype (bfloat16
    widened to float32), factors an (N, K) int NumPy array (int32 for the package's datasets).
  """
  _host.check_int(num_points, "num_points", 1)
  _check_encode_batch(batch_size, "batch_size")
  _check_key(rng)
  factors = np.asarray(data.sample_factors(rng, num_points))
  return _encode_factors(data, represent_fn, factors, batch_size, desc), factors


def _check_encode_batch(value, name: str = "encode_batch"):
  if value is not None:
    _host.check_int(value, name, 1, hint=f"None encodes {ENCODE_BATCH} images per call")


def _fixed_factor_batches(data, rng, num_points: int, batch_size: int, pairs: bool):
  """Factors for num_points groups of batch_size samples sharing one randomly chosen factor.

  Returns (factor_index (P,), factors (P, [2,] B, K)). With ``pairs`` the group is two batches
  whose chosen factor agrees row by row (BetaVAE score); otherwise one batch in which the
  chosen factor takes one value (FactorVAE score).
  """
  k_index, k_a, k_b = jax.random.split(rng, 3)
  index = np.asarray(jax.random.randint(k_index, (num_points,), 0, data.num_factors))
  a = np.array(data.sample_factors(k_a, num_points * batch_size)).reshape(num_points, batch_size, -1)
  rows = np.arange(num_points)
  if pairs:
    b = np.array(data.sample_factors(k_b, num_points * batch_size)).reshape(num_points, batch_size, -1)
    b[rows, :, index] = a[rows, :, index]
    return index, np.stack([a, b], axis=1)
  a[rows, :, index] = a[rows, 0, index][:, None]
  return index, a


def _group_codes(data, represent_fn, factors, encode_batch: int, desc: str):
  shape = factors.shape
  codes = _encode_factors(data, represent_fn, factors.reshape(-1, shape[-1]), encode_batch, desc)
  return codes.reshape(*shape[:-1], codes.shape[-1])


def beta_vae_score(data, represent_fn, rng, *, batch_size: int = 64, num_train: int = 10_000,
                   num_eval: int = 5_000, encode_batch: int | None = None, seed: int = 0) -> dict:
  """BetaVAE score (Higgins et al. 2017), as disentanglement_lib ``beta_vae.py``.

  Each point: pick a factor k uniformly, draw two batches of ``batch_size`` factor combinations
  that agree on k row by row, encode both; the feature is the mean over the batch of |z1 - z2|.
  A ``LogisticRegression`` predicts k from the feature; the score is its eval accuracy.
  Needs a dataset with >= 2 factors (k is what the classifier predicts).

  References: [higgins2017]; code: [locatello2019].

  Args:
    data: a ``jaxdisent.data.GroundTruthData`` with K >= 2 factors that renders the images.
    represent_fn: callable mapping (B, H, W, C) images to (B, D) real codes (the encoder
      mean), or a ``CodeTable`` of it.
    rng: one JAX PRNG key (``jax.random.key(0)`` or a raw ``PRNGKey``).
    batch_size: int >= 1, samples averaged per point (disentanglement_lib: 64).
    num_train: int >= 1, training points (disentanglement_lib: 10000).
    num_eval: int >= 1, evaluation points (disentanglement_lib: 5000).
    encode_batch: int >= 1, images per ``represent_fn`` call (None: ``ENCODE_BATCH``; fewer
      images use a smaller power of two >= 64).
    seed: int >= 0, the ``LogisticRegression``'s ``random_state``.

  Returns:
    dict with keys ``"beta_vae_score"`` (evaluation accuracy) and ``"beta_vae_score_train"``:
    Python floats in [0, 1].
  """
  from sklearn import linear_model  # pylint: disable=g-import-not-at-top
  from sklearn.exceptions import ConvergenceWarning  # pylint: disable=g-import-not-at-top
  _check_sampling_args(data, rng, batch_size=batch_size, num_train=num_train, num_eval=num_eval,
                       encode_batch=encode_batch, min_batch=1, metric="beta_vae_score")
  _host.check_int(seed, "seed", 0)
  k_train, k_eval = jax.random.split(rng)

  def points(key, n, split):
    labels, factors = _fixed_factor_batches(data, key, n, batch_size, pairs=True)
    codes = _group_codes(data, represent_fn, factors, encode_batch,
                         f"beta_vae_score ({split})")                       # n x 2 x B x D
    return np.asarray(_mean_abs_diff(jnp.asarray(codes))), labels

  x_train, y_train = points(k_train, num_train, "train")
  if np.unique(y_train).size < 2:
    raise ValueError(f"beta_vae_score: the {num_train} training point(s) all chose the same factor, "
                     f"so the classifier has one class; raise num_train (disentanglement_lib: 10000)")
  with warnings.catch_warnings():  # the reference's unscaled features rarely converge in 100 its
    warnings.simplefilter("ignore", ConvergenceWarning)
    model = linear_model.LogisticRegression(random_state=seed).fit(x_train, y_train)
  x_eval, y_eval = points(k_eval, num_eval, "eval")
  return {"beta_vae_score": float(model.score(x_eval, y_eval)),
          "beta_vae_score_train": float(model.score(x_train, y_train))}


@jax.jit
def _mean_abs_diff(codes_Px2xBxD):
  return jnp.mean(jnp.abs(codes_Px2xBxD[:, 0] - codes_Px2xBxD[:, 1]), axis=1)


@jax.jit
def _votes(local_var_PxD, global_var_D, active_D):
  """Winning dim per point: argmin over active dims of local / global variance."""
  ratio = jnp.where(active_D[None], local_var_PxD / global_var_D[None], jnp.inf)
  # disentanglement_lib indexes the argmin within the *active* dims; keep that convention.
  rank_in_active = jnp.cumsum(active_D) - 1
  winner = rank_in_active[jnp.argmin(ratio, axis=1)]
  return winner


def factor_vae_score(data, represent_fn, rng, *, batch_size: int = 64, num_train: int = 10_000,
                     num_eval: int = 5_000, num_variance_estimate: int = 10_000,
                     prune_threshold: float = 0.05, encode_batch: int | None = None) -> dict:
  """FactorVAE score (Kim & Mnih 2018), as disentanglement_lib ``factor_vae.py``.

  Global variances (ddof=1) of each code over ``num_variance_estimate`` samples; dims whose std
  is below ``prune_threshold`` (0.05, the study's gin setting) are dropped. Each point fixes one
  factor over a batch and votes for argmin_j of local variance / global variance among the active
  dims; a majority-vote classifier maps each dim to the factor it wins most; the score is its
  accuracy on ``num_eval`` fresh points.

  References: [kim2018]; code: [locatello2019].

  Args:
    data: a ``jaxdisent.data.GroundTruthData`` with K >= 2 factors that renders the images.
    represent_fn: callable mapping (B, H, W, C) images to (B, D) real codes (the encoder
      mean), or a ``CodeTable`` of it.
    rng: one JAX PRNG key (``jax.random.key(0)`` or a raw ``PRNGKey``).
    batch_size: int >= 2, samples per point (disentanglement_lib: 64).
    num_train: int >= 1, training points (disentanglement_lib: 10000).
    num_eval: int >= 1, evaluation points (disentanglement_lib: 5000).
    num_variance_estimate: int >= 2, samples for the global variances (disentanglement_lib:
      10000).
    prune_threshold: float >= 0, the smallest std of an active code (disentanglement_lib: 0.05).
    encode_batch: int >= 1, images per ``represent_fn`` call (None: ``ENCODE_BATCH``; fewer
      images use a smaller power of two >= 64).

  Returns:
    dict with keys ``"factor_vae_score"`` (evaluation accuracy) and ``"factor_vae_score_train"``:
    Python floats in [0, 1] (0 when no code is active); ``"factor_vae_active_dims"``: Python int,
    the number of active codes.
  """
  _check_sampling_args(data, rng, batch_size=batch_size, num_train=num_train, num_eval=num_eval,
                       encode_batch=encode_batch, min_batch=2, metric="factor_vae_score")
  _host.check_int(num_variance_estimate, "num_variance_estimate", 2,
                  hint="a variance needs two samples; disentanglement_lib uses 10000")
  prune_threshold = _host.check_float(prune_threshold, "prune_threshold", 0.0,
                                      hint="disentanglement_lib's study uses 0.05")
  k_var, k_train, k_eval = jax.random.split(rng, 3)
  codes, _ = sample_codes_and_factors(data, represent_fn, num_variance_estimate, k_var,
                                      batch_size=encode_batch,
                                      desc="factor_vae_score (variances)")
  global_var = codes.var(axis=0, ddof=1)
  active = np.sqrt(global_var) >= prune_threshold
  if not active.any():
    return {"factor_vae_score": 0.0, "factor_vae_score_train": 0.0, "factor_vae_active_dims": 0}
  num_codes = codes.shape[1]

  def votes(key, n, split):
    labels, factors = _fixed_factor_batches(data, key, n, batch_size, pairs=False)
    group = _group_codes(data, represent_fn, factors, encode_batch,
                         f"factor_vae_score ({split})")                     # n x B x D
    local_var = group.var(axis=1, ddof=1)
    winner = np.asarray(_votes(jnp.asarray(local_var), jnp.asarray(global_var), jnp.asarray(active)))
    table = np.zeros((data.num_factors, num_codes), np.int64)
    np.add.at(table, (labels, winner), 1)
    return table

  train_votes = votes(k_train, num_train, "train")
  classifier = np.argmax(train_votes, axis=0)
  columns = np.arange(num_codes)
  eval_votes = votes(k_eval, num_eval, "eval")
  return {
      "factor_vae_score": float(eval_votes[classifier, columns].sum() / eval_votes.sum()),
      "factor_vae_score_train": float(train_votes[classifier, columns].sum() / train_votes.sum()),
      "factor_vae_active_dims": int(active.sum()),
  }


def _check_sampling_args(data, rng, *, batch_size, num_train, num_eval, encode_batch, min_batch,
                         metric):
  _host.check_int(batch_size, "batch_size", min_batch,
                  hint=f"{metric} compares codes within a batch; disentanglement_lib uses 64")
  _host.check_int(num_train, "num_train", 1)
  _host.check_int(num_eval, "num_eval", 1)
  _check_encode_batch(encode_batch)
  _check_key(rng)
  if int(data.num_factors) < 2:
    raise ValueError(f"{metric} predicts which factor was fixed: it needs a dataset with >= 2 "
                     f"factors; got {data.num_factors}")


def irs(codes_NxD, factors_NxK, *, diff_quantile: float = 0.99, num_bins: int = 20) -> dict:
  """Interventional Robustness Score: the validated ``jaxdisent.metrics.irs`` (this module once held
  a NumPy copy of the same definition; kept as an alias so old imports keep working).

  References: [suter2019]; code: [locatello2019].

  Args:
    codes_NxD: (N, D) real array of codes (encoder means).
    factors_NxK: (N, K) int array of ground-truth factor classes (1-D: one factor).
    diff_quantile: float in [0, 1] (disentanglement_lib: 0.99).
    num_bins: int in [1, 4096], bins per factor column (disentanglement_lib: 20).

  Returns:
    dict with keys ``"irs"``: Python float; ``"irs_num_active_dims"``: Python int (see
    ``jaxdisent.metrics.disentanglement.irs``).
  """
  return validated_irs(codes_NxD, factors_NxK, diff_quantile=diff_quantile, num_bins=num_bins)
