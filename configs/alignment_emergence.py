"""The alignment-emergence study on controlled synthetic bimodal data (Tjandrasuwita et al. 2025;
docs/references.md).

Defaults are a reduced grid that finishes in minutes on 2 CPU cores; the paper's grid is
uniqueness 0..8 x heterogeneity depth 0..10 x encoder depth 1..10.
"""

import ml_collections


def get_config():
  config = ml_collections.ConfigDict()
  config.method = "alignment_study"
  config.seed = 0

  config.data = ml_collections.ConfigDict()
  config.data.num_train = 8192
  config.data.num_eval = 4096          # the paper measures alignment on 4096 samples
  config.data.synergy = False          # XOR label bits (needs grid.num_unique <= 4)
  config.data.heterogeneity_both = False
  config.data.temperature = 0.05

  config.grid = ml_collections.ConfigDict()
  config.grid.num_unique = (0, 1, 2, 3, 4, 5, 6, 7, 8)
  config.grid.heterogeneity_depth = (0, 2, 4)
  config.grid.encoder_depth = (1, 2, 4)
  config.grid.seeds = 2

  config.model = ml_collections.ConfigDict()
  config.model.width = 64

  config.train = ml_collections.ConfigDict()
  config.train.num_steps = 1500        # per model
  config.train.batch_size = 256

  config.optimizer = ml_collections.ConfigDict()
  config.optimizer.learning_rate = 1e-3  # Adam
  return config
