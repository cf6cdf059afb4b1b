"""One data factory: every method's source comes from jaxdisent.data.make_source."""

import glob
import os

import ml_collections
import pytest

from conftest import ROOT
from jaxdisent import data
from jaxdisent.train.config import load_config

METHOD_KIND = {"beta_vae": "ground_truth", "sae": "embeddings", "decalign": "sequences",
               "gem": "graph"}


@pytest.mark.slow
def test_every_config_builds_its_source_through_the_factory(monkeypatch):
  from jaxdisent.methods import make_method
  monkeypatch.chdir(ROOT)
  seen = set()
  for path in sorted(glob.glob(os.path.join("configs", "*.py"))):
    if os.path.basename(path) in ("__init__.py", "common.py"):
      continue
    config = load_config(path)
    kind = METHOD_KIND.get(config.method)
    if kind is None or config.data.source.split(":")[0] in ("file", "mmsa", "iemocap", "tfds"):
      continue  # the alignment study has no data source; these read a user's files
    built = data.make_source(config, kind)
    # the method's own data is the factory's (same class: nothing is built a second way)
    assert type(make_method(config).data) is type(built), path
    seen.add(kind)
  assert seen == set(METHOD_KIND.values())


@pytest.mark.parametrize("kind,name", [("ground_truth", "imagenet"), ("embeddings", "clip"),
                                       ("sequences", "mosi"), ("graph", "celeba")])
def test_unknown_source_lists_the_sources_of_that_kind(kind, name):
  config = ml_collections.ConfigDict({"data": {"source": name}})
  with pytest.raises(ValueError) as error:
    data.make_source(config, kind)
  message = str(error.value)
  assert f"unknown {kind} data source data.source={name!r}" in message
  for spec in data.sources_of(kind):
    assert spec.name in message


def test_argument_after_colon_and_required_paths():
  with pytest.raises(ValueError, match="needs a dataset name: tfds:dsprites"):
    data.make_source(ml_collections.ConfigDict({"data": {"source": "tfds"}}), "ground_truth")
  with pytest.raises(ValueError, match="needs --config.data.path"):
    data.make_source(ml_collections.ConfigDict({"data": {"source": "file", "path": ""}}),
                     "embeddings")
  with pytest.raises(ValueError, match="unknown data kind"):
    data.make_source(ml_collections.ConfigDict({"data": {"source": "dsprites"}}), "images")
  # the older spelling data.name still names the source (workdirs written before the rename)
  built = data.make_source(ml_collections.ConfigDict({"data": {"name": "dsprites"}}),
                           "ground_truth")
  assert type(built).__name__ == "DSprites"


def test_every_registered_source_is_documented():
  text = open(os.path.join(ROOT, "docs", "configs.md")).read()
  for (kind, name) in data.SOURCES:
    assert f"`{kind}`" in text and name in text, (kind, name)


@pytest.mark.parametrize("config_name, kind", [
    ("beta_vae_dsprites", "ground_truth"), ("sae_vlm_synthetic", "embeddings"),
    ("decalign_synthetic", "sequences"), ("decalign_shortcut", "sequences"),
    ("gem_dsprites", "graph"), ("gem_pendulum", "graph")])
@pytest.mark.slow
def test_every_built_in_source_implements_the_source_protocol(config_name, kind):
  """The one front door builds a Source whose batch(seed, step, start, size) is a pure function
  of the example's position: the global batch equals its two halves asked for separately."""
  import os
  import numpy as np
  from conftest import ROOT
  from jaxdisent.data import Source, make_source
  from jaxdisent.train.config import load_config
  config = load_config(os.path.join(ROOT, "configs", f"{config_name}.py"), {})
  source = make_source(config, kind)
  assert isinstance(source, Source) and source.name == config.data.source
  if kind in ("ground_truth", "graph"):      # these need only the data section
    assert make_source(config.data, kind).name == source.name
  whole = source.batch(0, 3, 0, 8)
  halves = [source.batch(0, 3, start, 4) for start in (0, 4)]
  assert set(whole) == set(halves[0])
  for key in whole:
    a, b = np.asarray(whole[key]), np.concatenate([np.asarray(h[key]) for h in halves])
    if np.issubdtype(a.dtype, np.floating):
      # the synthetic sequences are a matmul over the examples: XLA blocks it by the batch size,
      # so halves differ by float32 rounding (~1 ulp); integers, images and labels are exact
      scale = max(float(np.max(np.abs(a))), 1.0)
      np.testing.assert_allclose(a, b, rtol=0, atol=8 * np.finfo(np.float32).eps * scale,
                                 err_msg=key)
    else:
      np.testing.assert_array_equal(a, b, key)
