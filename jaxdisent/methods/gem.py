"""GEM-style factor graphs (Xie et al., NeurIPS 2024), our documented specification.

GEM: a beta-VAE's latent factors are the nodes of a weighted, directed, possibly cyclic graph (the
DisGraph) whose edge weights come from a multimodal LLM's attribute scores; a GNN makes the latents
relation-aware before the decoder. GEM publishes no loss, GNN, prompt or adversarial form, so:

* model: the disentanglement_lib VAE (``jaxdisent.models.vae``) + a learnable D x D adjacency A +
  the directed message-passing GNN of ``jaxdisent.models.gnn`` between the sampled latent z and
  the decoder (``model.kind='gnn'``; ``'none'`` decodes z directly: the no-GNN ablation);
* oracle prior: an oracle (``oracle.kind``) scores attributes of ``oracle.num_images`` pool
  images; ``jaxdisent.oracles.relations`` turns the scores into an A x A relation matrix R
  (normalised to max 1). During training an exponential moving average (``loss.match_decay``) of
  the correlation between the encoder means and the batch's oracle scores matches one latent node
  to each attribute (greedy on |corr|, in the step; the assignment lives in ``model_state``), and
  R is placed on the matched nodes as the prior P (kept in ``model_state['prior']``). The DisGraph
  is parameterised as A = P + Delta (Delta learned, zero at initialisation, zero diagonal), so A
  starts at the oracle's relations, follows a re-matching at once, and the prior term pulls Delta
  to zero on the entries between named nodes;
* loss = recon + ``loss.kl_weight`` * KL (beta-VAE; kl_weight=1 is the plain VAE)
  + ``loss.graph_prior_weight`` * sum M Delta^2 + ``loss.sparsity_weight`` * sum |A|
  + ``loss.structure_weight`` * NOTEARS least squares of the standardised codes on A
  + ``loss.adversarial_weight`` * (generator + discriminator losses on images)
  (exact forms in ``jaxdisent.losses.graph``);
* controls (issue 22): ``model.prior_corruption`` replaces the oracle's relations by a deliberately
  wrong prior (``jaxdisent.oracles.corrupt``) before training, and ``optimizer.graph_learning_rate``
  > 0 gives ``adjacency_delta`` its own Adam (see :meth:`GEMMethod.optimizer`);
* ``model.prior='scm'`` (issue 22; ``'gnn_decoder'``, the default, is everything above): a
  structured latent prior instead of the GNN. z = (I - A^T)^-1 eps, eps ~ N(0, I), so the KL term
  is KL(q(z|x) || N(0, Sigma_A)) in closed form (``jaxdisent.losses.graph.scm_kl``) and the data
  move A through it; the decoder reads z. Node a is pinned to attribute a (no re-matching), and
  ``loss.supervision_weight`` ties node a's encoder mean to the oracle's standardised per-image
  score of attribute a (DEAR's supervised term, with the oracle's noisy scores in place of labels).
  The prior P is the oracle's relations times ``model.scm_prior_scale``; its spectral radius must be
  < 1 (checked when the method is built; an error names the fix), and the learned A's is reported at
  evaluation (``scm_spectral_radius``) with a warning at >= 1. ``loss.acyclicity_weight`` adds
  NOTEARS' h(A) (off by default: GEM's graph may be cyclic);
* ``oracle.kind='statistical'``: no external knowledge; the prior comes from the model's own codes
  (all D nodes). ``oracle.statistical_estimator='notears'`` (default): linear NOTEARS (l2 loss,
  ``oracle.notears_lambda1`` 0.1, ``oracle.notears_threshold`` 0.3: the reference's defaults) on the
  moving-average *correlation* matrix of the codes (standardised, so the threshold has the same
  meaning on every code scale), re-solved every ``oracle.refresh_every`` (50) steps on the host
  (``jaxdisent.oracles.notears.notears_linear_from_covariance``) and held in between; |W| / max |W|
  is the prior. ``'correlation'`` (the former behaviour): the linear relation estimator on the same
  correlation matrix, every step, inside the step.

Batch statistics (matching moments, code standardisation) are summed over the 'data' axis, so the
step is the same on 1 or N devices.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import lax

from jaxdisent.data import per_example_keys, step_key
from jaxdisent import rng as rng_streams
from jaxdisent.data import make_source
from jaxdisent.oracles.corrupt import corrupt_prior
from jaxdisent.oracles.notears import notears_linear_from_covariance
from jaxdisent.oracles.relations import greedy_assignment, relations_from_correlation
from jaxdisent.losses import graph as graph_losses
from jaxdisent.losses import vae as vae_losses
from jaxdisent.methods.base import Method
from jaxdisent.models import jit_init
from jaxdisent.models.gnn import DirectedGNN, ImageDiscriminator
from jaxdisent.models.vae import VAE
from jaxdisent.oracles import make_oracle_view

MODEL_KINDS = ("gnn", "none")
PRIOR_FORMS = ("gnn_decoder", "scm")


class GEMMethod(Method):
  name = "gem"
  evaluators = ("graph_recovery", "gem_disentanglement", "graph_interventions",
                "pair_disentanglement")

  def __init__(self, config):
    super().__init__(config)
    self.data = make_source(config, "graph")  # correlated_dsprites | pendulum | tfds:NAME
    model = config.model
    kind = model.get("kind", "gnn")
    if kind not in MODEL_KINDS:
      raise ValueError(f"unknown model.kind {kind!r} for gem; use one of {MODEL_KINDS}")
    self.prior_form = model.get("prior", "gnn_decoder")
    if self.prior_form not in PRIOR_FORMS:
      raise ValueError(f"unknown model.prior {self.prior_form!r} for gem; use one of {PRIOR_FORMS}")
    self.scm = self.prior_form == "scm"
    self.use_gnn = kind == "gnn" and not self.scm   # the scm prior decodes z directly
    self.latent_dim = int(model.latent_dim)
    self.oracle = make_oracle_view(self.data, config.oracle)
    corruption = model.get("prior_corruption", "none")
    if corruption != "none" or self.oracle.relations is not None:
      if self.oracle.relations is None:
        raise ValueError(f"model.prior_corruption={corruption!r} corrupts the oracle's relation "
                         "prior, and oracle.kind='statistical' has none; use 'none'")
      truth = self.data.true_adjacency()
      cols = self.oracle.columns
      self.oracle = dataclasses.replace(self.oracle, relations=corrupt_prior(
          self.oracle.relations, None if truth is None else truth[np.ix_(cols, cols)], corruption,
          model.get("prior_corruption_k", 1), model.get("prior_corruption_seed", 0)))
    if self.scm:
      self._scale_scm_prior(float(model.get("scm_prior_scale", 1.0)))
    self.num_attributes = len(self.oracle.attributes)
    if self.num_attributes > self.latent_dim:
      raise ValueError(f"the oracle scores {self.num_attributes} attributes but the model has "
                       f"{self.latent_dim} latent nodes; raise model.latent_dim to at least "
                       f"{self.num_attributes}")
    self.vae = VAE(latent_dim=self.latent_dim, output_shape=self.data.observation_shape,
                   last_kernel=model.get("last_kernel", 2))
    self.gnn = DirectedGNN(self.latent_dim, hidden=model.get("gnn_hidden", 16),
                           num_layers=model.get("gnn_layers", 2))
    self.discriminator = ImageDiscriminator(hidden=model.get("discriminator_hidden", 128))
    self.weights = {k: float(config.loss.get(k, 0.0)) for k in (
        "kl_weight", "graph_prior_weight", "sparsity_weight", "structure_weight",
        "adversarial_weight", "supervision_weight", "acyclicity_weight")}
    for key in ("supervision_weight", "acyclicity_weight"):
      if not (np.isfinite(self.weights[key]) and self.weights[key] >= 0):
        raise ValueError(f"loss.{key}={self.weights[key]} must be a finite number >= 0")
    if self.weights["supervision_weight"] and not (self.scm and self.oracle.relations is not None):
      raise ValueError("loss.supervision_weight pins latent nodes to the oracle's attributes: it "
                       "needs model.prior='scm' and an oracle with scores (not 'statistical'); "
                       "set it to 0 otherwise")
    self.match_decay = float(config.loss.get("match_decay", 0.99))
    self.statistical_estimator = config.oracle.get("statistical_estimator", "notears")
    if self.statistical_estimator not in ("notears", "correlation"):
      raise ValueError(f"oracle.statistical_estimator={self.statistical_estimator!r}: use 'notears' "
                       "(linear NOTEARS on the codes' correlation, refreshed every "
                       "oracle.refresh_every steps) or 'correlation' (the linear relation "
                       "estimator, every step)")
    self.refresh_every = int(config.oracle.get("refresh_every", 50))
    if self.refresh_every < 1:
      raise ValueError(f"oracle.refresh_every={self.refresh_every} must be >= 1")
    self.notears_settings = (float(config.oracle.get("notears_lambda1", 0.1)),
                             float(config.oracle.get("notears_threshold", 0.3)))
    self._batch = jax.jit(self._batch_impl, static_argnums=(0, 3))  # start traced

  def _scale_scm_prior(self, scale):
    if not (np.isfinite(scale) and scale >= 0):
      raise ValueError(f"model.scm_prior_scale={scale} must be a finite number >= 0")
    if self.oracle.relations is None:
      return
    relations = np.asarray(self.oracle.relations, np.float32) * np.float32(scale)
    radius = graph_losses.scm_spectral_radius(relations)
    if radius >= 1.0:
      raise ValueError(
          f"model.prior='scm': the oracle prior's spectral radius is {radius:.3f} (>= 1), so "
          "z = (I - A^T)^-1 eps is not a stable SCM (its cycles amplify without bound); lower "
          f"model.scm_prior_scale (now {scale:g}) below {scale / radius:.3g}, e.g. "
          f"--config.model.scm_prior_scale={0.9 * scale / radius:.2g}")
    self.oracle = dataclasses.replace(self.oracle, relations=relations)

  # ---- engine hooks ------------------------------------------------------------------------

  def optimizer(self):
    """The engine's Adam; with ``optimizer.graph_learning_rate`` > 0 the graph parameters
    (``adjacency_delta``) get their own Adam at that rate (an optimiser group, as DEAR trains A at
    1e-3 beside 5e-5 for the networks) and the networks keep ``optimizer.learning_rate`` with its
    warmup / clipping (clipping then sees the networks' gradients only). 0 (default): one Adam for
    all parameters, as before."""
    opt = self.config.optimizer
    graph_lr = float(opt.get("graph_learning_rate", 0.0) or 0.0)
    if not np.isfinite(graph_lr) or graph_lr < 0:
      raise ValueError(f"optimizer.graph_learning_rate={graph_lr} must be a finite number >= 0 "
                       "(0 = the networks' learning rate)")
    networks = super().optimizer()
    if not graph_lr:
      return networks
    graph = optax.adam(graph_lr, b1=opt.get("b1", 0.9), b2=opt.get("b2", 0.999),
                       eps=opt.get("eps", 1e-8))
    labels = lambda params: {k: jax.tree.map(
        lambda _, k=k: "graph" if k == "adjacency_delta" else "networks", v)
                             for k, v in params.items()}
    return optax.multi_transform({"networks": networks, "graph": graph}, labels)

  def init(self, rng):
    k_vae, k_gnn, k_disc = jax.random.split(rng, 3)
    images = jnp.zeros((1, *self.data.observation_shape), jnp.float32)
    d, a = self.latent_dim, self.num_attributes
    prior = np.zeros((d, d), np.float32)
    if self.oracle.relations is not None:
      prior[:a, :a] = self.oracle.relations
    # the VAE and discriminator inits compiled (models.jit_init; bitwise the eager values). The
    # GNN's stays eager: its compiled init rounds differently, and the golden values pin the eager one.
    params = {"vae": jit_init(self.vae, k_vae, images, jnp.zeros((1, d)))["params"],
              "gnn": self.gnn.init(k_gnn, jnp.zeros((1, d)), jnp.zeros((d, d)))["params"],
              "adjacency_delta": jnp.zeros((d, d), jnp.float32)}
    if self.weights["adversarial_weight"] > 0:
      params["discriminator"] = jit_init(self.discriminator, k_disc, images)["params"]
    moments = {k: jnp.zeros((d, a), jnp.float32) for k in ("n", "sz", "szz", "ss", "sss", "szs")}
    code_moments = {"n": jnp.zeros(()), "sz": jnp.zeros((d,)), "szz": jnp.zeros((d, d))}
    state = {"match": moments, "codes": code_moments, "prior": jnp.asarray(prior),
             "node_of_attribute": jnp.arange(a, dtype=jnp.int32)}
    return params, state

  def _batch_impl(self, seed, step, start, size):
    if self.oracle.scored_index is not None:  # draw among the images the oracle file scored
      keys = per_example_keys(step_key(seed, step, salt=rng_streams.GRAPH_DATA),
                              rng_streams.example_indices(start, size))
      rows = jax.vmap(lambda k: jax.random.randint(k, (), 0, len(self.oracle.scored_index)))(keys)
      pool_index = jnp.asarray(self.oracle.scored_index, jnp.int32)[rows]
    else:
      pool_index = self.data.batch_indices(seed, step, start, size)
      rows = pool_index
    values = self.data.pool_values(pool_index)
    batch = {"image": self.data.pool_images(pool_index), "pool_index": pool_index,
             "index": rng_streams.example_indices(start, size, jnp.int32)}
    if self.oracle.batch_scores is not None:
      scores, valid = self.oracle.batch_scores(values, pool_index, rows)
      batch["scores"], batch["valid"] = scores.astype(jnp.float32), valid.astype(jnp.float32)
    return batch

  def local_batch(self, seed, step, start, size):
    if not getattr(self.data, "jittable", True):  # files read on the host (TFDS)
      return self._batch_impl(int(seed), jnp.asarray(step, jnp.int32), int(start), int(size))
    return self._batch(int(seed), jnp.asarray(step, jnp.int32), int(start), int(size))

  def adjacency(self, params, model_state):
    """The DisGraph A = P + Delta (D x D, zero diagonal)."""
    return (model_state["prior"] + params["adjacency_delta"]) * (1.0 - jnp.eye(self.latent_dim))

  def relation_aware(self, params, model_state, z):
    if not self.use_gnn:
      return z
    return self.gnn.apply({"params": params["gnn"]}, z, self.adjacency(params, model_state))

  def loss(self, params, model_state, batch, rng, step, axis_name=None):
    images = batch["image"]
    psum = (lambda x: lax.psum(x, axis_name)) if axis_name is not None else (lambda x: x)
    noise = jax.vmap(lambda k: jax.random.normal(k, (self.latent_dim,)))(
        per_example_keys(rng, batch["index"]))
    mean, logvar = self.vae.apply({"params": params["vae"]}, images, method=VAE.encode)
    z = mean + jnp.exp(0.5 * logvar) * noise
    codes = lax.stop_gradient(mean)
    new_state = self._update_state(model_state, codes, batch, psum, step)
    adjacency = self.adjacency(params, new_state)
    delta = params["adjacency_delta"] * (1.0 - jnp.eye(self.latent_dim))
    logits = self.vae.apply({"params": params["vae"]}, self.relation_aware(params, new_state, z),
                            method=VAE.decode)
    recon = vae_losses.bernoulli_reconstruction(logits, images)
    kl = vae_losses.gaussian_kl(mean, logvar)   # per latent, to N(0, I): the collapse monitor
    recon_mean, kl_mean = jnp.mean(recon), jnp.mean(jnp.sum(kl, axis=1))
    if self.scm:   # the KL of the objective is to the SCM prior N(0, Sigma_A)
      kl_mean = jnp.mean(graph_losses.scm_kl(mean, logvar, adjacency))
    w = self.weights
    loss = recon_mean + w["kl_weight"] * kl_mean
    metrics = {"recon": recon_mean, "kl": kl_mean, "elbo": -(recon_mean + kl_mean),
               "kl_per_latent": jnp.mean(kl, axis=0)}
    if self.scm:
      metrics["scm_logabsdet"] = jnp.linalg.slogdet(jnp.eye(self.latent_dim) - adjacency)[1]
    if w["supervision_weight"]:
      term = self._supervision(mean, batch, new_state, psum)
      loss = loss + w["supervision_weight"] * term
      metrics["supervision"] = term
    if w["acyclicity_weight"]:
      term = graph_losses.acyclicity(adjacency)
      loss = loss + w["acyclicity_weight"] * term
      metrics["acyclicity"] = term
    if w["graph_prior_weight"]:
      term = graph_losses.graph_prior(delta, 0.0, new_state["prior_mask"])
      loss = loss + w["graph_prior_weight"] * term
      metrics["graph_prior"] = term
    if w["sparsity_weight"]:
      term = graph_losses.sparsity(adjacency)
      loss = loss + w["sparsity_weight"] * term
      metrics["sparsity"] = term
    if w["structure_weight"]:
      c = new_state["codes"]
      centre = c["sz"] / c["n"]
      std = jnp.sqrt(jnp.maximum(jnp.diagonal(c["szz"]) / c["n"] - centre ** 2, 1e-6))
      term = graph_losses.structure((codes - centre) / std, adjacency)
      loss = loss + w["structure_weight"] * term
      metrics["structure"] = term
    if w["adversarial_weight"]:
      fake = jax.nn.sigmoid(logits)
      critic = lambda p, x: self.discriminator.apply({"params": p}, x)
      disc = params["discriminator"]
      d_loss = graph_losses.discriminator_loss(critic(disc, images),
                                               critic(disc, lax.stop_gradient(fake)))
      g_loss = graph_losses.generator_loss(critic(lax.stop_gradient(disc), fake))
      loss = loss + w["adversarial_weight"] * (g_loss + d_loss)
      metrics["discriminator"] = d_loss
      metrics["generator"] = g_loss
    metrics["adjacency_l1"] = jnp.sum(jnp.abs(adjacency))
    new_state.pop("prior_mask")
    return loss, (metrics, new_state)

  def _supervision(self, mean, batch, state, psum):
    """Mean squared error between node a's encoder mean and attribute a's oracle score,
    standardised by the moving-average score moments, over the valid (answered) entries of the
    global batch: a local sum over the global count times the device count, so that the engine's
    mean over devices gives the global mean."""
    a = self.num_attributes
    m = state["match"]
    n = jnp.maximum(m["n"][0], 1e-6)
    centre = m["ss"][0] / n
    std = jnp.sqrt(jnp.maximum(m["sss"][0] / n - centre ** 2, 1e-6))
    target = (batch["scores"] - centre) / std
    valid = batch["valid"]
    error = jnp.sum(valid * jnp.square(mean[:, :a] - target))
    count = psum(jnp.sum(valid))
    devices = psum(jnp.float32(1.0))
    return error * devices / jnp.maximum(count, 1.0)

  def _update_state(self, model_state, codes, batch, psum, step=0):
    """Moving-average statistics, node matching and the prior P (all from stop-gradient codes)."""
    new_state = dict(model_state)
    decay = self.match_decay
    ema = lambda old, new: jax.tree.map(lambda o, n: decay * o + (1 - decay) * n, old, new)
    code_stats = psum({"n": jnp.asarray(codes.shape[0], jnp.float32), "sz": codes.sum(0),
                       "szz": codes.T @ codes})
    new_state["codes"] = ema(model_state["codes"], code_stats)
    if "scores" in batch:
      mask, s = batch["valid"], batch["scores"] * batch["valid"]
      stats = psum({"n": jnp.broadcast_to(mask.sum(0), (self.latent_dim, mask.shape[1])),
                    "sz": codes.T @ mask, "szz": (codes ** 2).T @ mask,
                    "ss": jnp.broadcast_to(s.sum(0), (self.latent_dim, s.shape[1])),
                    "sss": jnp.broadcast_to((s * s).sum(0), (self.latent_dim, s.shape[1])),
                    "szs": codes.T @ s})
      new_state["match"] = ema(model_state["match"], stats)
      if not self.scm:   # scm: node a stays pinned to attribute a
        new_state["node_of_attribute"] = greedy_assignment(
            jnp.abs(match_correlation(new_state["match"])))
    if self.oracle.relations is not None:
      prior, mask = graph_losses.prior_on_nodes(jnp.asarray(self.oracle.relations),
                                                new_state["node_of_attribute"], self.latent_dim)
    elif self.statistical_estimator == "notears":  # statistical: a DAG over the model's codes
      corr = code_correlation(new_state["codes"])
      refresh = (jnp.asarray(step) % self.refresh_every) == 0
      prior = lax.cond(refresh, self._notears_prior, lambda c: model_state["prior"], corr)
      mask = 1.0 - jnp.eye(self.latent_dim)
    else:  # statistical, 'correlation': relations among the model's own codes, every step
      prior = relations_from_correlation(code_correlation(new_state["codes"]), xp=jnp)
      top = jnp.max(prior)
      prior = jnp.where(top > 0, prior / jnp.maximum(top, 1e-12), prior)
      mask = 1.0 - jnp.eye(self.latent_dim)
    new_state["prior"] = prior
    new_state["prior_mask"] = mask
    return new_state

  def _notears_prior(self, corr_DxD):
    """|W| / max |W| of linear NOTEARS on the codes' moving-average correlation matrix, solved on
    the host (``notears_linear_from_covariance``: the reference's L-BFGS-B loop) through a pure
    callback; the same replicated input on every device gives the same graph everywhere."""
    lambda1, threshold = self.notears_settings

    def solve(corr):
      corr = np.asarray(corr, np.float64)
      if corr.ndim == 3:   # vmapped cells (model axis): one solve per cell
        return np.stack([solve(c) for c in corr])
      weights = np.abs(notears_linear_from_covariance(corr, lambda1=lambda1,
                                                      w_threshold=threshold))
      top = weights.max()
      return (weights / top if top > 0 else weights).astype(np.float32)
    # float32 across the boundary whatever the model's dtype: the callback runs on a runtime
    # thread where a caller's jax.enable_x64 context does not hold, so a float64 result would be
    # cut to float32 there and refused
    shape = jax.ShapeDtypeStruct(corr_DxD.shape, jnp.float32)
    prior = jax.pure_callback(solve, shape, corr_DxD.astype(jnp.float32),
                              vmap_method="expand_dims")
    return prior.astype(corr_DxD.dtype)

  # ---- evaluation helpers ------------------------------------------------------------------

  def encode_mean(self, params, images, batch_size: int = 256):
    apply = _encode_fn(self.vae)
    out = [np.asarray(apply(params["vae"], images[i:i + batch_size]))
           for i in range(0, len(images), batch_size)]
    return np.concatenate(out, axis=0)

  def node_names(self, model_state):
    """Name of each latent node: the attribute matched to it, else z<k>."""
    names = [f"z{k}" for k in range(self.latent_dim)]
    if self.oracle.relations is not None:
      for a, node in enumerate(np.asarray(model_state["node_of_attribute"])):
        names[int(node)] = self.oracle.attributes[a]
    return names

  def scm_check(self, params, model_state) -> dict:
    """The learned DisGraph's spectral radius (scm prior: must stay < 1 for the SCM to exist)."""
    radius = graph_losses.scm_spectral_radius(self.adjacency(params, model_state))
    return {"scm_spectral_radius": radius, "scm_stable": radius < 1.0}

  def finalize(self, state, workdir, log=print):
    # The engine runs the config's evaluators (graph_recovery: pictures + recovery figures) when
    # training ends (train.eval_at_end) and at train.eval_every; here only the SCM's stability.
    del workdir
    if self.scm:
      check = self.scm_check(state.params, state.model_state)
      if not check["scm_stable"]:
        log(f"[jaxdisent] warning: the learned DisGraph's spectral radius is "
            f"{check['scm_spectral_radius']:.3f} >= 1: z = (I - A^T)^-1 eps is not a stable SCM, "
            "so the scm prior's KL is not meaningful; raise loss.graph_prior_weight or lower "
            "model.scm_prior_scale / optimizer.graph_learning_rate")


def match_correlation(m):
  """corr(latent mean d, oracle score a) (D, A) from moving-average masked moments."""
  n = jnp.maximum(m["n"], 1e-6)
  mz, ms = m["sz"] / n, m["ss"] / n
  cov = m["szs"] / n - mz * ms
  var = (m["szz"] / n - mz ** 2) * (m["sss"] / n - ms ** 2)
  return jnp.where(m["n"] > 0, cov / jnp.sqrt(jnp.maximum(var, 1e-12)), 0.0)


def code_correlation(c):
  n = jnp.maximum(c["n"], 1e-6)
  mean = c["sz"] / n
  cov = c["szz"] / n - mean[:, None] * mean[None, :]
  std = jnp.sqrt(jnp.maximum(jnp.diagonal(cov), 1e-12))
  corr = cov / (std[:, None] * std[None, :])
  return jnp.clip(corr, -1.0, 1.0) * (1 - jnp.eye(len(mean))) + jnp.eye(len(mean))


@functools.lru_cache(maxsize=8)
def _encode_fn(vae):
  return jax.jit(lambda p, x: vae.apply({"params": p}, x, method=VAE.encode)[0])


METHOD = GEMMethod
