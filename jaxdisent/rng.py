"""Named PRNG streams: every random draw of a run is keyed by (seed, step, stream).

A stream is the salt folded into the run's seed before the step (see
``jaxdisent.data.ground_truth.step_key``). Two consumers that share a stream draw correlated
numbers, so every consumer gets its own constant here; a new data source or loss term adds one
(never reuse a value, never change one: resumed runs replay their streams).
"""

GROUND_TRUTH_DATA = 1     # factor sampling of ground-truth image sources (procedural, TFDS)
LOSS = 2                  # the per-step key handed to Method.loss (reparameterisation noise ...)
SYNTHETIC_VLM = 3         # synthetic paired image/text embeddings
EMBEDDING_FILES = 4       # row sampling from user embedding files
MULTIMODAL_SEQUENCES = 7  # synthetic multimodal sequences (DecAlign)
GRAPH_DATA = 8            # factor-graph sources (correlated dSprites, pendulum)
ORACLE = 9                # simulated relation-oracle noise

ALL = {name: value for name, value in globals().items() if name.isupper() and name != "ALL"}
assert len(set(ALL.values())) == len(ALL), "two PRNG streams share a value"
