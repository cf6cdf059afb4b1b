"""beta-VAE family on ground-truth-factor images: beta-VAE, beta-TCVAE, capacity-annealed VAE."""

from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from jaxdisent.data import describe, make_source, per_example_keys
from jaxdisent.losses import vae as vae_losses
from jaxdisent.methods.base import Method
from jaxdisent.models import jit_init
from jaxdisent.models import vae as vae_model
from jaxdisent.models.vae import VAE


class BetaVAEMethod(Method):
  name = "beta_vae"
  evaluators = ("reconstruction", "disentanglement")

  def __init__(self, config):
    super().__init__(config)
    self.data = make_source(config, "ground_truth")  # data.source: dsprites | tfds:NAME
    model = config.model
    if int(model.latent_dim) < 1:
      raise ValueError(f"model.latent_dim={model.latent_dim} must be >= 1")
    if model.get("last_kernel", 2) not in (2, 4):
      raise ValueError(f"model.last_kernel={model.last_kernel}: use 2 (disentanglement_lib code) or 4")
    self.objective = vae_losses.get_objective(config.loss.objective)
    self.model = VAE(latent_dim=model.latent_dim, output_shape=self.data.observation_shape,
                     last_kernel=model.get("last_kernel", 2))
    self.latent_dim = model.latent_dim

  def describe(self) -> str:
    return describe(self.data)

  def init(self, rng):
    images = jnp.zeros((1, *self.data.observation_shape), jnp.float32)
    noise = jnp.zeros((1, self.latent_dim), jnp.float32)
    # one compiled program (models.jit_init); bitwise the eager init's parameters
    # (tests/test_golden_one_step.py checks it)
    return jit_init(self.model, rng, images, noise)["params"], {}

  def local_batch(self, seed, step, start, size):
    batch = self.data.batch(seed, step, start, size)
    return {"image": batch["image"], "index": batch["index"]}

  def loss(self, params, model_state, batch, rng, step, axis_name=None):
    images = batch["image"]
    noise = jax.vmap(lambda k: jax.random.normal(k, (self.latent_dim,)))(
        per_example_keys(rng, batch["index"]))
    logits, mean, logvar, z = self.model.apply({"params": params}, images, noise)
    recon = vae_losses.bernoulli_reconstruction(logits, images)
    kl = vae_losses.gaussian_kl(mean, logvar)
    objective = self.config.loss
    tc = None
    if self.objective.needs_total_correlation:
      pool_mean, pool_logvar = mean, logvar
      if axis_name is not None:  # the estimator's pool is the whole global batch
        pool_mean = lax.all_gather(mean, axis_name, tiled=True)
        pool_logvar = lax.all_gather(logvar, axis_name, tiled=True)
      tc = vae_losses.total_correlation(z, pool_mean, pool_logvar)
    loss, metrics = vae_losses.vae_objective(
        objective.objective, recon, kl, beta=objective.beta, tc_B=tc, step=step,
        c_max=objective.c_max, gamma=objective.capacity_weight,
        iteration_threshold=objective.iteration_threshold)
    return loss, (metrics, model_state)

  # ---- evaluation helpers --------------------------------------------------------------------

  def _forward_model(self):
    """The same VAE (same params) with flax's strided nn.Conv in the encoder: without gradients
    XLA's strided convolution is faster than space-to-depth (measured: ~3.7-4.4k vs ~3.0k images
    per CPU-second), which only pays off in the backward pass."""
    return self.model.clone(space_to_depth=False)

  def encode_mean(self, params, images, batch_size: int = 256):
    """Encoder means (the representation the disentanglement metrics use)."""
    model = self._forward_model()
    out = [vae_model.encode_mean(model, params, images[i:i + batch_size])
           for i in range(0, len(images), batch_size)]
    return jnp.concatenate(out, axis=0)

  def representation_fn(self, params):
    """images -> encoder means, the parameters as data (models.vae.representation_fn)."""
    return vae_model.representation_fn(self._forward_model(), params)

  def finalize(self, state, workdir, log=print):
    from jaxdisent.viz import vae_plots  # matplotlib only when plotting
    plots = os.path.join(workdir, "plots")
    os.makedirs(plots, exist_ok=True)
    rng = jax.random.key(self.config.seed + 12345)
    _, images = self.data.sample(rng, 8)
    # the module-level evaluation programs of models.vae (parameters as arguments): a later fit of
    # the same model reuses them
    means, logvar = vae_model.encode_gaussian(self.model, state.params, images)
    recon = vae_model.decode_mean(self.model, state.params, means)   # at z = mean (noise 0)
    paths = [vae_plots.save_reconstructions(np.asarray(images), np.asarray(recon),
                                            os.path.join(plots, "reconstructions.png"))]
    kl = np.asarray(jnp.mean(vae_losses.gaussian_kl(means, logvar), axis=0))
    mean = np.asarray(means[0])
    paths.append(vae_plots.save_traversals(
        lambda z: np.asarray(vae_model.decode_mean(self.model, state.params, jnp.asarray(z))),
        mean, os.path.join(plots, "traversals.png"), kl_per_latent=kl))
    log(f"[jaxdisent] plots: {', '.join(paths)}")

METHOD = BetaVAEMethod
