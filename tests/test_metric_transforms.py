"""Every public metric core and every public loss is a JAX function: jit gives the eager
(``jax.disable_jit``, op by op) value, vmap over a leading batch of 3 small problems gives the
per-problem values, and jit(grad) works (finite, right shape, not identically zero) where the
quantity is smooth (CKA variants, FVU, TC, probe, losses).

Tolerance: jit / vmap fuse and batch the same float32 operations differently from op-by-op
execution, so values agree to rounding: |difference| <= 1e-5 (1 + |value|), about
eps_float32 * sqrt(reduction length) * magnitude for these sizes (eps * sqrt(48 * 8 * 8) ~ 7e-6).
Integer outputs (classes, indices, counts) must be equal.
"""

import functools
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxdisent import metrics as M
from jaxdisent.losses import decalign as LD
from jaxdisent.losses import sae as LS
from jaxdisent.losses import vae as LV
from jaxdisent.metrics import alignment as A
from jaxdisent.metrics import dictionary as D
from jaxdisent.metrics import multimodal as MM

N, DIM = 48, 8


class Case(NamedTuple):
  name: str
  fn: Callable
  make: Callable          # rng -> tuple of arrays (one problem)
  grad_arg: int | None = None


def feats(rng, n=N, d=DIM):
  return rng.normal(size=(n, d)).astype(np.float32)


def related(rng):
  a = feats(rng)
  return a, (np.tanh(a @ rng.normal(size=(DIM, 6))) + 0.3 * rng.normal(size=(N, 6))).astype(np.float32)


def codes_factors(rng):
  factors = np.stack([rng.integers(0, s, N) for s in (3, 5, 4)], axis=1).astype(np.int32)
  codes = np.concatenate([factors[:, :2] + 0.3 * rng.normal(size=(N, 2)), rng.normal(size=(N, 2))],
                         axis=1).astype(np.float32)
  return codes, factors


def sparse_codes(rng, n=N, m=12):
  z = np.maximum(rng.normal(size=(n, m)), 0).astype(np.float32)
  z[:, -1] = 0.0
  return z


def gmms(features):
  return [LD.fit_diagonal_gmm(f, 3, num_steps=2) for f in features]


def _sample_to_prototype(features):
  fitted = gmms(features)
  return LD.sample_to_prototype_loss(features, fitted,
                                     LD.multimarginal_prototype_ot(fitted, iterations=5).plan)


METRICS = [
    Case("histogram_discretize", functools.partial(M.histogram_discretize, num_bins=20),
         lambda r: (codes_factors(r)[0],)),
    Case("histogram_discretize_int", functools.partial(M.histogram_discretize, num_bins=20),
         lambda r: (r.integers(0, 27, (N, 3)).astype(np.int32),)),
    Case("discrete_mutual_info_core", functools.partial(M.discrete_mutual_info_core, a_classes=5,
                                                        b_classes=5),
         lambda r: (r.integers(0, 5, (N, 3)).astype(np.int32), r.integers(0, 5, (N, 2)).astype(np.int32))),
    Case("discrete_entropy_core", functools.partial(M.discrete_entropy_core, num_classes=5),
         lambda r: (r.integers(0, 5, (N, 3)).astype(np.int32),)),
    Case("mutual_info_matrix_core", functools.partial(M.mutual_info_matrix_core, num_bins=10,
                                                      num_factor_classes=5), codes_factors),
    Case("mig_core", functools.partial(M.mig_core, num_bins=10, num_factor_classes=5), codes_factors),
    Case("modularity_core", functools.partial(M.modularity_core, num_bins=10, num_factor_classes=5),
         codes_factors),
    Case("modularity_from_mi_core", M.modularity_from_mi_core,
         lambda r: (r.random((4, 3)).astype(np.float32),)),
    Case("irs_core", functools.partial(M.irs_core, num_bins=20), codes_factors),
    Case("gaussian_total_correlation_core", M.gaussian_total_correlation_core,
         lambda r: (feats(r, d=4),), grad_arg=0),
    Case("mutual_info_between_codes_core", functools.partial(M.mutual_info_between_codes_core,
                                                             num_bins=10),
         lambda r: (feats(r, d=4),)),
    Case("l2_normalize", A.l2_normalize, lambda r: (feats(r),), grad_arg=0),
    Case("knn_indices", functools.partial(A.knn_indices, k=5, block_size=16), lambda r: (feats(r),)),
    Case("mutual_knn_core", functools.partial(A.mutual_knn_core, k=5, block_size=16), related),
    Case("cycle_knn_core", functools.partial(A.cycle_knn_core, k=5, block_size=16), related),
    Case("lcs_knn_core", functools.partial(A.lcs_knn_core, k=5, block_size=16), related),
    Case("edit_knn_core", functools.partial(A.edit_knn_core, k=5, block_size=16), related),
    Case("cka_core_linear", A.cka_core, related, grad_arg=0),
    Case("cka_core_rbf", functools.partial(A.cka_core, kernel="rbf", block_size=16), related,
         grad_arg=0),
    Case("unbiased_cka_core_linear", A.unbiased_cka_core, related, grad_arg=0),
    Case("unbiased_cka_core_rbf", functools.partial(A.unbiased_cka_core, kernel="rbf", block_size=16),
         related, grad_arg=0),
    Case("cknna_core", functools.partial(A.cknna_core, k=5, block_size=16), related),
    Case("svcca_core", functools.partial(A.svcca_core, cca_dim=4), related),
    Case("fvu_core", D.fvu_core, lambda r: (feats(r), feats(r) * 0.1 + 0.9 * feats(r)), grad_arg=1),
    Case("r2_core", D.r2_core, lambda r: (feats(r), feats(r)), grad_arg=1),
    Case("l0_core", D.l0_core, lambda r: (sparse_codes(r),)),
    Case("firing_rates_core", D.firing_rates_core, lambda r: (sparse_codes(r),)),
    Case("dead_fraction_core", D.dead_fraction_core, lambda r: (sparse_codes(r),)),
    Case("dense_fraction_core", D.dense_fraction_core, lambda r: (sparse_codes(r),)),
    Case("atom_cosines_core", D.atom_cosines_core, lambda r: (feats(r, 6), feats(r, 9))),
    Case("concept_recovery_core", D.concept_recovery_core, lambda r: (feats(r, 6), feats(r, 9))),
    Case("energy_core", D.energy_core, lambda r: (sparse_codes(r),)),
    Case("modality_score_core", D.modality_score_core, lambda r: (sparse_codes(r), sparse_codes(r))),
    Case("bridge_scores_core", D.bridge_scores_core,
         lambda r: (sparse_codes(r), sparse_codes(r), feats(r, 12))),
    Case("modality_dominance_core", D.modality_dominance_core,
         lambda r: (sparse_codes(r), sparse_codes(r))),
    Case("modality_dominance_core_std", functools.partial(D.modality_dominance_core, std_cutoffs=True),
         lambda r: (sparse_codes(r), sparse_codes(r))),
    Case("monosemanticity_core", functools.partial(D.monosemanticity_core, top_n=5),
         lambda r: (sparse_codes(r), feats(r), r.choice(N, (4, 5)).astype(np.int32))),
    Case("sentiment_regression_metrics_core", MM.sentiment_regression_metrics_core,
         lambda r: (r.normal(size=N).astype(np.float32),
                    np.round(r.uniform(-3, 3, N) * 3).astype(np.float32) / 3)),
    Case("linear_probe_r2_core", MM.linear_probe_r2_core,
         lambda r: (feats(r), feats(r, d=2), feats(r), feats(r, d=2)), grad_arg=0),
]


def _pre(r, b=8, m=16):
  return r.normal(size=(b, m)).astype(np.float32)


LOSSES = [
    Case("bernoulli_reconstruction", LV.bernoulli_reconstruction,
         lambda r: (r.normal(size=(4, 6, 6, 1)).astype(np.float32),
                    (r.random((4, 6, 6, 1)) > 0.5).astype(np.float32)), grad_arg=0),
    Case("gaussian_kl", LV.gaussian_kl, lambda r: (feats(r, 4, 3), feats(r, 4, 3)), grad_arg=0),
    Case("gaussian_log_density", LV.gaussian_log_density,
         lambda r: (feats(r, 4, 3), feats(r, 4, 3), feats(r, 4, 3)), grad_arg=0),
    Case("total_correlation", LV.total_correlation,
         lambda r: (feats(r, 4, 3), feats(r, 6, 3), feats(r, 6, 3)), grad_arg=0),
    Case("anneal_capacity", functools.partial(LV.anneal_capacity, c_max=25.0, iteration_threshold=100),
         lambda r: (np.asarray(r.integers(0, 200), np.int32),)),
    Case("vae_objective_beta_vae", lambda recon, kl: LV.vae_objective("beta_vae", recon, kl, beta=4.0),
         lambda r: (r.random(4).astype(np.float32), r.random((4, 3)).astype(np.float32)), grad_arg=1),
    Case("vae_objective_beta_tcvae",
         lambda recon, kl, tc: LV.vae_objective("beta_tcvae", recon, kl, beta=6.0, tc_B=tc),
         lambda r: (r.random(4).astype(np.float32), r.random((4, 3)).astype(np.float32),
                    r.random(4).astype(np.float32)), grad_arg=2),
    Case("vae_objective_annealed_vae",
         lambda recon, kl, step: LV.vae_objective("annealed_vae", recon, kl, step=step,
                                                  iteration_threshold=100),
         lambda r: (r.random(4).astype(np.float32), r.random((4, 3)).astype(np.float32),
                    np.asarray(r.integers(0, 200), np.int32)), grad_arg=1),
    Case("topk", functools.partial(LS.topk, k=3), lambda r: (_pre(r),), grad_arg=0),
    Case("batchtopk", functools.partial(LS.batchtopk, k=3), lambda r: (_pre(r),), grad_arg=0),
    Case("batchtopk_threshold", functools.partial(LS.batchtopk_threshold, k=3),
         lambda r: (_pre(r),)),
    Case("threshold_codes", LS.threshold_codes,
         lambda r: (_pre(r), np.asarray(r.random(), np.float32)), grad_arg=0),
    Case("jumprelu", LS.jumprelu,
         lambda r: (_pre(r), np.full(16, 0.3, np.float32), np.asarray(0.5, np.float32)), grad_arg=1),
    Case("step_function", LS.step_function,
         lambda r: (_pre(r), np.full(16, 0.3, np.float32), np.asarray(0.5, np.float32)), grad_arg=1),
    Case("squared_error", LS.squared_error, lambda r: (_pre(r), _pre(r)), grad_arg=1),
    Case("auxk_loss", functools.partial(LS.auxk_loss, k_aux=4),
         lambda r: (_pre(r), feats(r, 8, 5), r.random(16) > 0.5, feats(r, 16, 5)), grad_arg=0),
    Case("fraction_of_variance_unexplained", LS.fraction_of_variance_unexplained,
         lambda r: (feats(r, 8, 5), feats(r, 8, 5)), grad_arg=1),
    Case("decoupling_loss", lambda u0, u1, c0, c1: LD.decoupling_loss([u0, u1], [c0, c1]),
         lambda r: tuple(feats(r, 8, 4) for _ in range(4)), grad_arg=0),
    Case("farthest_point_indices", functools.partial(LD.farthest_point_indices, k=3),
         lambda r: (feats(r, 12, 4),)),
    Case("fit_diagonal_gmm", functools.partial(LD.fit_diagonal_gmm, num_components=3, num_steps=2),
         lambda r: (feats(r, 12, 4),)),
    Case("gaussian_w2_squared", LD.gaussian_w2_squared,
         lambda r: (feats(r, 3, 4), np.abs(feats(r, 3, 4)), feats(r, 3, 4), np.abs(feats(r, 3, 4))),
         grad_arg=0),
    Case("multimarginal_prototype_ot",
         lambda a, b: LD.multimarginal_prototype_ot(gmms([a, b]), iterations=5),
         lambda r: (feats(r, 12, 4), feats(r, 12, 4))),
    Case("pairwise_plan", functools.partial(LD.pairwise_plan, a=2, b=0),
         lambda r: (r.random((2, 3, 4)).astype(np.float32),)),
    Case("sample_to_prototype_loss", lambda a, b: _sample_to_prototype([a, b]),
         lambda r: (feats(r, 12, 4), feats(r, 12, 4)), grad_arg=0),
    Case("heterogeneity_loss",
         lambda a, b: LD.heterogeneity_loss([a, b], num_prototypes=3, em_steps=2, iterations=5),
         lambda r: (feats(r, 12, 4), feats(r, 12, 4)), grad_arg=0),
    Case("moment_loss", LD.moment_loss, lambda r: (feats(r, 12, 4), feats(r, 12, 4)), grad_arg=0),
    Case("mmd_loss", LD.mmd_loss, lambda r: (feats(r, 12, 4), feats(r, 10, 4)), grad_arg=0),
    Case("homogeneity_loss", lambda a, b: LD.homogeneity_loss([a, b]),
         lambda r: (feats(r, 12, 4), feats(r, 12, 4)), grad_arg=0),
    Case("task_loss_regression", LD.task_loss,
         lambda r: (r.normal(size=8).astype(np.float32), r.normal(size=8).astype(np.float32)),
         grad_arg=0),
    Case("task_loss_classification", lambda p, y: LD.task_loss(p, y, "classification"),
         lambda r: (feats(r, 8, 3), r.integers(0, 3, 8).astype(np.int32)), grad_arg=0),
]


def _assert_close(got, want, what):
  got_leaves, got_tree = jax.tree_util.tree_flatten(got)
  want_leaves, want_tree = jax.tree_util.tree_flatten(want)
  assert got_tree == want_tree, what
  for g, w in zip(got_leaves, want_leaves):
    g, w = np.asarray(g), np.asarray(w)
    assert g.shape == w.shape and g.dtype == w.dtype, (what, g.shape, w.shape, g.dtype, w.dtype)
    if np.issubdtype(w.dtype, np.floating):
      np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-5, err_msg=what)
    else:
      np.testing.assert_array_equal(g, w, err_msg=what)


def _scalar(out):
  """The scalar a loss case is differentiated through: the first leaf, summed."""
  return jnp.sum(jax.tree_util.tree_leaves(out)[0])


# The cases that take over ~1.2 s each on an idle 2-core machine (mostly the op-by-op eager
# reference of an iterative solver) run in the full suite only; the fast loop keeps the rest.
SLOW_CASES = {"multimarginal_prototype_ot", "histogram_discretize_int", "fit_diagonal_gmm",
              "mmd_loss", "sample_to_prototype_loss", "irs_core", "cknna_core", "total_correlation",
              "cka_core_rbf", "heterogeneity_loss", "linear_probe_r2_core", "auxk_loss",
              "unbiased_cka_core_rbf", "batchtopk", "bernoulli_reconstruction",
              "mutual_info_matrix_core", "svcca_core", "discrete_mutual_info_core"}


@pytest.mark.parametrize("case", [pytest.param(c, marks=pytest.mark.slow) if c.name in SLOW_CASES
                                  else c for c in METRICS + LOSSES], ids=lambda c: c.name)
def test_jit_vmap_and_grad_match_eager(case):
  problems = [tuple(jnp.asarray(a) for a in case.make(np.random.default_rng(seed)))
              for seed in range(3)]
  with jax.disable_jit():  # op by op: the eager reference (one problem; it is the slow part)
    eager = case.fn(*problems[0])
  jitted = jax.jit(case.fn)
  per_problem = [jitted(*args) for args in problems]
  _assert_close(per_problem[0], eager, f"{case.name}: jit vs eager")
  stacked = jax.tree_util.tree_map(lambda *xs: jnp.stack(xs), *problems)
  batched = jax.vmap(case.fn)(*stacked)
  for i, want in enumerate(per_problem):
    _assert_close(jax.tree_util.tree_map(lambda x: x[i], batched), want, f"{case.name}: vmap[{i}]")
  if case.grad_arg is None:
    return
  grad = jax.grad(lambda *a: _scalar(case.fn(*a)), argnums=case.grad_arg)
  grad_jit = np.asarray(jax.jit(grad)(*problems[0]))
  assert grad_jit.shape == problems[0][case.grad_arg].shape, case.name
  assert np.all(np.isfinite(grad_jit)), case.name
  assert np.any(grad_jit != 0), f"{case.name}: gradient is identically zero"


def test_cores_refuse_bad_static_arguments_at_trace_time():
  a, b = related(np.random.default_rng(0))
  with pytest.raises(ValueError, match="k must be"):
    jax.jit(functools.partial(A.mutual_knn_core, k=N))(a, b)
  with pytest.raises(ValueError, match="cca_dim"):
    jax.jit(functools.partial(A.svcca_core, cca_dim=0))(a, b)
  codes, factors = codes_factors(np.random.default_rng(0))
  with pytest.raises(ValueError, match="num_bins"):
    M.mig_core(codes, factors, 0, num_factor_classes=5)


def test_sentiment_and_probe_wrappers_refuse_bad_input():
  with pytest.raises(ValueError, match="at least 1 sample"):
    MM.sentiment_regression_metrics(np.zeros(0), np.zeros(0))
  with pytest.raises(ValueError, match="differ in size"):
    MM.sentiment_regression_metrics(np.zeros(5), np.zeros(4))
  with pytest.raises(ValueError, match="NaN"):
    MM.sentiment_regression_metrics(np.array([np.nan, 1.0]), np.zeros(2))
  with pytest.raises(ValueError, match="same number of samples"):
    MM.linear_probe_r2(np.zeros((5, 2)), np.zeros(4), np.zeros((3, 2)), np.zeros(3))
