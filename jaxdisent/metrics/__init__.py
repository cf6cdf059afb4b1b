"""Metrics as plain functions on arrays, usable from any JAX / NumPy code."""

from jaxdisent.metrics.disentanglement import (array_metrics, dci, dci_from_importance,
                                               explicitness, gaussian_total_correlation, mig,
                                               modularity, modularity_from_mi,
                                               mutual_info_between_codes, mutual_info_matrix, sap)
from jaxdisent.metrics.information import (discrete_entropy, discrete_mutual_info,
                                           histogram_discretize)
from jaxdisent.metrics.sampling import (beta_vae_score, factor_vae_score, irs,
                                        sample_codes_and_factors)

__all__ = ["array_metrics", "beta_vae_score", "dci", "dci_from_importance", "discrete_entropy",
           "discrete_mutual_info", "explicitness", "factor_vae_score", "gaussian_total_correlation",
           "histogram_discretize", "irs", "mig", "modularity", "modularity_from_mi",
           "mutual_info_between_codes", "mutual_info_matrix", "sample_codes_and_factors", "sap"]
