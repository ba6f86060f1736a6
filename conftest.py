"""pytest configuration shared by all tests."""

import os
import shutil
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import flags  # pylint: disable=g-import-not-at-top

# absltest helpers (create_tempdir, get_default_test_tmpdir) read absl flags,
# which only absltest.main() parses; under pytest the defaults are used.
if not flags.FLAGS.is_parsed():
  flags.FLAGS.mark_as_parsed()


def pytest_collection_modifyitems(config, items):
  # tf.test.TestCase inherits a deprecated `test_session` helper that pytest
  # collects as a (skipped) test; it is not one of ours.
  items[:] = [item for item in items if item.name != "test_session"]


def pytest_configure(config):
  # One folder per test run for the artifacts every pytest-xdist worker shares (testing.shared_artifact):
  # made by the controlling process before it starts the workers, which inherit the variable.
  if not hasattr(config, "workerinput") and "FOMM_TEST_SHARED_DIR" not in os.environ:
    config.fomm_shared_dir = tempfile.mkdtemp(prefix="fomm_test_shared_")
    os.environ["FOMM_TEST_SHARED_DIR"] = config.fomm_shared_dir


def pytest_unconfigure(config):
  shared = getattr(config, "fomm_shared_dir", None)
  if shared is not None:
    shutil.rmtree(shared, ignore_errors=True)
    os.environ.pop("FOMM_TEST_SHARED_DIR", None)
