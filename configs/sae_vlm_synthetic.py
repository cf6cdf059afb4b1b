"""BatchTopK SAE on built-in synthetic paired image/caption embeddings with planted concepts.

Runs on a fresh machine (no data). Switch the SAE with
--config.model.kind=matryoshka_batchtopk|topk|relu|jumprelu.
"""

import ml_collections

from configs import common


def get_config():
  config = ml_collections.ConfigDict()
  config.method = "sae"
  config.seed = 0

  config.data = ml_collections.ConfigDict()
  config.data.source = "synthetic"      # or file (configs/sae_embeddings.py)
  config.data.path = ""
  config.data.key = ""
  config.data.text_path = ""
  config.data.text_key = ""
  config.data.image_fraction = 0.5      # share of images in training batches; 0.5 = paired 1:1
  config.data.synthetic = ml_collections.ConfigDict()
  config.data.synthetic.dim = 64
  config.data.synthetic.num_shared = 24
  config.data.synthetic.num_image_only = 20
  config.data.synthetic.num_text_only = 20
  config.data.synthetic.active_per_pair = 4.0
  config.data.synthetic.modality_gap = 0.5
  config.data.synthetic.noise = 0.02
  config.data.synthetic.seed = 0

  config.model = ml_collections.ConfigDict()
  config.model.kind = "batchtopk"       # batchtopk | matryoshka_batchtopk | topk | relu | jumprelu
  config.model.dict_size = 256
  config.model.k = 4                    # mean L0 for batchtopk, per-sample L0 for topk
  config.model.b_dec_init = "geometric_median"  # or mean / zeros
  config.model.init_batch = 2048
  config.model.jumprelu_init_threshold = 0.05  # inputs have unit mean squared norm
  # matryoshka_batchtopk: nested groups as fractions of dict_size (floor each, the last takes the
  # rest, as dictionary_learning); the default nests prefixes of 1/16, 1/8, 1/4, 1/2 and all
  config.model.group_fractions = (0.0625, 0.0625, 0.125, 0.25, 0.5)
  # auto: on CPU, decode and backward on the kept entries for batchtopk/topk (dense for
  # relu/jumprelu); dense on GPU / TPU (scatter-adds cost more there than the dense matmuls);
  # sparse: the kept entries on every platform;
  # dense: codes as a B x M matrix everywhere (the reference formulation, same numbers)
  config.model.formulation = "auto"
  config.model.init_from = ""           # an SAELens / sparsify SAE directory to start from
  config.model.row_cap = 0              # dense BatchTopK: candidates per row; 0 -> 4k
  config.model.sparse_capacity = 0.0    # kept-entry list per device, x k * B_local; 0 -> 1 on one
                                        # device, 1.5 on several (overflow -> a dense step)
  config.model.sparse_chunk = 1024      # kept entries per step of the sparse loops

  config.loss = ml_collections.ConfigDict()
  config.loss.auxk_alpha = 1 / 32
  config.loss.k_aux = 0                 # 0 -> d_in // 2
  config.loss.dead_tokens = 200_000     # a latent is dead after this many tokens without firing
  config.loss.threshold_beta = 0.999
  config.loss.threshold_start_step = 200
  config.loss.l1_coeff = 0.003          # relu
  config.loss.jumprelu_l0_coeff = 0.003
  config.loss.group_weights = ()         # matryoshka: one weight per prefix; () -> 1/G each
  config.loss.jumprelu_bandwidth = 0.05  # must cover the activation scale, or theta never moves

  # learning_rate 0 -> 2e-4 / sqrt(dict_size / 2^14)
  config.optimizer = common.optimizer(0.0, warmup_steps=100, grad_clip_norm=1.0)
  config.train = common.train(num_steps=2000, batch_size=1024, log_every=100, checkpoint_every=1000)

  config.evals = ml_collections.ConfigDict()   # evaluators (jaxdisent/evals)
  config.evals.dictionary = ml_collections.ConfigDict()
  config.evals.dictionary.num_pairs = 4096
  # paired data (jaxdisent/evals/dictionary.py): MDS cut-offs "LOW,HIGH" or "std" (the paper's
  # mean +- std; can put the upper cut-off above 1), bridge pairs >= bridge_relative x the top
  # score, "good" modality classifiers (balanced accuracy), concept naming from a vocabulary file
  # (one phrase per line) and its text embeddings from the same model (.npy)
  config.evals.dictionary.mds_cutoffs = "-0.6,0.6"
  config.evals.dictionary.bridge_relative = 0.1
  config.evals.dictionary.good_classifier = 0.9
  config.evals.dictionary.subspace_lda = True   # False: the mean-difference direction alone
  config.evals.dictionary.vocabulary = ""
  config.evals.dictionary.vocabulary_embeddings = ""
  config.evals.dictionary.name_margin = 0.0
  config.evals.dictionary.plots = True   # false: skip the two plots (~0.4 s of each evaluation)
  return config
