"""Inference backends: the three calls animation needs, whatever runs the networks.

`KerasBackend` runs the Keras model; the export issue adds SavedModel and
TFLite backends with the same interface. All arrays are numpy float32, NHWC.
"""

import numpy as np
import tensorflow as tf

from fomm_tf.ops import normalize_kp as normalize_lib


class Backend:
  """Interface of an animation backend."""

  name = "base"
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
    out = normalize_lib.normalize_kp(kp_source, kp_driving, kp_driving_initial, adapt_movement_scale,
                                     use_relative_movement, use_relative_jacobian)
    return {k: np.asarray(v) for k, v in out.items()}


class KerasBackend(Backend):
  """Runs a FommModel; source features are computed once per video and each batch is one tf.function call."""

  name = "keras"

  def __init__(self, model):
    self.model = model
    self.frame_shape = tuple(model.frame_shape)
    self.num_kp = model.num_kp
    generator = model.generator
    self._prepare = tf.function(lambda source: generator.encode_source(source, training=False))
    self._generate = tf.function(self._generate_impl, reduce_retracing=True)

  def _generate_impl(self, source, state, kp_source, kp_driving):
    batch = tf.shape(kp_driving["value"])[0]
    tile = lambda x: tf.repeat(x, batch, axis=0)
    state = {k: tile(v) for k, v in state.items()}
    kp_source = {k: tile(v) for k, v in kp_source.items()}
    out = self.model.generator.decode(tile(source), state, kp_source, kp_driving, training=False,
                                      with_deformed=False)
    return out["prediction"]

  def detect_keypoints(self, frames):
    out = self.model.detect_keypoints(np.asarray(frames, np.float32))
    return {k: v.numpy() for k, v in out.items()}

  def prepare_source(self, source):
    source = tf.convert_to_tensor(np.asarray(source, np.float32))
    return {"source": source, "state": self._prepare(source)}

  def generate(self, state, kp_source, kp_driving):
    kp_source = {k: tf.convert_to_tensor(v, tf.float32) for k, v in kp_source.items()}
    kp_driving = {k: tf.convert_to_tensor(v, tf.float32) for k, v in kp_driving.items()}
    return self._generate(state["source"], state["state"], kp_source, kp_driving).numpy()
