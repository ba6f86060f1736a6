"""Tests that BUILD names every module and test, and that its checker works.

Under Bazel this file runs from the runfiles tree, which holds only the files BUILD
already names; the real source tree is found through the runfiles symlink of this
file, so a module missing from BUILD is still seen.
"""

import os
import subprocess
import sys
import tempfile

from absl.testing import absltest

from tests import testing
from tools import update_build

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.realpath(__file__)))
UPDATE_BUILD_SCRIPT = os.path.realpath(update_build.__file__)


def _make_workspace(test_case):
  """Returns an empty temp dir removed after the test.

  tempfile rather than absltest's create_tempdir, which needs absl flags parsed
  and so fails under pytest.
  """
  return test_case.enterContext(tempfile.TemporaryDirectory(prefix="build_file_test_"))


def _write(root, relative_path, text=""):
  path = os.path.join(root, relative_path)
  os.makedirs(os.path.dirname(path), exist_ok=True)
  with open(path, "w", encoding="utf-8") as file:
    file.write(text)


def _read(root, relative_path):
  with open(os.path.join(root, relative_path), encoding="utf-8") as file:
    return file.read()


class RepositoryBuildFileTest(testing.TestCase):

  def test_build_file_matches_source_tree(self):
    problems = update_build.check(REPO_ROOT)
    self.assertEqual(problems, [],
                     "BUILD is out of date; run .venv/bin/python tools/update_build.py:\n" + "\n".join(problems))

  def test_build_file_names_this_test(self):
    build_text = _read(REPO_ROOT, update_build.BUILD_FILE_NAME)
    self.assertIn("tests/build_file_test.py", update_build.named_files(build_text))


class CheckerTest(testing.TestCase):
  """Runs the checker on small workspaces made in a temp dir."""

  def setUp(self):
    super().setUp()
    self.root = _make_workspace(self)
    _write(self.root, "WORKSPACE")
    _write(self.root, "fomm_tf/__init__.py")
    _write(self.root, "fomm_tf/ops/__init__.py")
    _write(self.root, "fomm_tf/ops/warp.py")
    _write(self.root, "fomm_tf/models/weights.json", "{}")
    _write(self.root, "configs/vox-256.flags", "--num_kp=10\n")
    _write(self.root, "tools/train.py")
    _write(self.root, "tests/helpers.py")
    _write(self.root, "tests/testdata/frame.png", "not really a png")
    _write(self.root, "tests/warp_test.py")
    # Caches and hidden files are never sources.
    _write(self.root, "fomm_tf/ops/__pycache__/warp.cpython-311.pyc")
    _write(self.root, "fomm_tf/.hidden.py")

  def test_complete_tree_passes(self):
    self.assertTrue(update_build.write_build(self.root))
    self.assertEqual(update_build.check(self.root), [])

  def test_generated_build_names_each_kind_of_file(self):
    update_build.write_build(self.root)
    build_text = _read(self.root, "BUILD")
    self.assertEqual(
        update_build.named_files(build_text), {
            "fomm_tf/__init__.py",
            "fomm_tf/ops/__init__.py",
            "fomm_tf/ops/warp.py",
            "fomm_tf/models/weights.json",
            "configs/vox-256.flags",
            "tools/train.py",
            "tests/helpers.py",
            "tests/testdata/frame.png",
            "tests/warp_test.py",
        })
    self.assertIn('name = "warp_test"', build_text)
    self.assertIn('main = "tests/warp_test.py"', build_text)
    self.assertNotIn("glob(", build_text)

  def test_missing_module_fails(self):
    update_build.write_build(self.root)
    _write(self.root, "fomm_tf/ops/resample.py")
    self.assertEqual(update_build.check(self.root), ["missing from BUILD: fomm_tf/ops/resample.py"])

  def test_missing_tool_and_test_fail(self):
    update_build.write_build(self.root)
    _write(self.root, "tools/export.py")
    _write(self.root, "tests/export_test.py")
    self.assertEqual(update_build.check(self.root), [
        "missing from BUILD: tests/export_test.py",
        "missing from BUILD: tools/export.py",
    ])

  def test_deleted_file_still_named_fails(self):
    update_build.write_build(self.root)
    os.remove(os.path.join(self.root, "fomm_tf/ops/warp.py"))
    self.assertEqual(update_build.check(self.root), ["BUILD names a file that does not exist: fomm_tf/ops/warp.py"])

  def test_hand_edit_that_keeps_files_fails(self):
    update_build.write_build(self.root)
    build_path = os.path.join(self.root, "BUILD")
    edited = _read(self.root, "BUILD").replace('size = "medium"', 'size = "small"')
    _write(self.root, "BUILD", edited)
    problems = update_build.check(self.root)
    self.assertLen(problems, 1)
    self.assertIn(build_path, problems[0])
    self.assertIn("differs from the generated text", problems[0])

  def test_missing_build_file_fails(self):
    self.assertEqual(update_build.check(self.root),
                     [f"{os.path.join(self.root, 'BUILD')} does not exist; "
                      f"run tools/update_build.py"])

  def test_unparseable_build_file_raises(self):
    _write(self.root, "BUILD", "py_library(name = \n")
    with self.assertRaisesRegex(update_build.BuildFileError, r"BUILD:\d+: cannot parse BUILD"):
      update_build.check(self.root)

  def test_rewrite_is_deterministic_and_idempotent(self):
    self.assertTrue(update_build.write_build(self.root))
    first = _read(self.root, "BUILD")
    self.assertFalse(update_build.write_build(self.root))
    self.assertEqual(_read(self.root, "BUILD"), first)
    self.assertEqual(sorted(os.listdir(self.root)), ["BUILD", "WORKSPACE", "configs", "fomm_tf", "tests", "tools"])

  def test_nested_test_file_raises(self):
    _write(self.root, "tests/ops/warp_test.py")
    with self.assertRaisesRegex(update_build.BuildFileError, "tests/ops/warp_test.py must sit directly in tests/"):
      update_build.find_sources(self.root)

  def test_file_name_bazel_cannot_express_raises(self):
    _write(self.root, "fomm_tf/ops/my warp.py")
    with self.assertRaisesRegex(update_build.BuildFileError, "cannot name 'fomm_tf/ops/my warp.py' in BUILD"):
      update_build.find_sources(self.root)


class CommandLineTest(testing.TestCase):
  """Runs tools/update_build.py as a program, as CI and developers do."""

  def _run(self, *args):
    return subprocess.run([sys.executable, UPDATE_BUILD_SCRIPT, *args], capture_output=True, text=True, check=False)

  def test_check_exit_codes_and_rewrite(self):
    root = _make_workspace(self)
    _write(root, "WORKSPACE")
    _write(root, "fomm_tf/ops/warp.py")
    _write(root, "tests/warp_test.py")

    missing = self._run("--check", "--root", root)
    self.assertEqual(missing.returncode, 1)
    self.assertIn("does not exist; run tools/update_build.py", missing.stdout)

    written = self._run("--root", root)
    self.assertEqual(written.returncode, 0, written.stderr)
    self.assertEqual(written.stdout, f"wrote: {os.path.join(root, 'BUILD')}\n")

    complete = self._run("--check", "--root", root)
    self.assertEqual((complete.returncode, complete.stdout), (0, ""))

    _write(root, "fomm_tf/ops/resample.py")
    incomplete = self._run("--check", "--root", root)
    self.assertEqual((incomplete.returncode, incomplete.stdout), (1, "missing from BUILD: fomm_tf/ops/resample.py\n"))

  def test_root_without_workspace_is_rejected(self):
    root = _make_workspace(self)
    result = self._run("--check", "--root", root)
    self.assertEqual(result.returncode, 2)
    self.assertEqual(result.stderr, f"error: {root} is not a Bazel workspace (no WORKSPACE file)\n")


if __name__ == "__main__":
  absltest.main()
