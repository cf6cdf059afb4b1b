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


def _evaluate_pair(params1, params2, x1, x2, y):
  hidden1, logits1 = mlp_forward(params1, x1)
  hidden2, logits2 = mlp_forward(params2, x2)
  normalize = lambda h: h / jnp.maximum(jnp.linalg.norm(h, axis=1, keepdims=True), 1e-12)
  matrix = jnp.stack([jnp.stack([alignment_metrics._linear_cka(normalize(a), normalize(b), True)  # pylint: disable=protected-access
                                 for b in hidden2]) for a in hidden1])
  matrix = jnp.nan_to_num(matrix, nan=0.0)  # a dead layer (all zeros) has no CKA
  acc1 = jnp.mean(jnp.argmax(logits1, axis=1) == y)
  acc2 = jnp.mean(jnp.argmax(logits2, axis=1) == y)
  return matrix, acc1, acc2


@functools.lru_cache(maxsize=None)
def _group_runner(depth, width, steps, batch_size, learning_rate, num_classes):
  train = functools.partial(_train_one, depth=depth, width=width, steps=steps,
                            batch_size=batch_size, learning_rate=learning_rate,
                            num_classes=num_classes)

  def run(keys1, keys2, x1, x2, y, x1_eval, x2_eval, y_eval):
    params1, loss1 = train(keys1, x1, y)
    params2, loss2 = train(keys2, x2, y)
    matrix, acc1, acc2 = _evaluate_pair(params1, params2, x1_eval, x2_eval, y_eval)
    return {"cka_matrix": matrix, "acc1": acc1, "acc2": acc2, "loss1": loss1, "loss2": loss2}

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


def run_study(config, workdir: str | None = None, log=print, devices=None) -> dict:
  """Train the grid in `config` and return (and write) rows, summary and plots.

  The (U, seed) group axis is sharded over `devices` (default: all).
  """
  grid, data_cfg, model_cfg, train_cfg = config.grid, config.data, config.model, config.train
  for key in ("num_unique", "heterogeneity_depth", "encoder_depth"):
    value = grid[key]
    if isinstance(value, (int, float, str)) or not len(value):
      raise ValueError(f"grid.{key}={value!r} must be a non-empty list, e.g. "
                       f"--config.grid.{key}='({value},)' or '(0,4,8)'")
    bad = [v for v in value if isinstance(v, bool) or not isinstance(v, int)]
    if bad:
      raise ValueError(f"grid.{key}={tuple(value)!r}: every value must be an integer; "
                       f"{bad[0]!r} is not (e.g. --config.grid.{key}=0,4,8)")
  if int(grid.seeds) < 1:
    raise ValueError(f"grid.seeds={grid.seeds} must be >= 1")
  num_steps = int(train_cfg.get("num_steps", train_cfg.get("steps", 0)))
  learning_rate = float(config.optimizer.learning_rate if "optimizer" in config
                        else train_cfg.learning_rate)
  if num_steps < 1 or int(train_cfg.batch_size) < 1 or learning_rate <= 0:
    raise ValueError(f"train.num_steps={num_steps}, train.batch_size={train_cfg.batch_size} and "
                     f"optimizer.learning_rate={learning_rate} must all be positive")
  num_unique = list(grid.num_unique)
  if data_cfg.synergy and max(num_unique) > 4:
    raise ValueError("with data.synergy=true grid.num_unique must be <= 4 (XORs of paired unique bits)")
  seeds = list(range(config.seed, config.seed + grid.seeds))
  members = list(itertools.product(num_unique, seeds))
  rows = []
  start = time.time()
  devices = list(jax.devices() if devices is None else devices)
  for h_depth in grid.heterogeneity_depth:
    # one dataset per (U, seed), shared by every encoder depth
    datasets = []
    for u, seed in members:
      task = jax.random.fold_in(jax.random.key(seed), 1000 + u)
      common = dict(num_unique=u, heterogeneity_depth=h_depth, synergy=data_cfg.synergy,
                    heterogeneity_both=data_cfg.heterogeneity_both,
                    temperature=data_cfg.temperature, task_key=task)
      train = make_bimodal(jax.random.fold_in(task, 1), data_cfg.num_train, **common)
      evals = make_bimodal(jax.random.fold_in(task, 2), data_cfg.num_eval, **common)
      datasets.append((train, evals))
    stacked = {
        "x1": jnp.stack([t["x1"] for t, _ in datasets]), "x2": jnp.stack([t["x2"] for t, _ in datasets]),
        "y": jnp.stack([t["y"] for t, _ in datasets]),
        "x1_eval": jnp.stack([e["x1"] for _, e in datasets]),
        "x2_eval": jnp.stack([e["x2"] for _, e in datasets]),
        "y_eval": jnp.stack([e["y"] for _, e in datasets]),
    }
    for e_depth in grid.encoder_depth:
      keys = jnp.stack([jax.random.key_data(jax.random.fold_in(jax.random.key(seed), 7919 * e_depth + u))
                        for u, seed in members])
      inputs = dict(stacked, keys1=keys, keys2=jax.vmap(lambda k: jax.random.key_data(
          jax.random.fold_in(jax.random.wrap_key_data(k), 1)))(keys))
      sharded, size = _shard_group(inputs, devices)
      runner = _group_runner(int(e_depth), int(model_cfg.width), num_steps,
                             int(train_cfg.batch_size), learning_rate, 4)
      out = runner(jax.vmap(jax.random.wrap_key_data)(sharded["keys1"]),
                   jax.vmap(jax.random.wrap_key_data)(sharded["keys2"]),
                   sharded["x1"], sharded["x2"], sharded["y"], sharded["x1_eval"],
                   sharded["x2_eval"], sharded["y_eval"])
      out = jax.tree.map(lambda a: np.asarray(a)[:size], out)
      for index, (u, seed) in enumerate(members):
        matrix = out["cka_matrix"][index]
        best = np.unravel_index(np.argmax(matrix), matrix.shape)
        rows.append({"num_unique": int(u), "heterogeneity_depth": int(h_depth),
                     "encoder_depth": int(e_depth), "seed": int(seed),
                     "alignment": float(matrix[best]), "best_layers": [int(best[0]), int(best[1])],
                     "accuracy1": float(out["acc1"][index]), "accuracy2": float(out["acc2"][index]),
                     "performance": float((out["acc1"][index] + out["acc2"][index]) / 2)})
      log(f"[alignment_study] h={h_depth} L={e_depth}: {len(members)} model pairs "
          f"({time.time() - start:.0f}s)")
  summary = summarize(rows)
  summary["seconds"] = round(time.time() - start, 1)
  summary["devices"] = len(devices)
  if workdir:
    write_outputs(rows, summary, workdir)
  return {"rows": rows, "summary": summary}


def summarize(rows) -> dict:
  """The paper's two trends: Spearman rho(max alignment, U) per (h, L), and the Pearson
  correlation between alignment and performance across models at each U."""
  from scipy import stats  # pylint: disable=g-import-not-at-top
  by_setting = {}
  for r in rows:
    by_setting.setdefault((r["heterogeneity_depth"], r["encoder_depth"]), []).append(r)
  rhos = {}
  for (h, depth), group in sorted(by_setting.items()):
    us = sorted({r["num_unique"] for r in group})
    if len(us) < 3:
      continue
    means = [np.mean([r["alignment"] for r in group if r["num_unique"] == u]) for u in us]
    rhos[f"h{h}_L{depth}"] = float(stats.spearmanr(us, means).statistic)
  corr = {}
  for u in sorted({r["num_unique"] for r in rows}):
    group = [r for r in rows if r["num_unique"] == u]
    a = np.array([r["alignment"] for r in group])
    p = np.array([r["performance"] for r in group])
    # undefined (None) when alignment or performance does not vary across the models at this U
    corr[int(u)] = (float(np.corrcoef(a, p)[0, 1]) if len(a) > 1 and a.std() > 0 and p.std() > 0
                    else None)
  values = np.array(list(rhos.values()))
  notes = [] if rhos else ["Spearman rho needs at least 3 uniqueness values per setting; "
                           "grid.num_unique has fewer, so it is not reported"]
  return {"spearman_alignment_vs_uniqueness": rhos,
          "spearman_range": [float(values.min()), float(values.max())] if rhos else None,
          "spearman_mean": float(values.mean()) if rhos else None,
          "alignment_performance_correlation_by_uniqueness": corr, "notes": notes}


def write_outputs(rows, summary, workdir):
  os.makedirs(os.path.join(workdir, "plots"), exist_ok=True)
  with open(os.path.join(workdir, "results.csv"), "w", newline="") as f:
    writer = csv.DictWriter(f, fieldnames=list(rows[0].keys()))
    writer.writeheader()
    writer.writerows(rows)
  with open(os.path.join(workdir, "results.json"), "w") as f:
    json.dump({"rows": rows, "summary": summary}, f, indent=2)
  from jaxdisent.viz import alignment_plots  # pylint: disable=g-import-not-at-top
  alignment_plots.alignment_vs_uniqueness(rows, os.path.join(workdir, "plots",
                                                             "alignment_vs_uniqueness.png"))
  alignment_plots.correlation_vs_uniqueness(
      summary["alignment_performance_correlation_by_uniqueness"],
      os.path.join(workdir, "plots", "alignment_performance_correlation.png"))
