"""DecAlign network (flax.linen): decoupled unique/common features and cross-modal fusion.

For M >= 2 modalities, each a (B, L_m, D_m) sequence with a (B, L_m) padding mask:

1. temporal projection: a per-modality 1-D convolution (kernel `conv_kernel`) to width d;
2. a per-modality UNIQUE encoder and one COMMON encoder shared by all modalities (two-layer MLPs
   over time steps), each followed by a masked mean over time -> unique_m, common_m (B, d);
3. homogeneity heads: a per-modality MLP on common_m -> the features whose moments / MMD are
   matched across modalities;
4. fusion: for each modality, a cross-modal transformer block whose queries are its unique
   sequence and whose keys / values are the other modalities' unique sequences (padding masked),
   mean-pooled over valid steps; the M fused vectors are concatenated with the M pooled common
   vectors and a linear head gives the output (1 for regression, C logits for classification).
"""

from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp


def masked_mean(x_BxLxD, mask_BxL):
  m = mask_BxL.astype(x_BxLxD.dtype)[..., None]
  return jnp.sum(x_BxLxD * m, axis=1) / jnp.maximum(jnp.sum(m, axis=1), 1.0)


class MLP(nn.Module):
  width: int
  out: int

  @nn.compact
  def __call__(self, x):
    return nn.Dense(self.out)(nn.gelu(nn.Dense(self.width)(x)))


class CrossAttention(nn.Module):
  """Multi-head cross-attention. Keys have no bias: a key bias adds the same q.b to every logit of
  a query, which softmax ignores, so its gradient is exactly zero (and Adam would only amplify
  rounding noise into it)."""
  width: int
  num_heads: int

  @nn.compact
  def __call__(self, query_BxLxD, context_BxSxD, context_mask_BxS):
    if self.width % self.num_heads:
      raise ValueError(f"model.width={self.width} must be divisible by model.num_heads={self.num_heads}")
    head = self.width // self.num_heads
    shape = (self.num_heads, head)
    q = nn.DenseGeneral(shape, name="query")(query_BxLxD)
    k = nn.DenseGeneral(shape, use_bias=False, name="key")(context_BxSxD)
    v = nn.DenseGeneral(shape, name="value")(context_BxSxD)
    logits = jnp.einsum("blhd,bshd->bhls", q, k) / jnp.sqrt(head).astype(q.dtype)
    valid = context_mask_BxS[:, None, None, :] > 0
    logits = jnp.where(valid, logits, jnp.finfo(logits.dtype).min)
    weights = jax.nn.softmax(logits, axis=-1) * valid   # a row with no valid key attends to nothing
    out = jnp.einsum("bhls,bshd->blhd", weights, v)
    return nn.DenseGeneral(self.width, axis=(-2, -1), name="out")(out)


class CrossModalBlock(nn.Module):
  """Pre-norm transformer block: cross-attention from `query` to `context`, then a feed-forward."""
  width: int
  num_heads: int

  @nn.compact
  def __call__(self, query_BxLxD, context_BxSxD, context_mask_BxS):
    q = nn.LayerNorm()(query_BxLxD)
    kv = nn.LayerNorm()(context_BxSxD)
    x = query_BxLxD + CrossAttention(self.width, self.num_heads)(q, kv, context_mask_BxS)
    return x + MLP(2 * self.width, self.width)(nn.LayerNorm()(x))


class DecAlignNet(nn.Module):
  width: int = 32
  num_heads: int = 4
  conv_kernel: int = 1
  num_outputs: int = 1
  fusion: bool = True

  @nn.compact
  def __call__(self, inputs: Sequence[jnp.ndarray], masks: Sequence[jnp.ndarray]):
    if len(inputs) < 2 or len(inputs) != len(masks):
      raise ValueError(f"DecAlign needs >= 2 modalities with one mask each; got {len(inputs)} inputs "
                       f"and {len(masks)} masks")
    d = self.width
    common_encoder = MLP(d, d, name="common_encoder")
    seq_unique, pooled_unique, pooled_common, homogeneity = [], [], [], []
    for m, (x, mask) in enumerate(zip(inputs, masks)):
      if x.ndim != 3 or mask.shape != x.shape[:2]:
        raise ValueError(f"modality {m}: expected inputs (B, L, D) and mask (B, L), got {x.shape} "
                         f"and {mask.shape}")
      x = x * mask[..., None].astype(x.dtype)
      h = nn.Conv(d, (self.conv_kernel,), padding="SAME", name=f"project_{m}")(x)
      u = MLP(d, d, name=f"unique_encoder_{m}")(h)
      c = common_encoder(h)
      seq_unique.append(u)
      pooled_unique.append(masked_mean(u, mask))
      pooled_common.append(masked_mean(c, mask))
      homogeneity.append(MLP(d, d, name=f"homogeneity_{m}")(pooled_common[-1]))
    fused = []
    if self.fusion:
      for m, (u, mask) in enumerate(zip(seq_unique, masks)):
        others = [j for j in range(len(inputs)) if j != m]
        context = jnp.concatenate([seq_unique[j] for j in others], axis=1)
        context_mask = jnp.concatenate([masks[j] for j in others], axis=1)
        out = CrossModalBlock(d, self.num_heads, name=f"cross_{m}")(u, context, context_mask)
        fused.append(masked_mean(out, mask))
    else:
      fused = pooled_unique
    representation = jnp.concatenate(fused + pooled_common, axis=-1)
    output = nn.Dense(self.num_outputs, name="head")(nn.gelu(nn.Dense(d, name="head_hidden")(representation)))
    return {"output": output, "unique": pooled_unique, "common": pooled_common,
            "homogeneity": homogeneity, "representation": representation}
