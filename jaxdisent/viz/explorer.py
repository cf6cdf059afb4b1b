"""A self-contained HTML page to browse SAE concepts (no server, no network).

The page embeds one JSON document (``<script id="concept-data" type="application/json">``) and a
little vanilla JavaScript that renders a sortable, searchable table: per concept its energy,
firing rate, modality score, MDS class, top-activating samples (captions / thumbnails when the
user gave them) and bridge partners.
"""

from __future__ import annotations

import html
import json
import os

import numpy as np

from jaxdisent.metrics import dictionary as D


def concept_table(image_codes_NxM, text_codes_NxM, atoms_MxD, *, captions=None, thumbnails=None,
                  top_n: int = 8, num_partners: int = 3, sample_names=None,
                  concept_names=None) -> dict:
  """Everything the explorer shows, as plain JSON-able data.

  ``image_codes`` and ``text_codes`` are paired (row i = pair i); either may be None for unpaired
  data. ``captions[i]`` / ``thumbnails[i]`` describe pair i. ``concept_names[i]`` is atom i's
  entry of :func:`jaxdisent.metrics.naming.name_atoms` (name, nearest phrases, margin).
  """
  if concept_names is not None and len(concept_names) != np.shape(atoms_MxD)[0]:
    raise ValueError(f"concept_names has {len(concept_names)} entries for "
                     f"{np.shape(atoms_MxD)[0]} atoms; name every atom (metrics.naming.name_atoms)")
  sides = [c for c in (image_codes_NxM, text_codes_NxM) if c is not None]
  if not sides:
    raise ValueError("need image and/or text codes")
  all_codes = np.concatenate([np.asarray(c) for c in sides])
  num = all_codes.shape[1]
  energy = D.energy(all_codes)
  rate = D.firing_rates(all_codes)
  paired = image_codes_NxM is not None and text_codes_NxM is not None
  if paired:
    modality = D.modality_score(image_codes_NxM, text_codes_NxM)
    mds = D.modality_dominance(image_codes_NxM, text_codes_NxM)
    bridge = D.bridge_scores(image_codes_NxM, text_codes_NxM, atoms_MxD)
    np.fill_diagonal(bridge, -np.inf)
  n_pairs = len(sides[0])
  concepts = []
  for i in range(num):
    top_rows = np.argsort(-all_codes[:, i])[:top_n]
    samples = []
    for row in top_rows:
      value = float(all_codes[row, i])
      if value <= 0:
        break
      pair = int(row % n_pairs)
      side = ("image" if row < n_pairs else "text") if paired else "sample"
      entry = {"row": pair, "side": side, "activation": round(value, 4),
               "name": sample_names[pair] if sample_names is not None else f"{side} {pair}"}
      if captions is not None:
        entry["caption"] = str(captions[pair])
      if thumbnails is not None:
        entry["thumbnail"] = str(thumbnails[pair])
      samples.append(entry)
    concept = {"id": i, "energy": float(energy[i]), "firing_rate": float(rate[i]),
               "top_samples": samples}
    if concept_names is not None:
      concept["name"] = concept_names[i]["name"]
      concept["names"] = concept_names[i]["names"]
      concept["name_margin"] = round(float(concept_names[i]["margin"]), 4)
    if paired:
      concept["modality_score"] = None if np.isnan(modality[i]) else float(modality[i])
      concept["mds"] = None if np.isnan(mds["mds"][i]) else float(mds["mds"][i])
      concept["mds_class"] = str(mds["label"][i])
      partners = np.argsort(-bridge[i])[:num_partners]
      concept["bridge_partners"] = [{"id": int(j), "score": float(bridge[i, j])} for j in partners
                                    if np.isfinite(bridge[i, j]) and bridge[i, j] > 0]
    concepts.append(concept)
  meta = {"num_concepts": num, "num_pairs": n_pairs, "paired": paired}
  if paired:
    meta["mds_cutoffs"] = [float(c) for c in mds["cutoffs"]]
    meta["mds_counts"] = mds["counts"]
  return {"meta": meta, "concepts": concepts}


_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 1.5em; color: #222; }}
h1 {{ font-size: 1.3em; }} .meta {{ color: #555; margin-bottom: .8em; }}
input {{ padding: .35em; width: 24em; margin-bottom: .8em; }}
table {{ border-collapse: collapse; width: 100%; font-size: .9em; }}
th, td {{ border-bottom: 1px solid #ddd; padding: .35em .5em; vertical-align: top; text-align: left; }}
th {{ cursor: pointer; background: #f4f4f4; position: sticky; top: 0; }}
th.sorted::after {{ content: " \\25BE"; }} .sample {{ display: inline-block; margin: 0 .6em .3em 0; }}
.img {{ color: #1565c0; }} .txt {{ color: #2e7d32; }} .tag {{ font-size: .8em; padding: 0 .4em; border-radius: .3em; background: #eee; }}
img.thumb {{ height: 40px; vertical-align: middle; }}
</style></head><body>
<h1>{title}</h1><div class="meta" id="meta"></div>
<input id="search" placeholder="search concepts, classes, captions..." aria-label="search">
<table><thead><tr>
<th data-key="id">concept</th><th data-key="name">name (margin)</th><th data-key="energy">energy</th><th data-key="firing_rate">firing rate</th>
<th data-key="modality_score">modality score</th><th data-key="mds_class">MDS class</th>
<th>top-activating samples</th><th>bridge partners</th></tr></thead>
<tbody id="rows"></tbody></table>
<script id="concept-data" type="application/json">{data}</script>
<script>
const DATA = JSON.parse(document.getElementById('concept-data').textContent);
const meta = DATA.meta;
document.getElementById('meta').textContent = meta.num_concepts + ' concepts, ' + meta.num_pairs +
  (meta.paired ? ' image/caption pairs; MDS cut-offs ' + meta.mds_cutoffs.map(x => x.toFixed(3)).join(' / ') +
   '; ' + Object.entries(meta.mds_counts).map(([k, v]) => k + ': ' + v).join(', ') : ' samples');
let sortKey = 'energy', descending = true;
const fmt = x => (x === null || x === undefined) ? '-' : (typeof x === 'number' ? x.toPrecision(3) : x);
const esc = s => String(s).replace(/[&<>"]/g, c => ({{'&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;'}})[c]);
function sampleHtml(s) {{
  const cls = s.side === 'image' ? 'img' : (s.side === 'text' ? 'txt' : '');
  let body = esc(s.caption || s.name);
  if (s.thumbnail) body = '<img class="thumb" src="' + esc(s.thumbnail) + '" alt=""> ' + body;
  return '<span class="sample ' + cls + '" title="activation ' + s.activation + '">' + body + '</span>';
}}
function render() {{
  const q = document.getElementById('search').value.toLowerCase();
  const rows = DATA.concepts.filter(c => !q || JSON.stringify(c).toLowerCase().includes(q));
  rows.sort((a, b) => {{
    const x = a[sortKey], y = b[sortKey];
    if (x === y) return 0; if (x === null || x === undefined) return 1; if (y === null || y === undefined) return -1;
    return (x < y ? -1 : 1) * (descending ? -1 : 1);
  }});
  document.getElementById('rows').innerHTML = rows.map(c => '<tr data-id="' + c.id + '"><td>#' + c.id +
    '</td><td title="' + esc((c.names || []).join(', ')) + '">' +
    (c.name ? esc(c.name) + ' (' + fmt(c.name_margin) + ')' : '-') + '</td><td>' + fmt(c.energy) + '</td><td>' + fmt(c.firing_rate) + '</td><td>' + fmt(c.modality_score) +
    '</td><td><span class="tag">' + fmt(c.mds_class) + '</span></td><td>' + c.top_samples.map(sampleHtml).join('') +
    '</td><td>' + (c.bridge_partners || []).map(p => '#' + p.id + ' (' + p.score.toPrecision(2) + ')').join(', ') +
    '</td></tr>').join('');
  document.querySelectorAll('th').forEach(th => th.classList.toggle('sorted', th.dataset.key === sortKey));
}}
document.querySelectorAll('th[data-key]').forEach(th => th.addEventListener('click', () => {{
  descending = th.dataset.key === sortKey ? !descending : true; sortKey = th.dataset.key; render();
}}));
document.getElementById('search').addEventListener('input', render);
render();
</script></body></html>
"""


def write_page(table: dict, path: str, title: str = "jaxdisent concept explorer") -> str:
  # '</' inside the JSON would end the script element early
  if not table.get("concepts"):
    raise ValueError(f"no concepts to show (every latent is dead on the rows given); {path} was "
                     "left as it was")
  data = json.dumps(table).replace("</", "<\\/")
  tmp = path + ".tmp"  # a crash mid-write must not destroy an existing page
  with open(tmp, "w", encoding="utf-8") as f:
    f.write(_PAGE.format(title=html.escape(title), data=data))
  os.replace(tmp, path)
  return path


def read_page_data(path: str) -> dict:
  """The JSON embedded in a page written by :func:`write_page` (for tests and tools)."""
  with open(path, encoding="utf-8") as f:
    text = f.read()
  start = text.index('<script id="concept-data" type="application/json">')
  start = text.index(">", start) + 1
  end = text.index("</script>", start)
  return json.loads(text[start:end].replace("<\\/", "</"))
