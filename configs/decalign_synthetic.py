"""DecAlign on the built-in synthetic multimodal sequences (runs on a fresh machine, no data).

Three modalities with their own widths / lengths / nonlinear views of shared common factors and
per-modality unique factors; regression label in [-3, 3] from both. Ablate a term with e.g.
--config.loss.heterogeneity=false.
"""

import ml_collections

from configs import common


def get_config():
  config = ml_collections.ConfigDict()
  config.method = "decalign"
  config.seed = 0

  config.data = ml_collections.ConfigDict()
  config.data.source = "synthetic"        # or mmsa (configs/decalign_mosi.py)
  config.data.path = ""
  config.data.modalities = ("text", "audio", "vision")
  config.data.synthetic = ml_collections.ConfigDict()
  config.data.synthetic.widths = (32, 8, 16)
  config.data.synthetic.lengths = (20, 30, 12)
  config.data.synthetic.num_common = 4
  config.data.synthetic.num_unique = 2
  config.data.synthetic.hidden = 32
  config.data.synthetic.noise = 0.1
  config.data.synthetic.min_length_fraction = 0.6
  config.data.synthetic.split_sizes = (2048, 1024, 1024)   # train (unused: batches are fresh), valid, test
  config.data.synthetic.seed = 0

  config.model = ml_collections.ConfigDict()
  config.model.width = 32
  config.model.num_heads = 4
  config.model.conv_kernel = 1
  config.model.fusion = True
  config.model.num_classes = 0            # classification only
  config.model.fusion_layers = 1          # cross-modal blocks per modality (official MOSI: 5)
  config.model.dropout = 0.0              # fusion dropout, training only (official MOSI: 0.1)
  config.model.head_input = "all"         # the head reads fused unique + common (paper) | common

  config.loss = ml_collections.ConfigDict()
  config.loss.task = "regression"          # L1, as MMSA trains MOSI/MOSEI
  config.loss.decoupling = True
  config.loss.heterogeneity = True
  config.loss.homogeneity = True
  config.loss.decoupling_weight = 1.0
  config.loss.heterogeneity_weight = 0.05  # the paper's alpha (its best value)
  config.loss.homogeneity_weight = 0.05    # the paper's beta (its best value)
  config.loss.num_prototypes = 7
  config.loss.em_steps = 5
  config.loss.var_floor = 1e-4
  config.loss.ot_epsilon = 0.1
  config.loss.ot_iterations = 50
  config.loss.sample_to_prototype_weight = 1.0
  config.loss.mmd_weight = 1.0
  config.loss.mmd_bandwidths = (0.5, 1.0, 2.0, 4.0)
  config.loss.moment_weight = 1.0          # 0: homogeneity by MMD only
  # Official-protocol switches (ours first; configs/decalign_mosi_official.py sets the official):
  config.loss.regression_loss = "l1"       # or mse (official MOSI)
  config.loss.decouple_on = "pooled"       # or sequence: cos^2 on flattened (B, L*d) sequences
  config.loss.prototype_cost_reduction = "sum"   # or mean: W2 averaged over dims (official)
  config.loss.gmm_init = "farthest"        # or index: rows linspace(0, B-1, K) (official)
  config.loss.contrastive_weight = 0.0     # supervised contrastive on the fused rep. (official 0.003)
  config.loss.contrastive_temperature = 0.1
  # Beyond the paper (issue 23):
  config.loss.scale_invariant = False      # L2-normalise features before the hete / homo terms
  config.loss.heterogeneity_strategy = "prototype_ot"   # or moments | mmd | contrastive
  config.loss.instance_align_weight = 0.0  # paired InfoNCE on common features (positive control)
  config.loss.instance_align_temperature = 0.1

  config.optimizer = common.optimizer(1e-3, grad_clip_norm=1.0)
  config.optimizer.weight_decay = 0.0      # L2 on the gradient as torch Adam (official MOSI 0.005)
  config.train = common.train(num_steps=1000, batch_size=64, log_every=50, checkpoint_every=500,
                              keep_checkpoints=2)

  config.evals = ml_collections.ConfigDict()   # evaluators (jaxdisent/evals)
  config.evals.sentiment = ml_collections.ConfigDict()
  config.evals.sentiment.split = "test"
  config.evals.sentiment.batch_size = 256
  config.evals.decalign = ml_collections.ConfigDict()   # unique_norm, head_std, probes, valid_mae
  config.evals.decalign.split = "test"
  config.evals.decalign.batch_size = 256
  return config
