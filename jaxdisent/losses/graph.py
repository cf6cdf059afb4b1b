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

``model.prior='scm'`` (issue 22) replaces the GNN before the decoder by a structured latent prior:
z = (I - A^T)^-1 eps, eps ~ N(0, I), whose KL in closed form is :func:`scm_kl`; ``acyclicity``
is NOTEARS' h(A) (an optional penalty: GEM's graph may be cyclic).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def graph_prior(adjacency_DxD, prior_DxD, mask_DxD):
  """Pull toward the oracle: sum_ij M_ij (A_ij - P_ij)^2 (module docstring; GEM [xie2024]).

  Our specification of GEM's prior term (GEM does not publish its loss): squared deviation of the
  DisGraph from the oracle prior on the entries the prior covers.

  Args:
    adjacency_DxD: (D, D) float array A, the learned DisGraph (A[i, j]: weight of i -> j).
    prior_DxD: (D, D) float array P, the oracle prior on the latent nodes (:func:`prior_on_nodes`).
    mask_DxD: (D, D) float 0/1 array M, the entries the prior covers.

  Returns:
    scalar float array (the adjacency's dtype).
  """
  return jnp.sum(mask_DxD * jnp.square(adjacency_DxD - prior_DxD))


def sparsity(adjacency_DxD):
  """L1 sparsity of the DisGraph, sum_ij |A_ij| (as NOTEARS [zheng2018]).

  Args:
    adjacency_DxD: (D, D) float array A.

  Returns:
    scalar float array (the adjacency's dtype).
  """
  return jnp.sum(jnp.abs(adjacency_DxD))


def structure(standardised_codes_BxD, adjacency_DxD):
  """NOTEARS least squares of the codes on the graph, mean_b sum_j (m_bj - sum_i m_bi A_ij)^2 / D.

  The least-squares loss of NOTEARS [zheng2018] on the standardised encoder means m, which are held
  fixed (gradient stopped): the graph explains the codes, the codes are not bent toward the graph.
  No acyclicity constraint here (GEM's DisGraph may have cycles; see :func:`acyclicity`).

  Args:
    standardised_codes_BxD: (B, D) float array, the standardised encoder means.
    adjacency_DxD: (D, D) float array A (A[i, j]: weight of i -> j).

  Returns:
    scalar float array (the codes' dtype).
  """
  codes = jax.lax.stop_gradient(standardised_codes_BxD)
  residual = codes - codes @ adjacency_DxD
  return jnp.mean(jnp.sum(jnp.square(residual), axis=1)) / codes.shape[1]


def discriminator_loss(real_logits_B, fake_logits_B):
  """Non-saturating GAN discriminator loss, mean_b softplus(-D(x)) + softplus(D(x_hat)).

  Trains only the discriminator (the caller holds x_hat fixed); the logistic GAN loss of
  Goodfellow et al. (2014), as the module docstring describes.

  Args:
    real_logits_B: (B,) float array, discriminator logits of the real images.
    fake_logits_B: (B,) float array, discriminator logits of the reconstructions.

  Returns:
    scalar float array (the logits' dtype), the batch mean.
  """
  return jnp.mean(jax.nn.softplus(-real_logits_B) + jax.nn.softplus(fake_logits_B))


def generator_loss(fake_logits_B):
  """Non-saturating GAN generator loss, mean_b softplus(-D(x_hat)).

  Trains only the VAE and graph (the caller holds the discriminator fixed); Goodfellow et al.
  (2014)'s non-saturating form.

  Args:
    fake_logits_B: (B,) float array, discriminator logits of the reconstructions.

  Returns:
    scalar float array (the logits' dtype), the batch mean.
  """
  return jnp.mean(jax.nn.softplus(-fake_logits_B))


def prior_on_nodes(relations_AxA, node_of_attribute_A, num_nodes: int):
  """(P, M) on D latent nodes from attribute relations and the node matched to each attribute.

  P[node_a, node_b] = relations[a, b] for every pair of named nodes; M is 1 on the pairs of named
  nodes off the diagonal and 0 elsewhere; P is zero outside M.

  Args:
    relations_AxA: (A, A) float array, the oracle's relations between the A attributes.
    node_of_attribute_A: (A,) integer array, the latent node matched to each attribute (distinct
      indices in [0, num_nodes)).
    num_nodes: Python int D, the number of latent nodes.

  Returns:
    (prior_DxD, mask_DxD): two (D, D) float arrays in JAX's default float dtype (float32 unless
    x64 is enabled).
  """
  a = relations_AxA.shape[0]
  prior = jnp.zeros((num_nodes, num_nodes)).at[
      node_of_attribute_A[:, None], node_of_attribute_A[None, :]].set(relations_AxA)
  named = jnp.zeros((num_nodes,)).at[node_of_attribute_A].set(1.0)
  mask = named[:, None] * named[None, :] * (1.0 - jnp.eye(num_nodes))
  del a
  return prior * mask, mask


# ---- the structured latent prior (model.prior='scm') -------------------------------------------

def scm_kl(mean_BxD, logvar_BxD, adjacency_DxD):
  """KL( N(mean, diag(exp(logvar))) || N(0, Sigma_A) ) per example, in closed form.

  Sigma_A is the covariance of the linear SCM z = A^T z + eps, eps ~ N(0, I), i.e.
  z = (I - A^T)^-1 eps (A[i, j]: weight of i -> j; the linear SCM of CausalVAE [yang2021]).

  Sigma_A = (I - A^T)^-1 (I - A)^-1, so Sigma_A^-1 = (I - A)(I - A^T) and
  log det Sigma_A = -2 log |det(I - A)|; with s^2 = exp(logvar):

    KL = 1/2 [ sum_j ||row j of (I - A)||^2 s_j^2 + ||mean - mean A||^2 - D
               - 2 log |det(I - A)| - sum_j log s_j^2 ]

  At A = 0 this is the standard VAE KL. Needs I - A invertible (spectral radius of A < 1 for the
  SCM to be stable; see :func:`scm_spectral_radius`).

  Args:
    mean_BxD: (B, D) float array, the encoder means.
    logvar_BxD: (B, D) float array, the encoder log-variances.
    adjacency_DxD: (D, D) float array A.

  Returns:
    (B,) float array (the inputs' dtype), the KL of each example (summed over latents).
  """
  d = adjacency_DxD.shape[0]
  i_minus_a = jnp.eye(d, dtype=adjacency_DxD.dtype) - adjacency_DxD
  row_norms = jnp.sum(jnp.square(i_minus_a), axis=1)                     # diag of Sigma^-1
  trace = jnp.sum(row_norms * jnp.exp(logvar_BxD), axis=1)
  residual = mean_BxD - mean_BxD @ adjacency_DxD                          # (I - A^T) mean
  mahalanobis = jnp.sum(jnp.square(residual), axis=1)
  _, logabsdet = jnp.linalg.slogdet(i_minus_a)
  return 0.5 * (trace + mahalanobis - d - 2.0 * logabsdet - jnp.sum(logvar_BxD, axis=1))


def scm_spectral_radius(adjacency_DxD) -> float:
  """max |eigenvalue| of A (host, NumPy): < 1 means z = (I - A^T)^-1 eps is a stable SCM.

  Not jittable (NumPy eigenvalues in float64).

  Args:
    adjacency_DxD: (D, D) array A (NumPy or JAX, concrete).

  Returns:
    Python float.
  """
  import numpy as np  # pylint: disable=g-import-not-at-top
  return float(np.max(np.abs(np.linalg.eigvals(np.asarray(adjacency_DxD, np.float64)))))


def acyclicity(adjacency_DxD):
  """NOTEARS' h(A) = tr(exp(A o A)) - D: 0 exactly when the weighted graph has no cycle.

  The acyclicity function of [zheng2018], here an optional penalty (GEM's graph may be cyclic);
  A o A is the elementwise square.

  Args:
    adjacency_DxD: (D, D) float array A.

  Returns:
    scalar float array (the adjacency's dtype), >= 0 up to rounding.
  """
  d = adjacency_DxD.shape[0]
  return jnp.trace(jax.scipy.linalg.expm(adjacency_DxD * adjacency_DxD)) - d
