import os

import jax
import numpy as np
import pytest
import tensorflow_datasets as tfds

from jaxdisent.data.tfds_source import TFDSGroundTruth


pytestmark = pytest.mark.usefixtures("tempdir_in_tmp_path")   # mock_data's folders (conftest.py)


@pytest.mark.parametrize("name,sizes,channels", [("dsprites", (3, 6, 40, 32, 32), 1),
                                                  ("shapes3d", (10, 10, 10, 8, 4, 15), 3)])
def test_mock_tfds_source(name, sizes, channels, tmp_path, monkeypatch):
  monkeypatch.setenv("JAXDISENT_CACHE_DIR", str(tmp_path / "cache"))
  with tfds.testing.mock_data(num_examples=12):
    data = TFDSGroundTruth(name)
    assert data.factor_sizes == sizes
    assert data.observation_shape == (64, 64, channels)
    assert data.num_records == 12
    factors = np.asarray(data.sample_factors(jax.random.key(0), 20))
    assert factors.shape == (20, len(sizes))
    assert ((factors >= 0) & (factors < np.array(sizes))).all()
    batch = data.batch(0, 3, 0, 6)
    assert batch["image"].shape == (6, 64, 64, channels) and batch["image"].dtype == np.float32
    assert 0.0 <= float(batch["image"].min()) and float(batch["image"].max()) <= 1.0
    again = data.batch(0, 3, 0, 6)
    np.testing.assert_array_equal(batch["image"], again["image"])
    # images_from_factors looks up the record holding those factors
    images = np.asarray(data.images_from_factors(batch["factors"]))
    np.testing.assert_array_equal(images, batch["image"])
    absent = [f for f in data.index_to_factors(np.arange(200)) if
              int(data.factors_to_index(f[None])[0]) not in data._grid_to_record][:1]  # pylint: disable=protected-access
    with pytest.raises(KeyError, match="not in the prepared"):
      data.images_from_factors(np.array(absent))


def test_tfds_errors(tmp_path):
  with pytest.raises(ValueError, match="unknown TFDS ground-truth dataset"):
    TFDSGroundTruth("mnist")
  with pytest.raises(FileNotFoundError, match="does not exist"):
    TFDSGroundTruth("dsprites", data_dir=str(tmp_path / "nope"))
  with pytest.raises(FileNotFoundError, match="never downloads"):
    TFDSGroundTruth("dsprites", data_dir=str(tmp_path))


class _CountingScans:
  """Counts full label scans (the minutes-long part of opening a real dataset)."""

  def __init__(self, monkeypatch):
    self.count = 0
    original = TFDSGroundTruth._scan_labels  # pylint: disable=protected-access

    def counting(data):
      self.count += 1
      return original(data)

    monkeypatch.setattr(TFDSGroundTruth, "_scan_labels", counting)


def test_label_scan_cached_and_invalidated_by_record_count(tmp_path, monkeypatch):
  monkeypatch.setenv("JAXDISENT_CACHE_DIR", str(tmp_path / "cache"))
  scans = _CountingScans(monkeypatch)
  with tfds.testing.mock_data(num_examples=12):
    first = TFDSGroundTruth("dsprites")
    second = TFDSGroundTruth("dsprites")
  assert scans.count == 1  # the second open read the cache
  assert first.cache_path == second.cache_path and first.cache_path.startswith(str(tmp_path))
  np.testing.assert_array_equal(first._record_factors, second._record_factors)  # pylint: disable=protected-access
  np.testing.assert_array_equal(second.batch(0, 1, 0, 4)["image"], first.batch(0, 1, 0, 4)["image"])
  with tfds.testing.mock_data(num_examples=16):  # a different dataset: the cache is stale
    third = TFDSGroundTruth("dsprites")
  assert scans.count == 2 and third.num_records == 16
  with tfds.testing.mock_data(num_examples=12):
    TFDSGroundTruth("dsprites", cache=False)
  assert scans.count == 3


def test_label_cache_next_to_the_data_invalidated_by_files(tmp_path, monkeypatch):
  """With a prepared dataset on disk the cache sits beside its files and follows their changes."""
  monkeypatch.setenv("JAXDISENT_CACHE_DIR", str(tmp_path / "cache"))
  version_dir = tmp_path / "data" / "dsprites" / "2.0.0"
  version_dir.mkdir(parents=True)
  shard = version_dir / "dsprites-train.array_record-00000-of-00001"
  shard.write_bytes(b"records")
  (version_dir / "dataset_info.json").write_text("{}")
  monkeypatch.setattr(TFDSGroundTruth, "_dataset_dir", lambda self: str(version_dir))
  scans = _CountingScans(monkeypatch)
  with tfds.testing.mock_data(num_examples=12):
    first = TFDSGroundTruth("dsprites")
    assert first.cache_path == str(version_dir / "jaxdisent_labels_train.npz")
    TFDSGroundTruth("dsprites")
    assert scans.count == 1
    shard.write_bytes(b"records, prepared again")  # new size and mtime
    TFDSGroundTruth("dsprites")
    assert scans.count == 2
    TFDSGroundTruth("dsprites")
    assert scans.count == 2
  # A read-only data folder: the cache goes to the cache folder instead.
  readonly_dir = tmp_path / "readonly" / "dsprites" / "2.0.0"
  readonly_dir.mkdir(parents=True)
  readonly_dir.chmod(0o555)
  monkeypatch.setattr(TFDSGroundTruth, "_dataset_dir", lambda self: str(readonly_dir))
  try:
    with tfds.testing.mock_data(num_examples=12):
      readonly = TFDSGroundTruth("dsprites")
  finally:
    readonly_dir.chmod(0o755)
  if os.access(str(tmp_path), os.W_OK) and os.geteuid() != 0:  # root may write anywhere
    assert readonly.cache_path.startswith(str(tmp_path / "cache"))
  assert readonly.cache_path is not None
