"""Codes-by-factors mutual-information heatmap."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
import numpy as np


def save_mi_heatmap(mi_DxK, factor_names, path: str, normaliser_K=None, title: str = "") -> str:
  """Heatmap of MI(code_j; factor_k), normalised by H(factor_k) when `normaliser_K` is given."""
  values = np.asarray(mi_DxK, dtype=np.float64)
  label = "MI (nats)"
  if normaliser_K is not None:
    values = values / np.maximum(np.asarray(normaliser_K)[None, :], 1e-12)
    label = "MI / H(factor)"
  dims, factors = values.shape
  fig, ax = plt.subplots(figsize=(1.0 + 0.9 * factors, 0.9 + 0.38 * dims))
  image = ax.imshow(values, cmap="viridis", vmin=0, vmax=max(values.max(), 1e-6), aspect="auto")
  for j in range(dims):
    for k in range(factors):
      ax.text(k, j, f"{values[j, k]:.2f}", ha="center", va="center", fontsize=7,
              color="white" if values[j, k] < 0.6 * values.max() else "black")
  ax.set_xticks(range(factors), factor_names, rotation=30, ha="right")
  ax.set_yticks(range(dims), [f"z{j}" for j in range(dims)])
  ax.set_xlabel("factor")
  ax.set_ylabel("code")
  fig.colorbar(image, ax=ax, label=label)
  if title:
    ax.set_title(title, fontsize=9)
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)
  return path
