"""DecAlign ([qian2026]: Qian et al., ICLR 2026; docs/references.md) trained through the shared engine.

loss = task + w_dec L_dec + alpha L_hete + beta L_homo, every term switchable from the config
(``loss.decoupling`` / ``loss.heterogeneity`` / ``loss.homogeneity``) for ablations. The
heterogeneity and homogeneity terms use global-batch statistics (features all-gathered over the
data axis), so 1 device and N devices give the same step.
"""

from __future__ import annotations

import json
import os

import jax
import jax.numpy as jnp
import numpy as np

from jaxdisent.losses import decalign as D
from jaxdisent.methods.base import Method
from jaxdisent.models.decalign import DecAlignNet


def _floats(values) -> tuple[float, ...]:
  """A tuple of floats from a tuple or (workdirs written before tuples) a comma string."""
  if isinstance(values, (tuple, list)):
    return tuple(float(v) for v in values)
  return tuple(float(v) for v in str(values).split(",") if v.strip())


def make_sequence_data(config):
  """The DecAlign data source (``data.source``: synthetic | mmsa), built by the data factory."""
  from jaxdisent.data import make_source  # pylint: disable=g-import-not-at-top
  return make_source(config, "sequences")


class DecAlignMethod(Method):
  name = "decalign"
  evaluators = ("sentiment",)

  def __init__(self, config):
    super().__init__(config)
    self.data = make_sequence_data(config)
    m, loss = config.model, config.loss
    if loss.task not in ("regression", "classification"):
      raise ValueError(f"loss.task must be regression or classification, got {loss.task!r}")
    if loss.task == "classification" and int(m.get("num_classes", 0) or 0) < 2:
      raise ValueError("loss.task='classification' needs model.num_classes >= 2 (e.g. "
                       "--config.model.num_classes=6 for IEMOCAP)")
    outputs = 1 if loss.task == "regression" else int(m.num_classes)
    self.model = DecAlignNet(width=int(m.width), num_heads=int(m.num_heads),
                             conv_kernel=int(m.conv_kernel), num_outputs=outputs,
                             fusion=bool(m.fusion))
    if loss.heterogeneity and int(loss.num_prototypes) > int(config.train.batch_size):
      raise ValueError(f"loss.num_prototypes={loss.num_prototypes} exceeds train.batch_size="
                       f"{config.train.batch_size}; the per-batch GMM needs more samples")

  def _split_inputs(self, batch):
    return ([batch[n] for n in self.data.names], [batch[n + "_mask"] for n in self.data.names])

  def init(self, rng):
    dummy = {}
    for n, w, length in zip(self.data.names, self.data.widths, self.data.lengths):
      dummy[n] = jnp.zeros((2, length, w))
      dummy[n + "_mask"] = jnp.ones((2, length))
    params = jax.jit(self.model.init)(rng, *self._split_inputs(dummy))["params"]
    return params, {}

  def local_batch(self, seed, step, start, size):
    return self.data.batch(seed, step, start, size)

  def apply(self, params, batch):
    return self.model.apply({"params": params}, *self._split_inputs(batch))

  def loss(self, params, model_state, batch, rng, step, axis_name=None):
    del rng, step
    cfg = self.config.loss
    out = self.apply(params, batch)
    task = D.task_loss(out["output"], batch["label"], cfg.task)
    total = task
    metrics = {"task": task}
    if cfg.decoupling:
      dec = D.decoupling_loss(out["unique"], out["common"])
      total = total + cfg.decoupling_weight * dec
      metrics["decoupling"] = dec
    if cfg.heterogeneity:
      hete, aux = D.heterogeneity_loss(
          out["unique"], num_prototypes=int(cfg.num_prototypes), em_steps=int(cfg.em_steps),
          var_floor=cfg.var_floor, epsilon=cfg.ot_epsilon, iterations=int(cfg.ot_iterations),
          sample_weight=cfg.sample_to_prototype_weight, axis_name=axis_name)
      total = total + cfg.heterogeneity_weight * hete
      metrics.update(heterogeneity=hete, **aux)
    if cfg.homogeneity:
      homo, aux = D.homogeneity_loss(out["homogeneity"], mmd_weight=cfg.mmd_weight,
                                     bandwidths=_floats(cfg.mmd_bandwidths), axis_name=axis_name)
      total = total + cfg.homogeneity_weight * homo
      metrics.update(homogeneity=homo, **aux)
    return total, (metrics, model_state)

  # ---- evaluation ------------------------------------------------------------------------------

  def features(self, params, split: dict, batch_size: int = 256) -> dict:
    """Model outputs on a whole split (numpy), in batches (one compiled function per method)."""
    if not hasattr(self, "_apply_jit"):
      self._apply_jit = jax.jit(self.apply)
    run = self._apply_jit
    n = split["label"].shape[0]
    keys = list(self.data.names) + [m + "_mask" for m in self.data.names]
    chunks = []
    for i in range(0, n, batch_size):
      chunks.append(jax.device_get(run(params, {k: split[k][i:i + batch_size] for k in keys})))
    cat = lambda *xs: np.concatenate(xs, axis=0)
    return jax.tree.map(cat, *chunks)

  def evaluate(self, state, split: str = "test", batch_size: int = 256) -> dict:
    from jaxdisent.metrics import multimodal as MM  # pylint: disable=g-import-not-at-top
    data = self.data.split(split)
    feats = self.features(state.params, data, batch_size)
    out = {"split": split, "num_examples": int(data["label"].shape[0])}
    if self.config.loss.task == "regression":
      out.update(MM.sentiment_regression_metrics(feats["output"].reshape(-1), data["label"]))
    else:
      out["accuracy"] = float(np.mean(np.argmax(feats["output"], -1) == data["label"]))
      out.update(MM.emotion_classification_metrics(feats["output"], data["label"]))  # wacc, waf1, ua
    cos = [np.sum(u * c, -1) / np.maximum(np.linalg.norm(u, axis=-1) * np.linalg.norm(c, axis=-1), 1e-8)
           for u, c in zip(feats["unique"], feats["common"])]
    out["unique_common_cos2"] = float(np.mean(np.square(np.concatenate(cos))))
    if "common" in data:  # synthetic ground truth: linear probes fitted on `valid`, scored on `split`
      out.update(self.factor_probes(state.params, data, feats, batch_size))
    return out

  def factor_probes(self, params, test, test_feats, batch_size) -> dict:
    """Held-out linear-probe R^2 of each part for each factor group (fit on the valid split)."""
    from jaxdisent.metrics.multimodal import linear_probe_r2  # pylint: disable=g-import-not-at-top
    train = self.data.split("valid")
    train_feats = self.features(params, train, batch_size)
    m = len(self.data.names)
    probe = lambda xa, ya, xb, yb: linear_probe_r2(xa, ya, xb, yb)
    unique_own = [probe(train_feats["unique"][i], train["unique"][:, i], test_feats["unique"][i],
                        test["unique"][:, i]) for i in range(m)]
    unique_to_common = [probe(train_feats["unique"][i], train["common"], test_feats["unique"][i],
                              test["common"]) for i in range(m)]
    common_train = np.concatenate(train_feats["common"], 1)
    common_test = np.concatenate(test_feats["common"], 1)
    flat = lambda u: u.reshape(len(u), -1)
    return {
        "probe_unique_to_own_unique": float(np.mean(unique_own)),
        "probe_unique_to_common": float(np.mean(unique_to_common)),
        "probe_common_to_common": probe(common_train, train["common"], common_test, test["common"]),
        "probe_common_to_unique": probe(common_train, flat(train["unique"]), common_test,
                                        flat(test["unique"])),
        "probe_unique_to_own_unique_per_modality": [float(v) for v in unique_own],
    }

METHOD = DecAlignMethod
