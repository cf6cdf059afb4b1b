"""SAE sweep plots: the R^2 vs L0 frontier and stability vs energy."""

from __future__ import annotations

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
import numpy as np


def frontier(points, path: str) -> str:
  fig, ax = plt.subplots(figsize=(5.5, 4))
  for kind in dict.fromkeys(p["kind"] for p in points):
    group = sorted((p for p in points if p["kind"] == kind and p["seed"] == min(
        q["seed"] for q in points if q["kind"] == kind)), key=lambda p: p["l0"])
    ax.plot([p["l0"] for p in group], [p["r2"] for p in group], marker="o", label=kind)
  ax.set_xlabel("L0 (mean active latents per embedding)")
  ax.set_ylabel("R^2 (1 - FVU)")
  ax.set_xscale("log")
  ax.xaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
  ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
  ax.grid(alpha=0.3)
  ax.legend(fontsize=8)
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)
  return path


def stability_vs_energy(energy_M, matched_cosine_M, path: str, title: str = "") -> str:
  energy = np.asarray(energy_M)
  live = energy > 0
  fig, ax = plt.subplots(figsize=(5.5, 4))
  ax.scatter(energy[live], np.asarray(matched_cosine_M)[live], s=10, alpha=0.6, label="live latents")
  ax.set_xscale("log")
  ax.set_xlabel("energy E[z_i] (run A)")
  ax.set_ylabel("Hungarian-matched |cosine| to run B")
  ax.set_ylim(0, 1.02)
  ax.grid(alpha=0.3)
  if title:
    ax.set_title(title, fontsize=8)
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)
  return path
