"""Shared helpers of the export tests: the official fixture model and frames, and one export per test module."""

import os
import shutil
import tempfile

import numpy as np

from tests import testing

# Exported files must agree with the Keras model to this (max abs error).
TOL = 1e-4

fixture_model = testing.fixture_model


def fixture_frames():
  """(3, 256, 256, 3): the fixture source frame, then its two driving frames."""
  a = testing.arrays()
  return np.concatenate([testing.nchw_to_nhwc(a["source"]), testing.nchw_to_nhwc(a["driving"])]).astype(np.float32)


def fixture_kp(prefix):
  a = testing.arrays()
  return {"value": a[prefix + "_value"], "jacobian": a[prefix + "_jacobian"]}


def max_abs(a, b):
  a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
  if a.shape != b.shape:
    raise AssertionError(f"shapes differ: {a.shape} vs {b.shape}")
  return float(np.max(np.abs(a - b)))


class ModuleExport:
  """One export per test module, made on first use into a temp dir that `cleanup` removes."""

  def __init__(self, prefix, **export_kwargs):
    self._prefix = prefix
    self._kwargs = export_kwargs
    self._root = None
    self._result = None

  def get(self):
    """(export directory, manifest)."""
    if self._result is None:
      from fomm_tf.export import exporter
      self._root = tempfile.mkdtemp(prefix=self._prefix)
      directory = os.path.join(self._root, "export")
      manifest = exporter.export_model(fixture_model(), directory, checkpoint=testing.CHECKPOINT, **self._kwargs)
      self._result = (directory, manifest)
    return self._result

  def cleanup(self):
    if self._root is not None:
      shutil.rmtree(self._root)
      self._root = None
      self._result = None
