"""DecAlign network (flax.linen): decoupled unique/common features and cross-modal fusion.

For M >= 2 modalities, each a (B, L_m, D_m) sequence with a (B, L_m) padding mask:

1. temporal projection: a per-modality 1-D convolution (kernel `conv_kernel`) to width d;
2. a per-modality UNIQUE encoder and one COMMON encoder shared by all modalities (two-layer MLPs
   over time steps), each followed by a masked mean over time -> unique_m, common_m (B, d);
3. homogeneity heads: a per-modality MLP on common_m -> the features whose moments / MMD are
   matched across modalities;
4. fusion: for each modality, ``fusion_layers`` stacked cross-modal transformer blocks whose
   queries are its (updated) unique sequence and whose keys / values are the other modalities'
   unique sequences (padding masked), mean-pooled over valid steps; the M fused vectors are
   concatenated with the M pooled common vectors and a head gives the output (1 for regression,
   C logits for classification).

``fusion_layers=1, dropout=0`` (our default) is one pre-norm block; the official code
(taco-group/DecAlign) stacks ``nlevels`` (5 for MOSI) post-norm MulT layers with dropout on the
attention weights, the residual branches and the feed-forward hidden layer. ``dropout`` here acts
at those three places in every block (``deterministic=False`` needs a ``dropout`` rng); the blocks
stay pre-norm, with no positional embedding or sqrt(d) input scaling (a deviation).
"""

from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

HEAD_INPUTS = ("all", "common")   # what the task head reads (model.head_input)


def masked_mean(x_BxLxD, mask_BxL):
  m = mask_BxL.astype(x_BxLxD.dtype)[..., None]
  return jnp.sum(x_BxLxD * m, axis=1) / jnp.maximum(jnp.sum(m, axis=1), 1.0)


class MLP(nn.Module):
  width: int
  out: int
  dropout: float = 0.0   # on the hidden layer, training only

  @nn.compact
  def __call__(self, x, deterministic: bool = True):
    # The output layer is constructed first so that it stays "Dense_0" and the hidden layer
    # "Dense_1", the automatic names of the original one-line MLP: checkpoints written before
    # dropout existed restore, and a seed gives the same initial parameters as it did.
    output = nn.Dense(self.out)
    hidden = nn.gelu(nn.Dense(self.width)(x))
    if self.dropout:
      hidden = nn.Dropout(self.dropout)(hidden, deterministic=deterministic)
    return output(hidden)


class CrossAttention(nn.Module):
  """Multi-head cross-attention. Keys have no bias: a key bias adds the same q.b to every logit of
  a query, which softmax ignores, so its gradient is exactly zero (and Adam would only amplify
  rounding noise into it)."""
  width: int
  num_heads: int
  dropout: float = 0.0

  @nn.compact
  def __call__(self, query_BxLxD, context_BxSxD, context_mask_BxS, deterministic: bool = True):
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
    weights = nn.Dropout(self.dropout)(weights, deterministic=deterministic)
    out = jnp.einsum("bhls,bshd->blhd", weights, v)
    return nn.DenseGeneral(self.width, axis=(-2, -1), name="out")(out)


class CrossModalBlock(nn.Module):
  """Pre-norm transformer block: cross-attention from `query` to `context`, then a feed-forward;
  dropout (training only) on the attention weights, the FFN hidden layer and both residual
  branches."""
  width: int
  num_heads: int
  dropout: float = 0.0

  @nn.compact
  def __call__(self, query_BxLxD, context_BxSxD, context_mask_BxS, deterministic: bool = True):
    drop = lambda x: nn.Dropout(self.dropout)(x, deterministic=deterministic)
    q = nn.LayerNorm()(query_BxLxD)
    kv = nn.LayerNorm()(context_BxSxD)
    attended = CrossAttention(self.width, self.num_heads, self.dropout)(q, kv, context_mask_BxS,
                                                                        deterministic)
    x = query_BxLxD + drop(attended)
    return x + drop(MLP(2 * self.width, self.width, self.dropout)(nn.LayerNorm()(x), deterministic))


class DecAlignNet(nn.Module):
  width: int = 32
  num_heads: int = 4
  conv_kernel: int = 1
  num_outputs: int = 1
  fusion: bool = True
  fusion_layers: int = 1
  dropout: float = 0.0
  head_input: str = "all"        # all: fused unique + common (the paper); common: common only

  @nn.compact
  def __call__(self, inputs: Sequence[jnp.ndarray], masks: Sequence[jnp.ndarray],
               deterministic: bool = True):
    if len(inputs) < 2 or len(inputs) != len(masks):
      raise ValueError(f"DecAlign needs >= 2 modalities with one mask each; got {len(inputs)} inputs "
                       f"and {len(masks)} masks")
    d = self.width
    common_encoder = MLP(d, d, name="common_encoder")
    if self.fusion_layers < 1:
      raise ValueError(f"model.fusion_layers={self.fusion_layers} must be >= 1 (0 fusion: model.fusion=false)")
    seq_unique, seq_common, pooled_unique, pooled_common, homogeneity = [], [], [], [], []
    for m, (x, mask) in enumerate(zip(inputs, masks)):
      if x.ndim != 3 or mask.shape != x.shape[:2]:
        raise ValueError(f"modality {m}: expected inputs (B, L, D) and mask (B, L), got {x.shape} "
                         f"and {mask.shape}")
      x = x * mask[..., None].astype(x.dtype)
      h = nn.Conv(d, (self.conv_kernel,), padding="SAME", name=f"project_{m}")(x)
      u = MLP(d, d, name=f"unique_encoder_{m}")(h)
      c = common_encoder(h)
      seq_unique.append(u)
      seq_common.append(c)
      pooled_unique.append(masked_mean(u, mask))
      pooled_common.append(masked_mean(c, mask))
      homogeneity.append(MLP(d, d, name=f"homogeneity_{m}")(pooled_common[-1]))
    fused = []
    if self.fusion:
      for m, (u, mask) in enumerate(zip(seq_unique, masks)):
        others = [j for j in range(len(inputs)) if j != m]
        context = jnp.concatenate([seq_unique[j] for j in others], axis=1)
        context_mask = jnp.concatenate([masks[j] for j in others], axis=1)
        out = u
        for layer in range(self.fusion_layers):  # layer 0 keeps the single-block parameter names
          name = f"cross_{m}" if layer == 0 else f"cross_{m}_{layer}"
          out = CrossModalBlock(d, self.num_heads, self.dropout, name=name)(
              out, context, context_mask, deterministic)
        fused.append(masked_mean(out, mask))
    else:
      fused = pooled_unique
    if self.head_input not in HEAD_INPUTS:
      raise ValueError(f"head_input={self.head_input!r}: choose from {HEAD_INPUTS}")
    representation = jnp.concatenate((fused if self.head_input == "all" else []) + pooled_common,
                                     axis=-1)
    output = nn.Dense(self.num_outputs, name="head")(nn.gelu(nn.Dense(d, name="head_hidden")(representation)))
    return {"output": output, "unique": pooled_unique, "common": pooled_common,
            "homogeneity": homogeneity, "representation": representation,
            "unique_seq": seq_unique, "common_seq": seq_common}
