"""Floating-point operations of a model's networks per animated frame, counted from the TensorFlow graph.

The counts come from TensorFlow's profiler on frozen concrete functions of the
three pieces animation runs: the keypoint detector (per frame), the generator's
source encoder (once per source) and its decoder with the dense motion network
(per driving frame). A multiply-add counts as two operations, as the profiler
and the paper's "GFLOPs" do; gathers (grid sampling) and element-wise
reshuffles have no registered cost and are not counted.
"""

import dataclasses

import tensorflow as tf
from tensorflow.python.framework import convert_to_constants  # pylint: disable=no-name-in-module


@dataclasses.dataclass(frozen=True)
class FrameGflops:
  """GFLOPs of one model at its frame size.

  Attributes:
    kp_detector: keypoints of one frame.
    encode_source: the generator's source encoder (once per source image).
    decode: dense motion, warping and decoder for one driving frame.
  """
  kp_detector: float
  encode_source: float
  decode: float

  @property
  def first_frame(self):
    """The first driving frame: keypoints of source and driving frame, the source encoder and the decoder."""
    return 2 * self.kp_detector + self.encode_source + self.decode

  @property
  def further_frame(self):
    """Every further driving frame: its keypoints and the decoder (the source's work is cached)."""
    return self.kp_detector + self.decode


def _graph_flops(function, *specs):
  concrete = tf.function(function, autograph=False).get_concrete_function(*specs)
  frozen = convert_to_constants.convert_variables_to_constants_v2(concrete)
  options = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
  options["output"] = "none"
  return tf.compat.v1.profiler.profile(graph=frozen.graph, options=options).total_float_ops


def frame_gflops(model):
  """A FrameGflops of a FommModel's keypoint detector and generator (batch 1, float32 graph).

  Args:
    model: a FommModel (its weights do not change the count).
  """
  shape = (1,) + tuple(model.frame_shape)
  num_kp = model.num_kp
  frame_spec = tf.TensorSpec(shape, tf.float32)
  kp_spec = {"value": tf.TensorSpec((1, num_kp, 2), tf.float32)}
  if model.config.model.estimate_jacobian:
    kp_spec["jacobian"] = tf.TensorSpec((1, num_kp, 2, 2), tf.float32)
  generator = model.generator
  state = generator.encode_source(tf.zeros(shape))
  state_spec = {k: tf.TensorSpec(v.shape, v.dtype) for k, v in state.items()}
  kp = _graph_flops(lambda frames: model.kp_detector(frames, training=False), frame_spec)
  encode = _graph_flops(lambda frames: generator.encode_source(frames, training=False), frame_spec)
  decode = _graph_flops(
      lambda source, source_state, kp_source, kp_driving: generator.decode(
          source, source_state, kp_source, kp_driving, training=False, with_deformed=False)["prediction"],
      frame_spec, state_spec, kp_spec, kp_spec)
  return FrameGflops(kp / 1e9, encode / 1e9, decode / 1e9)
