"""DecAlign on CMU-MOSI (or MOSEI / CH-SIMS) from an MMSA-format pickle you have locally.

  python -m launch.train --config=configs/decalign_mosi.py --workdir=runs/decalign_mosi \
      --config.data.path=/path/to/MOSI/Processed/unaligned_50.pkl

MOSI shapes: text 768 / audio 5 / vision 20, length 50. Nothing is downloaded.
"""

import importlib.util
import os


def _synthetic_config():
  path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "decalign_synthetic.py")
  spec = importlib.util.spec_from_file_location("_decalign_synthetic_config", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config()


def get_config():
  config = _synthetic_config()
  config.data.source = "mmsa"
  config.data.path = ""                   # required: --config.data.path=...
  config.data.modalities = "text,audio,vision"
  config.model.width = 64
  config.model.conv_kernel = 3
  config.train.batch_size = 32
  config.train.num_steps = 6000           # ~100 epochs of MOSI's 1284 training examples
  config.train.log_every = 100
  config.train.checkpoint_every = 1000
  return config
