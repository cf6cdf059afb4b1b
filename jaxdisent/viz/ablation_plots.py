"""Bar charts of ablation tables: one panel per metric, mean +- std over seeds per variant."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def variant_bars(table: dict, variants: list, keys: list, path: str, title: str,
                 lower_is_better=(), zoom: bool = False) -> str | None:
  """``table[variant][key] = (mean, std)``; keys missing from any variant are left out.

  ``zoom`` sets each panel's y-range to the data (small differences stay visible).
  """
  keys = [k for k in keys if all(k in table[v] for v in variants)]
  if not keys:
    return None
  fig, axes = plt.subplots(1, len(keys), figsize=(3.0 * len(keys), 3.2))
  for ax, key in zip(np.atleast_1d(axes), keys):
    means = [table[v][key][0] for v in variants]
    stds = [table[v][key][1] for v in variants]
    ax.bar(range(len(variants)), means, yerr=stds, color="tab:blue", alpha=0.8, capsize=3)
    ax.set_xticks(range(len(variants)))
    ax.set_xticklabels(variants, rotation=45, ha="right", fontsize=8)
    ax.set_title(key + (" (lower is better)" if key in lower_is_better else ""), fontsize=9)
    if zoom:
      low = min(m - s for m, s in zip(means, stds))
      high = max(m + s for m, s in zip(means, stds))
      pad = 0.15 * max(high - low, 1e-3)
      ax.set_ylim(low - pad, high + pad)
  fig.suptitle(title)
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)
  return path
