"""Shared helpers of the export tests: the official fixture model and frames, and one export per test module."""

import functools
import os
import pickle

import numpy as np

from tests import testing

# Exported files must agree with the Keras model to this (max abs error).
TOL = 1e-4

fixture_model = testing.fixture_model


def fixture_frames():
  """(3, 256, 256, 3): the fixture source frame, then its two driving frames."""
  a = testing.arrays()
  return np.concatenate([testing.nchw_to_nhwc(a["source"]), testing.nchw_to_nhwc(a["driving"])]).astype(np.float32)


def write_fixture_media(folder):
  """(source.png, driving.mp4) written into `folder`: the fixture's source frame and its two driving frames, as the
  commands read them."""
  frames = np.round(fixture_frames() * 255).astype(np.uint8)
  source = testing.write_image(os.path.join(folder, "source.png"), frames[0])
  video = os.path.join(folder, "driving.mp4")
  testing.write_video(video, list(frames[1:]))
  return source, video


@functools.cache
def keras_fixture_animation():
  """(source, driving frames, the Keras frames of the fixture model animating them at batch 3): what every exported
  backend is compared with, computed once per process (read it, do not change it). The driving frames are the
  fixture's two and then the source."""
  from fomm_tf.inference import keras_backend  # pylint: disable=import-outside-toplevel
  from fomm_tf.inference import pipeline  # pylint: disable=import-outside-toplevel
  frames = fixture_frames()
  frames.flags.writeable = False  # Shared by the tests of a process: a change raises instead of leaking.
  driving = (*frames[1:], frames[0])
  expected = np.stack(list(pipeline.animate(keras_backend.for_model(fixture_model()), frames[0], driving,
                                            batch_size=3)))
  expected.flags.writeable = False
  return frames[0], driving, expected


def fixture_kp(prefix):
  a = testing.arrays()
  return {"value": a[prefix + "_value"], "jacobian": a[prefix + "_jacobian"]}


def max_abs(a, b):
  a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
  if a.shape != b.shape:
    raise AssertionError(f"shapes differ: {a.shape} vs {b.shape}")
  return float(np.max(np.abs(a - b)))


class ModuleExport:
  """One export of the fixture model per test module, made once per test run (testing.shared_artifact): a
  module's test classes may run on different pytest workers, and each would otherwise export again. Read only."""

  def __init__(self, name, **export_kwargs):
    self._name = name
    self._kwargs = export_kwargs
    self._result = None

  def get(self):
    """(export directory, the manifest export_model returned)."""
    if self._result is None:
      folder = testing.shared_artifact(self._name, self._export)
      with open(os.path.join(folder, _RETURNED), "rb") as f:
        self._result = (os.path.join(folder, "export"), pickle.load(f))
    return self._result

  def _export(self, folder):
    from fomm_tf.export import exporter  # pylint: disable=import-outside-toplevel
    manifest = exporter.export_model(fixture_model(),
                                     os.path.join(folder, "export"),
                                     checkpoint=testing.CHECKPOINT,
                                     **self._kwargs)
    with open(os.path.join(folder, _RETURNED), "wb") as f:
      pickle.dump(manifest, f)  # (pickle, not JSON: the returned object exactly as export_model made it)


# Beside the export, hidden from the app's model scan (export_onnx_test points it at the folder).
_RETURNED = ".returned.pickle"
