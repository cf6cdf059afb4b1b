"""The SAE kinds, one registered record each: how training sparsifies the pre-activations (dense
and, where the active set is small, sparse), the kind's extra loss term and inference encoding.

The method looks its kind up once (:func:`get`); nothing else switches on ``model.kind``.

* ``batchtopk`` (Bussmann et al. 2024): the k * B_global largest pre-activations of the global
  batch; inference uses a learned global threshold (an EMA of the smallest kept activation).
  Sparse carrier: the kept entries as a list of k * B_local entries (times ``capacity_factor``
  on several devices, where the local count varies), selected from the blocks whose maximum
  reaches the (k B)-th largest block maximum (:func:`jaxdisent.losses.sae.batchtopk_list`: no
  per-row top-k); ties or an uneven split that overflow the list switch that step to the dense
  formulation (same branch on every device), so the numbers stay those of the dense one.
* ``matryoshka_batchtopk`` (Bussmann et al. 2025, "Learning Multi-Level Features with Matryoshka
  SAEs"; dictionary_learning's MatryoshkaBatchTopKTrainer): BatchTopK's selection over the whole
  dictionary, the latents split into nested groups (``model.group_fractions``), and the loss
  averaged over the reconstructions of every prefix of groups (``nested``: the method decodes
  group by group, :func:`jaxdisent.losses.sae.nested_reconstruction_loss`). Inference, AuxK and
  the threshold EMA are BatchTopK's.
* ``topk`` (Gao et al. 2024): each row's k largest; carrier B x k. (Exact ties at the k-th value
  are all kept by the dense formulation and cut at k by the sparse one.)
* ``relu`` (L1 on activations times decoder-row norms) and ``jumprelu`` (Rajamanoharan et al.
  2024, L0 through the step function's pseudo-gradient): dense only -- their active set is not
  bounded during training, and JumpReLU's threshold gradient needs every pre-activation near it.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Callable, Optional

import jax.numpy as jnp
from jax import lax

from jaxdisent.losses import sae as sae_losses
from jaxdisent.losses import sparse_codes


@dataclasses.dataclass(frozen=True)
class Context:
  """What a kind's functions need besides the arrays (static per run)."""
  k: int
  loss: object                # config.loss
  axis_name: Optional[str]
  row_cap: Optional[int]      # BatchTopK candidates per row (None -> 4k)
  capacity_factor: float      # list slack on several devices
  chunk: int                  # entries per step of the sparse loops


@dataclasses.dataclass(frozen=True)
class SAEKind:
  name: str
  # (pre_BxM, params, ctx) -> (codes_BxM, stats); differentiable in pre and params
  dense_codes: Callable
  # (pre_BxM detached, ctx) -> (Codes, stats, use_dense); None: no sparse formulation
  sparse_codes: Optional[Callable]
  # (pre_BxM, codes_BxM, params, ctx) -> (loss term, metrics); dense formulation only
  penalty: Optional[Callable]
  # (pre_BxM, params, model_state, k) -> codes_BxM at inference
  inference_codes: Callable
  auxk: bool = False                 # AuxK on dead latents
  learns_threshold: bool = False     # stats['kth'] feeds the inference-threshold EMA
  jumprelu_params: bool = False      # the model carries log_threshold
  nested: bool = False               # Matryoshka: loss over nested prefixes of latent groups
  uses_k: bool = False               # model.k sets the sparsity (exported / checked on import)


KINDS: dict = {}


def register(kind: SAEKind) -> SAEKind:
  """Add a kind to ``KINDS`` under its name (module import time).

  Args:
    kind: the :class:`SAEKind` record.

  Returns:
    `kind` itself (so the call can wrap a definition).

  Raises:
    ValueError: a kind of that name is already registered.
  """
  if kind.name in KINDS:
    raise ValueError(f"SAE kind {kind.name!r} is registered twice")
  KINDS[kind.name] = kind
  return kind


def get(name: str) -> SAEKind:
  """The registered :class:`SAEKind` of ``model.kind`` (the one place the kind is looked up).

  Args:
    name: 'batchtopk', 'matryoshka_batchtopk', 'topk', 'relu' or 'jumprelu'.

  Returns:
    the :class:`SAEKind` record.

  Raises:
    ValueError: an unknown `name`.
  """
  if name not in KINDS:
    raise ValueError(f"unknown SAE kind {name!r}; use one of {tuple(KINDS)}")
  return KINDS[name]


# ---- batchtopk ---------------------------------------------------------------------------------

def _batchtopk_dense(pre, params, ctx):
  del params
  codes, kth = sae_losses.batchtopk(pre, ctx.k, ctx.axis_name, ctx.row_cap)
  return codes, {"kth": kth}


def batchtopk_capacity(local_batch: int, k: int, num_devices: int, capacity_factor: float,
                       row_width: int) -> int:
  """Length of the list that carries one device's kept BatchTopK entries ([bussmann2024]).

  k * B_local times `capacity_factor`, or with factor 0 (auto) exactly k * B on one device (the
  count is k * B unless values tie) and 1.5 k * B_local on several (where the local count varies).
  Clipped to [1, B_local * row_width].

  Args:
    local_batch: Python int B_local, rows on this device.
    k: Python int, the kept latents per row on average.
    num_devices: Python int, devices on the data axis.
    capacity_factor: float slack (0 = auto, see above).
    row_width: Python int M, the latents per row.

  Returns:
    Python int, the list length.
  """
  factor = capacity_factor or (1.0 if num_devices == 1 else 1.5)
  return max(1, min(local_batch * row_width, int(math.ceil(k * local_batch * factor))))


def _batchtopk_sparse(pre, ctx):
  devices = lax.axis_size(ctx.axis_name) if ctx.axis_name is not None else 1
  capacity = batchtopk_capacity(pre.shape[0], ctx.k, devices, ctx.capacity_factor, pre.shape[1])
  codes, kth, use_dense = sae_losses.batchtopk_list(pre, ctx.k, capacity, ctx.axis_name)
  return codes, {"kth": lax.stop_gradient(kth)}, use_dense


def _batchtopk_inference(pre, params, model_state, k):
  del params
  threshold = model_state["threshold"]
  return jnp.where(threshold > 0, sae_losses.threshold_codes(pre, threshold),
                   sae_losses.topk(pre, k))


register(SAEKind("batchtopk", _batchtopk_dense, _batchtopk_sparse, None, _batchtopk_inference,
                 auxk=True, learns_threshold=True, uses_k=True))

register(SAEKind("matryoshka_batchtopk", _batchtopk_dense, _batchtopk_sparse, None,
                 _batchtopk_inference, auxk=True, learns_threshold=True, nested=True, uses_k=True))


# ---- topk --------------------------------------------------------------------------------------

def _topk_sparse(pre, ctx):
  values, index = lax.top_k(pre, ctx.k)
  return sparse_codes.from_rows(values, index), {}, jnp.bool_(False)


register(SAEKind("topk", lambda pre, params, ctx: (sae_losses.topk(pre, ctx.k), {}),
                 _topk_sparse, None, lambda pre, params, model_state, k: sae_losses.topk(pre, k),
                 auxk=True, uses_k=True))


# ---- relu + L1 ---------------------------------------------------------------------------------

def _l1_penalty(pre, codes, params, ctx):
  del pre
  sparsity = jnp.mean(jnp.sum(jnp.abs(codes) * jnp.linalg.norm(params["W_dec"], axis=1), 1))
  return ctx.loss.l1_coeff * sparsity, {"l1": sparsity}


register(SAEKind("relu", lambda pre, params, ctx: (pre, {}), None, _l1_penalty,
                 lambda pre, params, model_state, k: pre))


# ---- jumprelu ----------------------------------------------------------------------------------

def _jumprelu_dense(pre, params, ctx):
  threshold = jnp.exp(params["log_threshold"])
  return sae_losses.jumprelu(pre, threshold, ctx.loss.jumprelu_bandwidth), {}


def _l0_penalty(pre, codes, params, ctx):
  del codes
  l0 = jnp.mean(jnp.sum(sae_losses.step_function(
      pre, jnp.exp(params["log_threshold"]), ctx.loss.jumprelu_bandwidth), axis=1))
  return ctx.loss.jumprelu_l0_coeff * l0, {"l0_penalty": l0}


register(SAEKind("jumprelu", _jumprelu_dense, None, _l0_penalty,
                 lambda pre, params, model_state, k: pre * (pre > jnp.exp(params["log_threshold"])),
                 jumprelu_params=True))
