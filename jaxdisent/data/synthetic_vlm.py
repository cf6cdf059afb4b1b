"""Synthetic paired image/caption embeddings with planted concepts (the SAE default data).

A fixed dictionary of unit concept directions in R^dim is split into *shared* (bridge) concepts,
present in both an image and its caption, *image-only* and *text-only* concepts. Concept c fires in
a pair with probability p_c following a power law (rare and frequent concepts, as in real
embedding spaces), with a magnitude drawn from |N(1, 0.3^2)|; a shared concept fires in both
members of the pair with the caption's magnitude jittered by 10%. Each embedding is
``sum_c a_c d_c + modality_offset + noise``, then L2-normalised; ``modality_offset`` is +g for
images and -g for captions (the modality gap), g a fixed random direction of norm ``modality_gap``.

Training batches mix images and captions 1:1 by default (example i is the image of pair i // 2
for even i, its caption for odd i). ``image_fraction`` p in [0, 1] (``config.data.image_fraction``)
trains on an image:text mixture instead: example i is an image iff ceil((i + 1) p) > ceil(i p)
(every prefix of n examples holds round(n p) +- 1 images, on every device split), each example
from its own pair; p = 0.5 keeps the paired 1:1 batches bit for bit.

Everything is a pure function of (seed, step, index); ``truth()`` returns the ground truth.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np

from jaxdisent.rng import per_example_keys, step_key
from jaxdisent import rng as rng_streams

SHARED, IMAGE, TEXT = 0, 1, 2


@dataclasses.dataclass(frozen=True)
class SyntheticVLM:
  name = "synthetic"  # data.source (the Source protocol, jaxdisent/data/registry.py)
  dim: int = 64
  num_shared: int = 24
  num_image_only: int = 20
  num_text_only: int = 20
  active_per_pair: float = 4.0   # expected number of concepts firing per pair
  power_law: float = 0.8         # p_c ~ rank^-power_law
  modality_gap: float = 0.5
  noise: float = 0.02
  seed: int = 0
  image_fraction: float = 0.5    # share of images in training batches (module doc)

  def __post_init__(self):
    check_image_fraction(self.image_fraction)

  @property
  def num_concepts(self) -> int:
    return self.num_shared + self.num_image_only + self.num_text_only

  @functools.cached_property
  def _truth(self):
    rng = np.random.default_rng(self.seed)
    directions = rng.normal(size=(self.num_concepts, self.dim))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    modality = np.array([SHARED] * self.num_shared + [IMAGE] * self.num_image_only +
                        [TEXT] * self.num_text_only)
    ranks = rng.permutation(self.num_concepts) + 1.0
    freq = ranks ** -self.power_law
    freq = np.minimum(freq * self.active_per_pair / freq.sum(), 0.9)
    gap = rng.normal(size=self.dim)
    gap *= self.modality_gap / np.linalg.norm(gap)
    return {"directions": directions.astype(np.float32), "modality": modality,
            "frequency": freq.astype(np.float32), "gap": gap.astype(np.float32)}

  def truth(self) -> dict:
    """Concept directions (C, dim), modality (0 shared, 1 image-only, 2 text-only), firing
    probabilities (C,), and the modality-gap vector."""
    return dict(self._truth)

  def pairs(self, key, n: int):
    """n paired embeddings: (image (n, dim), text (n, dim), image acts (n, C), text acts (n, C))."""
    t = self._truth
    directions = jnp.asarray(t["directions"])
    modality = jnp.asarray(t["modality"])
    k_fire, k_mag, k_jit, k_noise = jax.random.split(key, 4)
    fire = jax.random.bernoulli(k_fire, jnp.asarray(t["frequency"]), (n, self.num_concepts))
    magnitude = jnp.abs(1.0 + 0.3 * jax.random.normal(k_mag, (n, self.num_concepts)))
    acts = jnp.where(fire, magnitude, 0.0)
    image_acts = jnp.where(modality[None] != TEXT, acts, 0.0)
    jitter = 1.0 + 0.1 * jax.random.normal(k_jit, acts.shape)
    text_acts = jnp.where(modality[None] != IMAGE, acts * jnp.where(modality[None] == SHARED, jitter, 1.0), 0.0)
    noise = self.noise * jax.random.normal(k_noise, (2, n, self.dim))
    gap = jnp.asarray(t["gap"])
    image = image_acts @ directions + gap + noise[0]
    text = text_acts @ directions - gap + noise[1]
    normalise = lambda e: e / jnp.linalg.norm(e, axis=1, keepdims=True)
    return normalise(image), normalise(text), image_acts, text_acts

  def batch(self, seed: int, step: int, start: int, size: int):
    """Training batch of ``size`` embeddings: example i is the image (even i) or caption (odd i)
    of pair i // 2, so a batch holds whole pairs wherever it is split evenly (with the default
    ``image_fraction`` 0.5; otherwise the mixture of the module doc)."""
    return _synthetic_batch(self, int(seed), jnp.asarray(step, jnp.int32), int(start), int(size))


def check_image_fraction(image_fraction) -> float:
  """``data.image_fraction`` as a float in [0, 1], else a ValueError naming the fix."""
  try:
    value = float(image_fraction)
  except (TypeError, ValueError):
    raise ValueError(f"data.image_fraction={image_fraction!r} must be a number in [0, 1] (share "
                     "of images in training batches; 0.5 = paired 1:1)") from None
  if not 0.0 <= value <= 1.0:
    raise ValueError(f"data.image_fraction={image_fraction!r} must be in [0, 1] (share of images "
                     "in training batches; 0.5 = paired 1:1)")
  return value


def mixture_is_image(index, image_fraction: float, xp=np):
  """Whether global example ``index`` is an image under the image:text mixture ``image_fraction``
  (module doc): ceil((i + 1) p) > ceil(i p), in float64 for NumPy, the default float for jnp."""
  p = float(image_fraction)
  index = xp.asarray(index)
  return xp.ceil((index + 1) * p) > xp.ceil(index * p)


@functools.partial(jax.jit, static_argnums=(0, 1, 4))   # start is traced (rng.example_indices)
def _synthetic_batch(data: SyntheticVLM, seed, step, start, size):
  index = rng_streams.example_indices(start, size)
  paired = float(data.image_fraction) == 0.5
  keys = per_example_keys(step_key(seed, step, salt=rng_streams.SYNTHETIC_VLM),
                          index // 2 if paired else index)
  one = lambda k: jax.tree.map(lambda a: a[0], data.pairs(k, 1))
  image, text, _, _ = jax.vmap(one)(keys)
  is_image = (index % 2 == 0) if paired else mixture_is_image(index, data.image_fraction, jnp)
  x = jnp.where(is_image[:, None], image, text)
  return {"x": x, "index": index.astype(jnp.int32)}
