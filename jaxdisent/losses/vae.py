"""VAE objectives as pure functions (disentanglement_lib conventions).

All reductions follow disentanglement_lib: reconstruction summed over pixels and KL summed over
latents, both averaged over the batch.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import math

import jax
import jax.numpy as jnp
import optax


def bernoulli_reconstruction(logits_BxHxWxC, images_BxHxWxC):
  """Sigmoid cross-entropy between decoder logits and images in [0, 1], summed over pixels.

  For binary images this is -log p(x|z). For grey images disentanglement_lib ([locatello2019])
  subtracts the entropy of the target so a perfect reconstruction scores 0; we do the same.

  Args:
    logits_BxHxWxC: (B, H, W, C) float array, the decoder logits.
    images_BxHxWxC: (B, H, W, C) float array of targets in [0, 1].

  Returns:
    (B,) float array (the inputs' float dtype), the loss of each example (not averaged over the
    batch).
  """
  x = images_BxHxWxC
  ce = optax.sigmoid_binary_cross_entropy(logits_BxHxWxC, x)
  eps = 1e-6
  xc = jnp.clip(x, eps, 1 - eps)
  entropy = -(xc * jnp.log(xc) + (1 - xc) * jnp.log(1 - xc))
  entropy = jnp.where((x == 0) | (x == 1), 0.0, entropy)
  per_example = jnp.sum((ce - entropy).reshape(x.shape[0], -1), axis=1)
  return per_example


def gaussian_kl(mean_BxD, logvar_BxD):
  """KL(N(mean, exp(logvar)) || N(0, I)) per example and latent, shape (B, D).

  The closed-form KL of the VAE's diagonal Gaussian posterior to the standard normal prior.

  Args:
    mean_BxD: (B, D) float array, the encoder means.
    logvar_BxD: (B, D) float array, the encoder log-variances.

  Returns:
    (B, D) float array (the inputs' dtype), not summed.
  """
  return 0.5 * (jnp.square(mean_BxD) + jnp.exp(logvar_BxD) - logvar_BxD - 1.0)


def gaussian_log_density(samples, mean, logvar):
  """log N(samples; mean, exp(logvar)) elementwise.

  Args:
    samples: float array.
    mean: float array broadcastable with `samples`.
    logvar: float array of log-variances broadcastable with `samples`.

  Returns:
    float array of the broadcast shape (the inputs' dtype), the log-density of each entry.
  """
  inv_var = jnp.exp(-logvar)
  return -0.5 * (math.log(2 * math.pi) + logvar + jnp.square(samples - mean) * inv_var)


def total_correlation(z_BxD, mean_PxD, logvar_PxD):
  """Minibatch-weighted-sampling estimate of TC(z) (Chen et al. 2018, beta-TCVAE; [chen2018]).

  log q(z_i) ~ logsumexp_j log q(z_i | x_j) and log prod_d q(z_id) ~ sum_d logsumexp_j
  log q(z_id | x_j), with the pool j over the P posteriors given (the whole global batch when the
  batch is sharded). Like disentanglement_lib ([locatello2019]) we drop the log(N*M) normalisers,
  which only shift the estimate by a constant ((D - 1) log(P * dataset size)) and do not change its
  gradient.

  Args:
    z_BxD: (B, D) float array, the posterior samples.
    mean_PxD: (P, D) float array, the posterior means of the pool.
    logvar_PxD: (P, D) float array, the posterior log-variances of the pool.

  Returns:
    (B,) float array (the inputs' dtype), the TC estimate of each sample (average it for the
    batch value).
  """
  log_qz_prob = gaussian_log_density(z_BxD[:, None, :], mean_PxD[None], logvar_PxD[None])  # BxPxD
  log_qz_product = jnp.sum(jax.nn.logsumexp(log_qz_prob, axis=1), axis=1)
  log_qz = jax.nn.logsumexp(jnp.sum(log_qz_prob, axis=2), axis=1)
  return log_qz - log_qz_product


def anneal_capacity(step, c_max: float, iteration_threshold: int):
  """Linear capacity schedule of Burgess et al. (2018) ([burgess2018]): 0 -> c_max over steps.

  C(step) = min(c_max, c_max * step / iteration_threshold) (threshold floored at 1).

  Args:
    step: integer JAX array (usually a scalar), the training step (``.astype`` is called on it,
      so not a Python int).
    c_max: float, the final capacity (nats).
    iteration_threshold: Python int, steps until the capacity reaches `c_max`.

  Returns:
    float32 array of `step`'s shape.
  """
  return jnp.minimum(c_max, c_max * step.astype(jnp.float32) / float(max(iteration_threshold, 1)))


@dataclasses.dataclass(frozen=True)
class Objective:
  """One member of the beta-VAE family: its loss from the batch means, and what it needs."""
  name: str
  needs_total_correlation: bool
  loss: Callable  # (recon, kl, *, beta, tc, step, c_max, gamma, iteration_threshold) -> (loss, extra)
  reference: str


def _beta_vae(recon, kl, *, beta, **_):
  return recon + beta * kl, {}


def _beta_tcvae(recon, kl, *, beta, tc, **_):
  return recon + kl + (beta - 1.0) * tc, {"tc": tc}


def _annealed_vae(recon, kl, *, step, c_max, gamma, iteration_threshold, **_):
  capacity = anneal_capacity(step, c_max, iteration_threshold)
  return recon + gamma * jnp.abs(kl - capacity), {"capacity": capacity}


# The one table of objectives (``loss.objective``); a new member is one record here.
OBJECTIVES = {o.name: o for o in (
    Objective("beta_vae", False, _beta_vae, "Higgins et al. 2017: recon + beta * KL"),
    Objective("beta_tcvae", True, _beta_tcvae,
              "Chen et al. 2018: recon + KL + (beta - 1) * TC, TC by minibatch-weighted sampling "
              "(so beta=1 is the plain VAE, as in disentanglement_lib)"),
    Objective("annealed_vae", False, _annealed_vae,
              "Burgess et al. 2018: recon + gamma * |KL - C(step)|"),
)}


def get_objective(kind: str) -> Objective:
  """The :class:`Objective` record of ``loss.objective`` (a key of ``OBJECTIVES``).

  Args:
    kind: 'beta_vae', 'beta_tcvae' or 'annealed_vae'.

  Returns:
    the registered :class:`Objective`.

  Raises:
    ValueError: an unknown `kind`.
  """
  if kind not in OBJECTIVES:
    raise ValueError(f"loss.objective={kind!r}: use one of {sorted(OBJECTIVES)}")
  return OBJECTIVES[kind]


def vae_objective(kind: str, recon_B, kl_BxD, *, beta=1.0, tc_B=None, step=None,
                  c_max=25.0, gamma=1000.0, iteration_threshold=100_000):
  """Scalar objective and metrics of one member of the beta-VAE family (see ``OBJECTIVES``).

  beta_vae: recon + beta KL ([higgins2017]); beta_tcvae: recon + KL + (beta - 1) TC ([chen2018]);
  annealed_vae: recon + gamma |KL - C(step)| ([burgess2018]). recon and KL are batch means of the
  per-example sums, as disentanglement_lib ([locatello2019]).

  Args:
    kind: 'beta_vae', 'beta_tcvae' or 'annealed_vae'.
    recon_B: (B,) float array, the reconstruction loss per example
      (:func:`bernoulli_reconstruction`).
    kl_BxD: (B, D) float array, the KL per example and latent (:func:`gaussian_kl`).
    beta: float, the KL / TC weight (beta_vae, beta_tcvae).
    tc_B: (B,) float array of :func:`total_correlation` (beta_tcvae only; ignored otherwise).
    step: scalar integer array, the training step (annealed_vae only).
    c_max: float, the final capacity (annealed_vae).
    gamma: float, the capacity weight (annealed_vae).
    iteration_threshold: int, steps of the capacity ramp (annealed_vae).

  Returns:
    (loss, metrics): loss a scalar float array; metrics a dict of scalar arrays "recon", "kl",
    "elbo" (= -(recon + kl)), "tc" (beta_tcvae) or "capacity" (annealed_vae), and
    "kl_per_latent", a (D,) float array (batch mean of `kl_BxD`).

  Raises:
    ValueError: an unknown `kind`.
  """
  objective = get_objective(kind)
  recon = jnp.mean(recon_B)
  kl = jnp.mean(jnp.sum(kl_BxD, axis=1))
  metrics = {"recon": recon, "kl": kl, "elbo": -(recon + kl)}
  tc = jnp.mean(tc_B) if objective.needs_total_correlation else None
  loss, extra = objective.loss(recon, kl, beta=beta, tc=tc, step=step, c_max=c_max, gamma=gamma,
                               iteration_threshold=iteration_threshold)
  metrics.update(extra)
  metrics["kl_per_latent"] = jnp.mean(kl_BxD, axis=0)
  return loss, metrics
