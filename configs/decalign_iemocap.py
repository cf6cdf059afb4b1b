"""DecAlign on IEMOCAP emotion recognition (4 classes) from an MMSA-style pickle you have locally.

  python -m launch.train --config=configs/decalign_iemocap.py --workdir=runs/decalign_iemocap \
      --config.data.path=/path/to/IEMOCAP/iemocap_data.pkl

The pickle (the layout of DecAlign's scripts/prepare_iemocap.py): train / valid / test dicts with
text / audio / vision features ((N, L, D), or (N, D) utterance vectors read as length 1) and
``classification_labels`` (N,) in 0..3 (happy+excited, sad, angry, neutral). Cross-entropy task
loss; the evaluator reports WAcc (overall accuracy), WAF1 (support-weighted F1) and UA.
Hyper-parameters follow the official config/iemocap_decalign_config.json where our model has the
same knob (d 48, 4 heads, 4 fusion layers, dropout 0.2, K = 6 prototypes, alpha = beta = 0.05,
Adam lr 1e-4 with L2 weight decay 0.005, clip 0.6, batch 32); the official run trains up to 50
epochs with early stopping on valid WAF1 (patience 5) and a learning-rate plateau schedule, which
the engine does not have: here a fixed number of steps, evaluated every ~epoch
(eval/decalign/valid_waf1 in metrics.jsonl to pick the best one).
The official config uses 6 classes; the paper's table (and this config) 4 -- set
--config.model.num_classes=6 for a 6-class pickle. Nothing is downloaded.
"""

from configs import decalign_synthetic


def get_config():
  config = decalign_synthetic.get_config()
  config.data.source = "iemocap"
  config.data.path = ""                   # required: --config.data.path=...
  config.data.modalities = ("text", "audio", "vision")
  config.model.num_classes = 4
  config.model.width = 48
  config.model.num_heads = 4
  config.model.fusion_layers = 4
  config.model.dropout = 0.2
  config.loss.task = "classification"
  config.loss.num_prototypes = 6
  config.optimizer.learning_rate = 1e-4
  config.optimizer.grad_clip_norm = 0.6
  config.optimizer.weight_decay = 0.005
  config.train.eval_every = 100           # ~1 epoch: eval/decalign/valid_waf1 for model selection
  config.train.batch_size = 32
  config.train.num_steps = 5000           # ~50 epochs of ~3,000 training utterances
  config.train.log_every = 100
  config.train.checkpoint_every = 1000
  config.evals.sentiment.split = "test"
  return config
