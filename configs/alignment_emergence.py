"""The alignment-emergence study on controlled synthetic bimodal data (Tjandrasuwita et al. 2025;
docs/references.md).

  --config=configs/alignment_emergence.py         reduced grid (minutes on 2 CPU cores): width 64,
                                                  heterogeneity depth {0, 2, 4}, encoder depth
                                                  {1, 2, 4}; both encoders of a pair have depth L
  --config=configs/alignment_emergence.py:paper   the paper's grid: width-12 MLPs, U = 0..8,
                                                  D = 1, 3, 5, 7, 9, encoder depth 1..10,
                                                  n = 65,536 split 70/15/15, 2 seeds; the
                                                  untransformed modality's encoder has the fixed
                                                  depth 2 and is compared with the transformed
                                                  modality's encoder of every depth (as the paper's
                                                  analysis script, FIXED_DEPTH = 1 as an index)

``study.metric`` selects the alignment measure (max over layer pairs of the metric between
L2-normalised hidden features): ``unbiased_cka`` (the paper's main text), ``mutual_knn`` with
``study.k = 100`` (its appendix), ``cka``, ``cknna``, ``svcca``.
The paper tunes learning rate and weight decay per model with Optuna; we train every model with one
fixed Adam learning rate and no weight decay (``optimizer.learning_rate``), and only report the
validation accuracy.
"""

import ml_collections


def get_config(variant: str | None = None):
  if variant not in (None, "", "reduced", "paper"):
    raise ValueError(f"unknown variant {variant!r} of configs/alignment_emergence.py; use "
                     f"':paper' (the paper's grid) or no variant (the reduced grid)")
  config = ml_collections.ConfigDict()
  config.method = "alignment_study"
  config.seed = 0

  config.data = ml_collections.ConfigDict()
  config.data.num_train = 8192
  config.data.num_val = 0              # validation accuracy only reported (no tuning)
  config.data.num_eval = 4096          # test split: accuracy and alignment
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

  config.study = ml_collections.ConfigDict()
  config.study.metric = "unbiased_cka"  # unbiased_cka | cka | mutual_knn | cknna | svcca
  config.study.k = 10                  # neighbours for mutual_knn / cknna (the paper: 100)
  config.study.cca_dim = 10            # svcca directions (<= width)
  # "same": modality 1 and 2 encoders of the same depth L (the reduced grid's default, so both
  # modalities' depth varies together); "fixed": modality 1's encoder of depth study.fixed_depth
  # against modality 2's encoder of every depth L (the paper's analysis).
  config.study.pairing = "same"
  config.study.fixed_depth = 2

  config.train = ml_collections.ConfigDict()
  config.train.num_steps = 1500        # per model
  config.train.batch_size = 256

  config.optimizer = ml_collections.ConfigDict()
  config.optimizer.learning_rate = 1e-3  # Adam

  if variant == "paper":
    config.data.num_train = 45_875      # 65,536 samples split 70 / 15 / 15
    config.data.num_val = 9_830
    config.data.num_eval = 9_831
    config.grid.heterogeneity_depth = (1, 3, 5, 7, 9)
    config.grid.encoder_depth = tuple(range(1, 11))
    config.model.width = 12
    config.study.pairing = "fixed"
    config.train.num_steps = 3000       # ~17 epochs of the training split at batch 256
    config.train.batch_size = 256
  return config
