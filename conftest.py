"""pytest configuration shared by all tests."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def pytest_collection_modifyitems(config, items):
  # tf.test.TestCase inherits a deprecated `test_session` helper that pytest
  # collects as a (skipped) test; it is not one of ours.
  items[:] = [item for item in items if item.name != "test_session"]
