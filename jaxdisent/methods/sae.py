"""Sparse autoencoders on (vision-language) embeddings, trained through the shared engine.

Training details ([bussmann2024], [gao2024]; docs/references.md): inputs scaled to unit mean squared norm (scale from
the first batches, undone on output), b_dec at the geometric median (or mean) of a first batch,
W_enc = W_dec^T at init, unit-norm decoder rows (gradient component parallel to each row removed,
rows renormalised after each step), AuxK on dead latents, warmup + gradient clipping, and for
BatchTopK an inference threshold tracked as an EMA of the smallest kept activation.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from jaxdisent.data import make_source
from jaxdisent.io import sae_formats
from jaxdisent.losses import sae as sae_losses
from jaxdisent.losses import sparse_codes
from jaxdisent.losses import sae_kinds
from jaxdisent.methods.base import Method
from jaxdisent.metrics import dictionary as D
from jaxdisent.models.sae import SparseAutoencoder


@functools.partial(jax.jit, static_argnames="iterations")
def geometric_median(points_NxD, iterations: int = 30):
  """Weiszfeld's algorithm, started at the mean (one compiled program per shape: run eagerly, the
  loop's body was a new function, so each init traced and compiled it again)."""
  median = points_NxD.mean(axis=0)

  def body(_, m):
    weights = 1.0 / jnp.maximum(jnp.linalg.norm(points_NxD - m, axis=1), 1e-8)
    return (weights[:, None] * points_NxD).sum(0) / weights.sum()

  return lax.fori_loop(0, iterations, body, median)


FORMULATIONS = ("auto", "sparse", "dense")
# Our default nesting for Matryoshka kinds: prefixes of 1/16, 1/8, 1/4, 1/2 and all of the
# dictionary (dictionary_learning's trainer has no default: its group_fractions is required).
DEFAULT_GROUP_FRACTIONS = (0.0625, 0.0625, 0.125, 0.25, 0.5)


def _numbers(value, key):
  """A tuple of floats from a config value: a tuple / list, or a 'a,b,c' string from the CLI."""
  if isinstance(value, str):
    value = [v for v in value.replace("(", "").replace(")", "").split(",") if v.strip()]
  try:
    return tuple(float(v) for v in value)
  except (TypeError, ValueError):
    raise ValueError(f"{key}={value!r} must be a list of numbers, e.g. 0.25,0.75") from None


def matryoshka_groups(config):
  """(group sizes, group weights) of a Matryoshka SAE config: ``model.group_fractions`` (default
  :data:`DEFAULT_GROUP_FRACTIONS`) and ``loss.group_weights`` (empty: 1/G each, as
  dictionary_learning). Raises naming the key on a bad value."""
  m, loss = config.model, config.get("loss", {})
  fractions = _numbers(m.get("group_fractions", DEFAULT_GROUP_FRACTIONS), "model.group_fractions")
  sizes = sae_losses.matryoshka_group_sizes(int(m.dict_size), fractions)
  weights = _numbers(loss.get("group_weights", ()) or (), "loss.group_weights")
  if not weights:
    weights = (1.0 / len(sizes),) * len(sizes)
  if len(weights) != len(sizes):
    raise ValueError(f"loss.group_weights has {len(weights)} entries but model.group_fractions "
                     f"gives {len(sizes)} groups: one weight per group (or empty for 1/G each)")
  if any(not math.isfinite(w) or w < 0 for w in weights) or sum(weights) <= 0:
    raise ValueError(f"loss.group_weights={weights} must be finite numbers >= 0, not all 0")
  return sizes, weights
B_DEC_INITS = ("geometric_median", "mean", "zeros")


def validate_sae_config(config) -> None:
  """Every SAE model.* / loss.* key with a domain, checked before anything is written (the method
  is built before config.json): a ValueError naming the key, its value and the allowed range."""
  m, loss = config.model, config.get("loss", {})

  def integer(section, key, low, high=None, note=""):
    value = section.get(key, None)
    if value is None:
      return None
    if (isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low
        or (high is not None and value > high)):
      bound = f"in [{low}, {high}]" if high is not None else f">= {low}"
      prefix = "model" if section is m else "loss"
      raise ValueError(f"{prefix}.{key}={value!r} must be an integer {bound}" +
                       (f" ({note})" if note else ""))
    return int(value)

  def number(section, key, low, high=None, low_open=False, note=""):
    value = section.get(key, None)
    if value is None:
      return
    ok = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
    ok = ok and math.isfinite(value) and (value > low if low_open else value >= low) and (
        high is None or value <= high)
    if not ok:
      bound = (f"in [{low}, {high}]" if high is not None else
               f"{'>' if low_open else '>='} {low}")
      prefix = "model" if section is m else "loss"
      raise ValueError(f"{prefix}.{key}={value!r} must be a finite number {bound}" +
                       (f" ({note})" if note else ""))

  spec = sae_kinds.get(m.kind)
  dict_size = integer(m, "dict_size", 1, note="the number of latents")
  if spec.uses_k:
    integer(m, "k", 1, dict_size, note=f"latents kept per sample; at most dict_size={dict_size}")
  if spec.nested:
    matryoshka_groups(config)
  integer(m, "init_batch", 1)
  integer(m, "row_cap", 0, note="0 -> 4k")
  integer(m, "sparse_chunk", 1)
  number(m, "sparse_capacity", 0.0, note="0 -> automatic")
  number(m, "jumprelu_init_threshold", 0.0, low_open=True)
  if m.get("b_dec_init", "zeros") not in B_DEC_INITS:
    raise ValueError(f"model.b_dec_init={m.b_dec_init!r} must be one of {B_DEC_INITS}")
  formulation = m.get("formulation", "auto")
  if formulation not in FORMULATIONS:
    raise ValueError(f"model.formulation must be one of {FORMULATIONS}, got {formulation!r}")
  if formulation == "sparse" and spec.sparse_codes is None:
    raise ValueError(f"SAE kind {m.kind!r} has no sparse formulation (its active set is not "
                     "bounded); use model.formulation=dense or auto")
  integer(loss, "k_aux", 0, dict_size, note="0 -> d_in // 2")
  integer(loss, "dead_tokens", 1)
  integer(loss, "threshold_start_step", 0)
  number(loss, "threshold_beta", 0.0, 1.0, note="the EMA decay of the inference threshold")
  for key in ("auxk_alpha", "l1_coeff", "jumprelu_l0_coeff"):
    number(loss, key, 0.0)
  number(loss, "jumprelu_bandwidth", 0.0, low_open=True)


def resolve_formulation(formulation: str, spec, platform: str | None = None) -> str:
  """``model.formulation`` -> 'sparse' or 'dense' for this kind on ``platform`` (JAX's default
  backend when None). ``auto``: sparse on CPU for kinds that have it (the measured 4.3x against
  dictionary_learning, docs/performance.md), dense on GPU / TPU. There the kept-entry lists'
  scatter-adds are what costs: an H200 ran the d768 x16 B4096 step at 164 steps/s sparse with
  XLA's default (atomic, not bitwise reproducible) scatters and at 8.2 steps/s with
  ``--xla_gpu_deterministic_ops`` (which jaxdisent sets for exact resume), while the dense form,
  whose only scatter is AuxK's small B x k_aux one, ran 187 steps/s (in bfloat16) with it."""
  if formulation == "dense" or spec.sparse_codes is None:
    return "dense"
  if formulation == "sparse":
    return "sparse"
  platform = jax.default_backend() if platform is None else platform
  return "sparse" if platform == "cpu" else "dense"


class SAEMethod(Method):
  """Training step formulations (``model.formulation``):

  * ``sparse`` (``auto`` picks it on CPU for kinds that have one: batchtopk, topk; dense on
    GPU / TPU, see :func:`resolve_formulation`): the only dense
    product is the encoder forward x W_enc; decode, the decoder gradient, the gradient reaching
    W_enc / b_enc / b_dec and AuxK's decode run on the kept entries (see
    :mod:`jaxdisent.losses.sparse_codes`). Same loss and gradients as ``dense`` to float32
    rounding; steps whose kept entries overflow BatchTopK's list (ties, an uneven split over
    devices) run ``dense``.
  * ``dense``: codes as a B x M matrix and autodiff (the reference formulation; relu, jumprelu).

  Timing follows dictionary_learning's BatchTopKTrainer (and OpenAI's reference): the threshold
  EMA updates when step > threshold_start_step, and AuxK's dead set is read from the counters
  *after* the current batch has updated them.

  Logged metrics use the evaluation measures' definitions (jaxdisent.metrics.dictionary):
  ``fvu`` = sum ||x - x_hat||^2 / sum ||x - mean_batch x||^2 over the global batch, ``l0`` = mean
  non-zero codes per sample, ``dead_fraction`` = fraction of latents that fire on no sample of
  the global batch. ``auxk_dead_fraction`` is the AuxK counter's notion (no firing for
  ``loss.dead_tokens`` tokens).
  """

  name = "sae"
  evaluators = ("dictionary",)

  def __init__(self, config):
    super().__init__(config)
    validate_sae_config(config)
    self.data = make_source(config, "embeddings")    # data.source: synthetic | file
    m = config.model
    self.dim = int(self.data.dim)
    self.kind = m.kind
    self.spec = sae_kinds.get(m.kind)
    self.k = int(m.k)
    self.formulation = resolve_formulation(m.get("formulation", "auto"), self.spec)
    self.model = SparseAutoencoder(self.dim, int(m.dict_size), self.spec.jumprelu_params,
                                   jumprelu_init_threshold=m.jumprelu_init_threshold)
    self.group_sizes, self.group_weights = (matryoshka_groups(config) if self.spec.nested
                                            else ((int(m.dict_size),), (1.0,)))

  # ---- engine hooks ------------------------------------------------------------------------------

  def learning_rate(self):
    if self.config.optimizer.learning_rate:
      return float(self.config.optimizer.learning_rate)
    return 2e-4 / math.sqrt(self.config.model.dict_size / 2 ** 14)  # 2e-4 at 2^14 latents

  def local_batch(self, seed, step, start, size):
    return self.data.batch(seed, step, start, size)

  def init(self, rng):
    if self.config.model.get("init_from", ""):
      return self._init_from_file(self.config.model.init_from)
    params = self.model.init(rng, jnp.zeros((1, self.dim)))["params"]
    first = jnp.asarray(self.data.batch(self.config.seed, 0, 0, self.config.model.init_batch)["x"])
    scale = jnp.sqrt(jnp.mean(jnp.sum(jnp.square(first), axis=1)))
    if not bool(jnp.isfinite(scale)) or float(scale) == 0.0:
      raise ValueError("the first batch of embeddings has zero or non-finite norm")
    scaled = first / scale
    if self.config.model.b_dec_init == "geometric_median":
      params["b_dec"] = geometric_median(scaled)
    elif self.config.model.b_dec_init == "mean":
      params["b_dec"] = scaled.mean(axis=0)
    elif self.config.model.b_dec_init != "zeros":
      raise ValueError("model.b_dec_init must be geometric_median, mean or zeros")
    model_state = {"input_scale": scale, "threshold": jnp.float32(-1.0),
                   "tokens_since_fired": jnp.zeros((self.config.model.dict_size,), jnp.int32)}
    return params, model_state

  def _init_from_file(self, path):
    """Start from an SAE saved by SAELens or sparsify (or exported by launch.export_sae)."""
    sae = sae_formats.load(path)
    m = self.config.model
    wrong = []
    if sae.kind != self.kind:
      wrong.append(f"kind {sae.kind!r} (set --config.model.kind={sae.kind})")
    if sae.d_in != self.dim:
      wrong.append(f"d_in {sae.d_in} but the embeddings have {self.dim} dimensions")
    if sae.d_sae != int(m.dict_size):
      wrong.append(f"{sae.d_sae} latents (set --config.model.dict_size={sae.d_sae})")
    if self.spec.uses_k and sae.k and sae.k != self.k:
      wrong.append(f"k={sae.k} (set --config.model.k={sae.k})")
    if self.spec.nested and sae.group_sizes and tuple(sae.group_sizes) != self.group_sizes:
      wrong.append(f"group sizes {tuple(sae.group_sizes)}, this config gives {self.group_sizes} "
                   "(set --config.model.group_fractions)")
    if wrong:
      raise ValueError(f"the SAE in {path} does not fit this config: " + "; ".join(wrong))
    params = {name: jnp.asarray(value) for name, value in sae.params.items()}
    model_state = {"input_scale": jnp.float32(sae.input_scale),
                   "threshold": jnp.float32(sae.threshold),
                   "tokens_since_fired": jnp.zeros((int(m.dict_size),), jnp.int32)}
    return params, model_state

  def portable(self, params, model_state):
    """This SAE as a :class:`jaxdisent.io.sae_formats.PortableSAE` (for export)."""
    return sae_formats.PortableSAE(
        self.kind, self.k if self.spec.uses_k else 0,
        {name: np.asarray(value) for name, value in params.items()},
        float(model_state["input_scale"]), float(model_state["threshold"]),
        group_sizes=self.group_sizes if self.spec.nested else ())

  def _context(self, axis_name):
    m = self.config.model
    return sae_kinds.Context(
        k=self.k, loss=self.config.loss, axis_name=axis_name,
        row_cap=int(m.get("row_cap", 0)) or None,
        capacity_factor=float(m.get("sparse_capacity", 0.0)),
        chunk=int(m.get("sparse_chunk", sparse_codes.DEFAULT_CHUNK)))

  def _dense_terms(self, params, x, ctx, dead_from):
    """Loss terms with codes as a dense B x M matrix (autodiff throughout)."""
    pre = self.model.apply({"params": params}, x, method=SparseAutoencoder.pre_acts)
    codes, stats = self.spec.dense_codes(pre, params, ctx)
    if self.spec.nested:
      w_dec = params["W_dec"]
      partials = [codes[:, s:e] @ w_dec[s:e] for s, e in self._group_bounds()]
      loss, x_hat, metrics = self._nested_loss(x, partials, params["b_dec"])
    else:
      x_hat = self.model.apply({"params": params}, codes, method=SparseAutoencoder.decode)
      loss = jnp.mean(sae_losses.squared_error(x, x_hat))
      metrics = {}
    if self.spec.penalty is not None:
      term, penalty_metrics = self.spec.penalty(pre, codes, params, ctx)
      loss, metrics = loss + term, dict(penalty_metrics)
    fired = jnp.any(codes > 0, axis=0)
    l0 = jnp.mean(jnp.sum(codes > 0, axis=1))
    dead = dead_from(fired)
    aux = None
    if self._uses_auxk():
      aux = sae_losses.auxk_loss(pre, x - x_hat, dead, params["W_dec"], self._k_aux(),
                                 ctx.axis_name)
    return loss, x_hat, fired, l0, stats, aux, metrics

  def _sparse_terms(self, params, x, pre, codes, ctx, dead_from):
    """The same terms from the kept entries only (`pre` is the detached dense forward)."""
    values = sparse_codes.encoder_values(codes, x, params["b_dec"], params["W_enc"],
                                         params["b_enc"], ctx.chunk)
    metrics = {}
    if self.spec.nested:
      partials = [sparse_codes.decode(
          codes._replace(values=jnp.where((codes.cols >= s) & (codes.cols < e), values, 0.0)),
          params["W_dec"], x.shape[0], ctx.chunk) for s, e in self._group_bounds()]
      loss, x_hat, metrics = self._nested_loss(x, partials, params["b_dec"])
    else:
      x_hat = sparse_codes.decode(codes._replace(values=values), params["W_dec"], x.shape[0],
                                  ctx.chunk) + params["b_dec"]
      loss = jnp.mean(sae_losses.squared_error(x, x_hat))
    fired = sparse_codes.fired(codes, pre.shape[1])
    l0 = jnp.sum(codes.values > 0) / x.shape[0]
    dead = dead_from(fired)
    aux = None
    if self._uses_auxk():
      aux = sae_losses.auxk_loss_sparse(pre, x, params["b_dec"], params["W_enc"], params["b_enc"],
                                        x - x_hat, dead, params["W_dec"], self._k_aux(),
                                        ctx.axis_name, ctx.chunk)
    return loss, x_hat, fired, l0, aux, metrics

  def _group_bounds(self):
    """[(start, end)] of the nested groups' latents."""
    ends = np.cumsum(self.group_sizes)
    return [(int(e - s), int(e)) for s, e in zip(self.group_sizes, ends)]

  def _nested_loss(self, x, partials, b_dec):
    loss, x_hat, errors = sae_losses.nested_reconstruction_loss(x, partials, b_dec,
                                                                self.group_weights)
    # as dictionary_learning logs them: the smallest and largest per-prefix squared error
    return loss, x_hat, {"prefix_mse_min": jnp.min(errors), "prefix_mse_max": jnp.max(errors)}

  def _uses_auxk(self):
    return self.spec.auxk and self.config.loss.auxk_alpha > 0

  def _k_aux(self):
    return int(self.config.loss.k_aux or max(1, self.dim // 2))

  def loss(self, params, model_state, batch, rng, step, axis_name=None):
    del rng
    cfg = self.config.loss
    ctx = self._context(axis_name)
    # in the batch's dtype: bfloat16 under train.compute_dtype (the float32 scale would promote)
    x = (batch["x"] / model_state["input_scale"]).astype(batch["x"].dtype)
    batch_tokens = sae_losses.global_batch_size(x.shape[0], axis_name)

    def global_fired(fired):
      if axis_name is not None:
        fired = lax.pmax(fired.astype(jnp.int32), axis_name) > 0
      return fired

    def dead_from(fired):
      # the counters after this batch, as dictionary_learning / OpenAI decide AuxK's dead set
      since = jnp.where(global_fired(fired), 0, model_state["tokens_since_fired"] + batch_tokens)
      return since >= cfg.dead_tokens

    def dense_branch(params):
      loss, x_hat, fired, l0, stats, aux, metrics = self._dense_terms(params, x, ctx, dead_from)
      return loss, (x_hat, fired, l0, stats, aux, metrics)

    if self.formulation == "sparse":
      pre = lax.stop_gradient(
          self.model.apply({"params": params}, x, method=SparseAutoencoder.pre_acts))
      codes, sparse_stats, use_dense = self.spec.sparse_codes(pre, ctx)

      def sparse_branch(params):
        loss, x_hat, fired, l0, aux, metrics = self._sparse_terms(params, x, pre, codes, ctx,
                                                                  dead_from)
        return loss, (x_hat, fired, l0, sparse_stats, aux, metrics)

      loss, (x_hat, fired, l0, stats, aux, metrics) = lax.cond(
          use_dense, dense_branch, sparse_branch, params)
    else:
      loss, (x_hat, fired, l0, stats, aux, metrics) = dense_branch(params)

    fired = global_fired(fired)
    since = jnp.where(fired, 0, model_state["tokens_since_fired"] + batch_tokens)
    new_state = dict(model_state, tokens_since_fired=since)
    if aux is not None:
      loss = loss + cfg.auxk_alpha * aux
      metrics["auxk_loss"] = aux
    if self.spec.learns_threshold:
      kth = stats["kth"]
      ema = jnp.where(model_state["threshold"] < 0, kth,
                      cfg.threshold_beta * model_state["threshold"] + (1 - cfg.threshold_beta) * kth)
      started = step > cfg.threshold_start_step
      new_state["threshold"] = jnp.where(started & (kth > 0), ema, model_state["threshold"])
      metrics["threshold"] = new_state["threshold"]
    metrics.update({
        "mse": jnp.mean(sae_losses.squared_error(x, x_hat)),
        "fvu": sae_losses.fraction_of_variance_unexplained(x, x_hat, axis_name),
        "l0": l0,
        "dead_fraction": 1.0 - jnp.mean(fired),
        "auxk_dead_fraction": jnp.mean(since >= cfg.dead_tokens),
    })
    return loss, (metrics, new_state)

  def transform_grads(self, grads, params):
    """Remove the part of each decoder row's gradient parallel to the (unit) row."""
    w = params["W_dec"]
    g = grads["W_dec"]
    grads = dict(grads)
    grads["W_dec"] = g - jnp.sum(g * w, axis=1, keepdims=True) * w
    return grads

  def post_update(self, params):
    params = dict(params)
    w = params["W_dec"]
    params["W_dec"] = w / jnp.maximum(jnp.linalg.norm(w, axis=1, keepdims=True), 1e-12)
    return params

  # ---- inference -----------------------------------------------------------------------------

  def encode(self, params, model_state, x_NxD):
    """Codes at inference: BatchTopK uses the learned global threshold (TopK until one exists)."""
    x = jnp.asarray(x_NxD, jnp.float32) / model_state["input_scale"]
    pre = self.model.apply({"params": params}, x, method=SparseAutoencoder.pre_acts)
    return self.spec.inference_codes(pre, params, model_state, self.k)

  def reconstruct(self, params, model_state, x_NxD):
    codes = self.encode(params, model_state, x_NxD)
    x_hat = self.model.apply({"params": params}, codes, method=SparseAutoencoder.decode)
    return codes, x_hat * model_state["input_scale"]

  def prefix_r2(self, params, model_state, x_NxD, codes_NxM) -> dict:
    """R^2 of each nested prefix's reconstruction from the inference codes (the Matryoshka
    property: every prefix is a usable dictionary on its own): ``prefix_r2`` (a list, one per
    prefix, in nesting order; the last is the whole dictionary), ``prefix_sizes`` and
    ``smallest_prefix_r2``."""
    codes = np.asarray(codes_NxM)
    w_dec = np.asarray(params["W_dec"], np.float64)
    scale = float(model_state["input_scale"])
    recon = np.broadcast_to(np.asarray(params["b_dec"], np.float64), (codes.shape[0], w_dec.shape[1]))
    r2s = []
    for s, e in self._group_bounds():
      recon = recon + codes[:, s:e].astype(np.float64) @ w_dec[s:e]
      r2s.append(float(D.r2(np.asarray(x_NxD, np.float64), recon * scale)))
    return {"prefix_r2": r2s, "prefix_sizes": [e for _, e in self._group_bounds()],
            "smallest_prefix_r2": r2s[0]}


METHOD = SAEMethod
