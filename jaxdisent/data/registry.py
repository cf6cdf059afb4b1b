"""One data factory: every source a config can name, in one table.

A method asks for the *kind* of data it trains on and the config names the source:

  make_source(config, "ground_truth")   # beta-VAE family: config.data.source = dsprites | tfds:NAME
  make_source(config, "embeddings")     # SAEs: synthetic | file
  make_source(config, "sequences")      # DecAlign: synthetic | mmsa
  make_source(config, "graph")          # GEM: correlated_dsprites | pendulum | tfds

``data.source`` may carry an argument after a colon (``tfds:shapes3d``); the builder receives it.
A new source is one ``@register_source`` function here (or in the module that defines it); an
unknown name fails with the list of sources of that kind. Builders import their module lazily so
that, e.g., TensorFlow Datasets is only imported when a TFDS source is asked for.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Protocol, runtime_checkable

KINDS = ("ground_truth", "embeddings", "sequences", "graph")


@runtime_checkable
class Source(Protocol):
  """What every data source implements: the training batch as a pure function of its position.

  ``batch(seed, step, start, size)`` returns the examples ``start .. start + size`` of the global
  batch of ``step`` (a dict of arrays with a leading ``size`` axis), so a device asks for its slice
  and 1 or N devices see the same global batch. Kinds add what their methods need (factors and the grid for ``ground_truth``,
  the pool and the true graph for ``graph``, splits for ``sequences``).
  """

  name: str

  def batch(self, seed: int, step, start: int, size: int) -> dict: ...


@dataclasses.dataclass(frozen=True)
class SourceSpec:
  kind: str
  name: str
  build: Callable[[Any, str], Any]  # (whole config, argument after "name:") -> data source
  doc: str


SOURCES: dict[tuple[str, str], SourceSpec] = {}


def register_source(kind: str, name: str, doc: str):
  if kind not in KINDS:
    raise ValueError(f"unknown data kind {kind!r}; kinds: {KINDS}")

  def wrap(build):
    SOURCES[(kind, name)] = SourceSpec(kind, name, build, doc)
    return build

  return wrap


def sources_of(kind: str) -> list[SourceSpec]:
  return [spec for (k, _), spec in sorted(SOURCES.items()) if k == kind]


# the source a kind uses when data.source is unset (the built-in, download-free ones)
DEFAULT_SOURCES = {"ground_truth": "dsprites", "graph": "correlated_dsprites"}


def make_source(config, kind: str, default: str | None = None):
  """Build the ``kind`` data source that ``config.data.source`` names: the one data factory.

  ``config`` is a run config (its ``data`` section is read; the sequence sources also read its
  ``seed`` and ``train``/``model`` keys) or, for images (``ground_truth``, ``graph``), a bare
  ``data`` section. Unset
  ``data.source``: ``default``, else the kind's built-in (``DEFAULT_SOURCES``).
  """
  if kind not in KINDS:
    raise ValueError(f"unknown data kind {kind!r}; kinds: {KINDS}")
  if "data" not in config:          # a bare data section: what the sources' builders expect
    import ml_collections  # pylint: disable=g-import-not-at-top
    config = ml_collections.ConfigDict({"data": config})
  data = config.data
  # Workdirs written before the config vocabulary was unified say data.name / data.data_dir.
  source = (data.get("source", None) or data.get("name", None) or default
            or DEFAULT_SOURCES.get(kind))
  if not source:
    raise ValueError(f"data.source is not set; {kind} sources: "
                     f"{', '.join(s.name for s in sources_of(kind))}")
  name, _, argument = str(source).partition(":")
  spec = SOURCES.get((kind, name))
  if spec is None:
    choices = "; ".join(f"{s.name} ({s.doc})" for s in sources_of(kind))
    raise ValueError(f"unknown {kind} data source data.source={source!r}; use one of: {choices}")
  built = spec.build(config, argument)
  if not isinstance(built, Source):
    raise TypeError(f"data source {source!r} ({type(built).__name__}) does not implement the "
                    "Source protocol (name, batch(seed, step, start, size))")
  return built


def _path(data) -> str:
  return data.get("path", None) or data.get("data_dir", None) or ""


def _ints(text) -> tuple[int, ...]:
  if isinstance(text, (tuple, list)):
    return tuple(int(v) for v in text)
  return tuple(int(v) for v in str(text).split(",") if v.strip())


# ---- ground-truth-factor images (beta-VAE family) ---------------------------------------------

@register_source("ground_truth", "dsprites", "procedural renderer, no download")
def _dsprites(config, argument):
  del config, argument
  from jaxdisent.data.dsprites import DSprites  # pylint: disable=g-import-not-at-top
  return DSprites()


@register_source("ground_truth", "tfds", "tfds:dsprites or tfds:shapes3d, prepared files in data.path")
def _tfds_ground_truth(config, argument):
  if not argument:
    raise ValueError("data.source='tfds' needs a dataset name: tfds:dsprites or tfds:shapes3d")
  from jaxdisent.data.tfds_source import TFDSGroundTruth  # pylint: disable=g-import-not-at-top
  return TFDSGroundTruth(argument, data_dir=_path(config.data) or None)


# ---- embedding pairs (sparse autoencoders) ----------------------------------------------------

@register_source("embeddings", "synthetic", "planted image/text concepts, no data needed")
def _synthetic_vlm(config, argument):
  del argument
  from jaxdisent.data.synthetic_vlm import SyntheticVLM  # pylint: disable=g-import-not-at-top
  s = config.data.synthetic
  return SyntheticVLM(dim=s.dim, num_shared=s.num_shared, num_image_only=s.num_image_only,
                      num_text_only=s.num_text_only, active_per_pair=s.active_per_pair,
                      modality_gap=s.modality_gap, noise=s.noise, seed=s.seed,
                      image_fraction=config.data.get("image_fraction", 0.5))


@register_source("embeddings", "file", "embeddings in data.path (.npy, .npz or .safetensors)")
def _embedding_file(config, argument):
  del argument
  from jaxdisent.data.embeddings import EmbeddingSource  # pylint: disable=g-import-not-at-top
  data = config.data
  if not _path(data):
    raise ValueError("data.source='file' needs --config.data.path=EMBEDDINGS.npy|.npz|.safetensors")
  return EmbeddingSource(_path(data), data.get("key", "") or None,
                         data.get("text_path", "") or None, data.get("text_key", "") or None,
                         image_fraction=data.get("image_fraction", 0.5))


# ---- multimodal sequences (DecAlign) ----------------------------------------------------------

@register_source("sequences", "synthetic", "planted common/unique factors, no data needed")
def _synthetic_sequences(config, argument):
  del argument
  from jaxdisent.data.multimodal_sequences import SyntheticMultimodalSequences  # pylint: disable=g-import-not-at-top
  s = config.data.synthetic
  return SyntheticMultimodalSequences(
      widths=_ints(s.widths), lengths=_ints(s.lengths), num_common=s.num_common,
      num_unique=s.num_unique, hidden=s.hidden, noise=s.noise,
      min_length_fraction=s.min_length_fraction, split_sizes=_ints(s.split_sizes), seed=s.seed)


@register_source("sequences", "mmsa", "MMSA pickle (CMU-MOSI / MOSEI) in data.path")
def _mmsa(config, argument):
  del argument
  from jaxdisent.data.multimodal_sequences import MMSAData  # pylint: disable=g-import-not-at-top
  data = config.data
  # A tuple of names; workdirs written before tuples (and a shell's --config.data.modalities=a,b,
  # which config_flags reads as one string) hold a comma string.
  values = data.modalities if isinstance(data.modalities, (tuple, list)) else (data.modalities,)
  modalities = tuple(part.strip() for value in values for part in str(value).split(",")
                     if part.strip())
  return MMSAData(_path(data), modalities, global_batch_size=int(config.train.batch_size))


@register_source("sequences", "shortcut", "finite-data shortcut benchmark (issue 23), no data needed")
def _shortcut_sequences(config, argument):
  del argument
  from jaxdisent.data.multimodal_sequences import ShortcutMultimodalSequences  # pylint: disable=g-import-not-at-top
  s = dict(config.data.shortcut)
  seed = s.pop("seed", None)
  return ShortcutMultimodalSequences(
      **s, num_train=int(config.data.num_train), seed=int(config.seed if seed is None else seed),
      global_batch_size=int(config.train.batch_size))


@register_source("sequences", "iemocap", "MMSA-style IEMOCAP emotion pickle in data.path")
def _iemocap(config, argument):
  del argument
  from jaxdisent.data.multimodal_sequences import IEMOCAPData  # pylint: disable=g-import-not-at-top
  data = config.data
  values = data.modalities if isinstance(data.modalities, (tuple, list)) else (data.modalities,)
  modalities = tuple(part.strip() for value in values for part in str(value).split(",")
                     if part.strip())
  return IEMOCAPData(_path(data), modalities, num_classes=int(config.model.get("num_classes", 0) or 4),
                     global_batch_size=int(config.train.batch_size))


# ---- images with a causal graph over their factors (GEM) --------------------------------------

@register_source("graph", "correlated_dsprites", "dSprites with planted factor relations")
def _correlated_dsprites(config, argument):
  del argument
  from jaxdisent.data.correlated_dsprites import CorrelatedDSprites  # pylint: disable=g-import-not-at-top
  return CorrelatedDSprites.from_config(config.data)


@register_source("graph", "pendulum", "pendulum + light source + shadow scenes (causal)")
def _pendulum(config, argument):
  del config, argument
  from jaxdisent.data.pendulum import Pendulum  # pylint: disable=g-import-not-at-top
  return Pendulum()


@register_source("graph", "tfds", "prepared attribute dataset (tfds:celeb_a) in data.path")
def _tfds_attributes(config, argument):
  from jaxdisent.data.attributes import TFDSAttributeSource  # pylint: disable=g-import-not-at-top
  data = config.data
  if argument:  # tfds:NAME names the dataset (data.name is the older spelling)
    data = data.copy_and_resolve_references()
    with data.unlocked():
      data.name = argument
  return TFDSAttributeSource.from_config(data)
