"""Multimodal sequence data for DecAlign: a built-in synthetic default and an MMSA pickle reader.

Both sources give batches as dicts ``{name: (B, L, D) float32, name + "_mask": (B, L) float32,
"label": (B,) float32}`` for each modality name, and fixed evaluation splits via ``split(name)``.

Synthetic data (:class:`SyntheticMultimodalSequences`)
  Each example has ``num_common`` common factors c shared by all modalities and ``num_unique``
  unique factors u_m per modality, all i.i.d. N(0, 1). Modality m has its own width D_m and length
  L_m; at time t it observes ``x_t = tanh((z * e_m(t)) W1_m + b1_m) W2_m + noise`` with
  ``z = [c, u_m]`` and a fixed positive temporal envelope e_m(t) = 1 + 0.5 sin(f t + phase) per
  latent, so every modality sees a different nonlinear, time-varying view. Each example keeps a
  random valid length in [ceil(min_length_fraction * L_m), L_m]; the rest is zero padding with
  mask 0. The label is sentiment-like in [-3, 3]:
  ``y = 3 tanh(s)``, ``s = (c . w_c + sum_m u_m . w_m) / sqrt(num_common + M num_unique) * 1.5``.
  Ground truth (c, u_m) is returned with the evaluation splits.

MMSA pickles (:class:`MMSAData`)
  The format the MMSA toolkit distributes for CMU-MOSI / CMU-MOSEI / CH-SIMS: a pickled dict with
  ``train`` / ``valid`` / ``test`` splits, each holding ``text`` (N, L_t, D_t), ``audio``
  (N, L_a, D_a), ``vision`` (N, L_v, D_v) float arrays and ``regression_labels`` (N,). Optional
  ``audio_lengths`` / ``vision_lengths`` (unaligned data) give each example's valid length; without
  them every step is valid. As in MMSA, -inf entries (present in some audio features) become 0;
  NaN is an error.
"""

from __future__ import annotations

import math
import os
import pickle

import jax
import jax.numpy as jnp
import numpy as np

from jaxdisent.rng import per_example_keys, step_key
from jaxdisent import rng as rng_streams

SPLITS = ("train", "valid", "test")
MMSA_MODALITIES = ("text", "audio", "vision")


class SyntheticMultimodalSequences:
  name = "synthetic"  # data.source (the Source protocol, jaxdisent/data/registry.py)
  task = "regression"

  def __init__(self, widths=(32, 8, 16), lengths=(20, 30, 12), num_common: int = 4,
               num_unique: int = 2, hidden: int = 32, noise: float = 0.1,
               min_length_fraction: float = 0.6, split_sizes=(2048, 1024, 1024), seed: int = 0):
    if len(widths) != len(lengths) or len(widths) < 2:
      raise ValueError("widths and lengths need one entry per modality, at least two modalities")
    self.names = tuple(f"m{i}" for i in range(len(widths)))
    self.widths = tuple(int(w) for w in widths)
    self.lengths = tuple(int(l) for l in lengths)
    self.num_common, self.num_unique = int(num_common), int(num_unique)
    self.noise, self.min_length_fraction = float(noise), float(min_length_fraction)
    self.split_sizes = dict(zip(SPLITS, split_sizes))
    rng = np.random.default_rng([int(seed), 20251])   # fixed maps: numpy, no eager jax ops
    z = num_common + num_unique
    self._maps = []
    for w, length in zip(self.widths, self.lengths):
      freq = rng.uniform(0.5, 3.0, z) * 2 * math.pi / length
      phase = rng.uniform(0.0, 2 * math.pi, z)
      envelope = 1.0 + 0.5 * np.sin(np.arange(length)[:, None] * freq + phase)
      self._maps.append({k: np.asarray(v, np.float32) for k, v in dict(
          envelope=envelope, w1=rng.normal(size=(z, hidden)) * (1.5 / math.sqrt(z)),
          b1=0.1 * rng.normal(size=hidden),
          w2=rng.normal(size=(hidden, w)) / math.sqrt(hidden)).items()})
    self._w_common = rng.normal(size=num_common).astype(np.float32)
    self._w_unique = rng.normal(size=(len(widths), num_unique)).astype(np.float32)
    self._sample = jax.jit(self._sample_impl)

  def _sample_impl(self, keys):
    def one(key):
      kc, ku, kn, kl = jax.random.split(key, 4)
      common = jax.random.normal(kc, (self.num_common,))
      unique = jax.random.normal(ku, (len(self.names), self.num_unique))
      out = {"common": common, "unique": unique}
      for m, (name, mp) in enumerate(zip(self.names, self._maps)):
        z = jnp.concatenate([common, unique[m]]) * mp["envelope"]              # (L, z)
        x = jnp.tanh(z @ mp["w1"] + mp["b1"]) @ mp["w2"]
        x = x + self.noise * jax.random.normal(jax.random.fold_in(kn, m), x.shape)
        length = self.lengths[m]
        low = max(1, math.ceil(self.min_length_fraction * length))
        valid = jax.random.randint(jax.random.fold_in(kl, m), (), low, length + 1)
        mask = (jnp.arange(length) < valid).astype(jnp.float32)
        out[name] = x * mask[:, None]
        out[name + "_mask"] = mask
      score = common @ self._w_common + jnp.sum(unique * self._w_unique)
      score = 1.5 * score / math.sqrt(self.num_common + len(self.names) * self.num_unique)
      out["label"] = 3.0 * jnp.tanh(score)
      return out
    return jax.vmap(one)(keys)

  def _examples(self, key, indices):
    out = self._sample(per_example_keys(key, jnp.asarray(indices)))
    return {k: np.asarray(v) for k, v in out.items()}

  def batch(self, seed: int, step: int, start: int, size: int) -> dict:
    out = self._examples(step_key(seed, step, salt=rng_streams.MULTIMODAL_SEQUENCES), np.arange(start, start + size))
    out.pop("common")
    out.pop("unique")
    return out

  def split(self, name: str) -> dict:
    """A fixed split (independent of the training seed) with ground truth ``common`` (N, C) and
    ``unique`` (N, M, U)."""
    if name not in SPLITS:
      raise ValueError(f"split must be one of {SPLITS}, got {name!r}")
    key = jax.random.fold_in(jax.random.key(987654), SPLITS.index(name))
    return self._examples(key, np.arange(self.split_sizes[name]))


class MMSAData:
  """MMSA-format pickle (see module docstring). Training batches are drawn from ``train`` by a
  per-epoch permutation keyed by (seed, epoch), so batches are a pure function of (seed, step)."""
  name = "mmsa"  # data.source (the Source protocol, jaxdisent/data/registry.py)

  task = "regression"
  accept_2d_features = False

  def __init__(self, path: str, modalities=MMSA_MODALITIES, label_key: str = "regression_labels",
               global_batch_size: int = 0):
    self.global_batch_size = int(global_batch_size)
    if not path:
      raise ValueError("data.path is empty: pass --config.data.path=/path/to/unaligned_50.pkl "
                       "(an MMSA-format pickle for MOSI / MOSEI / SIMS)")
    if not os.path.exists(path):
      raise FileNotFoundError(f"MMSA pickle {path!r} does not exist; download the MMSA processed "
                              "features and pass their path as --config.data.path")
    try:
      with open(path, "rb") as f:
        raw = pickle.load(f)
    except (pickle.UnpicklingError, EOFError, AttributeError, ValueError) as error:
      raise ValueError(f"{path} is not a readable pickle ({error})") from error
    if not isinstance(raw, dict):
      raise ValueError(f"{path}: expected a dict with splits {SPLITS}, got {type(raw).__name__}")
    missing = [s for s in SPLITS if s not in raw]
    if missing:
      raise ValueError(f"{path}: missing split(s) {missing}; found keys {sorted(raw)}")
    self.names = tuple(modalities)
    self._splits = {s: self._read_split(path, s, raw[s], label_key) for s in SPLITS}
    train = self._splits["train"]
    self.widths = tuple(train[n].shape[2] for n in self.names)
    self.lengths = tuple(train[n].shape[1] for n in self.names)
    for s in SPLITS[1:]:
      for n, w, length in zip(self.names, self.widths, self.lengths):
        if self._splits[s][n].shape[1:] != (length, w):
          raise ValueError(f"{path}: split {s!r} has {n} of shape {self._splits[s][n].shape[1:]}, "
                           f"but train has {(length, w)}")
    self.num_train = train["label"].shape[0]

  def _read_split(self, path, split, data, label_key):
    if not isinstance(data, dict):
      raise ValueError(f"{path}: split {split!r} should be a dict of arrays")
    need = list(self.names) + [label_key]
    missing = [k for k in need if k not in data]
    if missing:
      raise ValueError(f"{path}: split {split!r} is missing {missing} (has {sorted(data)}); an "
                       f"MMSA pickle needs {need}")
    label = self._read_labels(path, split, data[label_key], label_key)
    n = label.shape[0]
    out = {"label": label}
    for name in self.names:
      x = np.asarray(data[name], np.float32)
      if x.ndim == 2 and self.accept_2d_features:   # utterance-level features: length 1
        x = x[:, None, :]
      if x.ndim != 3 or x.shape[0] != n:
        raise ValueError(f"{path}: split {split!r} {name!r} must be (N={n}, length, width), got "
                         f"{x.shape}")
      x = np.where(np.isneginf(x), 0.0, x)
      if not np.all(np.isfinite(x)):
        raise ValueError(f"{path}: split {split!r} {name!r} contains NaN/+inf values; clean the "
                         "features first")
      lengths = data.get(f"{name}_lengths")
      if lengths is None:
        mask = np.ones(x.shape[:2], np.float32)
      else:
        lengths = np.asarray(lengths).reshape(-1)
        if lengths.shape[0] != n:
          raise ValueError(f"{path}: split {split!r} {name}_lengths has {lengths.shape[0]} entries, "
                           f"expected {n}")
        mask = (np.arange(x.shape[1])[None] < lengths[:, None]).astype(np.float32)
      out[name] = x * mask[..., None]
      out[name + "_mask"] = mask
    return out

  def _read_labels(self, path, split, labels, label_key):
    del path, split, label_key
    return np.asarray(labels, np.float32).reshape(-1)

  def batch(self, seed: int, step: int, start: int, size: int) -> dict:
    """Rows [start, start + size) of global batch `step`: global position g = step * B + row walks
    through a fresh permutation of the training split every epoch (B = `global_batch_size`)."""
    if not self.global_batch_size:
      raise ValueError("MMSAData.batch needs global_batch_size (the training batch size)")
    positions = int(step) * self.global_batch_size + np.arange(start, start + size)
    epochs, offsets = np.divmod(positions, self.num_train)
    rows = np.empty(size, np.int64)
    for epoch in np.unique(epochs):
      perm = np.random.default_rng([int(seed), int(epoch)]).permutation(self.num_train)
      rows[epochs == epoch] = perm[offsets[epochs == epoch]]
    train = self._splits["train"]
    return {k: v[rows] for k, v in train.items()}

  def split(self, name: str) -> dict:
    if name not in SPLITS:
      raise ValueError(f"split must be one of {SPLITS}, got {name!r}")
    return dict(self._splits[name])


class IEMOCAPData(MMSAData):
  """IEMOCAP emotion recognition from an MMSA-style pickle (the layout DecAlign's official
  ``scripts/prepare_iemocap.py`` writes and its ``data_loader.py`` reads): ``train`` / ``valid`` /
  ``test`` dicts with ``text`` / ``audio`` / ``vision`` features, (N, L, D) sequences or (N, D)
  utterance-level vectors (read as length 1), and ``classification_labels`` (N,) integer class ids.
  The paper's table uses 4 classes (0 happy+excited, 1 sad, 2 angry, 3 neutral); ``num_classes``
  sets how many, and every label must be an integer in [0, num_classes). Optional
  ``<modality>_lengths`` work as for MMSA pickles. Labels come back as int32."""
  name = "iemocap"  # data.source (the Source protocol, jaxdisent/data/registry.py)

  task = "classification"
  accept_2d_features = True

  def __init__(self, path: str, modalities=MMSA_MODALITIES, num_classes: int = 4,
               label_key: str = "classification_labels", global_batch_size: int = 0):
    if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)) or num_classes < 2:
      raise ValueError(f"IEMOCAP needs num_classes >= 2 (4 in the paper's table); got {num_classes!r}")
    self.num_classes = int(num_classes)
    super().__init__(path, modalities, label_key, global_batch_size)

  def _read_labels(self, path, split, labels, label_key):
    y = np.asarray(labels)
    if y.ndim == 2 and y.shape[1] == 1:
      y = y[:, 0]
    if y.ndim != 1 or not (np.issubdtype(y.dtype, np.integer) or np.issubdtype(y.dtype, np.floating)):
      raise ValueError(f"{path}: split {split!r} {label_key!r} must be (N,) integer class ids; got "
                       f"shape {y.shape}, dtype {y.dtype}")
    if np.issubdtype(y.dtype, np.floating) and not np.all(y == np.round(y)):
      raise ValueError(f"{path}: split {split!r} {label_key!r} holds non-integer values (e.g. "
                       f"{y[y != np.round(y)][0].item()!r}); IEMOCAP labels are class ids 0..{self.num_classes - 1}")
    bad = (y < 0) | (y >= self.num_classes)
    if bad.any():
      raise ValueError(f"{path}: split {split!r} {label_key!r} has class id {y[bad][0].item()!r} outside "
                       f"[0, {self.num_classes}); set --config.model.num_classes to the number of "
                       f"classes in the pickle")
    return y.astype(np.int32)


class ShortcutMultimodalSequences:
  """The shortcut benchmark (issue 23): a finite-data regime where reading the unique features is
  a shortcut that fails at test time, so an alignment regulariser has something to fix.

  Generative process (every knob is a constructor argument = a ``config.data.shortcut`` key):

  * common factors c ~ N(0, I_C) (``num_common``), shared by all M modalities;
  * unique factors u_m (``num_unique`` per modality): ``u_m[j] = rho c[k(m, j)] + sqrt(1 - rho^2)
    e_mj`` with e ~ N(0, 1) and k(m, j) = (m + j) mod C, so each unique factor is correlated with
    one common factor with correlation rho = ``rho_train`` in the train and valid splits and
    ``rho_test`` in the test split (0.6 / 0 by default): a model that reads u_m as a proxy of c
    is right in training and wrong at test;
  * label ``y = 3 tanh(1.5 s)``, ``s = g(c) + lambda sum_m h_m(u_m)``, ``g(c) = c . w_c /
    sqrt(C)``, ``h_m(u) = u . w_m / sqrt(U)`` with fixed w ~ N(0, 1) and lambda =
    ``label_unique_weight`` (0: the label depends on the common factors only; 0.3: a little on
    the unique ones too);
  * observation of modality m (width ``widths[m]``, length ``lengths[m]``): at step t,
    ``x_t = tanh((z * e_m(t - lag)) W1_m + b1_m) W2_m + noise_m n_t``, ``z = [c, unique_scale * u_m]``
    (``unique_scale`` 2: the nuisance is louder than the signal), a fixed positive temporal
    envelope e_m(t) = 1 + 0.5 sin(f t + phase) per latent, a random lag per example and modality in
    [0, ``max_lag``], per-modality noise sd ``noise`` (0.1 / 1 / 2), a random valid length in
    [ceil(``min_length_fraction`` L_m), L_m] (padding masked);
  * ``rho_train_scale`` (one factor per modality, default all 1) multiplies ``rho_train`` per
    modality: (1, 0, 0) puts the shortcut in modality 0 only, so the modalities disagree about it
    in training (the regime where cross-modal alignment can tell the shortcut from shared signal);
  * test-time shift: the test split's modality m is ``test_scale[m] * x + test_offset[m]`` on valid
    steps (default none: scale 1, offset 0);
  * sizes: ``num_train`` fixed training examples recycled by per-epoch permutations (a pure
    function of (seed, step)), ``num_valid`` (defaults to max(64, num_train // 4)) drawn like the
    training split, ``num_test`` drawn with ``rho_test``.

  The maps (W, b, envelopes, label weights) depend on ``task_seed`` only; the examples on
  ``seed`` (the run's seed unless ``data.shortcut.seed`` is set), so the variants of one seed in
  an ablation see the same data. Ground truth (c, u) comes with the valid and test splits.
  """
  name = "shortcut"  # data.source (the Source protocol, jaxdisent/data/registry.py)

  task = "regression"

  def __init__(self, widths=(32, 8, 16), lengths=(8, 60, 80), num_common: int = 4,
               num_unique: int = 2, hidden: int = 32, noise=(0.1, 1.0, 2.0), unique_scale: float = 2.0,
               rho_train: float = 0.6, rho_test: float = 0.0, rho_train_scale=None,
               label_unique_weight: float = 0.0,
               max_lag=(0, 3, 6), min_length_fraction: float = 0.6, test_scale=(1.0, 1.0, 1.0),
               test_offset=(0.0, 0.0, 0.0), num_train: int = 300, num_valid: int = 0,
               num_test: int = 1024, seed: int = 0, task_seed: int = 0, global_batch_size: int = 0):
    m = len(widths)
    per_modality = {"lengths": lengths, "noise": noise, "max_lag": max_lag, "test_scale": test_scale,
                    "test_offset": test_offset}
    if m < 2:
      raise ValueError("the shortcut benchmark needs at least two modalities (data.shortcut.widths)")
    for key, value in per_modality.items():
      if len(value) != m:
        raise ValueError(f"data.shortcut.{key} has {len(value)} entries, widths has {m}: give one "
                         "per modality")
    for key, value in (("rho_train", rho_train), ("rho_test", rho_test)):
      if not -1.0 <= float(value) <= 1.0:
        raise ValueError(f"data.shortcut.{key}={value} is a correlation: use a value in [-1, 1]")
    if rho_train_scale is not None:
      if len(rho_train_scale) != m:
        raise ValueError(f"data.shortcut.rho_train_scale has {len(rho_train_scale)} entries, widths "
                         f"has {m}: give one per modality (e.g. 1,0,0: the shortcut in m0 only)")
      if any(not -1.0 <= float(rho_train) * float(v) <= 1.0 for v in rho_train_scale):
        raise ValueError(f"data.shortcut.rho_train_scale={tuple(rho_train_scale)} times rho_train="
                         f"{rho_train} must stay a correlation in [-1, 1]")
    if int(num_train) < 2 or int(num_test) < 2 or int(num_valid) < 0:
      raise ValueError(f"data.num_train={num_train} / num_test={num_test} must be >= 2 and "
                       f"num_valid={num_valid} >= 0")
    if any(int(l) < 1 for l in lengths) or any(int(v) < 0 or int(v) >= int(l)
                                                  for v, l in zip(max_lag, lengths)):
      raise ValueError(f"data.shortcut.lengths={tuple(lengths)} must be >= 1 and max_lag="
                       f"{tuple(max_lag)} in [0, length)")
    self.names = tuple(f"m{i}" for i in range(m))
    self.widths = tuple(int(w) for w in widths)
    self.lengths = tuple(int(l) for l in lengths)
    self.num_common, self.num_unique = int(num_common), int(num_unique)
    self.noise = tuple(float(v) for v in noise)
    self.max_lag = tuple(int(v) for v in max_lag)
    self.unique_scale, self.label_unique_weight = float(unique_scale), float(label_unique_weight)
    self.min_length_fraction = float(min_length_fraction)
    self.global_batch_size = int(global_batch_size)
    rng = np.random.default_rng([int(task_seed), 20252])
    z = self.num_common + self.num_unique
    self._maps = []
    for w, length, lag in zip(self.widths, self.lengths, self.max_lag):
      span = length + lag
      freq = rng.uniform(0.5, 3.0, z) * 2 * math.pi / length
      phase = rng.uniform(0.0, 2 * math.pi, z)
      envelope = 1.0 + 0.5 * np.sin(np.arange(span)[:, None] * freq + phase)   # (L + lag, z)
      self._maps.append(dict(envelope=envelope, w1=rng.normal(size=(z, hidden)) * (1.5 / math.sqrt(z)),
                             b1=0.1 * rng.normal(size=hidden),
                             w2=rng.normal(size=(hidden, w)) / math.sqrt(hidden)))
    self._w_common = rng.normal(size=self.num_common)
    self._w_unique = rng.normal(size=(m, self.num_unique))
    num_valid = int(num_valid) or max(64, int(num_train) // 4)
    sizes = {"train": int(num_train), "valid": num_valid, "test": int(num_test)}
    train_rho = float(rho_train)
    if rho_train_scale is not None and any(float(v) != 1.0 for v in rho_train_scale):
      train_rho = np.array([float(rho_train) * float(v) for v in rho_train_scale])   # per modality
    rhos = {"train": train_rho, "valid": train_rho, "test": float(rho_test)}
    self._splits = {}
    for index, split in enumerate(SPLITS):
      self._splits[split] = self._generate(np.random.default_rng([int(seed), 31337, index]),
                                           sizes[split], rhos[split])
    test = self._splits["test"]
    for i, name in enumerate(self.names):
      mask = test[name + "_mask"][..., None]
      test[name] = ((float(test_scale[i]) * test[name] + float(test_offset[i])) * mask).astype(np.float32)
    self.num_train = sizes["train"]

  def _generate(self, rng, n, rho):
    c = rng.normal(size=(n, self.num_common))
    m = len(self.names)
    source = np.array([[(i + j) % self.num_common for j in range(self.num_unique)] for i in range(m)])
    if np.ndim(rho):       # one correlation per modality (rho_train_scale)
      rho = np.asarray(rho)[None, :, None]
      u = rho * c[:, source] + np.sqrt(np.maximum(1.0 - rho * rho, 0.0)) * rng.normal(
          size=(n, m, self.num_unique))
    else:
      u = rho * c[:, source] + math.sqrt(max(1.0 - rho * rho, 0.0)) * rng.normal(size=(n, m, self.num_unique))
    score = c @ self._w_common / math.sqrt(self.num_common) + self.label_unique_weight * np.sum(
        u * self._w_unique, axis=(1, 2)) / math.sqrt(self.num_unique)
    out = {"label": (3.0 * np.tanh(1.5 * score)).astype(np.float32),
           "common": c.astype(np.float32), "unique": u.astype(np.float32)}
    for i, (name, mp) in enumerate(zip(self.names, self._maps)):
      length, lag = self.lengths[i], self.max_lag[i]
      shifts = rng.integers(0, lag + 1, n)
      steps = np.arange(length)[None, :] + (lag - shifts)[:, None]           # e_m(t - lag)
      env = mp["envelope"][steps]                                             # (n, L, z)
      zed = np.concatenate([c, self.unique_scale * u[:, i]], axis=1)[:, None, :] * env
      x = np.tanh(zed @ mp["w1"] + mp["b1"]) @ mp["w2"]
      x = x + self.noise[i] * rng.normal(size=x.shape)
      low = max(1, math.ceil(self.min_length_fraction * length))
      valid = rng.integers(low, length + 1, n)
      mask = (np.arange(length)[None] < valid[:, None]).astype(np.float32)
      out[name] = (x * mask[..., None]).astype(np.float32)
      out[name + "_mask"] = mask
    return out

  def batch(self, seed: int, step: int, start: int, size: int) -> dict:
    """Rows [start, start + size) of global batch `step`, walking a fresh permutation of the
    ``num_train`` training examples every epoch (as MMSAData)."""
    if not self.global_batch_size:
      raise ValueError("ShortcutMultimodalSequences.batch needs global_batch_size (train.batch_size)")
    positions = int(step) * self.global_batch_size + np.arange(start, start + size)
    epochs, offsets = np.divmod(positions, self.num_train)
    rows = np.empty(size, np.int64)
    for epoch in np.unique(epochs):
      perm = np.random.default_rng([int(seed), int(epoch), 7]).permutation(self.num_train)
      rows[epochs == epoch] = perm[offsets[epochs == epoch]]
    train = self._splits["train"]
    return {k: v[rows] for k, v in train.items() if k not in ("common", "unique")}

  def split(self, name: str) -> dict:
    if name not in SPLITS:
      raise ValueError(f"split must be one of {SPLITS}, got {name!r}")
    return dict(self._splits[name])
