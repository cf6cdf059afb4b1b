"""GEM-style factor graph on correlated dSprites with the simulated MLLM oracle (no data, no network).

Data: dSprites factors from a structural model (``data.edges``; ground-truth graph known, see
jaxdisent/data/correlated_dsprites.py). Oracle: simulated MLLM scoring the five factors on 0-10 at
GEM's reported GPT-4o accuracy (88.4%). Model: disentanglement_lib VAE + learnable DisGraph + a
directed GNN before the decoder (jaxdisent/methods/gem.py states every term; all forms are our
choices, GEM publishes none). The run ends with the graph_recovery evaluator: graph pictures and
AUROC / AUPRC / SHD / direction accuracy in WORKDIR/plots and WORKDIR/eval/.
"""

import ml_collections

from configs import common

from jaxdisent.data.correlated_dsprites import DEFAULT_EDGES, DEFAULT_PAIRS


def get_config():
  config = ml_collections.ConfigDict()
  config.method = "gem"
  config.seed = 0

  config.data = ml_collections.ConfigDict()
  config.data.source = "correlated_dsprites"  # correlated_dsprites | pendulum | tfds
  config.data.path = ""                       # tfds: data_dir of the prepared dataset
  config.data.edges = DEFAULT_EDGES           # 'a->b:w,...' over shape, scale, orientation, posX, posY
  # correlation strength (Traeuble et al. 2021): rho in [0, 1) replaces data.edges by these pairs at
  # latent correlation rho (jaxdisent/data/correlated_dsprites.py); < 0 keeps data.edges
  config.data.correlation = -1.0
  config.data.correlated_pairs = DEFAULT_PAIRS
  config.data.pool_size = 100_000
  config.data.seed = 0                        # the pool (independent of the training seed)

  config.model = ml_collections.ConfigDict()
  config.model.kind = "gnn"          # gnn | none (decoder reads z directly: the no-GNN ablation)
  config.model.latent_dim = 10
  config.model.last_kernel = 2
  config.model.gnn_hidden = 16
  config.model.gnn_layers = 2
  config.model.discriminator_hidden = 128
  # a deliberately wrong oracle prior, to measure what training adds (jaxdisent/oracles/corrupt.py):
  config.model.prior_corruption = "none"   # none | reversed | uniform | random | drop_k | spurious_k
  config.model.prior_corruption_k = 1      # edges removed (drop_k) / added (spurious_k)
  config.model.prior_corruption_seed = 0   # draws of random / spurious_k
  # gnn_decoder: the GNN makes z relation-aware before the decoder (GEM's form); scm: no GNN, a
  # structured prior z = (I - A^T)^-1 eps whose KL moves A (nodes pinned to the attributes)
  config.model.prior = "gnn_decoder"
  config.model.scm_prior_scale = 0.5       # scm: P = scale x oracle relations (spectral radius < 1)

  config.loss = ml_collections.ConfigDict()
  config.loss.kl_weight = 4.0            # beta; 1.0 = plain VAE
  config.loss.graph_prior_weight = 1.0   # pull of the DisGraph toward the oracle relations
  config.loss.supervision_weight = 0.0   # scm: node a's mean tracks attribute a's oracle score
  config.loss.acyclicity_weight = 0.0    # NOTEARS h(A) penalty (GEM's graph may be cyclic)
  config.loss.sparsity_weight = 0.01     # L1 on the adjacency
  config.loss.structure_weight = 0.0     # NOTEARS least squares of the codes on the graph
  config.loss.adversarial_weight = 1.0   # image GAN term (0 switches it off)
  config.loss.match_decay = 0.99         # moving average of the node-attribute correlations

  config.oracle = ml_collections.ConfigDict()
  config.oracle.kind = "simulated"       # simulated | labels | statistical | chat (via scores_path)
  config.oracle.attributes = ""          # comma-separated subset; empty = all factors
  config.oracle.num_images = 4000        # images scored to build the relation prior
  config.oracle.scores_path = ""         # a scores file from launch/oracle.py (chat or any kind)
  config.oracle.accuracy = 0.884         # GEM: GPT-4o mean accuracy on 16 CelebA attributes
  config.oracle.noise_std = 0.5          # informed answers: 10 * value + N(0, noise_std), rounded
  config.oracle.levels = 11              # answers 0, 1, ..., 10
  config.oracle.missing_rate = 0.0
  config.oracle.seed = 0
  config.oracle.ridge = 1e-3             # relation estimator (jaxdisent/oracles/relations.py)
  config.oracle.gain = 2.0
  config.oracle.basis = "poly"           # or quadratic / linear (jaxdisent/oracles/relations.py)
  # statistical oracle: linear NOTEARS on the codes' correlation, re-solved every refresh_every steps
  # (or 'correlation': the linear estimator every step, the former behaviour)
  config.oracle.statistical_estimator = "notears"
  config.oracle.refresh_every = 50
  config.oracle.notears_lambda1 = 0.1
  config.oracle.notears_threshold = 0.3
  # chat oracle (launch/oracle.py only; see README "GEM" for vLLM / Ollama / llama.cpp / hosted).
  # Every field of jaxdisent.oracles.chat.ChatSettings is a key here (tests/test_gem_chat.py).
  config.oracle.base_url = "http://127.0.0.1:8000/v1"
  config.oracle.model = ""
  config.oracle.api_key_env = "OPENAI_API_KEY"
  config.oracle.timeout_s = 60.0
  config.oracle.max_retries = 2
  config.oracle.concurrency = 4
  config.oracle.cache_dir = ""             # default: OUT.cache/ next to the scores file
  config.oracle.max_backoff_s = 8.0        # longest exponential backoff between attempts
  config.oracle.max_wait_s = 120.0         # a longer Retry-After stops the run (re-run later)
  config.oracle.use_json_schema = True     # false for servers that refuse response_format
  config.oracle.retry_failed = True        # re-ask images whose last answer was incomplete
  config.oracle.min_answer_rate = 0.5      # launch.oracle exits 2 below this share of valid scores

  config.optimizer = common.optimizer(5e-4)
  config.optimizer.graph_learning_rate = 0.0  # > 0: own Adam for the DisGraph (DEAR: 1e-3); 0: same
  config.train = common.train(num_steps=600, batch_size=64, log_every=50, checkpoint_every=300)

  config.evals = ml_collections.ConfigDict()
  config.evals.graph_recovery = ml_collections.ConfigDict()
  config.evals.graph_recovery.threshold = 0.3
  config.evals.graph_recovery.num_images = 2000
  config.evals.gem_disentanglement = ml_collections.ConfigDict()
  config.evals.gem_disentanglement.run_in_training = False  # launch.evaluate / the ablation
  config.evals.gem_disentanglement.num_train = 2000
  config.evals.gem_disentanglement.num_eval = 1000
  config.evals.gem_disentanglement.dci_importance = "random_forest"
  # do(z_i = v) scored against the true ancestor relation (jaxdisent/evals/graph.py)
  config.evals.graph_interventions = ml_collections.ConfigDict()
  config.evals.graph_interventions.run_in_training = False  # launch.evaluate / the ablation
  config.evals.graph_interventions.num_images = 256
  config.evals.graph_interventions.num_reference = 4000   # rendered images the reader matches
  config.evals.graph_interventions.num_values = 5
  config.evals.graph_interventions.spread = 2.0           # values within +- spread sd of the codes
  # are the correlated pairs captured by separate codes? (uniform grid; jaxdisent/evals/graph.py)
  config.evals.pair_disentanglement = ml_collections.ConfigDict()
  config.evals.pair_disentanglement.run_in_training = False  # launch.evaluate / the ablation
  config.evals.pair_disentanglement.num_train = 2000
  config.evals.pair_disentanglement.num_eval = 1000
  config.evals.pair_disentanglement.num_bins = 20
  config.evals.pair_disentanglement.dci_importance = "random_forest"
  return config
