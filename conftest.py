"""pytest configuration shared by all tests."""

import os

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
