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
