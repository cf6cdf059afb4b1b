"""The concept explorer: complete page data, and (where Chromium is installed) a real render."""

import os
import shutil
import subprocess

import pytest

from jaxdisent.runs import fit
from jaxdisent.viz import explorer
from launch.explore import explore, main as explore_main

from test_sae import sae_config


@pytest.fixture(scope="module")
def page(tmp_path_factory):
  root = tmp_path_factory.mktemp("explore")
  workdir = str(root / "run")
  fit(sae_config(**{"train.num_steps": 20}), workdir, quiet=True)
  captions = root / "captions.txt"
  captions.write_text("\n".join(f"caption <{i}></script><b>x</b> & more" for i in range(300)))
  path = explore(workdir, num_pairs=300, log=lambda *a: None)
  return workdir, path, captions


@pytest.mark.slow
def test_page_data_is_complete(page):
  workdir, path, _ = page
  data = explorer.read_page_data(path)
  assert data["meta"]["num_concepts"] == 64 and data["meta"]["paired"]
  assert sum(data["meta"]["mds_counts"].values()) == 64
  live = [c for c in data["concepts"] if c["firing_rate"] > 0]
  assert live
  for concept in live:
    assert {"id", "energy", "modality_score", "mds_class", "top_samples", "bridge_partners"} <= set(concept)
    assert concept["top_samples"] and concept["top_samples"][0]["name"].startswith("pair ")
    acts = [s["activation"] for s in concept["top_samples"]]
    assert acts == sorted(acts, reverse=True)
  text = open(path, encoding="utf-8").read()
  assert "http://" not in text and "https://" not in text      # no network
  assert os.path.dirname(path) == workdir


def test_captions_are_embedded_and_escaped(page, tmp_path):
  workdir, _, captions = page
  out = str(tmp_path / "with_captions.html")
  assert explore_main([f"--workdir={workdir}", f"--captions={captions}", "--num_pairs=300",
                       f"--out={out}"]) == 0
  data = explorer.read_page_data(out)
  sample = next(c for c in data["concepts"] if c["top_samples"])["top_samples"][0]
  assert sample["caption"].endswith("></script><b>x</b> & more")   # round-trips exactly
  raw = open(out, encoding="utf-8").read()
  template = open(str(page[1]), encoding="utf-8").read()
  # a caption's '</script>' must not close the data element early: the page has exactly as many
  # closing tags as a page without captions, and the captions appear only in escaped form
  assert raw.count("</script>") == template.count("</script>") == 2
  assert "<b>x</b>" not in raw and "<\\/script><b>x<\\/b>" in raw
  before = open(out, encoding="utf-8").read()
  for bad in ("0", "-5", "abc"):
    assert explore_main([f"--workdir={workdir}", f"--num_pairs={bad}", f"--out={out}"]) == 2
  assert open(out, encoding="utf-8").read() == before                 # the good page is untouched
  short = tmp_path / "short.txt"
  short.write_text("only one line")
  assert explore_main([f"--workdir={workdir}", f"--captions={short}"]) == 2


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (.ci/run installs it)")
def test_page_renders_in_headless_chromium(page, tmp_path):
  _, path, _ = page
  done = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
                         "--disable-background-networking", "--disable-component-update",
                         "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}",
                         "--dump-dom", "file://" + path], capture_output=True, text=True, timeout=120)
  assert done.returncode == 0, done.stderr[-2000:]
  body = done.stdout.split('<tbody id="rows">', 1)[1].split("</tbody>", 1)[0]
  rendered_rows = body.count('<tr data-id="')
  assert rendered_rows == 64, rendered_rows
  assert "MDS cut-offs" in done.stdout
