"""Inference backends: the calls animation needs, whatever runs the networks.

A Backend detects keypoints, prepares a source once per video, animates it to
batches of driving keypoints and transfers relative motion. Implementations:
KerasBackend (keras_backend.py), SavedModelBackend and TFLiteBackend (an
exported model directory). All arrays in and out are numpy float32, NHWC.
"""

import numpy as np

from fomm_tf.errors import AnimationError

HULL_ERROR = ("adapt_movement_scale: the initial driving keypoints span no area (all collinear); "
              "use relative motion without --adapt_scale")


class Backend:
  """Interface of an animation backend."""

  name = "base"
  precision = "float32"
  frame_shape = None  # (H, W, C)
  num_kp = None

  def detect_keypoints(self, frames):
    """frames (B, H, W, 3) in [0, 1] -> {'value': (B, K, 2), 'jacobian': (B, K, 2, 2)}."""
    raise NotImplementedError

  def prepare_source(self, source):
    """source (1, H, W, 3) -> opaque state reused for every driving frame of one video."""
    raise NotImplementedError

  def generate(self, state, kp_source, kp_driving):
    """Animates the prepared source to each of the B driving keypoint sets -> (B, H, W, 3)."""
    raise NotImplementedError

  def normalize_kp(self, kp_source, kp_driving, kp_driving_initial, adapt_movement_scale,
                   use_relative_movement, use_relative_jacobian):
    # Imported here: it needs TensorFlow, which the exported backends (TFLite, ONNX) run without.
    from fomm_tf.ops import normalize_kp as normalize_lib  # pylint: disable=import-outside-toplevel
    out = normalize_lib.normalize_kp(kp_source, kp_driving, kp_driving_initial, adapt_movement_scale,
                                     use_relative_movement, use_relative_jacobian)
    return check_normalized({k: np.asarray(v) for k, v in out.items()}, adapt_movement_scale)


def check_normalized(kp, adapt_movement_scale):
  """A degenerate convex hull (adapt scale) shows as non-finite keypoints; that is the input's fault."""
  if adapt_movement_scale and not np.all(np.isfinite(kp["value"])):
    raise AnimationError(HULL_ERROR)
  return kp
