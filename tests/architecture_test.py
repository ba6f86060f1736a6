"""The package's shape: imports go strictly downward between packages, and no module imports itself back.

Every import statement counts, also the lazy ones inside functions: a cycle
through a lazy import is still a cycle, only one that shows up later. The
allowed dependencies below are the "Architecture" table of the README.
"""

import ast
import os
import re
import subprocess
import sys

from absl.testing import absltest

from tests import testing

PACKAGE_DIR = os.path.join(testing.REPO_ROOT, "fomm_tf")

# What each part of fomm_tf may import (besides itself). Top-level modules count as parts.
ALLOWED = {
    "errors": set(),
    "checks": set(),
    "visualization": set(),
    "config": {"errors"},
    "io": {"errors", "checks"},
    "ops": {"errors"},
    "layers": {"ops", "errors"},
    "models": {"layers", "ops", "config", "errors"},
    "checkpoint": {"models", "layers", "ops", "config", "io", "errors"},
    "builtin": {"checkpoint", "config", "errors"},
    "losses": {"checkpoint", "layers", "ops", "io", "errors"},
    "data": {"io", "config", "errors", "checks"},
    "training": {
        "losses", "models", "checkpoint", "data", "layers", "ops", "config", "io", "errors", "checks", "visualization",
        "cli"
    },
    "inference": {"models", "checkpoint", "ops", "config", "io", "errors"},
    "export": {"inference", "models", "checkpoint", "ops", "config", "io", "errors", "cli"},
    "cli": {"builtin", "checkpoint", "config", "errors"},
    "faces": {"io", "errors", "checks"},
    "animation": {"faces", "inference", "builtin", "cli", "visualization", "ops", "io", "errors", "config"},
    "evaluation": {"faces", "inference", "data", "cli", "visualization", "ops", "io", "errors", "config"},
    "live": {"animation", "faces", "inference", "builtin", "cli", "io", "errors", "config"},
    "app": {"live", "animation", "faces", "inference", "builtin", "cli", "io", "errors", "config", "checkpoint"},
    # The `python -m fomm_tf.<command>` shims run their command's package.
    "animate": {"animation", "inference"},  # Imported by name it stands for the animation function.
    "train": {"training"},
    "evaluate": {"evaluation"},
}
# Public API, resolved lazily in fomm_tf/__init__.py: it may name anything.
ROOT = "fomm_tf"


def module_name(path):
  relative = os.path.relpath(path, testing.REPO_ROOT)[:-len(".py")].replace(os.sep, ".")
  return relative[:-len(".__init__")] if relative.endswith(".__init__") else relative


def package_modules():
  modules = {}
  for directory, _, names in os.walk(PACKAGE_DIR):
    for name in names:
      if name.endswith(".py"):
        path = os.path.join(directory, name)
        modules[module_name(path)] = path
  return modules


def imported_modules(path, modules, name):
  """fomm_tf modules that `path` imports anywhere in its code (a `from a import b` of a module counts as b)."""
  with open(path, encoding="utf-8") as f:
    tree = ast.parse(f.read(), path)
  is_package = path.endswith("__init__.py")
  found = set()
  for node in ast.walk(tree):
    if isinstance(node, ast.Import):
      targets = [alias.name for alias in node.names]
    elif isinstance(node, ast.ImportFrom):
      base = node.module or ""
      if node.level:
        parts = name.split(".")
        anchor = parts if is_package else parts[:-1]
        anchor = anchor[:len(anchor) - node.level + 1]
        base = ".".join(anchor + ([base] if base else []))
      targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names]
    else:
      continue
    for target in targets:
      while target and target not in modules:
        target = target.rpartition(".")[0]
      if target.startswith("fomm_tf") and target != name:
        found.add(target)
  return found


def part(module):
  parts = module.split(".")
  return parts[1] if len(parts) > 1 else ROOT


def import_graph():
  modules = package_modules()
  return {name: imported_modules(path, modules, name) for name, path in modules.items()}


def cycles(graph):
  """Strongly connected components of more than one module (Tarjan)."""
  index, low, stack, on_stack, out = {}, {}, [], set(), []
  counter = [0]

  def visit(node):
    index[node] = low[node] = counter[0]
    counter[0] += 1
    stack.append(node)
    on_stack.add(node)
    for target in graph.get(node, ()):
      if target not in index:
        visit(target)
        low[node] = min(low[node], low[target])
      elif target in on_stack:
        low[node] = min(low[node], index[target])
    if low[node] == index[node]:
      component = []
      while True:
        member = stack.pop()
        on_stack.discard(member)
        component.append(member)
        if member == node:
          break
      if len(component) > 1:
        out.append(sorted(component))

  for node in sorted(graph):
    if node not in index:
      visit(node)
  return out


class ArchitectureTest(testing.TestCase):

  def test_no_import_cycles(self):
    self.assertEqual(cycles(import_graph()), [])

  def test_imports_go_downward(self):
    graph = import_graph()
    known = set(ALLOWED) | {ROOT}
    self.assertEqual(sorted({part(m) for m in graph} - known), [], "a new part of fomm_tf needs a row in ALLOWED")
    violations = []
    for module, targets in sorted(graph.items()):
      source = part(module)
      if source == ROOT:
        continue
      for target in sorted(targets):
        destination = part(target)
        if destination != source and destination not in ALLOWED[source] and target != ROOT:
          violations.append(f"{module} -> {target}")
        if target == ROOT:
          violations.append(f"{module} -> {target} (the lazy public API is for users, not for the package)")
    self.assertEqual(violations, [])

  def test_parts_without_cycles_between_them(self):
    # The table itself must be a hierarchy.
    self.assertEqual(cycles({name: deps for name, deps in ALLOWED.items()}), [])

  def test_the_checker_sees_lazy_imports_and_cycles(self):
    graph = {"fomm_tf.a.x": {"fomm_tf.b.y"}, "fomm_tf.b.y": {"fomm_tf.a.x"}, "fomm_tf.c.z": set()}
    self.assertEqual(cycles(graph), [["fomm_tf.a.x", "fomm_tf.b.y"]])
    path = self.create_tempfile("m.py", "def f():\n  from fomm_tf.io import media\n  import fomm_tf.errors\n").full_path
    modules = {"fomm_tf.io.media": "", "fomm_tf.errors": "", "fomm_tf.io": ""}
    self.assertEqual(imported_modules(path, modules, "fomm_tf.m"), {"fomm_tf.io.media", "fomm_tf.errors"})

  def test_the_animate_entry_point_is_not_imported(self):
    # Importing the module fomm_tf.animate would replace the function fomm_tf.animate on the package.
    graph = import_graph()
    self.assertEqual([m for m, targets in graph.items() if "fomm_tf.animate" in targets], [])

  def test_every_command_has_one_entry_point_form(self):
    # `python -m fomm_tf.<command>` is the package's __main__.py where the command is the package's name, else a
    # top-level module; either way it only runs `main()` of the package's cli.py, as the console script does.
    with open(os.path.join(testing.REPO_ROOT, "pyproject.toml"), encoding="utf-8") as f:
      scripts = dict(re.findall(r'^fomm-(\w+) = "fomm_tf\.(\w+)\.cli:main"$', f.read(), re.M))
    self.assertGreaterEqual(set(scripts), {"animate", "train", "evaluate", "export", "app", "live"})
    for command, package in scripts.items():
      with self.subTest(command):
        shim = os.path.join(PACKAGE_DIR, package, "__main__.py") if command == package else os.path.join(
            PACKAGE_DIR, command + ".py")
        with open(shim, encoding="utf-8") as f:
          tree = ast.parse(f.read())
        main_block = [node for node in tree.body if isinstance(node, ast.If)][0]
        self.assertEqual(ast.unparse(main_block.test), "__name__ == '__main__'")
        self.assertEqual([ast.unparse(node) for node in main_block.body],
                         [f"from fomm_tf.{package} import cli", "cli.main()"])

  def test_importing_every_module_leaves_fomm_tf_animate_the_animation_function(self):
    # As pydoc or Sphinx would, every top-level module of the package by name: those are the ones whose names
    # are attributes of the package (the public API's `animate` among them); a subpackage's modules are not.
    code = ("import importlib, pkgutil, fomm_tf\n"
            "for info in pkgutil.iter_modules(fomm_tf.__path__):\n"
            "  importlib.import_module('fomm_tf.' + info.name)\n"
            "from fomm_tf.inference import pipeline\n"
            "import fomm_tf.animate as animate\n"
            "print(fomm_tf.animate is pipeline.animate, animate is pipeline.animate)\n")
    result = subprocess.run([sys.executable, "-c", code],
                            cwd=testing.REPO_ROOT,
                            capture_output=True,
                            text=True,
                            check=False)
    self.assertEqual(result.returncode, 0, result.stderr[-2000:])
    self.assertEqual(result.stdout.split()[-2:], ["True", "True"])


if __name__ == "__main__":
  absltest.main()
