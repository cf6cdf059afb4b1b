"""Metrics as functions on arrays, usable from any JAX / NumPy code.

Every public metric comes in two layers:

* a **core**, ``<name>_core`` (and the building blocks ``histogram_discretize``,
  ``discrete_mutual_info_core``, ``discrete_entropy_core``): a pure JAX function, arrays in and
  arrays out, no host conversions, so ``jax.jit``, ``jax.vmap`` and, where the metric is smooth
  (CKA variants, FVU, TC), ``jax.grad`` work. Sizes that shape the computation (``k``,
  ``num_bins``, ``cca_dim``, class counts, block sizes) are static Python ints, checked at trace
  time. Cores do not validate data (no NaN checks, no errors under jit): where a metric is
  undefined for the data they return NaN, as ``jnp`` functions do.
* a **host wrapper**, ``<name>``: validates shapes, dtypes, NaN/inf, sizes and ranges (a
  ``ValueError`` / ``TypeError`` that names the problem and the fix), calls the core and returns
  host values with ONE convention:

    - a metric that is one number returns a Python ``float`` (``mig``, ``cka``, ``fvu``, ...);
    - a metric with several named outputs returns a flat ``dict[str, ...]`` whose scalar entries
      are Python floats (ints for counts) and whose per-item entries are NumPy arrays (``irs``,
      ``dci``, ``explicitness``, ``sentiment_regression_metrics``, ``concept_recovery``, ...);
      the keys are the names written to ``eval.json``;
    - a per-item measure returns a NumPy array (``energy``, ``modality_score``,
      ``discrete_mutual_info``, ``mutual_info_matrix``).

  The disentanglement, dictionary and sentiment wrappers run their core in float64
  (``jax.enable_x64`` around the call), as the NumPy / disentanglement_lib code they replace did;
  the alignment wrappers stay float32 (they run at n = 100k, d = 768).

Host-only exceptions, by nature not JAX functions: ``sap``, ``dci``, ``explicitness`` (scikit-learn
classifiers), ``stability`` (Hungarian assignment), the sampling scores (``factor_vae_score``,
``beta_vae_score``, which encode images through a model) and ``max_over_layer_pairs``.
"""

from jaxdisent.metrics.disentanglement import (array_metrics, dci, dci_from_importance,
                                               explicitness, gaussian_total_correlation,
                                               gaussian_total_correlation_core, irs, irs_core, mig,
                                               mig_core, modularity, modularity_core,
                                               modularity_from_mi, modularity_from_mi_core,
                                               mutual_info_between_codes,
                                               mutual_info_between_codes_core, mutual_info_matrix,
                                               mutual_info_matrix_core, pair_dci_disentanglement,
                                               pair_separation, sap)
from jaxdisent.metrics.information import (discrete_entropy, discrete_entropy_core,
                                           discrete_mutual_info, discrete_mutual_info_core,
                                           histogram_discretize)
from jaxdisent.metrics.sampling import (CodeTable, beta_vae_score, factor_vae_score,
                                        sample_codes_and_factors)

__all__ = ["CodeTable", "array_metrics", "beta_vae_score", "dci", "dci_from_importance", "discrete_entropy",
           "discrete_entropy_core", "discrete_mutual_info", "discrete_mutual_info_core",
           "explicitness", "factor_vae_score", "gaussian_total_correlation",
           "gaussian_total_correlation_core", "histogram_discretize", "irs", "irs_core", "mig",
           "mig_core", "modularity", "modularity_core", "pair_dci_disentanglement", "pair_separation", "modularity_from_mi",
           "modularity_from_mi_core", "mutual_info_between_codes",
           "mutual_info_between_codes_core", "mutual_info_matrix", "mutual_info_matrix_core",
           "sample_codes_and_factors", "sap"]
