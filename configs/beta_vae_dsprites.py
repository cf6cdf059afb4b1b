"""beta-VAE on procedural dSprites (no download). The quick-start job: ~5 minutes on 2 CPU cores.

Architecture, loss and optimiser follow disentanglement_lib ([locatello2019], docs/references.md) except for
the run length: disentanglement_lib trains 300k steps at lr 1e-4; the quick start trains
`train.num_steps` steps at lr 5e-4 so that a CPU run learns visible factors in minutes.
For the reference schedule: --config.train.num_steps=300000 --config.optimizer.learning_rate=1e-4
"""

import ml_collections

from configs import common


def get_config():
  config = ml_collections.ConfigDict()
  config.method = "beta_vae"
  config.seed = 0

  config.data = ml_collections.ConfigDict()
  config.data.source = "dsprites"  # or tfds:dsprites / tfds:shapes3d with data.path
  config.data.path = ""             # a TFDS data_dir holding the prepared dataset

  config.model = ml_collections.ConfigDict()
  config.model.latent_dim = 10
  config.model.last_kernel = 2    # disentanglement_lib code; the papers say 4

  config.loss = ml_collections.ConfigDict()
  config.loss.objective = "beta_vae"  # beta_vae | beta_tcvae | annealed_vae
  config.loss.beta = 4.0
  config.loss.c_max = 25.0            # annealed_vae capacity (nats)
  config.loss.capacity_weight = 1000.0  # annealed_vae: gamma, the weight of |KL - C|
  config.loss.iteration_threshold = 100_000  # annealed_vae: steps to reach c_max

  config.optimizer = common.optimizer(5e-4)
  config.train = common.train(num_steps=1200, batch_size=64, log_every=50, checkpoint_every=400)

  # Evaluators (jaxdisent/evals): the same list runs in training and in launch.evaluate.
  config.evals = ml_collections.ConfigDict()
  config.evals.reconstruction = ml_collections.ConfigDict()
  config.evals.reconstruction.num_examples = 512
  config.evals.disentanglement = ml_collections.ConfigDict()
  config.evals.disentanglement.run_in_training = False  # minutes at these sizes: launch.evaluate
  config.evals.disentanglement.num_train = 10_000       # disentanglement_lib sizes
  config.evals.disentanglement.num_eval = 5_000
  config.evals.disentanglement.num_bins = 20
  config.evals.disentanglement.dci_importance = "gbt"   # or random_forest (faster, not comparable)
  config.evals.disentanglement.code_table = True        # encode each image once when cheaper
  return config
