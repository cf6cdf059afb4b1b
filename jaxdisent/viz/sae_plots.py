"""SAE plots: the R^2 vs L0 frontier, stability vs energy, the modality-score histogram by MDS
class, energy vs modality score and the deletion (intervention) bars."""

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


MDS_COLOURS = {"image-dominant": "tab:blue", "text-dominant": "tab:orange",
               "cross-modal": "tab:green"}


def modality_histogram(modality_score_M, mds_label_M, path: str, title: str = "",
                       bins: int = 20) -> str:
  """Histogram of the live features' modality score E_img / (E_img + E_txt), stacked by MDS class."""
  score = np.asarray(modality_score_M, np.float64)
  labels = np.asarray(mds_label_M).astype(str)
  fig, ax = plt.subplots(figsize=(5.5, 4))
  groups = [(name, score[(labels == name) & np.isfinite(score)]) for name in MDS_COLOURS]
  groups = [(name, values) for name, values in groups if len(values)]
  if groups:
    ax.hist([values for _, values in groups], bins=np.linspace(0, 1, bins + 1), stacked=True,
            color=[MDS_COLOURS[name] for name, _ in groups],
            label=[f"{name} ({len(values)})" for name, values in groups])
    ax.legend(fontsize=8)
  ax.set_xlabel("modality score  E_img[z] / (E_img[z] + E_txt[z])  (1 = image only)")
  ax.set_ylabel("live features")
  ax.set_xlim(0, 1)
  if title:
    ax.set_title(title, fontsize=8)
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)
  return path


def energy_vs_modality(energy_M, modality_score_M, mds_label_M, path: str, title: str = "") -> str:
  """Each live feature's energy E[z_i] (log) against its modality score, coloured by MDS class."""
  energy = np.asarray(energy_M, np.float64)
  score = np.asarray(modality_score_M, np.float64)
  labels = np.asarray(mds_label_M).astype(str)
  fig, ax = plt.subplots(figsize=(5.5, 4))
  for name, colour in MDS_COLOURS.items():
    keep = (labels == name) & (energy > 0) & np.isfinite(score)
    if keep.any():
      ax.scatter(score[keep], energy[keep], s=10, alpha=0.7, color=colour,
                 label=f"{name} ({int(keep.sum())})")
  if (energy > 0).any():
    ax.set_yscale("log")
    ax.legend(fontsize=8)
  ax.set_xlabel("modality score (1 = image only, 0 = text only)")
  ax.set_ylabel("energy E[z_i]")
  ax.set_xlim(-0.02, 1.02)
  ax.grid(alpha=0.3)
  if title:
    ax.set_title(title, fontsize=8)
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)
  return path


def intervention_bars(records, path: str) -> str:
  """Recall@1 before / after / random control per intervention (``records``: [(name, record)]
  as written by launch.intervene), image->text and text->image side by side."""
  fig, axes = plt.subplots(1, 2, figsize=(max(6.0, 1.3 * len(records) + 3), 3.8), sharey=True)
  width = 0.27
  x = np.arange(len(records))
  for ax, direction in zip(axes, ("image_to_text", "text_to_image")):
    for offset, (part, colour) in zip((-width, 0.0, width), (("before", "tab:gray"),
                                                              ("after", "tab:red"),
                                                              ("random_control", "tab:blue"))):
      values = [r[direction]["recall_at_1"][part] for _, r in records]
      errors = ([r[direction]["recall_at_1"].get("random_control_std", 0.0) for _, r in records]
                if part == "random_control" else None)
      ax.bar(x + offset, values, width, color=colour, yerr=errors, capsize=2,
             label=part.replace("_", " "))
    ax.set_xticks(x)
    ax.set_xticklabels([f"{name}\n({r['num_features']})" for name, r in records], fontsize=7,
                       rotation=20)
    ax.set_title(direction.replace("_", " ") + " recall@1", fontsize=9)
    ax.set_ylim(0, 1.02)
    ax.grid(axis="y", alpha=0.3)
  axes[0].legend(fontsize=7)
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)
  return path
