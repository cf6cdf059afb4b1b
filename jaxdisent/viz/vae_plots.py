"""Reconstructions and latent traversals as PNG grids."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
import numpy as np


def _mosaic(images_RxCxHxWxK, gap: int):
  """One (H', W', K) image of the R x C tiles, clipped to [0, 1], with `gap` white pixels between
  neighbours; tiles without a channel axis (R, C, H, W) are grayscale."""
  images = np.clip(np.asarray(images_RxCxHxWxK, np.float32), 0, 1)
  if images.ndim == 4:
    images = images[..., None]
  rows, cols, h, w, k = images.shape
  out = np.ones((rows * (h + gap) - gap, cols * (w + gap) - gap, k), np.float32)
  for r in range(rows):
    for c in range(cols):
      out[r * (h + gap):r * (h + gap) + h, c * (w + gap):c * (w + gap) + w] = images[r, c]
  return out


def show_image_grid(ax, images_RxCxHxWxK, row_labels, col_labels, fontsize=7):
  """The tiles as one image in one Axes (a grid of Axes cost ~15 ms each to build and lay out:
  ~1 s for a 10 x 9 traversal), rows and columns labelled on the left and on top."""
  h, w = np.shape(images_RxCxHxWxK)[2:4]
  gap = max(2, h // 16)
  mosaic = _mosaic(images_RxCxHxWxK, gap)
  if mosaic.shape[-1] == 1:
    ax.imshow(mosaic[..., 0], cmap="gray", vmin=0, vmax=1, interpolation="nearest")
  else:
    ax.imshow(mosaic, interpolation="nearest")
  ax.set_yticks([r * (h + gap) + (h - 1) / 2 for r in range(len(row_labels))])
  ax.set_yticklabels(row_labels, fontsize=fontsize)
  ax.set_xticks([c * (w + gap) + (w - 1) / 2 for c in range(len(col_labels))])
  ax.set_xticklabels(col_labels, fontsize=fontsize)
  ax.xaxis.tick_top()
  ax.tick_params(length=0)
  for spine in ax.spines.values():
    spine.set_visible(False)


def save_reconstructions(images, reconstructions, path: str) -> str:
  """Top row inputs, bottom row reconstructions (decoder mean at the encoder mean)."""
  n = len(images)
  fig, ax = plt.subplots(figsize=(1.2 * n, 2.6))
  show_image_grid(ax, np.stack([images, reconstructions]), ["input", "recon"], [""] * n, fontsize=9)
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
  # one decoder call (one compiled shape), its output shape read from the result
  decoded = np.asarray(decode_fn(codes.reshape(-1, dims)))
  images = decoded.reshape(dims, num_values, *decoded.shape[1:])
  labels = []
  for d in range(dims):
    label = f"z{d}"
    if kl_per_latent is not None:
      label += f"\nKL {float(kl_per_latent[d]):.2f}"
    if row_labels is not None and row_labels[d]:
      label += f"\n{row_labels[d]}"
    labels.append(label)
  fig, ax = plt.subplots(figsize=(0.9 * num_values + 1.2, 0.9 * dims + 0.4))
  show_image_grid(ax, images, labels, [f"{v:+.1f}" for v in values])
  fig.tight_layout()
  fig.savefig(path, dpi=90)
  plt.close(fig)
  return path
