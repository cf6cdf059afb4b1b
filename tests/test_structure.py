"""The package's shape (issue 21): checked on the source's import statements, no JAX needed."""

import ast
import os

from conftest import ROOT

PACKAGE = os.path.join(ROOT, "jaxdisent")


def _imports(path):
  """(module names imported, at top level or inside functions) of one source file."""
  with open(path) as f:
    tree = ast.parse(f.read())
  names = []
  for node in ast.walk(tree):
    if isinstance(node, ast.Import):
      names += [alias.name for alias in node.names]
    elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
      names.append(node.module)
      names += [f"{node.module}.{alias.name}" for alias in node.names]
  return names


def _files(directory):
  for base, _, files in os.walk(directory):
    for name in files:
      if name.endswith(".py"):
        yield os.path.join(base, name)


def _package_of(module):
  parts = module.split(".")
  return parts[1] if len(parts) > 1 and parts[0] == "jaxdisent" else None


def test_no_launcher_imports_another_launcher():
  for path in _files(os.path.join(ROOT, "launch")):
    own = [m for m in _imports(path) if m.startswith("launch.") or m == "launch"]
    assert all(m in ("launch.common",) or m.startswith("launch.common.") for m in own), (path, own)


def test_the_library_never_imports_a_launcher():
  for path in _files(PACKAGE):
    assert not [m for m in _imports(path) if m == "launch" or m.startswith("launch.")], path


def test_the_engine_imports_no_data_source_and_no_runner():
  for path in _files(os.path.join(PACKAGE, "train")):
    bad = [m for m in _imports(path) if _package_of(m) in ("data", "runs", "studies", "oracles")]
    assert not bad, (path, bad)
  # fit / fit_group take the method: the engine imports nothing from methods/ (runs.fit builds it)
  users = sorted(os.path.basename(p) for p in _files(os.path.join(PACKAGE, "train"))
                 if any(_package_of(m) == "methods" for m in _imports(p)))
  assert users == []


def test_evaluation_lives_in_evals_and_the_old_homes_are_gone():
  assert not os.path.exists(os.path.join(PACKAGE, "graphs"))
  assert not os.path.exists(os.path.join(PACKAGE, "evals", "builtin.py"))
  assert not os.path.exists(os.path.join(PACKAGE, "train", "restore.py"))
  for path in _files(os.path.join(PACKAGE, "methods")):
    with open(path) as f:
      tree = ast.parse(f.read())
    for cls in [n for n in tree.body if isinstance(n, ast.ClassDef)]:
      methods = {n.name for n in cls.body if isinstance(n, ast.FunctionDef)}
      assert "evaluate" not in methods, f"{path}: {cls.name}.evaluate belongs in jaxdisent/evals"


def test_top_level_packages_have_no_import_cycle():
  edges = {}
  for path in _files(PACKAGE):
    rel = os.path.relpath(path, PACKAGE).split(os.sep)
    source = rel[0][:-3] if rel[0].endswith(".py") else rel[0]
    for module in _imports(path):
      target = _package_of(module)
      if target and target != source:
        edges.setdefault(source, set()).add(target)

  def reaches(start, goal, seen=()):
    return any(n == goal or (n not in seen and reaches(n, goal, seen + (n,)))
               for n in edges.get(start, ()))
  cycles = sorted(f"{a} <-> {b}" for a in edges for b in edges[a] if reaches(b, a))
  assert not cycles, cycles


def test_one_data_front_door():
  """Every method builds its data with jaxdisent.data.make_source(config, kind); no other
  factory spelling exists."""
  factories = []
  for path in _files(PACKAGE):
    with open(path) as f:
      tree = ast.parse(f.read())
    factories += [f"{os.path.relpath(path, PACKAGE)}:{n.name}" for n in tree.body
                  if isinstance(n, ast.FunctionDef) and n.name.startswith("make_")
                  and n.name.endswith(("_data", "_source", "_truth")) and n.name != "make_source"]
  assert not factories, factories
  for path in _files(os.path.join(PACKAGE, "methods")):
    with open(path) as f:
      text = f.read()
    if "self.data = " in text:
      assert "self.data = make_source(config, " in text, path


def test_function_local_imports_of_our_own_modules_have_one_of_three_reasons():
  """The lazy-import rule (docs/architecture.md): a function-local import of jaxdisent is allowed
  only for plotting (jaxdisent.viz: matplotlib), for the evaluators from the engine (their
  scikit-learn / SciPy imports cost ~1 s of start-up) and for the data registry's sources (a
  source module loads when a config names it)."""
  bad = []
  for path in _files(PACKAGE):
    rel = os.path.relpath(path, PACKAGE)
    with open(path) as f:
      tree = ast.parse(f.read())
    top = set(id(n) for n in tree.body)
    for node in ast.walk(tree):
      if id(node) in top or not isinstance(node, (ast.Import, ast.ImportFrom)):
        continue
      names = ([node.module or ""] if isinstance(node, ast.ImportFrom)
               else [a.name for a in node.names])
      for module in names:
        if module != "jaxdisent" and not module.startswith("jaxdisent."):
          continue
        allowed = (module.startswith("jaxdisent.viz")
                   or (rel.startswith("train" + os.sep) and module.startswith("jaxdisent.evals"))
                   or (rel == os.path.join("data", "registry.py")
                       and module.startswith("jaxdisent.data.")))
        if not allowed:
          bad.append(f"{rel}:{node.lineno} {module}")
  assert not bad, bad
