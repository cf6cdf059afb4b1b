"""Evaluators of the beta-VAE family: the disentanglement metrics and held-out reconstruction."""

from __future__ import annotations

import functools
import json
import os

import jax
import jax.numpy as jnp
import numpy as np

from jaxdisent.evals.base import register
from jaxdisent import metrics
from jaxdisent.data import GroundTruthData
from jaxdisent.losses import vae as vae_losses
from jaxdisent.models import vae as vae_model
from jaxdisent.models.vae import VAE


@functools.partial(jax.jit, static_argnums=0)
def _reconstruction_terms(model, params, x_NxHxWxC):
  """Per-image Bernoulli reconstruction at the encoder mean (N,) and per-latent KL (N, D); the
  parameters an argument (models.vae's evaluation programs)."""
  mean, logvar = model.apply({"params": params}, x_NxHxWxC, method=VAE.encode)
  logits = model.apply({"params": params}, mean, method=VAE.decode)
  return (vae_losses.bernoulli_reconstruction(logits, x_NxHxWxC),
          vae_losses.gaussian_kl(mean, logvar))


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


def disentanglement_scores(method, state, workdir, *, num_train=10_000, num_eval=5_000, num_bins=20,
             dci_importance="gbt", seed=0, log=print, code_table=True) -> dict:
  """All disentanglement metrics on a beta-VAE-family method's encoder mean; plots to WORKDIR/plots.

  Sizes default to disentanglement_lib's (10k train / 5k eval points for every metric).
  Each metric shows a progress bar on stderr when it is a terminal (or JAXDISENT_PROGRESS=1):
  encoding (rendered and encoded in one jit, large batches) and the scikit-learn fits, which run
  in parallel processes (metrics.parallel_fit).

  With ``code_table`` (default) and more images to encode than the dataset has (dSprites:
  737,280 against ~2.9M draws at the reference sizes), every image is encoded once and the
  metrics look their codes up (metrics.CodeTable): same definitions and draws, ~3x less work.
  """
  from jaxdisent.viz import disentanglement_plots, vae_plots  # pylint: disable=g-import-not-at-top
  import time  # pylint: disable=g-import-not-at-top
  represent = method.representation_fn(state.params)
  batch = 64  # the BetaVAE / FactorVAE scores' batch (disentanglement_lib)
  draws = (num_train + num_eval) * (1 + batch + 2 * batch) + num_train
  tabulate = code_table and metrics.CodeTable.worth_it(method.data, draws)
  rng = jax.random.key(seed)
  keys = jax.random.split(rng, 5)
  results = {}
  timings = {}

  def timed(name, fn):
    start = time.time()
    log(f"[jaxdisent] eval: {name} ...")
    out = fn()
    timings[name] = round(time.time() - start, 2)
    return out

  if tabulate:
    log(f"[jaxdisent] eval: {draws:,} images to encode > {method.data.num_combinations:,} in the "
        "dataset: encoding each image once (code table)")
    represent = timed("code table", lambda: metrics.CodeTable(method.data, represent))
  codes_train, factors_train = timed("sample codes", lambda: metrics.sample_codes_and_factors(
      method.data, represent, num_train, keys[0], desc="codes (train)"))
  codes_test, factors_test = metrics.sample_codes_and_factors(method.data, represent, num_eval,
                                                              keys[1], desc="codes (eval)")
  results["mig"] = timed("mig", lambda: metrics.mig(codes_train, factors_train, num_bins))
  results["modularity"] = metrics.modularity(codes_train, factors_train, num_bins)
  results.update(timed("explicitness", lambda: metrics.explicitness(
      codes_train, factors_train, codes_test, factors_test)))
  results["sap"] = timed("sap", lambda: metrics.sap(codes_train, factors_train, codes_test,
                                                      factors_test))
  dci = timed("dci", lambda: metrics.dci(codes_train, factors_train, codes_test, factors_test,
                                         importance=dci_importance, seed=seed))
  dci.pop("dci_importance")
  results.update(dci)
  results.update(metrics.irs(codes_train, factors_train, num_bins=num_bins))
  results["gaussian_total_correlation"] = metrics.gaussian_total_correlation(codes_train)
  results["mutual_info_between_codes"] = metrics.mutual_info_between_codes(codes_train, num_bins)
  results.update(timed("factor_vae_score", lambda: metrics.factor_vae_score(
      method.data, represent, keys[2], num_train=num_train, num_eval=num_eval,
      num_variance_estimate=num_train)))
  results.update(timed("beta_vae_score", lambda: metrics.beta_vae_score(
      method.data, represent, keys[3], num_train=num_train, num_eval=num_eval, seed=seed)))

  plots = os.path.join(workdir, "plots")
  os.makedirs(plots, exist_ok=True)
  mi = metrics.mutual_info_matrix(codes_train, factors_train, num_bins)
  entropy = np.asarray(metrics.discrete_entropy(factors_train))
  disentanglement_plots.save_mi_heatmap(
      mi, method.data.factor_names, os.path.join(plots, "mutual_information.png"), entropy,
      title=f"MIG {results['mig']:.3f}")
  normalised = mi / np.maximum(entropy[None], 1e-12)
  labels = [f"{method.data.factor_names[k]} ({normalised[j, k]:.2f})" if normalised[j, k] > 0.1
            else "-" for j, k in enumerate(normalised.argmax(axis=1))]
  spread = np.std(codes_train, axis=0)
  vae_plots.save_traversals(
      lambda z: np.asarray(vae_model.decode_mean(method.model, state.params, jnp.asarray(z))),
      np.median(codes_train, 0), os.path.join(plots, "traversals_labelled.png"),
      row_labels=labels, limit=2.0 * float(max(spread.max(), 1e-3)))
  results["eval_seconds"] = timings
  results["eval_sizes"] = {"num_train": num_train, "num_eval": num_eval, "num_bins": num_bins,
                           "dci_importance": dci_importance, "code_table": bool(tabulate)}
  results["captured_factor"] = labels
  return results


@register("disentanglement")
def disentanglement(ctx, settings) -> dict:
  """MIG, SAP, DCI, modularity/explicitness, IRS, FactorVAE and BetaVAE scores on the encoder mean.

  Settings: num_train / num_eval (disentanglement_lib: 10,000 / 5,000), num_bins (20),
  dci_importance (gbt | random_forest), code_table (True: encode each image of the dataset once
  when the metrics would draw more images than it has; metrics.CodeTable). Needs ground-truth
  factors (dSprites, Shapes3D, ...).
  """
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
  results = disentanglement_scores(method, ctx.state, ctx.workdir, num_train=num_train,
                                   num_eval=num_eval, num_bins=num_bins,
                                   dci_importance=importance, seed=ctx.seed, log=ctx.log,
                                   code_table=bool(settings.get("code_table", True)))
  return _split_scalars(results, ctx.out_dir, "details.json")


@register("reconstruction")
def reconstruction(ctx, settings) -> dict:
  """Held-out Bernoulli reconstruction (nats/image), KL and active latents (KL > 0.01 nats)."""
  method = ctx.method
  count = int(settings.get("num_examples", 512))
  if count < 1:
    raise ValueError(f"evals.reconstruction.num_examples={count} must be >= 1")
  _, images = method.data.sample(jax.random.key(ctx.seed + 777), count)
  recon, kl = [], []
  for start in range(0, count, 256):
    r, k = _reconstruction_terms(method.model, ctx.state.params,
                                 jnp.asarray(images[start:start + 256]))
    recon.append(np.asarray(r))
    kl.append(np.asarray(k))
  recon, kl = np.concatenate(recon), np.concatenate(kl)
  kl_per_latent = kl.mean(axis=0)
  np.save(os.path.join(ctx.out_dir, "kl_per_latent.npy"), kl_per_latent)
  return {"reconstruction": float(recon.mean()), "kl": float(kl.sum(axis=1).mean()),
          "active_latents": int(np.sum(kl_per_latent > 0.01))}
