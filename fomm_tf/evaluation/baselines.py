"""Reference methods for reconstruction, run through the same evaluator as FOMM.

- `NoMotionBackend`: every prediction is the source frame itself.
- `GlobalAffineBackend`: one affine warp of the whole source per frame, fitted
  by least squares to the model's keypoints (driving -> source), i.e. FOMM with
  a single global motion instead of K local ones, no mask and no generator.
Both use the model's keypoint detector, so keypoint-based scores (AKD) are
measured the same way as for FOMM.
"""

import numpy as np
import tensorflow as tf

from fomm_tf.errors import UsageError
from fomm_tf.inference import backend as backend_lib
from fomm_tf.inference import keras_backend
from fomm_tf.ops import coordinates
from fomm_tf.ops import grid_sample as grid_sample_lib


class _DetectorBackend(backend_lib.Backend):

  def __init__(self, model):
    self._keras = keras_backend.for_model(model)
    self.frame_shape = self._keras.frame_shape
    self.num_kp = self._keras.num_kp
    self.align_corners = model.config.model.align_corners

  def detect_keypoints(self, frames):
    return self._keras.detect_keypoints(frames)

  def prepare_source(self, source):
    return {"source": np.asarray(source, np.float32)}


class NoMotionBackend(_DetectorBackend):
  name = "no_motion"

  def generate(self, state, kp_source, kp_driving):
    return np.repeat(state["source"], len(kp_driving["value"]), axis=0)


def fit_affine(kp_from, kp_to):
  """Least-squares (2, 3) affine A with A [x, y, 1]^T ~ kp_to for (K, 2) point sets."""
  design = np.concatenate([kp_from, np.ones((len(kp_from), 1))], axis=1).astype(np.float64)
  solution, *_ = np.linalg.lstsq(design, np.asarray(kp_to, np.float64), rcond=None)
  return solution.T.astype(np.float32)


class GlobalAffineBackend(_DetectorBackend):
  name = "global_affine"

  def generate(self, state, kp_source, kp_driving):
    source = state["source"]
    height, width = source.shape[1:3]
    grid = coordinates.make_coordinate_grid(height, width).numpy().reshape(-1, 2)
    homogeneous = np.concatenate([grid, np.ones((len(grid), 1), np.float32)], axis=1)
    grids = []
    for kp_d in kp_driving["value"]:
      # Backward warp: each output pixel samples the source where its driving position maps to.
      affine = fit_affine(kp_d, kp_source["value"][0])
      grids.append((homogeneous @ affine.T).reshape(height, width, 2))
    grids = np.stack(grids)
    sources = np.repeat(source, len(grids), axis=0)
    return grid_sample_lib.grid_sample(tf.constant(sources),
                                       tf.constant(grids),
                                       align_corners=self.align_corners,
                                       padding_mode="reflection").numpy()


METHODS = {"fomm": None, "no_motion": NoMotionBackend, "global_affine": GlobalAffineBackend}


def make_backend(method, model):
  if method not in METHODS:
    raise UsageError(f"--method must be one of {', '.join(METHODS)}, got {method!r}")
  if method == "fomm":
    return keras_backend.for_model(model)
  return METHODS[method](model)
