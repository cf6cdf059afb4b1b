"""BatchTopK SAE on your own embedding files (.npy memory-mapped, .npz, .safetensors).

  python -m launch.train --config=configs/sae_embeddings.py --workdir=runs/sae_clip \
      --config.data.path=image_embeddings.npy [--config.data.text_path=text_embeddings.npy]

Paired files (same row order) enable the cross-modal measures. For one .npz/.safetensors with two
arrays use --config.data.key=image --config.data.text_key=text.
"""

from configs import sae_vlm_synthetic


def get_config():
  config = sae_vlm_synthetic.get_config()
  config.data.source = "file"
  config.model.dict_size = 8192
  config.model.k = 32
  config.train.batch_size = 4096
  config.train.num_steps = 20_000
  config.train.log_every = 200
  config.train.checkpoint_every = 2000
  config.loss.dead_tokens = 10_000_000
  config.loss.threshold_start_step = 1000
  return config
