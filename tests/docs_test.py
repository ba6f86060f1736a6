"""The README and docs/: the front door stays short, every page is linked, and every command shown uses only
flags its program defines (so the documentation cannot drift from the code)."""

import ast
import glob
import importlib
import os
import re
import shlex

from absl import flags
from absl.testing import absltest

from tests import testing

README = os.path.join(testing.REPO_ROOT, "README.md")
DOCS = sorted(glob.glob(os.path.join(testing.REPO_ROOT, "docs", "*.md")))
MAX_README_BYTES = 12 * 1024
# `python -m fomm_tf.X` -> the module whose define_flags declares its flags.
COMMAND_MODULES = {
    "animate": "fomm_tf.animation.cli",
    "train": "fomm_tf.training.cli",
    "evaluate": "fomm_tf.evaluation.cli",
    "export": "fomm_tf.export.cli",
    "app": "fomm_tf.app.cli",
    "live": "fomm_tf.live.cli",
}
ABSL_FLAGS = {"flagfile", "helpfull", "help", "helpshort"}


def _read(path):
  with open(path, encoding="utf-8") as f:
    return f.read()


def fenced_commands(text):
  """The shell commands of the ```bash blocks: continuation lines joined, comments dropped, split at && | ;."""
  commands = []
  for block in re.findall(r"```(?:bash|sh|shell)\n(.*?)```", text, re.S):
    joined = re.sub(r"\s*\\\n\s*", " ", block)
    for line in joined.splitlines():
      line = line.split(" #")[0].strip()
      if not line or line.startswith("#"):
        continue
      commands.extend(part.strip() for part in re.split(r"&&|\|\||[|;]", line) if part.strip())
  return commands


def program_of(words):
  """('module', name) for python -m fomm_tf.X / fomm-X, ('tool', path) for python tools/X.py, else None."""
  for i, word in enumerate(words):
    if word == "-m" and i + 1 < len(words) and words[i + 1].startswith("fomm_tf."):
      return "module", words[i + 1].split(".", 1)[1], words[i + 2:]
    if word.startswith("fomm-") and word[len("fomm-"):] in COMMAND_MODULES:  # Not `pip install fomm-tf[onnx]`.
      return "module", word[len("fomm-"):], words[i + 1:]
    if word.startswith("tools/") and word.endswith(".py"):
      return "tool", word, words[i + 1:]
  return None


def _fresh_flags(define):
  flag_values = flags.FlagValues()
  define(flag_values)
  return flag_values


def _flag_names(flag_values):
  names = set(ABSL_FLAGS)
  for name, flag in flag_values._flags().items():  # pylint: disable=protected-access
    names.add(name)
    if isinstance(flag, flags.BooleanFlag):
      names.add("no" + name)
  return names


def module_flags(command):
  return _flag_names(_fresh_flags(importlib.import_module(COMMAND_MODULES[command]).define_flags))


def tool_flags(path):
  """The flags a tool script declares, read from its source: its DEFINE_* calls and the project's define_*flags
  helpers it calls (imported from fomm_tf), without running the script."""
  tree = ast.parse(_read(os.path.join(testing.REPO_ROOT, path)))
  imported = {}
  for node in ast.walk(tree):
    if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("fomm_tf"):
      for alias in node.names:
        imported[alias.asname or alias.name] = f"{node.module}.{alias.name}"
  names = set(ABSL_FLAGS)
  for node in ast.walk(tree):
    if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
      continue
    if node.func.attr.startswith("DEFINE_") and node.args and isinstance(node.args[0], ast.Constant):
      names.add(node.args[0].value)
      if node.func.attr == "DEFINE_boolean" or node.func.attr == "DEFINE_bool":
        names.add("no" + node.args[0].value)
    elif (re.fullmatch(r"define_\w*flags", node.func.attr) and isinstance(node.func.value, ast.Name) and
          node.func.value.id in imported):
      module = importlib.import_module(imported[node.func.value.id])
      names |= _flag_names(_fresh_flags(getattr(module, node.func.attr)))
  return names


class DocsTest(testing.TestCase):

  def test_the_readme_is_at_most_12_kb(self):
    self.assertLessEqual(os.path.getsize(README), MAX_README_BYTES)

  def test_every_docs_page_is_linked_from_the_readme_and_every_link_resolves(self):
    readme = _read(README)
    self.assertNotEmpty(DOCS)
    for page in DOCS:
      self.assertIn(f"(docs/{os.path.basename(page)})", readme)
    for path in [README] + DOCS:
      for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", _read(path)):
        if not target.startswith(("http://", "https://")):
          self.assertTrue(os.path.exists(os.path.join(os.path.dirname(path), target)), f"{path}: {target}")

  def test_every_flag_of_every_documented_command_exists(self):
    cache = {}
    checked = 0
    for path in [README] + DOCS:
      for command in fenced_commands(_read(path)):
        program = program_of(shlex.split(command))
        if program is None:
          continue
        kind, name, args = program
        if kind == "module":
          self.assertIn(name, COMMAND_MODULES, f"{path}: unknown command in {command!r}")
        if (kind, name) not in cache:
          cache[kind, name] = module_flags(name) if kind == "module" else tool_flags(name)
        for arg in args:
          if arg.startswith("--"):
            flag = arg[2:].split("=", 1)[0]
            self.assertIn(flag, cache[kind, name], f"{os.path.basename(path)}: {command!r} uses --{flag}")
            checked += 1
    self.assertGreater(checked, 20)

  def test_the_checker_finds_a_flag_that_does_not_exist(self):
    commands = fenced_commands("```bash\npython -m fomm_tf.animate --no_such_flag=1 \\\n  --relative && ls\n```\n")
    self.assertEqual(commands, ["python -m fomm_tf.animate --no_such_flag=1 --relative", "ls"])
    flags_of_animate = module_flags("animate")
    self.assertIn("norelative", flags_of_animate)
    self.assertNotIn("no_such_flag", flags_of_animate)


if __name__ == "__main__":
  absltest.main()
