"""Reconstructions and latent traversals as PNG grids."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
import numpy as np


def _show(ax, image):
  image = np.clip(image, 0, 1)
  if image.shape[-1] == 1:
    ax.imshow(image[..., 0], cmap="gray", vmin=0, vmax=1)
  else:
    ax.imshow(image)
  ax.set_xticks([])
  ax.set_yticks([])


def save_reconstructions(images, reconstructions, path: str) -> str:
  """Top row inputs, bottom row reconstructions (decoder mean at the encoder mean)."""
  n = len(images)
  fig, axes = plt.subplots(2, n, figsize=(1.2 * n, 2.6), squeeze=False)
  for i in range(n):
    _show(axes[0, i], images[i])
    _show(axes[1, i], reconstructions[i])
  axes[0, 0].set_ylabel("input")
  axes[1, 0].set_ylabel("recon")
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)
  return path


def save_traversals(decode_fn, mean_D, path: str, *, num_values: int = 9, limit: float = 2.0,
                    kl_per_latent=None, row_labels=None) -> str:
  """One row per latent: decode the code `mean_D` with that latent swept over [-limit, limit].

  Rows are labelled with the latent index, its KL (nats, informative latents have large KL)
  and, when given, the factor it captures.
  """
  dims = len(mean_D)
  values = np.linspace(-limit, limit, num_values)
  codes = np.repeat(mean_D[None, None, :], dims * num_values, axis=0).reshape(dims, num_values, dims)
  for d in range(dims):
    codes[d, :, d] = values
  images = decode_fn(codes.reshape(-1, dims)).reshape(dims, num_values, *np.shape(decode_fn(codes[0, :1]))[1:])
  fig, axes = plt.subplots(dims, num_values, figsize=(0.9 * num_values + 1.2, 0.9 * dims + 0.4),
                           squeeze=False)
  for d in range(dims):
    for j in range(num_values):
      _show(axes[d, j], images[d, j])
    label = f"z{d}"
    if kl_per_latent is not None:
      label += f"\nKL {float(kl_per_latent[d]):.2f}"
    if row_labels is not None and row_labels[d]:
      label += f"\n{row_labels[d]}"
    axes[d, 0].set_ylabel(label, rotation=0, ha="right", va="center", fontsize=7)
  for j, v in enumerate(values):
    axes[0, j].set_title(f"{v:+.1f}", fontsize=7)
  fig.tight_layout()
  fig.savefig(path, dpi=90)
  plt.close(fig)
  return path
