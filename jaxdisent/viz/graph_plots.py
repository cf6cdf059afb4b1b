"""Pictures of factor graphs: learned vs true DisGraph, attribute-relation heatmap, recovery curves,
recovery against the oracle's accuracy."""

from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
import numpy as np

from jaxdisent.viz import vae_plots


def _draw_graph(ax, weights_AxA, names, title, threshold=0.05):
  """Nodes on a circle; an arrow i -> j for every |w_ij| / max|w| > threshold, width ~ weight."""
  w = np.abs(np.asarray(weights_AxA, np.float64))
  a = len(names)
  top = max(float(w.max()), 1e-12)
  angles = [math.pi / 2 - 2 * math.pi * k / a for k in range(a)]
  pos = np.array([[math.cos(t), math.sin(t)] for t in angles])
  for i in range(a):
    for j in range(a):
      if i == j or w[i, j] / top <= threshold:
        continue
      strength = w[i, j] / top
      ax.annotate("", xy=pos[j] * 0.86, xytext=pos[i] * 0.86,
                  arrowprops=dict(arrowstyle="-|>", lw=0.5 + 3.5 * strength, alpha=0.3 + 0.7 * strength,
                                  color="tab:blue", shrinkA=14, shrinkB=14,
                                  connectionstyle="arc3,rad=0.15"))
      mid = 0.86 * (pos[i] + pos[j]) / 2 + 0.08 * np.array([pos[j, 1] - pos[i, 1], pos[i, 0] - pos[j, 0]])
      ax.text(mid[0], mid[1], f"{w[i, j]:.2f}", fontsize=6, color="tab:blue", ha="center")
  for k, name in enumerate(names):
    ax.scatter(*pos[k] * 0.86, s=900, color="white", edgecolor="black", zorder=3)
    ax.text(*pos[k] * 0.86, name, ha="center", va="center", fontsize=7, zorder=4)
  ax.set_xlim(-1.25, 1.25)
  ax.set_ylim(-1.25, 1.25)
  ax.set_aspect("equal")
  ax.axis("off")
  ax.set_title(title, fontsize=9)


def save_graph_comparison(learned_AxA, true_AxA, names, path, *, title="", prior_AxA=None,
                          threshold=0.05):
  panels = [(learned_AxA, "learned DisGraph")]
  if prior_AxA is not None:
    panels.append((prior_AxA, "oracle relations (prior)"))
  panels.append((true_AxA, "ground truth"))
  fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 4.4))
  for ax, (w, label) in zip(np.atleast_1d(axes), panels):
    _draw_graph(ax, w, names, label, threshold)
  if title:
    fig.suptitle(title, fontsize=10)
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)
  return path


def _annotated_heatmap(matrix_AxA, names, path, *, title, xlabel, ylabel, cmap, figsize,
                       title_size=9, outlined_AxA=None):
  """A named A x A heatmap with each value written in its cell; cells where ``outlined_AxA`` > 0
  get a red frame."""
  w = np.asarray(matrix_AxA)
  fig, ax = plt.subplots(figsize=figsize)
  im = ax.imshow(w, cmap=cmap)
  ax.set_xticks(range(len(names)))
  ax.set_xticklabels(names, rotation=45, ha="right", fontsize=8)
  ax.set_yticks(range(len(names)))
  ax.set_yticklabels(names, fontsize=8)
  for i in range(len(names)):
    for j in range(len(names)):
      ax.text(j, i, f"{w[i, j]:.2f}", ha="center", va="center", fontsize=6,
              color="white" if w[i, j] < 0.6 * max(w.max(), 1e-12) else "black")
      if outlined_AxA is not None and np.asarray(outlined_AxA)[i, j] > 0:
        ax.add_patch(plt.Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, ec="red", lw=2))
  ax.set_xlabel(xlabel)
  ax.set_ylabel(ylabel)
  ax.set_title(title, fontsize=title_size)
  fig.colorbar(im, ax=ax, fraction=0.046)
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)
  return path


def save_relation_heatmap(weights_AxA, names, path, *, title="attribute relations (row -> column)"):
  return _annotated_heatmap(weights_AxA, names, path, title=title, xlabel="effect", ylabel="cause",
                            cmap="viridis",
                            figsize=(1.0 + 0.6 * len(names), 0.8 + 0.55 * len(names)))


def save_recovery_curves(learned_AxA, true_AxA, path, *, title=""):
  """ROC and precision-recall curves of the |weights| over the A(A-1) directed entries."""
  from sklearn.metrics import precision_recall_curve, roc_curve  # pylint: disable=g-import-not-at-top
  w, t = np.abs(np.asarray(learned_AxA)), np.asarray(true_AxA) != 0
  off = ~np.eye(len(w), dtype=bool)
  scores, labels = w[off], t[off]
  fig, axes = plt.subplots(1, 2, figsize=(7.5, 3.4))
  if labels.any() and not labels.all():
    fpr, tpr, _ = roc_curve(labels, scores)
    precision, recall, _ = precision_recall_curve(labels, scores)
    axes[0].plot(fpr, tpr, marker=".")
    axes[1].plot(recall, precision, marker=".")
  axes[0].plot([0, 1], [0, 1], color="gray", lw=0.5)
  axes[0].set_xlabel("false positive rate")
  axes[0].set_ylabel("true positive rate")
  axes[1].set_xlabel("recall")
  axes[1].set_ylabel("precision")
  axes[0].set_title("edge ROC", fontsize=9)
  axes[1].set_title("edge precision-recall", fontsize=9)
  if title:
    fig.suptitle(title, fontsize=9)
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)
  return path


def save_oracle_accuracy_sweep(sweep: dict, path: str, *, title: str = "",
                               reference_accuracy: float = 0.884):
  """Relation recovery (AUROC, AUPRC, direction accuracy; mean +- std over seeds) against the
  simulated oracle's accuracy. ``sweep`` maps str(accuracy) -> {key: (mean, std)}; the dashed
  line marks the GEM paper's GPT-4o relation accuracy."""
  accs = sorted(float(a) for a in sweep)
  key_of = {float(a): a for a in sweep}
  fig, ax = plt.subplots(figsize=(4.5, 3.3))
  for key, label in (("auroc", "AUROC"), ("auprc", "AUPRC"),
                     ("direction_accuracy", "direction accuracy")):
    means = np.array([sweep[key_of[a]][key][0] for a in accs])
    stds = np.array([sweep[key_of[a]][key][1] for a in accs])
    ax.errorbar(accs, means, yerr=stds, marker="o", label=label, capsize=3)
  ax.axvline(reference_accuracy, color="gray", ls="--", lw=0.8)
  ax.text(reference_accuracy, 0.02, " GPT-4o (GEM)", fontsize=7, color="gray")
  ax.set_xlabel("simulated oracle accuracy")
  ax.set_ylim(0, 1.05)
  ax.legend(fontsize=7)
  ax.set_title((title + ": " if title else "") + "oracle relations vs truth", fontsize=9)
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)
  return path


def save_intervention_effects(effects_AxA, ancestors_AxA, names, path, *, title=""):
  """Heatmap of E[i, j] (mean |change of factor j| in sds under do(node i)); true ancestor pairs
  (i can move j along the true graph) are outlined in red."""
  return _annotated_heatmap(effects_AxA, names, path, title=title + "\n(red: true ancestor pairs)",
                            xlabel="factor read from the decoded image",
                            ylabel="intervened node do(z_i = v)", cmap="magma", title_size=8,
                            figsize=(1.4 + 0.7 * len(names), 1.0 + 0.6 * len(names)),
                            outlined_AxA=ancestors_AxA)


def save_intervention_grid(rows, names, grid, path):
  """rows[i]: (V, H, W, C) decoded images of one example under do(node i = each value)."""
  num_rows, num_cols = len(rows), len(rows[0])
  fig, ax = plt.subplots(figsize=(1.1 * num_cols + 1.2, 1.1 * num_rows))
  vae_plots.show_image_grid(ax, np.stack([np.asarray(images) for images in rows]),
                            [f"do({name})" for name in names[:num_rows]],
                            [f"{value:+.1f} sd" for value in grid[:num_cols]])
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)
  return path
