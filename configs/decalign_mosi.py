"""DecAlign on CMU-MOSI (or MOSEI / CH-SIMS) from an MMSA-format pickle you have locally.

  python -m launch.train --config=configs/decalign_mosi.py --workdir=runs/decalign_mosi \
      --config.data.path=/path/to/MOSI/Processed/unaligned_50.pkl

MOSI shapes: text 768 / audio 5 / vision 20, length 50. Nothing is downloaded.

This is NOT the paper's protocol (L1 loss, lr 1e-3, ~150 epochs, one fusion block, our loss
reductions); configs/decalign_mosi_official.py reproduces the official MOSI configuration in every
hyper-parameter we have and lists what it cannot match.
"""

from configs import decalign_synthetic


def get_config():
  config = decalign_synthetic.get_config()
  config.data.source = "mmsa"
  config.data.path = ""                   # required: --config.data.path=...
  config.data.modalities = ("text", "audio", "vision")
  config.model.width = 64
  config.model.conv_kernel = 3
  config.train.batch_size = 32
  config.train.num_steps = 6000           # ~150 epochs of MOSI's 1284 training examples
  config.train.log_every = 100
  config.train.checkpoint_every = 1000
  return config
