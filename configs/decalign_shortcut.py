"""DecAlign on the shortcut benchmark (issue 23): few fixed training examples, unique factors that
are correlated with the common ones in training only, per-modality noise, lags and lengths.

  python -m launch.decalign_ablation --config=configs/decalign_shortcut.py --workdir=runs/shortcut \
      --variants=full,task_only,instance_align --seeds=0,1,2,3,4,5,6,7,8,9,10,11 \
      --config.data.num_train=300

The generative process is in jaxdisent/data/multimodal_sequences.py (ShortcutMultimodalSequences)
and the README; every knob is under ``data.shortcut`` (and ``data.num_train``). The sequence
lengths default to MOSI's unaligned 50 / 375 / 500 scaled by 1/6.25 (8 / 60 / 80) so that an
ablation fits on a CPU; ``--config.data.shortcut.lengths=50,375,500`` gives MOSI's.

Protocol: batch 32 (as the official trainer), evaluation every 20 steps with
``eval/decalign/valid_mae``; ``launch.decalign_ablation`` reports, per run, the test metrics of the
evaluation with the lowest valid MAE, stopping the search after ``evals.decalign.patience``
evaluations without improvement (the official trainer's early stopping, applied to the logged
evaluations). The full model uses the scale-invariant heterogeneity / homogeneity terms
(``loss.scale_invariant``), so they cannot be paid by shrinking features.
"""

import ml_collections

from configs import decalign_synthetic


def get_config():
  config = decalign_synthetic.get_config()
  config.data.source = "shortcut"
  config.data.num_train = 300              # N_train in {100, 300, 1000, 10000}
  s = config.data.shortcut = ml_collections.ConfigDict()
  s.widths = (32, 8, 16)
  s.lengths = (8, 60, 80)                  # MOSI unaligned: 50, 375, 500
  s.num_common = 4
  s.num_unique = 2
  s.hidden = 32
  s.noise = (0.1, 1.0, 2.0)                # per-modality observation noise sd
  s.unique_scale = 2.0                     # the nuisance is louder than the signal
  s.rho_train = 0.6                        # corr(u_m, c) in train / valid ...
  s.rho_test = 0.0                         # ... and at test: the shortcut fails
  s.rho_train_scale = (1.0, 1.0, 1.0)      # rho_train per modality x this: 1,0,0 = shortcut in m0 only
  s.label_unique_weight = 0.0              # lambda: y = g(c) + lambda sum_m h_m(u_m); or 0.3
  s.max_lag = (0, 3, 6)                    # random temporal lag per example and modality
  s.min_length_fraction = 0.6
  s.test_scale = (1.0, 1.0, 1.0)           # test-time corruption: x -> scale x + offset
  s.test_offset = (0.0, 0.0, 0.0)
  s.num_valid = 0                          # 0: max(64, num_train // 4)
  s.num_test = 512
  s.task_seed = 0                          # the fixed maps and label weights
  s.seed = None                            # examples: None -> the run's seed (paired variants)

  config.loss.scale_invariant = True
  config.train.batch_size = 32
  config.train.num_steps = 200          # ~21 epochs of 300 examples (official MOSI: 18 epochs)
  config.train.eval_every = 20
  config.train.log_every = 20
  config.train.checkpoint_every = 200
  config.train.plots_at_end = False
  config.evals.sentiment.batch_size = 512
  config.evals.decalign.batch_size = 512
  config.evals.decalign.patience = 6       # evaluations without valid improvement before stopping
  return config
