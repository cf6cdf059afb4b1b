"""Sparse autoencoders on (vision-language) embeddings, trained through the shared engine.

Training details ([bussmann2024], [gao2024]; docs/references.md): inputs scaled to unit mean squared norm (scale from
the first batches, undone on output), b_dec at the geometric median (or mean) of a first batch,
W_enc = W_dec^T at init, unit-norm decoder rows (gradient component parallel to each row removed,
rows renormalised after each step), AuxK on dead latents, warmup + gradient clipping, and for
BatchTopK an inference threshold tracked as an EMA of the smallest kept activation.
"""

from __future__ import annotations

import json
import math
import os

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from jaxdisent.losses import sae as sae_losses
from jaxdisent.methods.base import Method
from jaxdisent.models.sae import SparseAutoencoder


def geometric_median(points_NxD, iterations: int = 30):
  """Weiszfeld's algorithm, started at the mean."""
  median = points_NxD.mean(axis=0)

  def body(_, m):
    weights = 1.0 / jnp.maximum(jnp.linalg.norm(points_NxD - m, axis=1), 1e-8)
    return (weights[:, None] * points_NxD).sum(0) / weights.sum()

  return lax.fori_loop(0, iterations, body, median)


def make_embedding_data(data_config):
  if data_config.source == "synthetic":
    from jaxdisent.data.synthetic_vlm import SyntheticVLM  # pylint: disable=g-import-not-at-top
    s = data_config.synthetic
    return SyntheticVLM(dim=s.dim, num_shared=s.num_shared, num_image_only=s.num_image_only,
                        num_text_only=s.num_text_only, active_per_pair=s.active_per_pair,
                        modality_gap=s.modality_gap, noise=s.noise, seed=s.seed)
  if data_config.source == "file":
    from jaxdisent.data.embeddings import EmbeddingSource  # pylint: disable=g-import-not-at-top
    if not data_config.path:
      raise ValueError("data.source='file' needs --config.data.path=EMBEDDINGS.npy|.npz|.safetensors")
    return EmbeddingSource(data_config.path, data_config.key or None,
                           data_config.text_path or None, data_config.text_key or None)
  raise ValueError(f"data.source must be 'synthetic' or 'file', got {data_config.source!r}")


class SAEMethod(Method):
  name = "sae"
  evaluators = ("dictionary",)

  def __init__(self, config):
    super().__init__(config)
    self.data = make_embedding_data(config.data)
    m = config.model
    self.dim = int(self.data.dim)
    self.kind = m.kind
    self.k = int(m.k)
    self.model = SparseAutoencoder(self.dim, int(m.dict_size), m.kind,
                                   jumprelu_init_threshold=m.jumprelu_init_threshold)

  # ---- engine hooks ------------------------------------------------------------------------------

  def learning_rate(self):
    if self.config.optimizer.learning_rate:
      return float(self.config.optimizer.learning_rate)
    return 2e-4 / math.sqrt(self.config.model.dict_size / 2 ** 14)  # 2e-4 at 2^14 latents

  def local_batch(self, seed, step, start, size):
    return self.data.batch(seed, step, start, size)

  def init(self, rng):
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

  def loss(self, params, model_state, batch, rng, step, axis_name=None):
    del rng
    cfg = self.config.loss
    x = batch["x"] / model_state["input_scale"]
    pre = self.model.apply({"params": params}, x, method=SparseAutoencoder.pre_acts)
    metrics = {}
    new_state = dict(model_state)
    if self.kind == "batchtopk":
      codes, kth = sae_losses.batchtopk(pre, self.k, axis_name)
      started = step >= cfg.threshold_start_step
      ema = jnp.where(model_state["threshold"] < 0, kth,
                      cfg.threshold_beta * model_state["threshold"] + (1 - cfg.threshold_beta) * kth)
      new_state["threshold"] = jnp.where(started & (kth > 0), ema, model_state["threshold"])
      metrics["threshold"] = new_state["threshold"]
    elif self.kind == "topk":
      codes = sae_losses.topk(pre, self.k)
    elif self.kind == "relu":
      codes = pre
    else:
      threshold = jnp.exp(params["log_threshold"])
      codes = sae_losses.jumprelu(pre, threshold, cfg.jumprelu_bandwidth)
    x_hat = self.model.apply({"params": params}, codes, method=SparseAutoencoder.decode)
    mse = jnp.mean(sae_losses.squared_error(x, x_hat))
    loss = mse
    if self.kind == "relu":
      sparsity = jnp.mean(jnp.sum(jnp.abs(codes) * jnp.linalg.norm(params["W_dec"], axis=1), 1))
      loss = loss + cfg.l1_coeff * sparsity
    if self.kind == "jumprelu":
      l0_penalty = jnp.mean(jnp.sum(sae_losses.step_function(
          pre, jnp.exp(params["log_threshold"]), cfg.jumprelu_bandwidth), axis=1))
      loss = loss + cfg.jumprelu_l0_coeff * l0_penalty
    # dead-latent bookkeeping over the global batch
    fired = jnp.any(codes > 0, axis=0)
    if axis_name is not None:
      fired = lax.pmax(fired.astype(jnp.int32), axis_name) > 0
    batch_tokens = sae_losses.global_batch_size(x.shape[0], axis_name)
    since = jnp.where(fired, 0, model_state["tokens_since_fired"] + batch_tokens)
    new_state["tokens_since_fired"] = since
    dead = model_state["tokens_since_fired"] >= cfg.dead_tokens
    if cfg.auxk_alpha > 0 and self.kind in ("batchtopk", "topk"):
      k_aux = cfg.k_aux or self.dim // 2
      aux = sae_losses.auxk_loss(pre, x - x_hat, dead, params["W_dec"], k_aux, axis_name)
      loss = loss + cfg.auxk_alpha * aux
      metrics["auxk_loss"] = aux
    metrics.update({
        "mse": mse,
        "fvu": sae_losses.fraction_of_variance_unexplained(x, x_hat, axis_name),
        "l0": jnp.mean(jnp.sum(codes > 0, axis=1)),
        "dead_fraction": jnp.mean(dead),
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
    if self.kind == "batchtopk":
      threshold = model_state["threshold"]
      return jnp.where(threshold > 0, sae_losses.threshold_codes(pre, threshold),
                       sae_losses.topk(pre, self.k))
    if self.kind == "topk":
      return sae_losses.topk(pre, self.k)
    if self.kind == "relu":
      return pre
    return pre * (pre > jnp.exp(params["log_threshold"]))

  def reconstruct(self, params, model_state, x_NxD):
    codes = self.encode(params, model_state, x_NxD)
    x_hat = self.model.apply({"params": params}, codes, method=SparseAutoencoder.decode)
    return codes, x_hat * model_state["input_scale"]

  def evaluate(self, state, num_pairs: int = 4096, seed: int = 1234) -> dict:
    """Dictionary measures on held-out data (paired and planted-truth ones when available)."""
    from jaxdisent.metrics import dictionary as D  # pylint: disable=g-import-not-at-top
    params, model_state = state.params, state.model_state
    run = jax.jit(lambda x: self.reconstruct(params, model_state, x))
    out = {"kind": self.kind, "dict_size": int(self.config.model.dict_size), "k": self.k}
    atoms = np.asarray(params["W_dec"])
    if hasattr(self.data, "pairs"):
      image, text, _, _ = self.data.pairs(jax.random.key(seed), num_pairs)
      codes_img, rec_img = run(image)
      codes_txt, rec_txt = run(text)
      x = np.concatenate([image, text])
      x_hat = np.concatenate([rec_img, rec_txt])
      codes = np.concatenate([codes_img, codes_txt])
      truth = self.data.truth()
      recovery = D.concept_recovery(truth["directions"], atoms)
      out["concept_recovery"] = recovery["mean_max_cosine"]
      out["recovered_fraction_0.9"] = recovery["recovered_fraction_0.9"]
      mds = D.modality_dominance(codes_img, codes_txt)
      out["mds_counts"] = mds["counts"]
    else:
      batch = self.data.batch(seed, 0, 0, min(2 * num_pairs, self.data.num_rows))
      x = np.asarray(batch["x"])
      codes, x_hat = run(x)
    out.update({"fvu": D.fvu(x, x_hat), "r2": D.r2(x, x_hat), "l0": D.l0(codes),
                "dead_fraction": D.dead_fraction(codes), "dense_fraction": D.dense_fraction(codes)})
    return out

METHOD = SAEMethod
