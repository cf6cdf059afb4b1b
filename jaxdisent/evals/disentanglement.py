"""Evaluators of the beta-VAE family: the disentanglement metrics and held-out reconstruction."""

from __future__ import annotations

import json
import os

import jax
import jax.numpy as jnp
import numpy as np

from jaxdisent.evals.base import register


def _split_scalars(results: dict, out_dir: str, filename: str) -> dict:
  """Scalars stay; everything else (lists, dicts, strings) goes to a JSON file beside them."""
  scalars, extra = {}, {}
  for key, value in results.items():
    if isinstance(value, (bool, int, float, np.integer, np.floating)) or (
        hasattr(value, "shape") and np.shape(value) == ()):
      scalars[key] = float(value) if not isinstance(value, (bool, int)) else value
    else:
      extra[key] = value
  if extra:
    with open(os.path.join(out_dir, filename), "w") as f:
      json.dump(extra, f, indent=2, default=lambda v: np.asarray(v).tolist())
  return scalars


@register("disentanglement")
def disentanglement(ctx, settings) -> dict:
  """MIG, SAP, DCI, modularity/explicitness, IRS, FactorVAE and BetaVAE scores on the encoder mean.

  Settings: num_train / num_eval (disentanglement_lib: 10,000 / 5,000), num_bins (20),
  dci_importance (gbt | random_forest), code_table (True: encode each image of the dataset once
  when the metrics would draw more images than it has; metrics.CodeTable). Needs ground-truth
  factors (dSprites, Shapes3D, ...).
  """
  from jaxdisent.data import GroundTruthData  # pylint: disable=g-import-not-at-top
  method = ctx.method
  if not hasattr(method, "representation_fn") or not isinstance(getattr(method, "data", None),
                                                                 GroundTruthData):
    raise ValueError(f"evaluator 'disentanglement' needs a model with an encoder trained on data "
                     f"with ground-truth factors; {type(method).__name__} on "
                     f"{type(getattr(method, 'data', None)).__name__} has none")
  num_train, num_eval = int(settings.get("num_train", 10_000)), int(settings.get("num_eval", 5_000))
  num_bins = int(settings.get("num_bins", 20))
  importance = settings.get("dci_importance", "gbt")
  if num_train < 2 or num_eval < 2 or num_bins < 1:
    raise ValueError(f"evals.disentanglement: num_train={num_train}, num_eval={num_eval} must be "
                     f">= 2 and num_bins={num_bins} >= 1")
  if importance not in ("gbt", "random_forest"):
    raise ValueError(f"evals.disentanglement.dci_importance={importance!r}: use gbt or random_forest")
  results = method.evaluate(ctx.state, ctx.workdir, num_train=num_train, num_eval=num_eval,
                            num_bins=num_bins, dci_importance=importance, seed=ctx.seed,
                            log=ctx.log, code_table=bool(settings.get("code_table", True)))
  return _split_scalars(results, ctx.out_dir, "details.json")


@register("reconstruction")
def reconstruction(ctx, settings) -> dict:
  """Held-out Bernoulli reconstruction (nats/image), KL and active latents (KL > 0.01 nats)."""
  from jaxdisent.losses import vae as vae_losses  # pylint: disable=g-import-not-at-top
  from jaxdisent.models.vae import VAE  # pylint: disable=g-import-not-at-top
  method = ctx.method
  count = int(settings.get("num_examples", 512))
  if count < 1:
    raise ValueError(f"evals.reconstruction.num_examples={count} must be >= 1")
  _, images = method.data.sample(jax.random.key(ctx.seed + 777), count)
  params = ctx.state.params

  @jax.jit
  def run(x):
    mean, logvar = method.model.apply({"params": params}, x, method=VAE.encode)
    logits = method.model.apply({"params": params}, mean, method=VAE.decode)
    return (vae_losses.bernoulli_reconstruction(logits, x),
            vae_losses.gaussian_kl(mean, logvar))

  recon, kl = [], []
  for start in range(0, count, 256):
    r, k = run(jnp.asarray(images[start:start + 256]))
    recon.append(np.asarray(r))
    kl.append(np.asarray(k))
  recon, kl = np.concatenate(recon), np.concatenate(kl)
  kl_per_latent = kl.mean(axis=0)
  np.save(os.path.join(ctx.out_dir, "kl_per_latent.npy"), kl_per_latent)
  return {"reconstruction": float(recon.mean()), "kl": float(kl.sum(axis=1).mean()),
          "active_latents": int(np.sum(kl_per_latent > 0.01))}
