"""The DisGraph's learnable adjacency and a directed message-passing GNN over latent nodes (linen).

Our specification (GEM publishes no GNN type). Nodes are the D latent factors; node j's feature is
its sampled latent z_j embedded as h_j = z_j * u_j + c_j (u, c learned per node, width H). With the
dense weighted adjacency A (D x D, A[i, j] = weight of i -> j, zero diagonal), each of ``num_layers``
rounds computes

    m_j = sum_i A[i, j] * relu(W_msg h_i + b_msg)               (messages along directed edges)
    h_j <- h_j + relu(W_upd [h_j, m_j] + b_upd)

and the relation-aware latent is z'_j = z_j + <h_j, o_j> with a per-node readout o_j initialised
to zero, so at initialisation z' = z and the decoder starts from the plain beta-VAE. Only the
adjacency carries graph structure (messages between unconnected nodes are zero).
"""

from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp


class Adjacency(nn.Module):
  """A learnable dense D x D adjacency with a zero diagonal, initialised from ``init_DxD``."""

  num_nodes: int
  init_DxD: object = None

  @nn.compact
  def __call__(self):
    init = self.init_DxD
    weights = self.param(
        "weights", lambda _key: jnp.zeros((self.num_nodes, self.num_nodes)) if init is None
        else jnp.asarray(init, jnp.float32))
    return weights * (1.0 - jnp.eye(self.num_nodes))


class DirectedGNN(nn.Module):
  """z (B, D), A (D, D) -> relation-aware z' (B, D); see the module docstring."""

  num_nodes: int
  hidden: int = 16
  num_layers: int = 2

  @nn.compact
  def __call__(self, z_BxD, adjacency_DxD):
    d, h = self.num_nodes, self.hidden
    scale = self.param("node_scale", nn.initializers.normal(1.0), (d, h))
    shift = self.param("node_shift", nn.initializers.normal(0.1), (d, h))
    nodes = z_BxD[:, :, None] * scale + shift                              # B x D x H
    for layer in range(self.num_layers):
      message = nn.relu(nn.Dense(h, name=f"message_{layer}")(nodes))
      incoming = jnp.einsum("ij,bih->bjh", adjacency_DxD, message)
      nodes = nodes + nn.relu(nn.Dense(h, name=f"update_{layer}")(
          jnp.concatenate([nodes, incoming], axis=-1)))
    readout = self.param("readout", nn.initializers.zeros, (d, h))
    return z_BxD + jnp.sum(nodes * readout, axis=-1)


class ImageDiscriminator(nn.Module):
  """Small MLP critic on 16x16 average-pooled images (the optional adversarial term)."""

  hidden: int = 128

  @nn.compact
  def __call__(self, images_BxHxWxC):
    b, height, width, c = images_BxHxWxC.shape
    pooled = images_BxHxWxC.reshape(b, 16, height // 16, 16, width // 16, c).mean(axis=(2, 4))
    x = nn.leaky_relu(nn.Dense(self.hidden)(pooled.reshape(b, -1)), 0.2)
    x = nn.leaky_relu(nn.Dense(self.hidden)(x), 0.2)
    return nn.Dense(1)(x)[:, 0]
