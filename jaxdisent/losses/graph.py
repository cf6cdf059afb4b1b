"""Graph terms of the GEM objective (our documented specification; GEM does not publish its loss).

With A = P + Delta the D x D DisGraph (zero diagonal), P the oracle prior placed on the latent
nodes and M the mask of entries the prior covers (pairs of named nodes):

* ``graph_prior``  = sum_ij M_ij (A_ij - P_ij)^2 = sum_ij M_ij Delta_ij^2  (pull toward the oracle)
* ``sparsity``     = sum_ij |A_ij|                            (L1, as NOTEARS)
* ``structure``    = mean_b sum_j (m_bj - sum_i m_bi A_ij)^2 / D  (NOTEARS least squares on the
  standardised encoder means m, which are held fixed: the graph explains the codes, the codes are
  not bent toward the graph; no acyclicity constraint, the DisGraph may have cycles)
* adversarial (non-saturating GAN on images, real x vs the reconstruction sigmoid(logits)):
  ``discriminator_loss = softplus(-D(x)) + softplus(D(x_hat))`` trains only D (x_hat held fixed),
  ``generator_loss = softplus(-D(x_hat))`` trains only the VAE and graph (D held fixed); both are
  batch means and are summed into one scalar so the engine's single optimiser trains both sides.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def graph_prior(adjacency_DxD, prior_DxD, mask_DxD):
  return jnp.sum(mask_DxD * jnp.square(adjacency_DxD - prior_DxD))


def sparsity(adjacency_DxD):
  return jnp.sum(jnp.abs(adjacency_DxD))


def structure(standardised_codes_BxD, adjacency_DxD):
  codes = jax.lax.stop_gradient(standardised_codes_BxD)
  residual = codes - codes @ adjacency_DxD
  return jnp.mean(jnp.sum(jnp.square(residual), axis=1)) / codes.shape[1]


def discriminator_loss(real_logits_B, fake_logits_B):
  return jnp.mean(jax.nn.softplus(-real_logits_B) + jax.nn.softplus(fake_logits_B))


def generator_loss(fake_logits_B):
  return jnp.mean(jax.nn.softplus(-fake_logits_B))


def prior_on_nodes(relations_AxA, node_of_attribute_A, num_nodes: int):
  """(P, M) on D latent nodes from attribute relations and the node matched to each attribute."""
  a = relations_AxA.shape[0]
  prior = jnp.zeros((num_nodes, num_nodes)).at[
      node_of_attribute_A[:, None], node_of_attribute_A[None, :]].set(relations_AxA)
  named = jnp.zeros((num_nodes,)).at[node_of_attribute_A].set(1.0)
  mask = named[:, None] * named[None, :] * (1.0 - jnp.eye(num_nodes))
  del a
  return prior * mask, mask
