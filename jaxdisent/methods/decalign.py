"""DecAlign ([qian2026]: Qian et al., ICLR 2026; docs/references.md) trained through the shared engine.

loss = task + w_dec L_dec + alpha L_hete + beta L_homo (+ w_ct L_supcon + w_inst L_instance), every
term switchable from the config (``loss.decoupling`` / ``loss.heterogeneity`` /
``loss.homogeneity``; the two optional terms are on when their weight is > 0) for ablations. The
heterogeneity, homogeneity and contrastive terms use global-batch statistics (features
all-gathered over the data axis), so 1 device and N devices give the same step (without dropout).

Official-protocol switches (taco-group/DecAlign; the default is ours, the official value in
brackets; configs/decalign_mosi_official.py sets them all):

* ``loss.regression_loss`` l1 [mse]; ``loss.contrastive_weight`` 0 [0.003] (supervised
  contrastive on the fused representation, ``loss.contrastive_temperature`` 0.1);
* ``loss.decouple_on`` pooled [sequence]: cos^2 on time-pooled vectors or on the flattened
  (B, L * d) sequences;
* ``loss.prototype_cost_reduction`` sum [mean]: the W2 prototype cost summed or averaged over dims;
* ``loss.gmm_init`` farthest [index]: GMM seeds by farthest points or rows linspace(0, B-1, K);
* ``model.fusion_layers`` 1 [5] and ``model.dropout`` 0 [0.1]; ``optimizer.weight_decay`` 0
  [0.005] (L2 added to the gradient after clipping, as torch.optim.Adam's weight_decay).

Beyond the paper (issue 23): ``loss.scale_invariant`` L2-normalises the unique features before
the GMM/OT terms and the homogeneity heads' outputs before the moment/MMD terms, so neither term
can be paid by shrinking features; ``loss.heterogeneity_strategy`` (prototype_ot | moments | mmd
| contrastive) and ``loss.moment_weight`` / ``loss.mmd_weight`` select the alignment strategy;
``loss.instance_align_weight`` adds a paired instance-level InfoNCE between the common features
of the same example across modalities (the ablation's positive control);
``model.head_input`` all [all] | common: the task head reads the fused unique and the common
features (the paper's design, default) or the common features only (a control: the unique branch
can no longer carry a shortcut to the label; the unique features still exist for the loss terms).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jaxdisent.data import make_source
from jaxdisent.losses import decalign as D
from jaxdisent.methods.base import Method
from jaxdisent.metrics import multimodal as MM
from jaxdisent.models import jit_init
from jaxdisent.models.decalign import HEAD_INPUTS, DecAlignNet

HETEROGENEITY_STRATEGIES = ("prototype_ot", "moments", "mmd", "contrastive")


def _floats(values) -> tuple[float, ...]:
  """A tuple of floats from a tuple or (workdirs written before tuples) a comma string."""
  if isinstance(values, (tuple, list)):
    return tuple(float(v) for v in values)
  return tuple(float(v) for v in str(values).split(",") if v.strip())


class DecAlignMethod(Method):
  name = "decalign"
  evaluators = ("sentiment", "decalign")

  def __init__(self, config):
    super().__init__(config)
    self.data = make_source(config, "sequences")     # data.source: synthetic | mmsa | iemocap
    m, loss = config.model, config.loss
    if loss.task not in ("regression", "classification"):
      raise ValueError(f"loss.task must be regression or classification, got {loss.task!r}")
    if loss.task == "classification" and int(m.get("num_classes", 0) or 0) < 2:
      raise ValueError("loss.task='classification' needs model.num_classes >= 2 (e.g. "
                       "--config.model.num_classes=6 for IEMOCAP)")
    outputs = 1 if loss.task == "regression" else int(m.num_classes)
    self.dropout = float(m.get("dropout", 0.0))
    if not 0.0 <= self.dropout < 1.0:
      raise ValueError(f"model.dropout={self.dropout} must be in [0, 1)")
    fusion_layers = int(m.get("fusion_layers", 1))
    if fusion_layers < 1:
      raise ValueError(f"model.fusion_layers={fusion_layers} must be >= 1 (no fusion: model.fusion=false)")
    head_input = str(m.get("head_input", "all"))
    if head_input not in HEAD_INPUTS:
      raise ValueError(f"model.head_input={head_input!r}: choose from {HEAD_INPUTS}")
    self.model = DecAlignNet(width=int(m.width), num_heads=int(m.num_heads),
                             conv_kernel=int(m.conv_kernel), num_outputs=outputs,
                             fusion=bool(m.fusion), fusion_layers=fusion_layers,
                             dropout=self.dropout, head_input=head_input)
    if loss.heterogeneity and int(loss.num_prototypes) > int(config.train.batch_size):
      raise ValueError(f"loss.num_prototypes={loss.num_prototypes} exceeds train.batch_size="
                       f"{config.train.batch_size}; the per-batch GMM needs more samples")
    choices = {"decouple_on": ("pooled", "sequence"), "prototype_cost_reduction": D.COST_REDUCTIONS,
               "gmm_init": D.GMM_INITS, "regression_loss": ("l1", "mse"),
               "heterogeneity_strategy": HETEROGENEITY_STRATEGIES}
    for key, allowed in choices.items():
      value = self._loss_option(key)
      if value not in allowed:
        raise ValueError(f"loss.{key}={value!r}: use one of {tuple(allowed)}")
    for key in ("contrastive_weight", "instance_align_weight", "weight_decay"):
      value = float(self._loss_option(key)) if key != "weight_decay" else float(
          config.optimizer.get("weight_decay", 0.0))
      if not (np.isfinite(value) and value >= 0):
        raise ValueError(f"{'optimizer' if key == 'weight_decay' else 'loss'}.{key}={value} must be "
                         "a finite number >= 0")
    # A finite training split (MMSA / IEMOCAP pickles, the shortcut benchmark) bounds the batch:
    # a larger batch only repeats examples, and the batch-wide terms are O(B^2) in memory.
    num_train = getattr(self.data, "num_train", None)
    if num_train is not None and int(config.train.batch_size) > int(num_train):
      raise ValueError(f"train.batch_size={config.train.batch_size} exceeds the {num_train} "
                       f"training examples of data.source={config.data.source!r}; use "
                       f"--config.train.batch_size={min(int(num_train), 64)} or fewer")

  LOSS_DEFAULTS = {"decouple_on": "pooled", "prototype_cost_reduction": "sum", "gmm_init": "farthest",
                   "regression_loss": "l1", "heterogeneity_strategy": "prototype_ot",
                   "scale_invariant": False, "contrastive_weight": 0.0, "contrastive_temperature": 0.1,
                   "instance_align_weight": 0.0, "instance_align_temperature": 0.1,
                   "moment_weight": 1.0}

  def _loss_option(self, key):
    """``config.loss.<key>``, or its default for configs / workdirs written before the key existed."""
    return self.config.loss.get(key, self.LOSS_DEFAULTS[key])

  def optimizer(self):
    """The shared Adam (+ clipping, warmup), with ``optimizer.weight_decay`` > 0 adding the L2
    gradient wd * param after clipping, as torch.optim.Adam(weight_decay=...) in the official
    trainer (coupled L2, not AdamW)."""
    import optax  # pylint: disable=g-import-not-at-top
    base = super().optimizer()
    wd = float(self.config.optimizer.get("weight_decay", 0.0) or 0.0)
    if not wd:
      return base
    opt = self.config.optimizer
    chain = []
    if opt.get("grad_clip_norm", 0):
      chain.append(optax.clip_by_global_norm(opt.grad_clip_norm))
    chain.append(optax.add_decayed_weights(wd))
    schedule = self.learning_rate()
    if opt.get("warmup_steps", 0):
      schedule = optax.linear_schedule(0.0, self.learning_rate(), opt.warmup_steps)
    chain.append(optax.adam(schedule, b1=opt.get("b1", 0.9), b2=opt.get("b2", 0.999),
                            eps=opt.get("eps", 1e-8)))
    return optax.chain(*chain)

  def _split_inputs(self, batch):
    return ([batch[n] for n in self.data.names], [batch[n + "_mask"] for n in self.data.names])

  def init(self, rng):
    dummy = {}
    for n, w, length in zip(self.data.names, self.data.widths, self.data.lengths):
      dummy[n] = jnp.zeros((2, length, w))
      dummy[n + "_mask"] = jnp.ones((2, length))
    params = jit_init(self.model, rng, *self._split_inputs(dummy))["params"]
    return params, {}

  def local_batch(self, seed, step, start, size):
    return self.data.batch(seed, step, start, size)

  def apply(self, params, batch, rng=None, axis_name=None):
    """Model outputs; with `rng` (training) dropout is active when model.dropout > 0.

    Dropout masks are drawn per example from a key folded with the example's position in the
    *global* batch (``axis_name``: the data axis, whose shards are contiguous), so 1 device and N
    devices draw the same masks, and no two devices share one (the model runs per example under
    vmap: nothing in it mixes examples)."""
    if rng is None or not self.dropout:
      return self.model.apply({"params": params}, *self._split_inputs(batch))
    inputs, masks = self._split_inputs(batch)
    size = inputs[0].shape[0]
    offset = jax.lax.axis_index(axis_name) * size if axis_name is not None else 0
    keys = jax.vmap(lambda i: jax.random.fold_in(rng, i))(offset + jnp.arange(size))

    def one(example_inputs, example_masks, key):
      out = self.model.apply({"params": params}, [x[None] for x in example_inputs],
                             [m[None] for m in example_masks], deterministic=False,
                             rngs={"dropout": key})
      return jax.tree.map(lambda x: x[0], out)

    return jax.vmap(one)(inputs, masks, keys)

  def loss(self, params, model_state, batch, rng, step, axis_name=None):
    del step
    cfg = self.config.loss
    opt = self._loss_option
    out = self.apply(params, batch, rng, axis_name)
    task = D.task_loss(out["output"], batch["label"], cfg.task, opt("regression_loss"))
    total = task
    metrics = {"task": task}
    scale_invariant = bool(opt("scale_invariant"))
    if cfg.decoupling:
      if opt("decouple_on") == "sequence":
        masks = [batch[n + "_mask"] for n in self.data.names]
        dec = D.sequence_decoupling_loss(out["unique_seq"], out["common_seq"], masks)
      else:
        dec = D.decoupling_loss(out["unique"], out["common"])
      total = total + cfg.decoupling_weight * dec
      metrics["decoupling"] = dec
    if cfg.heterogeneity:
      hete, aux = self._heterogeneity(out["unique"], axis_name, scale_invariant)
      total = total + cfg.heterogeneity_weight * hete
      metrics.update(heterogeneity=hete, **aux)
    if cfg.homogeneity:
      homo, aux = D.homogeneity_loss(out["homogeneity"], mmd_weight=cfg.mmd_weight,
                                     bandwidths=_floats(cfg.mmd_bandwidths), axis_name=axis_name,
                                     normalize=scale_invariant, moment_weight=float(opt("moment_weight")))
      total = total + cfg.homogeneity_weight * homo
      metrics.update(homogeneity=homo, **aux)
    if float(opt("contrastive_weight")) > 0:
      classes = D.contrastive_classes(batch["label"], cfg.task)
      supcon = D.supervised_contrastive_loss(out["representation"], classes,
                                             float(opt("contrastive_temperature")), axis_name)
      total = total + float(opt("contrastive_weight")) * supcon
      metrics["supervised_contrastive"] = supcon
    if float(opt("instance_align_weight")) > 0:
      inst = D.instance_infonce_loss(out["common"], float(opt("instance_align_temperature")), axis_name)
      total = total + float(opt("instance_align_weight")) * inst
      metrics["instance_align"] = inst
    return total, (metrics, model_state)

  def _heterogeneity(self, unique, axis_name, scale_invariant):
    """The heterogeneity term on the unique features by ``loss.heterogeneity_strategy``:
    prototype_ot (the paper's GMM + multi-marginal OT), moments (mean / covariance / skewness
    matching), mmd (Gaussian-kernel MMD only) or contrastive (paired InfoNCE across modalities)."""
    cfg, opt = self.config.loss, self._loss_option
    strategy = opt("heterogeneity_strategy")
    if strategy == "prototype_ot":
      return D.heterogeneity_loss(
          unique, num_prototypes=int(cfg.num_prototypes), em_steps=int(cfg.em_steps),
          var_floor=cfg.var_floor, epsilon=cfg.ot_epsilon, iterations=int(cfg.ot_iterations),
          sample_weight=cfg.sample_to_prototype_weight, axis_name=axis_name,
          cost_reduction=opt("prototype_cost_reduction"), gmm_init=opt("gmm_init"),
          normalize=scale_invariant)
    if strategy == "contrastive":
      feats = unique
      loss = D.instance_infonce_loss(feats, float(opt("instance_align_temperature")), axis_name)
      return loss, {"hete_contrastive": loss}
    moment_w, mmd_w = (1.0, 0.0) if strategy == "moments" else (0.0, 1.0)
    loss, aux = D.homogeneity_loss(unique, mmd_weight=mmd_w, moment_weight=moment_w,
                                   bandwidths=_floats(cfg.mmd_bandwidths), axis_name=axis_name,
                                   normalize=scale_invariant)
    return loss, {"hete_" + k: v for k, v in aux.items()}

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

  def diagnostics(self, state, split: str = "test", batch_size: int = 256) -> dict:
    """Feature-scale diagnostics and probes on `split`, plus the valid-split task metric (see the
    ``decalign`` evaluator)."""
    data = self.data.split(split)
    feats = self.features(state.params, data, batch_size)
    norm = lambda xs: float(np.mean([np.linalg.norm(x, axis=-1).mean() for x in xs]))
    out = {"unique_norm": norm(feats["unique"]), "common_norm": norm(feats["common"]),
           "head_std": float(np.mean([h.std(0).mean() for h in feats["homogeneity"]]))}
    cos = [np.sum(u * c, -1) / np.maximum(np.linalg.norm(u, axis=-1) * np.linalg.norm(c, axis=-1), 1e-8)
           for u, c in zip(feats["unique"], feats["common"])]
    out["unique_common_cos2"] = float(np.mean(np.square(np.concatenate(cos))))
    if "common" in data:
      out.update({k: v for k, v in self.factor_probes(state.params, data, feats, batch_size).items()
                  if not isinstance(v, list)})
    valid = self.data.split("valid")
    valid_out = self.features(state.params, valid, batch_size)["output"]
    if self.config.loss.task == "regression":
      out["valid_mae"] = float(np.mean(np.abs(valid_out.reshape(-1) - valid["label"])))
    else:
      out["valid_waf1"] = MM.weighted_f1(valid["label"], np.argmax(valid_out, -1))
    return out

  def factor_probes(self, params, test, test_feats, batch_size) -> dict:
    """Held-out linear-probe R^2 of each part for each factor group (fit on the valid split)."""
    train = self.data.split("valid")
    train_feats = self.features(params, train, batch_size)
    m = len(self.data.names)
    probe = lambda xa, ya, xb, yb: MM.linear_probe_r2(xa, ya, xb, yb)
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
