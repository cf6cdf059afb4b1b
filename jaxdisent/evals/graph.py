"""GEM evaluators: ``graph_recovery`` (the learned DisGraph vs the true factor graph, pictures) and
``gem_disentanglement`` (MIG / IRS / DCI / FactorVAE on the encoder means).

graph_recovery settings (``config.evals.graph_recovery``): ``threshold`` (relative, for SHD / TPR /
FDR; default 0.3), ``num_images`` (pool images encoded to name nodes and draw traversals, default
2000). The learned adjacency over the D latent nodes is read in attribute space through the node
matched to each attribute during training (``model_state['node_of_attribute']``); for the
statistical oracle (no attribute knowledge in training) the evaluation matches nodes by the
Hungarian algorithm on |corr(latent mean, true factor value)|. It reports the recovery measures of
:mod:`jaxdisent.metrics.graph` for the learned graph and (``prior_*``) for the oracle's relation
matrix (the prior the run used: corrupted when ``model.prior_corruption`` is set), their
difference ``learned_minus_prior_*`` (what training added; 0 for an untrained model), and
reconstruction loss on the evaluated images, and writes ``graph.png`` (learned, prior, truth),
``relations.png`` (heatmap), ``recovery_curves.png``, ``traversals.png`` (rows labelled with
attribute names), ``learned_adjacency.npy``, ``relations.json`` (ranked relations).
"""

from __future__ import annotations

import json
import os

import jax
import jax.numpy as jnp
import numpy as np

from jaxdisent.evals.base import register
from jaxdisent import metrics
from jaxdisent.losses import vae as vae_losses
from jaxdisent.metrics import graph as G
from jaxdisent.metrics.graph import graph_recovery as measures
from jaxdisent.models import vae as vae_model
from jaxdisent.models.vae import VAE
from jaxdisent.oracles import hungarian_assignment, rank_relations


def _node_assignment(method, state, codes, values):
  if method.oracle.relations is not None:
    return np.asarray(state.model_state["node_of_attribute"]), "training"
  corr = np.nan_to_num(np.corrcoef(codes.T, values.T)[:codes.shape[1], codes.shape[1]:])
  return hungarian_assignment(np.abs(corr)), "hungarian"


@register("graph_recovery")
def graph_recovery(ctx, settings):
  from jaxdisent.viz import graph_plots, vae_plots  # pylint: disable=g-import-not-at-top
  method, state = ctx.method, ctx.state
  if not hasattr(method, "oracle"):
    raise ValueError("graph_recovery evaluates GEM runs (method='gem')")
  threshold = float(settings.get("threshold", 0.3))
  count = min(int(settings.get("num_images", 2000)), method.data.pool_size)
  rng = np.random.default_rng(ctx.seed)
  index = np.sort(rng.choice(method.data.pool_size, size=count, replace=False))
  images = np.asarray(method.data.pool_images(jnp.asarray(index)))
  values = np.asarray(method.data.pool_values(jnp.asarray(index)))[:, method.oracle.columns]
  codes = method.encode_mean(state.params, images)
  nodes, how = _node_assignment(method, state, codes, values)
  names = method.oracle.attributes
  adjacency = np.asarray(method.adjacency(state.params, state.model_state))
  learned = adjacency[np.ix_(nodes, nodes)]
  truth = method.data.true_adjacency()
  prior = method.oracle.relations
  results = {}
  if truth is None:  # real data: draw the graphs, no recovery measures
    ctx.log(f"[jaxdisent] {method.data.name} has no ground-truth graph: drawing the learned and "
            "oracle graphs only")
    truth = np.zeros_like(learned)
  elif not np.any(truth[np.ix_(method.oracle.columns, method.oracle.columns)] != 0):
    ctx.log(f"[jaxdisent] the true graph over {names} has no edge (e.g. data.correlation=0): "
            "AUROC / AUPRC are undefined, drawing the graphs only")
    truth = np.zeros_like(learned)
  else:
    truth = truth[np.ix_(method.oracle.columns, method.oracle.columns)]
    results.update({f"learned_{k}": v for k, v in measures(learned, truth, threshold).items()
                    if k != "threshold"})
  if prior is not None and truth.any():
    results.update({f"prior_{k}": v for k, v in measures(prior, truth, threshold).items()
                    if k != "threshold"})
    # what training added over the prior the DisGraph starts from (and is pulled toward)
    measured = [k[len("prior_"):] for k in results if k.startswith("prior_")]
    results.update({f"learned_minus_prior_{m}": results[f"learned_{m}"] - results[f"prior_{m}"]
                    for m in measured if f"learned_{m}" in results})
  corr = np.nan_to_num(np.corrcoef(codes.T, values.T)[:codes.shape[1], codes.shape[1]:])
  results["matched_abs_corr"] = float(np.mean(np.abs(corr[nodes, np.arange(len(nodes))])))
  zeros = jnp.zeros((min(256, count), method.latent_dim))
  recon_fn = jax.jit(lambda p, m, x: vae_losses.bernoulli_reconstruction(method.vae.apply(
      {"params": p["vae"]}, method.relation_aware(p, m, method.vae.apply(
          {"params": p["vae"]}, x, method=VAE.encode)[0]), method=VAE.decode), x))
  results["recon"] = float(np.mean(np.asarray(recon_fn(state.params, state.model_state,
                                                       jnp.asarray(images[:len(zeros)])))))
  results["threshold"] = threshold
  if getattr(method, "scm", False):   # the structured prior exists only while rho(A) < 1
    check = method.scm_check(state.params, state.model_state)
    results["scm_spectral_radius"] = check["scm_spectral_radius"]
    if not check["scm_stable"]:
      ctx.log(f"[jaxdisent] warning: the learned DisGraph's spectral radius is "
              f"{check['scm_spectral_radius']:.3f} >= 1: not a stable SCM (model.prior='scm')")

  out = ctx.out_dir
  np.save(os.path.join(out, "learned_adjacency.npy"), adjacency)
  with open(os.path.join(out, "relations.json"), "w") as f:
    json.dump({"attributes": list(names), "node_of_attribute": [int(n) for n in nodes],
               "matching": how, "learned_ranked": rank_relations(learned, names),
               "prior_ranked": rank_relations(prior, names) if prior is not None else None,
               "true": truth.tolist()}, f, indent=1)
  title = f"{method.data.name}, step {ctx.step}"
  if "learned_auroc" in results:
    title += f": AUROC learned {results['learned_auroc']:.3f}"
  if "prior_auroc" in results:
    title += f", oracle prior {results['prior_auroc']:.3f}"
  paths = [graph_plots.save_graph_comparison(learned, truth, names, os.path.join(out, "graph.png"),
                                             title=title, prior_AxA=prior),
           graph_plots.save_relation_heatmap(prior if prior is not None else learned, names,
                                             os.path.join(out, "relations.png"),
                                             title=("oracle" if prior is not None else "learned")
                                             + " attribute relations (row -> column)"),
           graph_plots.save_recovery_curves(learned, truth, os.path.join(out, "recovery_curves.png"),
                                            title=title)]
  node_names = [f"z{k}" for k in range(method.latent_dim)]
  for a, node in enumerate(nodes):
    node_names[int(node)] = names[a]
  decode = jax.jit(lambda p, m, z: jax.nn.sigmoid(method.vae.apply(
      {"params": p["vae"]}, method.relation_aware(p, m, z), method=VAE.decode)))
  spread = float(max(np.std(codes, axis=0).max(), 1e-3))
  paths.append(vae_plots.save_traversals(
      lambda z: np.asarray(decode(state.params, state.model_state, jnp.asarray(z))), np.median(codes, axis=0),
      os.path.join(out, "traversals.png"), row_labels=node_names, limit=2.0 * spread))
  plots = os.path.join(ctx.workdir, "plots")  # the newest pictures also in WORKDIR/plots
  os.makedirs(plots, exist_ok=True)
  for path in paths:
    target = os.path.join(plots, os.path.basename(path))
    with open(path, "rb") as src, open(target, "wb") as dst:
      dst.write(src.read())
  ctx.log(f"[jaxdisent] graph pictures: {out}")
  return results


@register("gem_disentanglement")
def gem_disentanglement(ctx, settings):
  """MIG, IRS, DCI (random-forest importance unless settings.dci_importance='gbt') on the encoder
  means; factors are the pool's per-image values discretised into ``num_bins`` (20) equal-width
  bins. On correlated dSprites also the FactorVAE score on the *uniform* dSprites grid
  (disentanglement_lib's protocol; the training distribution is correlated)."""
  method, state = ctx.method, ctx.state
  num_train = min(int(settings.get("num_train", 2000)), method.data.pool_size)
  num_eval = min(int(settings.get("num_eval", 1000)), method.data.pool_size)
  num_bins = int(settings.get("num_bins", 20))
  rng = np.random.default_rng(ctx.seed + 1)
  index = rng.choice(method.data.pool_size, size=num_train + num_eval,
                     replace=num_train + num_eval > method.data.pool_size)
  images = np.asarray(method.data.pool_images(jnp.asarray(index)))
  values = np.asarray(method.data.pool_values(jnp.asarray(index)))
  codes = method.encode_mean(state.params, images)
  factors = np.minimum((values * num_bins).astype(np.int64), num_bins - 1)
  train, test = slice(0, num_train), slice(num_train, None)
  results = {"mig": metrics.mig(codes[train], factors[train], num_bins)}
  results.update({k: v for k, v in metrics.irs(codes[train], factors[train],
                                                num_bins=num_bins).items()
                  if np.ndim(v) == 0})
  dci = metrics.dci(codes[train], factors[train], codes[test], factors[test],
                    importance=settings.get("dci_importance", "random_forest"), seed=ctx.seed)
  results.update({k: v for k, v in dci.items() if np.ndim(v) == 0})
  grid = getattr(method.data, "grid", None)
  if grid is not None and settings.get("factor_vae", True):
    represent = vae_model.representation_fn(method.vae, state.params["vae"])
    fv = metrics.factor_vae_score(grid, represent, jax.random.key(ctx.seed),
                                  num_train=num_train, num_eval=num_eval,
                                  num_variance_estimate=num_train)
    results.update({k: v for k, v in fv.items() if np.ndim(v) == 0})
  return results


PAIR_DEFAULTS = {"run_in_training": False, "num_train": 2000, "num_eval": 1000, "num_bins": 20,
                 "dci_importance": "random_forest"}


@register("pair_disentanglement", defaults=PAIR_DEFAULTS)
def pair_disentanglement(ctx, settings):
  """Are the correlated pairs captured by separate codes? (issue 22 part 5; Traeuble et al. 2021)

  Codes of ``num_train`` (2,000) + ``num_eval`` (1,000) images of the *uniform* dSprites grid (the
  pair independent there, so a code of one factor carries no MI with the other through the
  training correlation), for each pair of ``method.data.correlated_pairs()`` (the true graph's
  edges, or ``data.correlated_pairs`` when the graph is empty): ``metrics.pair_separation`` on the
  MI matrix (``num_bins`` 20) and ``metrics.pair_dci_disentanglement`` on the random-forest
  importance matrix of the paired factors; plus MIG on the same grid codes. Keys:
  ``pair_separation``, ``pair_dci_disentanglement`` (means over pairs), the same per pair with
  ``_<a>_<b>`` appended, and ``grid_mig``."""
  method, state = ctx.method, ctx.state
  grid = getattr(method.data, "grid", None)
  if grid is None or not hasattr(method.data, "correlated_pairs"):
    raise ValueError(f"evaluator 'pair_disentanglement' needs correlated dSprites (a uniform grid "
                     f"and correlated pairs); {method.data.name} has neither")
  num_train, num_eval = int(settings.get("num_train", 2000)), int(settings.get("num_eval", 1000))
  num_bins = int(settings.get("num_bins", 20))
  if num_train < 2 or num_eval < 2 or num_bins < 1:
    raise ValueError(f"evals.pair_disentanglement: num_train={num_train}, num_eval={num_eval} must "
                     f"be >= 2 and num_bins={num_bins} >= 1")
  represent = vae_model.representation_fn(method.vae, state.params["vae"])
  keys = jax.random.split(jax.random.key(ctx.seed + 7), 2)
  codes, factors = metrics.sample_codes_and_factors(grid, represent, num_train, keys[0],
                                                    desc="codes (pairs, train)")
  codes_test, factors_test = metrics.sample_codes_and_factors(grid, represent, num_eval, keys[1],
                                                              desc="codes (pairs, eval)")
  pairs = method.data.correlated_pairs()
  names = list(grid.factor_names)
  mi = metrics.mutual_info_matrix(codes, factors, num_bins)
  separation = metrics.pair_separation(mi, metrics.discrete_entropy(factors), pairs)
  used = sorted({i for p in pairs for i in p})
  dci = metrics.dci(codes, factors[:, used], codes_test, factors_test[:, used],
                    importance=settings.get("dci_importance", "random_forest"), seed=ctx.seed)
  importance = np.zeros((codes.shape[1], factors.shape[1]))
  importance[:, used] = dci["dci_importance"]
  pair_dci = metrics.pair_dci_disentanglement(importance, pairs)
  results = {"pair_separation": separation["mean"], "pair_dci_disentanglement": pair_dci["mean"],
             "grid_mig": metrics.mig(codes, factors, num_bins)}
  for (a, b), sep, dis in zip(pairs, separation["separation"], pair_dci["disentanglement"]):
    results[f"pair_separation_{names[a]}_{names[b]}"] = sep
    results[f"pair_dci_disentanglement_{names[a]}_{names[b]}"] = dis
  ctx.log("[jaxdisent] pair disentanglement: " + ", ".join(
      f"{names[a]}-{names[b]} separation {s:.3f}" for (a, b), s in zip(pairs,
                                                                       separation["separation"])))
  return results


def _pooled(images_NxHxWxC, size: int = 16) -> np.ndarray:
  """Average-pool images to size x size (the factor reader's nearest-neighbour space)."""
  x = np.asarray(images_NxHxWxC, np.float32)
  n, h, w, c = x.shape
  if h % size or w % size:
    raise ValueError(f"images of {h}x{w} cannot be pooled to {size}x{size}; set "
                     "evals.graph_interventions.pool_size to a divisor of both")
  return x.reshape(n, size, h // size, size, w // size, c).mean(axis=(2, 4)).reshape(n, -1)


INTERVENTION_DEFAULTS = {"run_in_training": False, "num_images": 256, "num_reference": 4000,
                         "num_values": 5, "spread": 2.0, "pool_size": 16}


@register("graph_interventions", defaults=INTERVENTION_DEFAULTS)
def graph_interventions(ctx, settings):
  """Interventions scored against the known graph (what DEAR / CausalVAE users look at).

  For each attribute's node i and ``num_values`` values v spread over +-``spread`` standard
  deviations of the node's codes, ``do(z_i = v)`` on ``num_images`` pool images' encoder means:
  propagated through the DisGraph to the descendants with the scm prior
  (``jaxdisent.metrics.graph.scm_do``: abduction of each example's noise, cut, solve), the
  coordinate alone with the GNN-decoder form (whose graph acts in the decoder). The decoded images'
  factors are read back by a nearest-neighbour lookup among ``num_reference`` rendered pool images
  (16x16 average-pooled; the renderer's ground truth, so no learned reader). E[i, j] = mean |change
  of factor j| / sd(factor j); ``intervention_auroc`` / ``_auprc`` rank E's off-diagonal entries
  against the true ancestor relation. Controls in the record: ``reader_error`` (the reader on the
  plain reconstructions vs the true factors, in sds: how far the decoded images are from readable)
  and ``effect_on_non_descendants``. Writes effects.json and intervention_effects.png /
  intervention_grid.png.
  """
  from jaxdisent.viz import graph_plots  # pylint: disable=g-import-not-at-top
  method, state = ctx.method, ctx.state
  if not hasattr(method, "oracle"):
    raise ValueError("graph_interventions evaluates GEM runs (method='gem')")
  truth = method.data.true_adjacency()
  if truth is None:
    raise ValueError(f"{method.data.name} has no ground-truth graph: interventions cannot be "
                     "scored (drop graph_interventions from evals)")
  count = min(int(settings.get("num_images", INTERVENTION_DEFAULTS["num_images"])), method.data.pool_size)
  reference = min(int(settings.get("num_reference", INTERVENTION_DEFAULTS["num_reference"])), method.data.pool_size)
  num_values = int(settings.get("num_values", INTERVENTION_DEFAULTS["num_values"]))
  spread = float(settings.get("spread", INTERVENTION_DEFAULTS["spread"]))
  pool_size = int(settings.get("pool_size", INTERVENTION_DEFAULTS["pool_size"]))
  if count < 2 or reference < 2 or num_values < 1 or not spread > 0:
    raise ValueError("evals.graph_interventions needs num_images >= 2, num_reference >= 2, "
                     "num_values >= 1 and spread > 0")
  rng = np.random.default_rng(ctx.seed)
  columns = method.oracle.columns
  ref_index = np.sort(rng.choice(method.data.pool_size, size=reference, replace=False))
  ref_values = np.asarray(method.data.pool_values(jnp.asarray(ref_index)))[:, columns]
  ref_pixels = np.concatenate([_pooled(method.data.pool_images(jnp.asarray(ref_index[i:i + 512])),
                                       pool_size) for i in range(0, reference, 512)])
  ref_sq = (ref_pixels ** 2).sum(1)
  index = np.sort(rng.choice(method.data.pool_size, size=count, replace=False))
  images = np.asarray(method.data.pool_images(jnp.asarray(index)))
  true_values = np.asarray(method.data.pool_values(jnp.asarray(index)))[:, columns]
  codes = method.encode_mean(state.params, images)
  decode = jax.jit(lambda p, m, z: jax.nn.sigmoid(method.vae.apply(
      {"params": p["vae"]}, method.relation_aware(p, m, z), method=VAE.decode)))

  def decoded(z):
    return np.concatenate([np.asarray(decode(state.params, state.model_state,
                                             jnp.asarray(z[i:i + 256], jnp.float32)))
                           for i in range(0, len(z), 256)])

  def read_factors(z):
    pixels = _pooled(decoded(z), pool_size)
    distances = ref_sq[None, :] - 2.0 * pixels @ ref_pixels.T   # + |p|^2, the same for every ref
    return ref_values[np.argmin(distances, axis=1)]

  scale = ref_values.std(axis=0)
  nodes, _ = _node_assignment(method, state, codes, true_values)
  adjacency = np.asarray(method.adjacency(state.params, state.model_state))
  centre, sd = codes.mean(axis=0), np.maximum(codes.std(axis=0), 1e-3)
  grid = np.linspace(-spread, spread, num_values)
  values = [centre[int(n)] + grid * sd[int(n)] for n in nodes]
  propagate = bool(getattr(method, "scm", False))
  effects = G.interventional_effects(read_factors, codes, adjacency, nodes, values,
                                     propagate=propagate, scale=scale)
  truth = truth[np.ix_(columns, columns)]
  scores = G.intervention_scores(effects, truth)
  reader_error = float(np.mean(np.abs(read_factors(codes) - true_values) / np.maximum(scale, 1e-12)))
  results = {f"intervention_{k}" if not k.startswith("effect") else k: v
             for k, v in scores.items()}
  results.update({"reader_error": reader_error, "propagated": float(propagate)})
  names = list(method.oracle.attributes)
  out = ctx.out_dir
  with open(os.path.join(out, "effects.json"), "w") as f:
    json.dump({"attributes": names, "nodes": [int(n) for n in nodes], "effects": effects.tolist(),
               "true_ancestors": G.ancestor_matrix(truth).tolist(), "values": [v.tolist() for v in values],
               "propagated": propagate}, f, indent=1)
  # one example's intervention grid: rows = attribute nodes, columns = the set values
  example = codes[:1]
  rows = [decoded(np.concatenate([G.scm_do(example, adjacency, int(n), v, propagate)
                                  for v in vals]).astype(np.float32)) for n, vals in zip(nodes, values)]
  paths = [graph_plots.save_intervention_effects(
               effects, G.ancestor_matrix(truth), names, os.path.join(out, "intervention_effects.png"),
               title=f"{method.data.name}, step {ctx.step}: intervention AUROC "
                     f"{results['intervention_auroc']:.3f}"),
           graph_plots.save_intervention_grid(rows, names, grid,
                                              os.path.join(out, "intervention_grid.png"))]
  plots = os.path.join(ctx.workdir, "plots")
  os.makedirs(plots, exist_ok=True)
  for path in paths:
    with open(path, "rb") as src, open(os.path.join(plots, os.path.basename(path)), "wb") as dst:
      dst.write(src.read())
  return results
