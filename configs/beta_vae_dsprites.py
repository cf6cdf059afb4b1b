"""beta-VAE on procedural dSprites (no download). The quick-start job: ~5 minutes on 2 CPU cores.

Architecture, loss and optimiser follow disentanglement_lib (REFERENCES.md section 1) except for
the run length: disentanglement_lib trains 300k steps at lr 1e-4; the quick start trains
`train.num_steps` steps at lr 5e-4 so that a CPU run learns visible factors in minutes.
For the reference schedule: --config.train.num_steps=300000 --config.optimizer.learning_rate=1e-4
"""

import ml_collections


def get_config():
  config = ml_collections.ConfigDict()
  config.method = "beta_vae"
  config.seed = 0

  config.data = ml_collections.ConfigDict()
  config.data.name = "dsprites"   # or tfds:dsprites / tfds:shapes3d with data.data_dir
  config.data.data_dir = ""

  config.model = ml_collections.ConfigDict()
  config.model.latent_dim = 10
  config.model.last_kernel = 2    # disentanglement_lib code; the papers say 4

  config.loss = ml_collections.ConfigDict()
  config.loss.objective = "beta_vae"  # beta_vae | beta_tcvae | annealed_vae
  config.loss.beta = 4.0
  config.loss.c_max = 25.0            # annealed_vae capacity (nats)
  config.loss.gamma = 1000.0          # annealed_vae weight
  config.loss.iteration_threshold = 100_000  # annealed_vae: steps to reach c_max

  config.optimizer = ml_collections.ConfigDict()
  config.optimizer.learning_rate = 5e-4
  config.optimizer.b1 = 0.9
  config.optimizer.b2 = 0.999
  config.optimizer.eps = 1e-8
  config.optimizer.warmup_steps = 0
  config.optimizer.grad_clip_norm = 0.0

  config.train = ml_collections.ConfigDict()
  config.train.num_steps = 1200
  config.train.batch_size = 64
  config.train.log_every = 50
  config.train.checkpoint_every = 400
  config.train.keep_checkpoints = 3
  config.train.parallel = "shard_map"  # or pmap
  config.train.distributed = False     # call jax.distributed.initialize() (multi-host)

  config.eval = ml_collections.ConfigDict()
  config.eval.run_at_end = False     # run launch.evaluate's metrics when training finishes
  config.eval.num_train = 10_000     # disentanglement_lib sizes; lower for a quick look
  config.eval.num_eval = 5_000
  config.eval.dci_importance = "gbt"  # or random_forest (faster, not comparable to papers)
  return config
