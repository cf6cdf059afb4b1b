"""Procedural dSprites: the exact dSprites factor grid, rendered inside jit instead of downloaded.

Factor grid (identical to the released dataset [matthey2017], docs/references.md):

=========== ======= ======================================================
factor       classes values
=========== ======= ======================================================
shape        3       square, ellipse, heart (values 1, 2, 3 as in dSprites)
scale        6       linspace(0.5, 1.0, 6)
orientation  40      linspace(0, 2*pi, 40), endpoints included
posX         32      linspace(0, 1, 32)
posY         32      linspace(0, 1, 32)  (varies fastest)
=========== ======= ======================================================

737,280 combinations; images are binary 64x64x1, no anti-aliasing.

Geometry (our choice; the released dSprites geometry was never published, so no renderer is
pixel-exact):

* pixel (row r, column c) has its centre at (c + 0.5, r + 0.5) in pixel units;
* the shape centre is at ``16 + 32 * posX`` columns and ``16 + 32 * posY`` rows, so positions span
  the central 32x32 pixels and the largest rotated shape stays inside the canvas;
* a shape of scale s has half-size ``10 * s`` pixels (5 to 10 px);
* square: ``max(|u|, |v|) <= 1``; ellipse: ``u**2 + (v / 0.5)**2 <= 1`` (2:1 axes);
  heart: the implicit curve ``(x**2 + y**2 - 1)**3 - x**2 * y**3 <= 0`` scaled to half-width ~1,
  lobes up, shifted so that its area centroid is the shape centre;
* orientation rotates the shape about its centre, clockwise as displayed (rows pointing down).
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np

from jaxdisent.data.ground_truth import GroundTruthData

IMAGE_SIZE = 64
POSITION_OFFSET_PX = 16.0
POSITION_RANGE_PX = 32.0
HALF_SIZE_PX = 10.0
ELLIPSE_MINOR = 0.5
HEART_SCALE = 1.15  # heart curve units per shape unit: half-width of the curve is ~1.14


def _heart_inside(x, y):
  return (x * x + y * y - 1.0) ** 3 - x * x * y ** 3 <= 0.0


def _heart_centroid_y() -> float:
  """Area centroid (y) of the implicit heart curve; it is symmetric in x."""
  grid = np.linspace(-1.5, 1.5, 1201)
  x, y = np.meshgrid(grid, grid)
  inside = _heart_inside(x, y)
  return float(y[inside].mean())


# _heart_centroid_y()'s value, written out: computing it took ~0.16 s of every process's import
# (tests/test_dsprites.py checks that the two are bitwise equal).
HEART_CENTROID_Y = 0.2934851208001571


def render(shape, scale, orientation, pos_x, pos_y, size: int = IMAGE_SIZE) -> jax.Array:
  """Render one sprite from factor *values* (shape class 0/1/2 = square/ellipse/heart).

  Scalars in, a float32 (size, size) image of 0s and 1s out; jit- and vmap-friendly.
  """
  pixel = jnp.arange(size, dtype=jnp.float32) + 0.5
  cols, rows = jnp.meshgrid(pixel, pixel)  # (row, col) indexing
  unit = size / IMAGE_SIZE
  centre_x = (POSITION_OFFSET_PX + POSITION_RANGE_PX * pos_x) * unit
  centre_y = (POSITION_OFFSET_PX + POSITION_RANGE_PX * pos_y) * unit
  half = HALF_SIZE_PX * unit * scale
  dx, dy = cols - centre_x, rows - centre_y
  cos, sin = jnp.cos(orientation), jnp.sin(orientation)
  # Inverse rotation takes canvas offsets into the shape's own frame.
  u = (cos * dx + sin * dy) / half
  v = (-sin * dx + cos * dy) / half
  square = jnp.maximum(jnp.abs(u), jnp.abs(v)) <= 1.0
  ellipse = u * u + (v / ELLIPSE_MINOR) ** 2 <= 1.0
  # Rows grow downwards, so the curve's y is -v; shift so the area centroid sits at the centre.
  heart = _heart_inside(HEART_SCALE * u, -HEART_SCALE * v + HEART_CENTROID_Y)
  image = jnp.where(shape == 0, square, jnp.where(shape == 1, ellipse, heart))
  return image.astype(jnp.float32)


class DSprites(GroundTruthData):
  """dSprites factor grid with a procedural renderer (see module docstring for the geometry)."""

  name = "dsprites"
  jittable = True  # images_from_factors can run inside jit (metrics fuse render + encode)
  FACTOR_NAMES = ("shape", "scale", "orientation", "posX", "posY")
  FACTOR_SIZES = (3, 6, 40, 32, 32)

  # No instance state: every DSprites is the same dataset. Equal and hashed by type, the programs
  # that take one as a static argument (_batch_jit) are shared by all instances (each new method
  # built its own DSprites, and traced and lowered its batch program again).
  def __eq__(self, other):
    return type(other) is type(self)

  def __hash__(self):
    return hash(type(self))

  @property
  def factor_names(self):
    return self.FACTOR_NAMES

  @property
  def factor_sizes(self):
    return self.FACTOR_SIZES

  @property
  def observation_shape(self):
    return (IMAGE_SIZE, IMAGE_SIZE, 1)

  def factor_values(self):
    return [
        np.array([1.0, 2.0, 3.0], dtype=np.float32),
        np.linspace(0.5, 1.0, 6, dtype=np.float32),
        np.linspace(0.0, 2 * math.pi, 40, dtype=np.float32),
        np.linspace(0.0, 1.0, 32, dtype=np.float32),
        np.linspace(0.0, 1.0, 32, dtype=np.float32),
    ]

  def images_from_factors(self, factors_NxK) -> jax.Array:
    if not isinstance(factors_NxK, jax.core.Tracer):
      factors = np.asarray(factors_NxK)
      if not np.issubdtype(factors.dtype, np.integer):
        raise TypeError(f"factors must be integer class indices, got dtype {factors.dtype}")
      self._check_factors(factors)
    return _images_from_factors(jnp.asarray(factors_NxK, dtype=jnp.int32))

  def batch(self, seed, step, start, size):
    return _batch(self, seed, step, start, size)


@jax.jit
def _images_from_factors(factors_NxK: jax.Array) -> jax.Array:
  values = [jnp.asarray(v) for v in DSprites().factor_values()]
  scale = values[1][factors_NxK[:, 1]]
  orientation = values[2][factors_NxK[:, 2]]
  pos_x = values[3][factors_NxK[:, 3]]
  pos_y = values[4][factors_NxK[:, 4]]
  images = jax.vmap(render)(factors_NxK[:, 0], scale, orientation, pos_x, pos_y)
  return images[..., None]


@functools.partial(jax.jit, static_argnums=(0, 1, 4))   # start is traced (rng.example_indices)
def _batch_jit(data, seed, step, start, size):
  return GroundTruthData.batch(data, seed, step, start, size)


def _batch(data, seed, step, start, size):
  return _batch_jit(data, int(seed), jnp.asarray(step, jnp.int32), int(start), int(size))
