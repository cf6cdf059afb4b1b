"""Relation discovery from attribute scores and matching of latent nodes to named attributes."""

from jaxdisent.graphs.corrupt import CORRUPTIONS, corrupt_prior
from jaxdisent.graphs.relations import (check_scores, directed_relations, greedy_assignment,
                                        hungarian_assignment, pairwise_correlation, rank_relations,
                                        relations_from_correlation)

__all__ = ["CORRUPTIONS", "corrupt_prior", "check_scores", "directed_relations", "greedy_assignment",
           "hungarian_assignment", "pairwise_correlation", "rank_relations",
           "relations_from_correlation"]
