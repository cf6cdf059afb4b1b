import jax
import numpy as np
import pytest
import tensorflow_datasets as tfds

from jaxdisent.data.tfds_source import TFDSGroundTruth


@pytest.mark.parametrize("name,sizes,channels", [("dsprites", (3, 6, 40, 32, 32), 1),
                                                  ("shapes3d", (10, 10, 10, 8, 4, 15), 3)])
def test_mock_tfds_source(name, sizes, channels):
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
