"""The alignment-emergence study: when do independently trained unimodal encoders align?

For every (heterogeneity depth h, encoder depth L) the models of all (uniqueness U, seed) pairs are
trained *together*: their data, parameters and optimiser states are stacked along a group axis,
training is ``vmap``-ed over it, and the group axis is sharded over all devices. Each group member
trains one MLP per modality to predict the label from that modality alone; alignment is the
maximum over layer pairs of unbiased linear CKA between the two encoders' L2-normalised hidden
features on held-out samples, performance is the mean of the two test accuracies (as in the paper,
[tjandrasuwita2025], docs/references.md).
"""

from __future__ import annotations

import csv
import functools
import itertools
import json
import os
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import NamedSharding, PartitionSpec as P

from jaxdisent.data.multimodal import make_bimodal
from jaxdisent.metrics import alignment as alignment_metrics
from jaxdisent.train.lock import workdir_lock


def init_mlp(key, in_dim: int, width: int, depth: int, num_classes: int):
  """`depth` hidden ReLU layers of `width` and a linear head; He-normal weights."""
  sizes = [in_dim] + [width] * depth + [num_classes]
  params = []
  for k, (fan_in, fan_out) in zip(jax.random.split(key, len(sizes) - 1), zip(sizes[:-1], sizes[1:])):
    params.append({"w": jax.random.normal(k, (fan_in, fan_out)) * jnp.sqrt(2.0 / fan_in),
                   "b": jnp.zeros((fan_out,))})
  return params


def mlp_forward(params, x):
  """(hidden features of every layer, logits)."""
  hidden = []
  for layer in params[:-1]:
    x = jax.nn.relu(x @ layer["w"] + layer["b"])
    hidden.append(x)
  return hidden, x @ params[-1]["w"] + params[-1]["b"]


def _train_one(key, x, y, *, depth, width, steps, batch_size, learning_rate, num_classes):
  optimizer = optax.adam(learning_rate)
  params = init_mlp(key, x.shape[1], width, depth, num_classes)
  opt_state = optimizer.init(params)

  def loss_fn(p, xb, yb):
    logits = mlp_forward(p, xb)[1]
    return optax.softmax_cross_entropy_with_integer_labels(logits, yb).mean()

  def step(carry, i):
    p, s = carry
    index = jax.random.randint(jax.random.fold_in(key, i), (batch_size,), 0, x.shape[0])
    loss, grads = jax.value_and_grad(loss_fn)(p, x[index], y[index])
    updates, s = optimizer.update(grads, s, p)
    return (optax.apply_updates(p, updates), s), loss

  (params, _), losses = jax.lax.scan(step, (params, opt_state), jnp.arange(steps))
  return params, losses[-1]


METRICS = ("unbiased_cka", "cka", "mutual_knn", "cknna", "svcca")
PAIRINGS = ("same", "fixed")


def _metric_fn(metric: str, k: int, cca_dim: int):
  """A jittable (a, b) -> alignment of two (N, D) feature sets (already L2-normalised)."""
  cores = alignment_metrics
  if metric == "unbiased_cka":
    return lambda a, b: cores._linear_cka(a, b, True)  # pylint: disable=protected-access
  if metric == "cka":
    return lambda a, b: cores._linear_cka(a, b, False)  # pylint: disable=protected-access
  if metric == "mutual_knn":
    return lambda a, b: cores.mutual_knn_core(a, b, k)
  if metric == "cknna":
    return lambda a, b: cores.cknna_core(a, b, k)
  if metric == "svcca":
    return lambda a, b: cores.svcca_core(a, b, cca_dim)
  raise ValueError(f"study.metric={metric!r} is not one of {', '.join(METRICS)}")


def _evaluate_pair(hidden_ref, params2, x2, metric_fn):
  """Alignment matrix (every layer of the reference encoder x every layer of encoder 2)."""
  hidden2, logits2 = mlp_forward(params2, x2)
  normalize = lambda h: h / jnp.maximum(jnp.linalg.norm(h, axis=1, keepdims=True), 1e-12)
  matrix = jnp.stack([jnp.stack([metric_fn(normalize(a), normalize(b)) for b in hidden2])
                      for a in hidden_ref])
  matrix = jnp.nan_to_num(matrix, nan=0.0)  # a dead layer (all zeros) has no alignment
  return matrix, logits2


@functools.lru_cache(maxsize=None)
def _group_runner(depth, width, steps, batch_size, learning_rate, num_classes, metric="unbiased_cka",
                  k=10, cca_dim=10, use_fixed=False):
  """jit(vmap(run)) for one encoder depth. With ``use_fixed`` the reference encoder is the given
  ``fixed1`` (modality 1's encoder of the fixed depth), else this depth's modality-1 encoder."""
  train = functools.partial(_train_one, depth=depth, width=width, steps=steps,
                            batch_size=batch_size, learning_rate=learning_rate,
                            num_classes=num_classes)
  metric_fn = _metric_fn(metric, k, cca_dim)

  def run(keys1, keys2, x1, x2, y, x1_eval, x2_eval, y_eval, x1_val, x2_val, y_val, fixed1):
    params1, loss1 = train(keys1, x1, y)
    params2, loss2 = train(keys2, x2, y)
    hidden1, logits1 = mlp_forward(params1, x1_eval)
    hidden_ref = mlp_forward(fixed1, x1_eval)[0] if use_fixed else hidden1
    matrix, logits2 = _evaluate_pair(hidden_ref, params2, x2_eval, metric_fn)
    acc = lambda logits, labels: jnp.mean(jnp.argmax(logits, axis=1) == labels)
    acc1_val = acc(mlp_forward(params1, x1_val)[1], y_val)
    acc2_val = acc(mlp_forward(params2, x2_val)[1], y_val)
    return {"cka_matrix": matrix, "acc1": acc(logits1, y_eval), "acc2": acc(logits2, y_eval),
            "acc1_val": acc1_val, "acc2_val": acc2_val, "loss1": loss1, "loss2": loss2,
            "params1": params1}

  return jax.jit(jax.vmap(run))


def _shard_group(tree, devices):
  """Pad the group axis to a multiple of the device count and shard it over a ('data',) mesh."""
  size = jax.tree.leaves(tree)[0].shape[0]
  pad = (-size) % len(devices)
  if pad:
    tree = jax.tree.map(lambda a: jnp.concatenate([a, jnp.repeat(a[:1], pad, axis=0)]), tree)
  mesh = jax.make_mesh((len(devices),), ("data",), axis_types=(jax.sharding.AxisType.Auto,),
                       devices=devices)
  return jax.device_put(tree, NamedSharding(mesh, P("data"))), size


def _config_checks(config):
  grid, data_cfg, train_cfg = config.grid, config.data, config.train
  for key in ("num_unique", "heterogeneity_depth", "encoder_depth"):
    value = grid[key]
    if isinstance(value, (int, float, str)) or not len(value):
      raise ValueError(f"grid.{key}={value!r} must be a non-empty list, e.g. "
                       f"--config.grid.{key}='({value},)' or '(0,4,8)'")
    bad = [v for v in value if isinstance(v, bool) or not isinstance(v, int)]
    if bad:
      raise ValueError(f"grid.{key}={tuple(value)!r}: every value must be an integer; "
                       f"{bad[0]!r} is not (e.g. --config.grid.{key}=0,4,8)")
    if len(set(value)) != len(value):
      raise ValueError(f"grid.{key}={tuple(value)!r} repeats a value; list each once")
  bad_u = [u for u in grid.num_unique if not 0 <= u <= 8]
  if bad_u:
    raise ValueError(f"grid.num_unique={tuple(grid.num_unique)!r}: {bad_u[0]} is outside 0..8 "
                     f"(8 label bits)")
  if min(grid.heterogeneity_depth) < 0 or min(grid.encoder_depth) < 1:
    raise ValueError(f"grid.heterogeneity_depth must be >= 0 and grid.encoder_depth >= 1; got "
                     f"{tuple(grid.heterogeneity_depth)} and {tuple(grid.encoder_depth)}")
  if int(grid.seeds) < 1:
    raise ValueError(f"grid.seeds={grid.seeds} must be >= 1")
  num_steps = int(train_cfg.get("num_steps", train_cfg.get("steps", 0)))
  learning_rate = float(config.optimizer.learning_rate if "optimizer" in config
                        else train_cfg.learning_rate)
  if num_steps < 1 or int(train_cfg.batch_size) < 1 or not learning_rate > 0:
    raise ValueError(f"train.num_steps={num_steps}, train.batch_size={train_cfg.batch_size} and "
                     f"optimizer.learning_rate={learning_rate} must all be positive")
  if int(data_cfg.num_train) < 1 or int(data_cfg.num_eval) < 4 or int(data_cfg.get("num_val", 0)) < 0:
    raise ValueError(f"data.num_train={data_cfg.num_train} must be >= 1, data.num_eval="
                     f"{data_cfg.num_eval} >= 4 and data.num_val={data_cfg.get('num_val', 0)} >= 0")
  if data_cfg.synergy and max(grid.num_unique) > 4:
    raise ValueError("with data.synergy=true grid.num_unique must be <= 4 (XORs of paired unique bits)")
  study = _study_settings(config)
  if study["metric"] not in METRICS:
    raise ValueError(f"study.metric={study['metric']!r} is not one of {', '.join(METRICS)}")
  if study["pairing"] not in PAIRINGS:
    raise ValueError(f"study.pairing={study['pairing']!r} must be 'same' or 'fixed'")
  if study["pairing"] == "fixed" and study["fixed_depth"] not in tuple(grid.encoder_depth):
    raise ValueError(f"study.fixed_depth={study['fixed_depth']} must be one of grid.encoder_depth="
                     f"{tuple(grid.encoder_depth)} (its encoder is trained in the grid)")
  if study["metric"] in ("mutual_knn", "cknna"):
    lowest = 2 if study["metric"] == "cknna" else 1
    if not lowest <= study["k"] < int(data_cfg.num_eval):
      raise ValueError(f"study.k={study['k']} must be in [{lowest}, data.num_eval - 1 = "
                       f"{int(data_cfg.num_eval) - 1}]")
  if study["metric"] == "svcca" and not 1 <= study["cca_dim"] <= int(config.model.width):
    raise ValueError(f"study.cca_dim={study['cca_dim']} must be in [1, model.width = "
                     f"{config.model.width}]")
  return num_steps, learning_rate, study


def _study_settings(config) -> dict:
  study = config.get("study", {})
  get = lambda key, default: study.get(key, default) if study else default
  return {"metric": str(get("metric", "unbiased_cka")), "k": int(get("k", 10)),
          "cca_dim": int(get("cca_dim", 10)), "pairing": str(get("pairing", "same")),
          "fixed_depth": int(get("fixed_depth", 2))}


def _fingerprint(config) -> str:
  """What a cached cell depends on (everything but the grid's lists, which select cells)."""
  return json.dumps({"data": config.data.to_dict(), "model": config.model.to_dict(),
                     "train": config.train.to_dict(), "seed": config.seed,
                     "seeds": int(config.grid.seeds), "num_unique": list(config.grid.num_unique),
                     "study": _study_settings(config),
                     "optimizer": config.optimizer.to_dict() if "optimizer" in config else None},
                    sort_keys=True)


def run_study(config, workdir: str | None = None, log=print, devices=None) -> dict:
  """Train the grid in `config` and return (and write) rows, summary and plots.

  The (U, seed) group axis is sharded over `devices` (default: all). With a workdir, every
  (heterogeneity depth, encoder depth) cell is written to ``W/cells/`` when it finishes and a rerun
  with the same settings skips finished cells (resumable); a cell written under other settings is
  refused.
  """
  grid, data_cfg, model_cfg, train_cfg = config.grid, config.data, config.model, config.train
  num_steps, learning_rate, study = _config_checks(config)
  if workdir:
    with workdir_lock(workdir, "the alignment-emergence study"):
      return _run_study(config, workdir, log, devices, num_steps, learning_rate, study)
  return _run_study(config, workdir, log, devices, num_steps, learning_rate, study)


def _load_cell(path, fingerprint):
  if not os.path.exists(path):
    return None
  with open(path) as f:
    cell = json.load(f)
  if cell.get("fingerprint") != fingerprint:
    raise ValueError(f"{path} was written with other settings; use a new --workdir (or delete "
                     f"{os.path.dirname(path)} to recompute)")
  return cell


def _write_json(path, payload):
  tmp = path + ".tmp"
  with open(tmp, "w") as f:
    json.dump(payload, f, indent=1)
  os.replace(tmp, path)


def _run_study(config, workdir, log, devices, num_steps, learning_rate, study):
  grid, data_cfg, model_cfg, train_cfg = config.grid, config.data, config.model, config.train
  num_unique = list(grid.num_unique)
  seeds = list(range(config.seed, config.seed + grid.seeds))
  members = list(itertools.product(num_unique, seeds))
  rows = []
  start = time.time()
  devices = list(jax.devices() if devices is None else devices)
  fingerprint = _fingerprint(config)
  cell_dir = os.path.join(workdir, "cells") if workdir else None
  if cell_dir:
    os.makedirs(cell_dir, exist_ok=True)
  fixed = study["pairing"] == "fixed"
  num_val = int(data_cfg.get("num_val", 0))
  reused = 0
  for h_depth in grid.heterogeneity_depth:
    depths = list(grid.encoder_depth)
    if fixed:  # the fixed-depth encoder first: every other depth is compared with it
      depths.remove(study["fixed_depth"])
      depths.insert(0, study["fixed_depth"])
    cells = {L: _load_cell(os.path.join(cell_dir, f"h{h_depth}_L{L}.json"), fingerprint)
             if cell_dir else None for L in depths}
    if all(cells[L] is not None for L in depths):
      for L in grid.encoder_depth:
        rows.extend(cells[L]["rows"])
      reused += len(depths)
      log(f"[alignment_study] h={h_depth}: all {len(depths)} encoder depths already in "
          f"{cell_dir}")
      continue
    # one dataset per (U, seed), shared by every encoder depth
    datasets = []
    for u, seed in members:
      task = jax.random.fold_in(jax.random.key(seed), 1000 + u)
      common = dict(num_unique=u, heterogeneity_depth=h_depth, synergy=data_cfg.synergy,
                    heterogeneity_both=data_cfg.heterogeneity_both,
                    temperature=data_cfg.temperature, task_key=task)
      train = make_bimodal(jax.random.fold_in(task, 1), data_cfg.num_train, **common)
      evals = make_bimodal(jax.random.fold_in(task, 2), data_cfg.num_eval, **common)
      val = make_bimodal(jax.random.fold_in(task, 3), num_val, **common) if num_val else evals
      datasets.append((train, evals, val))
    stack = lambda part, key: jnp.stack([d[part][key] for d in datasets])
    stacked = {"x1": stack(0, "x1"), "x2": stack(0, "x2"), "y": stack(0, "y"),
               "x1_eval": stack(1, "x1"), "x2_eval": stack(1, "x2"), "y_eval": stack(1, "y"),
               "x1_val": stack(2, "x1"), "x2_val": stack(2, "x2"), "y_val": stack(2, "y")}
    fixed_params = None
    by_depth = {}
    for e_depth in depths:
      is_reference = fixed and e_depth == study["fixed_depth"]
      if cells[e_depth] is not None and not is_reference:
        by_depth[e_depth] = cells[e_depth]["rows"]
        reused += 1
        continue
      keys = jnp.stack([jax.random.key_data(jax.random.fold_in(jax.random.key(seed), 7919 * e_depth + u))
                        for u, seed in members])
      inputs = dict(stacked, keys1=keys, keys2=jax.vmap(lambda k: jax.random.key_data(
          jax.random.fold_in(jax.random.wrap_key_data(k), 1)))(keys))
      sharded, size = _shard_group(inputs, devices)
      use_fixed = fixed and not is_reference
      runner = _group_runner(int(e_depth), int(model_cfg.width), num_steps,
                             int(train_cfg.batch_size), learning_rate, 4, study["metric"],
                             study["k"], study["cca_dim"], use_fixed)
      if use_fixed:
        reference = fixed_params
      else:  # unused placeholder of the right structure
        reference = jax.tree.map(lambda a: jnp.zeros(a.shape, a.dtype), jax.eval_shape(
            jax.vmap(lambda k: init_mlp(k, 12, int(model_cfg.width), 1, 4)),
            jax.vmap(jax.random.wrap_key_data)(sharded["keys1"])))
      out = runner(jax.vmap(jax.random.wrap_key_data)(sharded["keys1"]),
                   jax.vmap(jax.random.wrap_key_data)(sharded["keys2"]),
                   sharded["x1"], sharded["x2"], sharded["y"], sharded["x1_eval"],
                   sharded["x2_eval"], sharded["y_eval"], sharded["x1_val"], sharded["x2_val"],
                   sharded["y_val"], reference)
      if is_reference:
        fixed_params = out["params1"]
      out = jax.tree.map(lambda a: np.asarray(a)[:size], {k: v for k, v in out.items()
                                                          if k != "params1"})
      cell_rows = []
      for index, (u, seed) in enumerate(members):
        matrix = out["cka_matrix"][index]
        best = np.unravel_index(np.argmax(matrix), matrix.shape)
        cell_rows.append({
            "num_unique": int(u), "heterogeneity_depth": int(h_depth),
            "encoder_depth": int(e_depth),
            "reference_depth": int(study["fixed_depth"] if fixed else e_depth), "seed": int(seed),
            "alignment": float(matrix[best]), "best_layers": [int(best[0]), int(best[1])],
            "accuracy1": float(out["acc1"][index]), "accuracy2": float(out["acc2"][index]),
            "performance": float((out["acc1"][index] + out["acc2"][index]) / 2),
            "val_accuracy2": float(out["acc2_val"][index]) if num_val else None})
      by_depth[e_depth] = cell_rows
      if cell_dir:
        _write_json(os.path.join(cell_dir, f"h{h_depth}_L{e_depth}.json"),
                    {"fingerprint": fingerprint, "rows": cell_rows})
      log(f"[alignment_study] h={h_depth} L={e_depth}: {len(members)} model pairs "
          f"({time.time() - start:.0f}s)")
    for L in grid.encoder_depth:
      rows.extend(by_depth[L])
  summary = summarize(rows, pairing=study["pairing"])
  summary["study"] = dict(study, grid={k: list(grid[k]) for k in
                                       ("num_unique", "heterogeneity_depth", "encoder_depth")},
                          seeds=int(grid.seeds), width=int(model_cfg.width))
  summary["seconds"] = round(time.time() - start, 1)
  summary["cells_reused"] = reused
  summary["devices"] = len(devices)
  if workdir:
    write_outputs(rows, summary, workdir)
  return {"rows": rows, "summary": summary}


def _pearson(x, y):
  """Pearson r, or None where it is undefined (fewer than 2 points or a constant side)."""
  x, y = np.asarray(x, float), np.asarray(y, float)
  if len(x) < 2 or x.std() == 0 or y.std() == 0:
    return None
  return float(np.corrcoef(x, y)[0, 1])


def _median(values):
  values = [v for v in values if v is not None]
  return float(np.median(values)) if values else None


def summarize(rows, pairing: str = "same") -> dict:
  """The paper's three trends per heterogeneity depth D, plus the earlier pooled statistics.

  Per D (the paper's analysis script, ``scripts/analyze_rus.py`` of MeganTj/multimodal_alignment):
  1. ``max_alignment[D][U]``: max over seeds and encoder depths of the (max over layer pairs)
     alignment, and its Spearman rho against U (the issue quotes rho; the paper's panels print a
     Pearson r, also given);
  2. ``alignment_performance_correlation[D][U]``: per seed, the Pearson correlation across encoder
     depths between alignment and the test accuracy of modality 2 (the transformed one; the mean
     of both modalities with pairing 'same'), median over seeds; ``..._median_by_uniqueness``
     pools all (D, seed) as the paper's box plots;
  3. ``alignment_depth_correlation``: likewise between alignment and encoder depth.
  Earlier pooled statistics kept: ``spearman_alignment_vs_uniqueness`` per (D, L) of the seed-mean
  alignment, and ``alignment_performance_correlation_by_uniqueness`` across all models at each U.
  """
  from scipy import stats  # pylint: disable=g-import-not-at-top
  perf_key = "accuracy2" if pairing == "fixed" else "performance"
  by_setting = {}
  for r in rows:
    by_setting.setdefault((r["heterogeneity_depth"], r["encoder_depth"]), []).append(r)
  rhos = {}
  for (h, depth), group in sorted(by_setting.items()):
    us = sorted({r["num_unique"] for r in group})
    if len(us) < 3:
      continue
    means = [np.mean([r["alignment"] for r in group if r["num_unique"] == u]) for u in us]
    rho = stats.spearmanr(us, means).statistic
    rhos[f"h{h}_L{depth}"] = None if np.isnan(rho) else float(rho)
  corr = {}
  for u in sorted({r["num_unique"] for r in rows}):
    group = [r for r in rows if r["num_unique"] == u]
    # undefined (None) when alignment or performance does not vary across the models at this U
    corr[int(u)] = _pearson([r["alignment"] for r in group], [r["performance"] for r in group])
  values = np.array([v for v in rhos.values() if v is not None])
  notes = [] if len(values) else ["Spearman rho needs at least 3 uniqueness values per setting; "
                                  "grid.num_unique has fewer, so it is not reported"]
  per_d = {}
  pooled_perf, pooled_depth = {}, {}
  for h in sorted({r["heterogeneity_depth"] for r in rows}):
    group = [r for r in rows if r["heterogeneity_depth"] == h]
    us = sorted({r["num_unique"] for r in group})
    max_alignment = {int(u): float(max(r["alignment"] for r in group if r["num_unique"] == u))
                     for u in us}
    entry = {"max_alignment": max_alignment, "spearman_max_alignment_vs_uniqueness": None,
             "pearson_max_alignment_vs_uniqueness": None,
             "max_alignment_monotone_decreasing": bool(all(
                 max_alignment[a] >= max_alignment[b] for a, b in zip(us, us[1:])))}
    if len(us) >= 3:
      rho = stats.spearmanr(us, [max_alignment[u] for u in us]).statistic
      entry["spearman_max_alignment_vs_uniqueness"] = None if np.isnan(rho) else float(rho)
      entry["pearson_max_alignment_vs_uniqueness"] = _pearson(us, [max_alignment[u] for u in us])
    perf, depth = {}, {}
    for u in us:
      per_seed_perf, per_seed_depth = [], []
      for seed in sorted({r.get("seed", 0) for r in group}):
        cells = sorted((r for r in group if r["num_unique"] == u and r.get("seed", 0) == seed),
                       key=lambda r: r["encoder_depth"])
        a = [r["alignment"] for r in cells]
        per_seed_perf.append(_pearson(a, [r[perf_key] for r in cells]))
        per_seed_depth.append(_pearson(a, [r["encoder_depth"] for r in cells]))
      perf[int(u)], depth[int(u)] = _median(per_seed_perf), _median(per_seed_depth)
      pooled_perf.setdefault(int(u), []).extend(per_seed_perf)
      pooled_depth.setdefault(int(u), []).extend(per_seed_depth)
    entry["alignment_performance_correlation"] = perf
    entry["alignment_depth_correlation"] = depth
    per_d[int(h)] = entry
  d_rhos = [e["spearman_max_alignment_vs_uniqueness"] for e in per_d.values()
            if e["spearman_max_alignment_vs_uniqueness"] is not None]
  return {"per_heterogeneity_depth": per_d,
          "spearman_max_alignment_vs_uniqueness_by_d": {
              d: e["spearman_max_alignment_vs_uniqueness"] for d, e in per_d.items()},
          "spearman_max_alignment_range": [min(d_rhos), max(d_rhos)] if d_rhos else None,
          "alignment_performance_correlation_median_by_uniqueness": {
              u: _median(v) for u, v in pooled_perf.items()},
          "alignment_depth_correlation_median_by_uniqueness": {
              u: _median(v) for u, v in pooled_depth.items()},
          "performance_for_trend_2": perf_key,
          "spearman_alignment_vs_uniqueness": rhos,
          "spearman_range": [float(values.min()), float(values.max())] if len(values) else None,
          "spearman_mean": float(values.mean()) if len(values) else None,
          "alignment_performance_correlation_by_uniqueness": corr, "notes": notes}


def write_outputs(rows, summary, workdir):
  os.makedirs(os.path.join(workdir, "plots"), exist_ok=True)
  with open(os.path.join(workdir, "results.csv"), "w", newline="") as f:
    writer = csv.DictWriter(f, fieldnames=list(rows[0].keys()))
    writer.writeheader()
    writer.writerows(rows)
  _write_json(os.path.join(workdir, "results.json"), {"rows": rows, "summary": summary})
  _write_json(os.path.join(workdir, "summary.json"), summary)
  from jaxdisent.viz import alignment_plots  # pylint: disable=g-import-not-at-top
  plots = os.path.join(workdir, "plots")
  alignment_plots.alignment_vs_uniqueness(rows, os.path.join(plots, "alignment_vs_uniqueness.png"))
  alignment_plots.correlation_vs_uniqueness(
      summary["alignment_performance_correlation_by_uniqueness"],
      os.path.join(plots, "alignment_performance_correlation.png"))
  alignment_plots.trends_per_depth(summary["per_heterogeneity_depth"],
                                   os.path.join(plots, "trends_per_d.png"))
