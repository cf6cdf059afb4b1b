"""GEM-style factor graph on the procedural Pendulum (CausalVAE / DEAR benchmark), simulated oracle.

Data: 7,308 rendered pendulum images (jaxdisent/data/pendulum.py; angle and light cause the
shadow's length and position). Oracle: simulated MLLM scoring the four factors on 0-10 at
GEM's reported GPT-4o accuracy (88.4%). Model: disentanglement_lib VAE + learnable DisGraph + a
directed GNN before the decoder (jaxdisent/methods/gem.py states every term; all forms are our
choices, GEM publishes none). The run ends with the graph_recovery evaluator: graph pictures and
AUROC / AUPRC / SHD / direction accuracy in WORKDIR/plots and WORKDIR/eval/.
"""

from configs import gem_dsprites


def get_config():
  config = gem_dsprites.get_config()
  config.data.source = "pendulum"
  for key in ("edges", "correlation", "correlated_pairs", "pool_size", "seed"):  # correlated dSprites
    del config.data[key]
  del config.evals["pair_disentanglement"]     # needs the dSprites grid
  config.oracle.num_images = 7308        # images scored to build the relation prior
  return config
