"""The sparse SAE step equals the dense one: loss, metrics, state, every gradient and the
parameters after a few steps, on 1 and 4 devices, with AuxK on dead latents and with BatchTopK's
saturated-row fallback."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax
from jax.sharding import PartitionSpec as P

from jaxdisent.losses import sparse_codes as S
from jaxdisent.methods import make_method
from jaxdisent.runs import fit
from jaxdisent.train.parallel import make_mesh

from test_sae import sae_config

EPS = float(np.finfo(np.float32).eps)


def _loss_and_grads(method, params, state, x, devices):
  """value_and_grad of method.loss on the global batch x, sharded over `devices`, grads pmean'd
  as the engine does."""
  def per_device(params, state, x):
    fn = lambda p: method.loss(p, state, {"x": x}, None, jnp.int32(5), axis_name="data")
    (loss, (metrics, new_state)), grads = jax.value_and_grad(fn, has_aux=True)(params)
    return (lax.pmean(loss, "data"), lax.pmean(metrics, "data"), new_state,
            lax.pmean(grads, "data"))
  mesh = make_mesh(devices)
  run = jax.jit(jax.shard_map(per_device, mesh=mesh, in_specs=(P(), P(), P("data")),
                              out_specs=P(), check_vma=False))
  return run(params, state, x)


def _close(dense, sparse, reduction, what):
  """float32 rounding of sums over `reduction` terms, relative to the leaf's magnitude."""
  dense, sparse = np.asarray(dense), np.asarray(sparse)
  scale = max(float(np.max(np.abs(dense))), 1e-30)
  tol = 4 * EPS * np.sqrt(reduction) * scale
  np.testing.assert_allclose(sparse, dense, rtol=0, atol=tol, err_msg=what)


def _methods(kind, **overrides):
  base = {"model.kind": kind, "loss.dead_tokens": 1, "loss.threshold_start_step": 0}
  base.update(overrides)
  dense = make_method(sae_config(**base, **{"model.formulation": "dense"}))
  sparse = make_method(sae_config(**base, **{"model.formulation": "sparse"}))
  return dense, sparse


def _selection_uses_dense(method, params, state, x, devices):
  """Whether the sparse formulation falls back to the dense one on this batch."""
  def per_device(x):
    ctx = method._context("data")  # pylint: disable=protected-access
    pre = method.model.apply({"params": params}, x / state["input_scale"],
                             method=type(method.model).pre_acts)
    return method.spec.sparse_codes(pre, ctx)[2]
  run = jax.shard_map(per_device, mesh=make_mesh(devices), in_specs=P("data"), out_specs=P(),
                      check_vma=False)
  return bool(jax.jit(run)(x))


@pytest.mark.parametrize("kind,case", [("batchtopk", "plain"), ("batchtopk", "dominant_row"),
                                       ("batchtopk", "overflow"), ("topk", "plain"),
                                       ("matryoshka_batchtopk", "plain"),
                                       ("matryoshka_batchtopk", "overflow")])
@pytest.mark.slow
def test_sparse_step_equals_dense(kind, case):
  # dominant_row: one row holds far more of the batch's top entries than the dense path's row
  # candidates (row_cap 6), so the dense path takes its flat fallback; the sparse list is exact
  # anyway. overflow: a list of half the kept entries overflows, so the step runs dense.
  overrides = {"model.row_cap": 6} if case == "dominant_row" else {}
  if case == "overflow":
    overrides["model.sparse_capacity"] = 0.5
  dense, sparse = _methods(kind, **overrides)
  params, state = dense.init(jax.random.key(0))
  # some latents have fired recently, the rest are past dead_tokens: AuxK is on
  state = dict(state, tokens_since_fired=jnp.where(jnp.arange(64) % 3 == 0, 0, 1000))
  x = jnp.asarray(dense.data.batch(0, 1, 0, 64)["x"])
  if case == "dominant_row":
    x = x.at[7].multiply(50.0)
  reduction = 64 * 64
  for devices in (jax.devices()[:1], jax.devices()[:4]):
    assert _selection_uses_dense(sparse, params, state, x, devices) == (case == "overflow")
    loss_d, metrics_d, state_d, grads_d = _loss_and_grads(dense, params, state, x, devices)
    loss_s, metrics_s, state_s, grads_s = _loss_and_grads(sparse, params, state, x, devices)
    assert float(metrics_d["auxk_loss"]) > 0
    _close(loss_d, loss_s, reduction, "loss")
    for name in metrics_d:
      _close(metrics_d[name], metrics_s[name], reduction, name)
    np.testing.assert_array_equal(state_d["tokens_since_fired"], state_s["tokens_since_fired"])
    np.testing.assert_array_equal(state_d["threshold"], state_s["threshold"])
    for name in grads_d:
      _close(grads_d[name], grads_s[name], reduction, f"grad {name} on {len(devices)} devices")
    assert float(jnp.max(jnp.abs(grads_s["W_enc"]))) > 0


@pytest.mark.parametrize("kind", ["batchtopk", "topk", "matryoshka_batchtopk"])
@pytest.mark.slow
def test_sparse_and_dense_training_agree(tmp_path, kind):
  """Same parameters after a few steps, 1 and 4 devices, with AuxK switching on mid-run."""
  results = {}
  for formulation in ("dense", "sparse"):
    for n in (1, 4):
      config = sae_config(**{"model.kind": kind, "model.formulation": formulation,
                             "loss.dead_tokens": 128, "train.num_steps": 5})
      results[formulation, n] = fit(config, str(tmp_path / f"{formulation}{n}"),
                                    devices=jax.devices()[:n], quiet=True).state
  reference = results["dense", 1]
  for key, state in results.items():
    for a, b in zip(jax.tree.leaves(reference.params), jax.tree.leaves(state.params)):
      np.testing.assert_allclose(a, b, atol=2e-5, rtol=1e-4, err_msg=str(key))
    np.testing.assert_array_equal(reference.model_state["tokens_since_fired"],
                                  state.model_state["tokens_since_fired"])
  assert (np.asarray(reference.model_state["tokens_since_fired"]) >= 128).any()  # AuxK was on


@pytest.mark.slow
def test_sparse_ops_match_dense_products():
  """decode / encoder_values and their VJPs against the dense B x M products, chunk sizes that
  do and do not divide the list."""
  keys = jax.random.split(jax.random.key(3), 4)
  x = jax.random.normal(keys[0], (9, 5))
  w_enc = jax.random.normal(keys[1], (5, 20))
  b_enc = 0.1 * jax.random.normal(keys[2], (20,))
  w_dec = jax.random.normal(keys[3], (20, 5))

  def dense(b_dec, w_enc, b_enc, w_dec):
    pre = jax.nn.relu((x - b_dec) @ w_enc + b_enc)
    codes = jnp.where(pre >= lax.top_k(pre, 3)[0][:, -1:], pre, 0)
    return jnp.sum(jnp.sin(codes @ w_dec))

  def sparse(b_dec, w_enc, b_enc, w_dec, chunk):
    pre = lax.stop_gradient(jax.nn.relu((x - b_dec) @ w_enc + b_enc))
    codes = S.from_rows(*lax.top_k(pre, 3))
    codes = codes._replace(values=S.encoder_values(codes, x, b_dec, w_enc, b_enc, chunk))
    return jnp.sum(jnp.sin(S.decode(codes, w_dec, 9, chunk)))

  b_dec = 0.3 * x[0]
  want = jax.value_and_grad(dense, argnums=(0, 1, 2, 3))(b_dec, w_enc, b_enc, w_dec)
  for chunk in (4, 27, 4096):
    got = jax.jit(jax.value_and_grad(functools.partial(sparse, chunk=chunk),
                                     argnums=(0, 1, 2, 3)))(b_dec, w_enc, b_enc, w_dec)
    _close(want[0], got[0], 20, "value")
    for a, b in zip(want[1], got[1]):
      _close(a, b, 20 * 9, f"grad chunk={chunk}")


def test_compact_packs_kept_entries_and_flags_overflow():
  values = jnp.array([[3.0, 2.0, 1.0], [5.0, 0.5, 0.1]])
  index = jnp.array([[4, 0, 2], [1, 3, 0]])
  keep = values >= 1.0
  codes, overflow = S.compact(values, index, keep, 5)
  np.testing.assert_array_equal(codes.values, [3, 2, 1, 5, 0])
  np.testing.assert_array_equal(codes.rows, [0, 0, 0, 1, 0])
  np.testing.assert_array_equal(codes.cols, [4, 0, 2, 1, 0])
  assert not bool(overflow)
  assert bool(S.compact(values, index, keep, 3)[1])
  np.testing.assert_array_equal(S.fired(codes, 6), [True, True, True, False, True, False])


def test_sparse_formulation_is_refused_for_relu():
  with pytest.raises(ValueError, match="no sparse formulation"):
    make_method(sae_config(**{"model.kind": "relu", "model.formulation": "sparse"}))
  with pytest.raises(ValueError, match="model.formulation"):
    make_method(sae_config(**{"model.formulation": "fast"}))


@pytest.mark.parametrize("block", [1, 7, 16])
def test_batchtopk_list_equals_the_dense_selection(block):
  """Block-maximum selection = the dense BatchTopK codes, widths not divisible by the block, one
  dominant row, 1 and 4 devices."""
  from jaxdisent.losses import sae as L
  pre = jax.nn.relu(jax.random.normal(jax.random.key(2), (32, 50)))
  pre = pre.at[3].multiply(30.0)
  want, kth_want = L.batchtopk(pre, 4)
  for n in (1, 4):
    def per_device(p):
      codes, kth, overflow = L.batchtopk_list(p, 4, 4 * 32 // n * (1 if n == 1 else 3), "data",
                                              block)
      dense = jnp.zeros_like(p).at[codes.rows, codes.cols].add(codes.values)
      return dense, kth, overflow
    run = jax.jit(jax.shard_map(per_device, mesh=make_mesh(jax.devices()[:n]), in_specs=P("data"),
                                out_specs=(P("data"), P(), P()), check_vma=False))
    got, kth, overflow = run(pre)
    assert not bool(overflow)
    np.testing.assert_array_equal(np.asarray(got), np.asarray(want))
    assert float(kth) == float(kth_want)


def test_auto_formulation_is_sparse_on_cpu_and_dense_on_accelerators():
  from jaxdisent.losses import sae_kinds
  from jaxdisent.methods.sae import resolve_formulation
  batchtopk, relu = sae_kinds.get("batchtopk"), sae_kinds.get("relu")
  assert resolve_formulation("auto", batchtopk, "cpu") == "sparse"
  assert resolve_formulation("auto", batchtopk, "gpu") == "dense"
  assert resolve_formulation("auto", batchtopk, "tpu") == "dense"
  assert resolve_formulation("sparse", batchtopk, "gpu") == "sparse"   # asked for, kept
  assert resolve_formulation("dense", batchtopk, "cpu") == "dense"
  assert resolve_formulation("auto", relu, "cpu") == "dense"           # no sparse form
  method = make_method(sae_config())                                    # this suite runs on CPU
  assert method.formulation == "sparse"
