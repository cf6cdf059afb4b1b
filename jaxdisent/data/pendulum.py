"""Pendulum (CausalVAE / DEAR benchmark), rendered procedurally inside jit.

Factor grid as published (REFERENCES.md section 3): pendulum angle theta = i * pi / 200,
i in [-40, 43], and light position phi = j * pi / 200, j in [60, 147]: the published count is
84 x 87 = 7,308 images, so we use j = 60 .. 146 (87 values); pool index n = (i + 40) * 87 + (j - 60)
(light varies fastest).

Geometry (our choice; CausalVAE's matplotlib script is not reproduced pixel for pixel), in scene
units on a [0, 20] x [0, 20] canvas, y pointing up:

* pivot P = (10, 10.5); rod of length 8 to the ball centre B = P + 8 (sin theta, -cos theta);
  ball radius 1.5;
* the light sits on a circle of radius 9.5 about the pivot: L = P + 9.5 (-cos phi, sin phi)
  (phi < pi/2: light on the left; > pi/2: on the right), drawn as a disc of radius 1;
* the ground is the line y = 0.5; the shadow is the central projection from L onto the ground of the
  pivot and of the ball's horizontal extremes B +- (1.5, 0): an interval [s0, s1];
* shadow position = (s0 + s1) / 2, shadow length = s1 - s0, drawn as a dark bar of height 1 on the
  ground line (clipped to the canvas).

Images are 64 x 64 RGB in [0, 1] (the paper's are 96 x 96; 64 matches our VAE): white background,
black rod (width 0.4), red ball, orange light, grey shadow. Factor values handed to oracles are the
four quantities rescaled to [0, 1] by their min / max over the grid. Ground truth (the standard
four-factor graph): angle -> {shadow_length, shadow_position}, light -> {shadow_length,
shadow_position}, all weights 1.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from jaxdisent.data.graph_source import GraphSource

ANGLE_STEPS = np.arange(-40, 44)
LIGHT_STEPS = np.arange(60, 148)[:87]  # 87 light positions, j = 60 .. 146 (published count)
PIVOT = (10.0, 10.5)
ROD = 8.0
BALL = 1.5
LIGHT_RADIUS = 9.5
GROUND = 0.5
SCENE = 20.0
IMAGE_SIZE = 64
NAMES = ("angle", "light", "shadow_length", "shadow_position")


def geometry(theta, phi):
  """(shadow_length, shadow_position) in scene units; vectorised, jit-friendly."""
  px, py = PIVOT
  bx, by = px + ROD * jnp.sin(theta), py - ROD * jnp.cos(theta)
  lx, ly = px - LIGHT_RADIUS * jnp.cos(phi), py + LIGHT_RADIUS * jnp.sin(phi)

  def project(x, y):
    return lx + (x - lx) * (ly - GROUND) / jnp.maximum(ly - y, 1e-3)

  points = jnp.stack([project(px, py), project(bx - BALL, by), project(bx + BALL, by)])
  s0, s1 = points.min(axis=0), points.max(axis=0)
  return s1 - s0, 0.5 * (s0 + s1)


def render(theta, phi, size: int = IMAGE_SIZE):
  """One (size, size, 3) image for scalar angle theta and light phi (radians)."""
  px, py = PIVOT
  centres = (jnp.arange(size, dtype=jnp.float32) + 0.5) * SCENE / size
  x, y_down = jnp.meshgrid(centres, centres)
  y = SCENE - y_down  # row 0 is the top of the scene
  bx, by = px + ROD * jnp.sin(theta), py - ROD * jnp.cos(theta)
  lx, ly = px - LIGHT_RADIUS * jnp.cos(phi), py + LIGHT_RADIUS * jnp.sin(phi)
  # distance to the rod segment P-B
  dx, dy = bx - px, by - py
  t = jnp.clip(((x - px) * dx + (y - py) * dy) / (dx * dx + dy * dy), 0.0, 1.0)
  rod = jnp.hypot(x - (px + t * dx), y - (py + t * dy)) <= 0.2
  ball = jnp.hypot(x - bx, y - by) <= BALL
  light = jnp.hypot(x - lx, y - ly) <= 1.0
  length, position = geometry(theta, phi)
  shadow = (jnp.abs(x - position) <= 0.5 * length) & (y <= GROUND + 0.5) & (y >= GROUND - 0.5)
  image = jnp.ones((size, size, 3), jnp.float32)
  image = jnp.where(shadow[..., None], jnp.array([0.35, 0.35, 0.35]), image)
  image = jnp.where(light[..., None], jnp.array([1.0, 0.65, 0.0]), image)
  image = jnp.where(rod[..., None], jnp.array([0.0, 0.0, 0.0]), image)
  image = jnp.where(ball[..., None], jnp.array([0.8, 0.1, 0.1]), image)
  return image


def _grid_values():
  theta = ANGLE_STEPS[:, None] * math.pi / 200 + 0 * LIGHT_STEPS[None, :]
  phi = 0 * ANGLE_STEPS[:, None] + LIGHT_STEPS[None, :] * math.pi / 200
  theta, phi = theta.reshape(-1), phi.reshape(-1)
  length, position = (np.asarray(v) for v in geometry(jnp.asarray(theta), jnp.asarray(phi)))
  raw = np.stack([theta, phi, length, position], axis=1).astype(np.float64)
  low, high = raw.min(axis=0), raw.max(axis=0)
  return raw, ((raw - low) / (high - low)).astype(np.float32)


class Pendulum(GraphSource):
  """The 7,308-image pendulum grid; see the module docstring for the geometry."""

  name = "pendulum"

  def __init__(self):
    raw, values = _grid_values()
    self.raw_values = raw  # radians and scene units
    self._values = jnp.asarray(values)
    self._angle = jnp.asarray(raw[:, 0], jnp.float32)
    self._light = jnp.asarray(raw[:, 1], jnp.float32)

  @property
  def attribute_names(self):
    return NAMES

  @property
  def pool_size(self):
    return len(ANGLE_STEPS) * len(LIGHT_STEPS)

  @property
  def observation_shape(self):
    return (IMAGE_SIZE, IMAGE_SIZE, 3)

  def settings(self):
    return {"geometry": [PIVOT, ROD, BALL, LIGHT_RADIUS, GROUND, SCENE, IMAGE_SIZE]}

  def true_adjacency(self):
    w = np.zeros((4, 4))
    w[0, 2] = w[0, 3] = w[1, 2] = w[1, 3] = 1.0
    return w

  def pool_values(self, index_N):
    return self._values[jnp.asarray(index_N, jnp.int32)]

  def pool_images(self, index_N):
    index = jnp.asarray(index_N, jnp.int32)
    return jax.vmap(render)(self._angle[index], self._light[index])
