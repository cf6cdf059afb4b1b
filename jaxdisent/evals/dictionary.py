"""Evaluator of sparse autoencoders: the dictionary measures on held-out embeddings, and on paired
image/text embeddings (synthetic, or files with ``data.text_path`` / ``data.text_key``) the
analyses of the monosemanticity ([yan2025]) and linear-structure ([papadimitriou2025]) papers.

Scalars (``eval/dictionary/<key>`` in metrics.jsonl and ``eval/step_N.json``):

* always: fvu, r2, l0, dead_fraction, dense_fraction (+ concept_recovery on synthetic data);
* paired data:
  - ``mds_<class>`` counts and ``mds_fraction_<class>`` (of all features) for the classes
    image-dominant / text-dominant / cross-modal / dead, the cut-offs ``mds_cutoff_low/high``
    (``settings.mds_cutoffs``: (-0.6, 0.6) default, or "std", the paper's mean +- std);
  - ``modality_score_q10 .. q90``: quantiles of E_img z / (E_img z + E_txt z) over live features;
  - ``energy_top1pct_share`` / ``energy_top10pct_share``: share of the total energy E[z] carried by
    the top 1 % / 10 % of live features (energy concentration);
  - ``bridge_count``: ordered pairs (i != j) whose bridge score E[z_img,i z_txt,j] cos(d_i, d_j) is
    >= ``bridge_relative`` (0.1) x the largest one; ``bridge_count_img_txt``: those joining an
    image-dominant i to a text-dominant j; the top ``num_bridges`` (20) pairs go to bridges.json;
  - ``monosemanticity_mean_score`` / ``monosemanticity_win_rate`` / ``..._baseline_coherence``
    (``metrics.dictionary.monosemanticity`` on images and texts together, top_n 20);
  - ``subspace_dim``, ``subspace_fraction_mean`` / ``subspace_fraction_energy_weighted`` /
    ``subspace_near_orthogonal_fraction`` (< 0.1): each live atom's share of ||d||^2 inside the
    modality subspace (``metrics.linear_structure``; mean difference + LDA direction, or the mean
    difference alone with ``settings.subspace_lda=False``); on synthetic data also
    ``subspace_fraction_planted`` (the planted concepts' own value, the known answer's scale);
  - ``modality_classifier_mean_balanced_accuracy`` / ``..._good_fraction`` /
    ``..._good_energy_share`` (``settings.good_classifier``, 0.9);
  - ``named_fraction`` when ``settings.vocabulary`` (one phrase per line) and
    ``settings.vocabulary_embeddings`` (.npy/.npz/.safetensors, one text embedding per phrase, same
    model) are given: each live atom's nearest phrases (``metrics.naming``) go to features.json.

Files in ``eval/step_N/dictionary/``: features.json (per feature: energy, firing rate, modality
score, MDS and class, subspace fraction, balanced accuracy, names), bridges.json,
modality_histogram.png (modality score, stacked by MDS class), energy_vs_modality.png (the two
plots unless ``settings.plots`` is false: ~0.4 s of each evaluation, which a sweep of many cells
may rather skip).
"""

from __future__ import annotations

import functools
import json
import math
import os

import jax
import numpy as np

from jaxdisent.evals.base import register
from jaxdisent.metrics import dictionary as D
from jaxdisent.metrics import linear_structure as L
from jaxdisent.metrics import naming
from jaxdisent.evals.disentanglement import _split_scalars

QUANTILES = (10, 25, 50, 75, 90)


# ---- shared by the evaluator, launch.intervene and launch.explore ------------------------------

def paired_embeddings(data, num_pairs: int, seed: int):
  """(image, text) held-out pairs as float32 NumPy arrays, or None for unpaired data.

  Synthetic: ``num_pairs`` fresh pairs from key ``seed``. Files: ``num_pairs`` rows (all rows if
  fewer) drawn without replacement with NumPy seed ``seed``, in file order (training samples rows
  of the same files, so these are not held out)."""
  if hasattr(data, "pairs"):
    image, text, _, _ = data.pairs(jax.random.key(seed), num_pairs)
    return np.asarray(image, np.float32), np.asarray(text, np.float32)
  if getattr(data, "text", None) is None:
    return None
  count = min(int(num_pairs), data.num_rows)
  rows = np.sort(np.random.default_rng(seed).choice(data.num_rows, count, replace=False))
  return data.rows(rows, "image"), data.rows(rows, "text")


def _program(method, name: str):
  """``jax.jit(method.<name>)``, built once per method object and kept on it: the parameters are
  arguments, so every evaluation of the method (each checkpoint) reuses the compiled program. (A jit
  of a closure over the parameters compiled them in as constants, once per evaluation: ~0.8 s more
  per evaluation for a CLIP-size SAE, 768 x 16,384.)"""
  programs = method.__dict__.setdefault("_eval_programs", {})
  if name not in programs:
    programs[name] = jax.jit(getattr(method, name))
  return programs[name]


def encode_batched(method, state, x_NxD, batch: int = 4096) -> np.ndarray:
  """Inference codes of ``x`` (N, M) in chunks of ``batch`` rows (one compiled shape + a tail)."""
  run = functools.partial(_program(method, "encode"), state.params, state.model_state)
  return np.concatenate([np.asarray(run(x_NxD[start:start + batch]))
                         for start in range(0, len(x_NxD), batch)])


def _plots(settings) -> bool:
  value = settings.get("plots", True)
  if not isinstance(value, (bool, np.bool_)):
    raise ValueError(f"evals.dictionary.plots={value!r} must be true or false (false skips "
                     "modality_histogram.png and energy_vs_modality.png)")
  return bool(value)


def _cutoffs(settings):
  value = settings.get("mds_cutoffs", (-0.6, 0.6))
  if isinstance(value, str) and value != "std":
    parts = [v for v in value.split(",") if v.strip()]
    try:
      return tuple(float(v) for v in parts)
    except ValueError:
      raise ValueError(f"evals.dictionary.mds_cutoffs={value!r}: use 'std' or LOW,HIGH (e.g. "
                       "-0.6,0.6)") from None
  return value


def _fraction(settings, key, default, low, high):
  value = float(settings.get(key, default))
  if not (math.isfinite(value) and low <= value <= high):
    raise ValueError(f"evals.dictionary.{key}={value} must be in [{low}, {high}]")
  return value


def paired_analyses(image_NxD, text_NxD, codes_img, codes_txt, atoms_MxD, *, settings=None,
                    planted_directions=None, out_dir=None, title="") -> dict:
  """The paired measures of the module doc as flat scalars; with ``out_dir`` also the files."""
  settings = settings or {}
  good = _fraction(settings, "good_classifier", 0.9, 0.5, 1.0)
  relative = _fraction(settings, "bridge_relative", 0.1, 0.0, 1.0)
  num_bridges = int(settings.get("num_bridges", 20))
  top_n = int(settings.get("monosemanticity_top_n", 20))
  if num_bridges < 0 or top_n < 2:
    raise ValueError(f"evals.dictionary.num_bridges={num_bridges} must be >= 0 and "
                     f"monosemanticity_top_n={top_n} >= 2")
  atoms = np.asarray(atoms_MxD, np.float64)
  out = {}
  mds = D.modality_dominance(codes_img, codes_txt, cutoffs=_cutoffs(settings))
  num = atoms.shape[0]
  for name, count in mds["counts"].items():
    out[f"mds_{name}"] = count
    out[f"mds_fraction_{name}"] = count / num
  out["mds_cutoff_low"], out["mds_cutoff_high"] = mds["cutoffs"]
  score = D.modality_score(codes_img, codes_txt)
  all_codes = np.concatenate([codes_img, codes_txt])
  energy = D.energy(all_codes)
  live = energy > 0
  for q in QUANTILES:
    out[f"modality_score_q{q}"] = float(np.percentile(score[live], q)) if live.any() else math.nan
  ranked = np.sort(energy[live])[::-1]
  for pct in (1, 10):
    top = max(1, math.ceil(len(ranked) * pct / 100)) if len(ranked) else 0
    out[f"energy_top{pct}pct_share"] = float(ranked[:top].sum() / ranked.sum()) if top else math.nan

  bridge = D.bridge_scores(codes_img, codes_txt, atoms)
  np.fill_diagonal(bridge, -np.inf)
  best = float(bridge.max()) if num > 1 else -np.inf
  labels = np.asarray(mds["label"])
  if best > 0:
    strong = bridge >= relative * best
    out["bridge_count"] = int(strong.sum())
    img_txt = (labels == "image-dominant")[:, None] & (labels == "text-dominant")[None, :]
    out["bridge_count_img_txt"] = int((strong & img_txt).sum())
    out["bridge_top_score"] = best
  else:
    out.update({"bridge_count": 0, "bridge_count_img_txt": 0, "bridge_top_score": 0.0})
  count = min(num_bridges, bridge.size)
  flat = np.argpartition(-bridge, count - 1, axis=None)[:count] if count else np.zeros(0, int)
  flat = flat[np.argsort(-bridge.ravel()[flat], kind="stable")]  # top pairs, best first
  pairs = [{"image_feature": int(i), "text_feature": int(j), "score": float(bridge[i, j]),
            "classes": [str(labels[i]), str(labels[j])]}
           for i, j in zip(*np.unravel_index(flat, bridge.shape)) if bridge[i, j] > 0]

  inputs = np.concatenate([image_NxD, text_NxD])
  if len(inputs) >= top_n:
    mono = D.monosemanticity(all_codes, inputs, top_n=top_n)
    out["monosemanticity_mean_score"] = mono["mean_score"]
    out["monosemanticity_win_rate"] = mono["win_rate"]
    out["monosemanticity_baseline_coherence"] = mono["baseline_coherence"]
    mono_score = mono["score"]
  else:
    mono_score = np.full(num, np.nan)

  basis = L.modality_subspace(image_NxD, text_NxD, lda=bool(settings.get("subspace_lda", True)))
  sub = L.subspace_energy_fraction(atoms, basis)
  fraction = sub["per_atom"]
  out["subspace_dim"] = int(len(basis))
  if live.any():
    out["subspace_fraction_mean"] = float(fraction[live].mean())
    out["subspace_fraction_energy_weighted"] = float(np.sum(fraction[live] * energy[live]) /
                                                     energy[live].sum())
    out["subspace_near_orthogonal_fraction"] = float(np.mean(fraction[live] < 0.1))
  if planted_directions is not None:
    out["subspace_fraction_planted"] = L.subspace_energy_fraction(planted_directions, basis)["mean"]
  clf = L.modality_classifier(codes_img, codes_txt, good=good)
  out["modality_classifier_mean_balanced_accuracy"] = clf["mean_balanced_accuracy"]
  out["modality_classifier_good_fraction"] = clf["good_fraction"]
  out["modality_classifier_good_energy_share"] = clf["good_energy_share"]

  names = None
  if settings.get("vocabulary", ""):
    phrases, vocab = naming.load_vocabulary(settings["vocabulary"],
                                            settings.get("vocabulary_embeddings", ""))
    names = naming.name_atoms(atoms, vocab, phrases, top=int(settings.get("names_per_atom", 3)),
                              min_margin=float(settings.get("name_margin", 0.0)))
    named = [n["name"] is not None for n, alive in zip(names, live) if alive]
    out["named_fraction"] = float(np.mean(named)) if named else math.nan

  if out_dir:
    rate = D.firing_rates(all_codes)
    nan_none = lambda v: None if not np.isfinite(v) else float(v)
    features = []
    for i in range(num):
      feature = {"id": i, "energy": float(energy[i]), "firing_rate": float(rate[i]),
                 "modality_score": nan_none(score[i]), "mds": nan_none(mds["mds"][i]),
                 "mds_class": str(labels[i]), "subspace_fraction": nan_none(fraction[i]),
                 "modality_classifier_balanced_accuracy": float(clf["balanced_accuracy"][i]),
                 "monosemanticity": nan_none(mono_score[i])}
      if names is not None:
        feature.update(names[i])
      features.append(feature)
    with open(os.path.join(out_dir, "features.json"), "w") as f:
      json.dump({"cutoffs": list(mds["cutoffs"]), "features": features}, f, indent=1)
    with open(os.path.join(out_dir, "bridges.json"), "w") as f:
      json.dump({"relative_threshold": relative, "top_pairs": pairs}, f, indent=1)
    if not _plots(settings):
      return out
    from jaxdisent.viz import sae_plots  # pylint: disable=g-import-not-at-top
    sae_plots.modality_histogram(score, labels, os.path.join(out_dir, "modality_histogram.png"),
                                 title=title)
    sae_plots.energy_vs_modality(energy, score, labels,
                                 os.path.join(out_dir, "energy_vs_modality.png"), title=title)
  return out


def dictionary_scores(method, state, num_pairs: int = 4096, seed: int = 1234) -> dict:
  """An SAE method's dictionary measures on held-out data (paired and planted-truth ones when available)."""
  params, model_state = state.params, state.model_state
  run = functools.partial(_program(method, "reconstruct"), params, model_state)
  out = {"kind": method.kind, "dict_size": int(method.config.model.dict_size), "k": method.k}
  atoms = np.asarray(params["W_dec"])
  if hasattr(method.data, "pairs"):
    image, text, _, _ = method.data.pairs(jax.random.key(seed), num_pairs)
    codes_img, rec_img = run(image)
    codes_txt, rec_txt = run(text)
    x = np.concatenate([image, text])
    x_hat = np.concatenate([rec_img, rec_txt])
    codes = np.concatenate([codes_img, codes_txt])
    truth = method.data.truth()
    recovery = D.concept_recovery(truth["directions"], atoms)
    out["concept_recovery"] = recovery["mean_max_cosine"]
    out["recovered_fraction_0.9"] = recovery["recovered_fraction_0.9"]
    mds = D.modality_dominance(codes_img, codes_txt)
    out["mds_counts"] = mds["counts"]
  else:
    batch = method.data.batch(seed, 0, 0, min(2 * num_pairs, method.data.num_rows))
    x = np.asarray(batch["x"])
    codes, x_hat = run(x)
  out.update({"fvu": D.fvu(x, x_hat), "r2": D.r2(x, x_hat), "l0": D.l0(codes),
              "dead_fraction": D.dead_fraction(codes), "dense_fraction": D.dense_fraction(codes)})
  if method.spec.nested:
    out.update(method.prefix_r2(params, model_state, x, codes))
  return out


@register("dictionary")
def dictionary(ctx, settings) -> dict:
  """FVU, R^2, L0, dead/dense fractions (+ planted-concept recovery on synthetic data) and, on
  paired image/text data, the MDS / modality / bridge / monosemanticity / subspace / modality-
  classifier measures and plots of the module doc.

  Settings: num_pairs (held-out pairs / rows, default 4096), seed offset ``data_seed`` (1234),
  mds_cutoffs, bridge_relative, num_bridges, good_classifier, monosemanticity_top_n, subspace_lda,
  vocabulary, vocabulary_embeddings, names_per_atom, name_margin, plots (module doc).
  """
  num_pairs = int(settings.get("num_pairs", 4096))
  if num_pairs < 2:
    raise ValueError(f"evals.dictionary.num_pairs={num_pairs} must be >= 2")
  seed = int(settings.get("data_seed", 1234))
  method = ctx.method
  results = dictionary_scores(method, ctx.state, num_pairs=num_pairs, seed=seed)
  results.pop("kind", None)
  results.pop("mds_counts", None)  # recomputed below with the configured cut-offs
  paired = paired_embeddings(method.data, num_pairs, seed)
  if paired is not None:
    image, text = paired
    codes_img = encode_batched(method, ctx.state, image)
    codes_txt = encode_batched(method, ctx.state, text)
    planted = method.data.truth()["directions"] if hasattr(method.data, "truth") else None
    results.update(paired_analyses(
        image, text, codes_img, codes_txt, np.asarray(ctx.state.params["W_dec"]),
        settings=settings, planted_directions=planted, out_dir=ctx.out_dir,
        title=f"{method.kind} SAE, step {ctx.step}"))
  return _split_scalars(results, ctx.out_dir, "details.json")
