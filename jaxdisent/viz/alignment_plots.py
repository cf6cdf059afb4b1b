"""Plots of the alignment-emergence study."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
import numpy as np


def alignment_vs_uniqueness(rows, path: str) -> str:
  """Max alignment (mean +- std over encoder depths and seeds) vs U, one line per heterogeneity."""
  fig, ax = plt.subplots(figsize=(5.5, 3.8))
  for h in sorted({r["heterogeneity_depth"] for r in rows}):
    us = sorted({r["num_unique"] for r in rows})
    values = [[r["alignment"] for r in rows if r["heterogeneity_depth"] == h and r["num_unique"] == u]
              for u in us]
    ax.errorbar(us, [np.mean(v) for v in values], yerr=[np.std(v) for v in values], marker="o",
                capsize=3, label=f"heterogeneity depth {h}")
  ax.set_xlabel("uniqueness U (label bits not shared)")
  ax.set_ylabel("max alignment over layer pairs")
  ax.legend(fontsize=8)
  ax.grid(alpha=0.3)
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)
  return path


def correlation_vs_uniqueness(correlation_by_u: dict, path: str) -> str:
  us = sorted(int(u) for u in correlation_by_u if correlation_by_u[u] is not None)
  fig, ax = plt.subplots(figsize=(5.5, 3.8))
  ax.plot(us, [correlation_by_u[u] for u in us], marker="o")
  ax.axhline(0, color="grey", lw=0.8)
  ax.set_xlabel("uniqueness U")
  ax.set_ylabel("Pearson r(alignment, performance)")
  ax.grid(alpha=0.3)
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)
  return path


def trends_per_depth(per_d: dict, path: str) -> str:
  """The paper's three trends, one line per heterogeneity depth D: max alignment vs U, median
  alignment-performance correlation vs U, median alignment-depth correlation vs U."""
  fig, axes = plt.subplots(1, 3, figsize=(14, 3.8))
  panels = (("max_alignment", "max alignment over depths and seeds"),
            ("alignment_performance_correlation", "median r(alignment, performance)"),
            ("alignment_depth_correlation", "median r(alignment, encoder depth)"))
  for ax, (key, label) in zip(axes, panels):
    for d in sorted(per_d, key=int):
      series = {int(u): v for u, v in per_d[d][key].items() if v is not None}
      us = sorted(series)
      ax.plot(us, [series[u] for u in us], marker="o", label=f"D = {d}")
    if key != "max_alignment":
      ax.axhline(0, color="grey", lw=0.8)
    ax.set_xlabel("uniqueness U")
    ax.set_ylabel(label)
    ax.grid(alpha=0.3)
  axes[0].legend(fontsize=8)
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)
  return path
