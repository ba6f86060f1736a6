"""Relative motion transfer of keypoints (the official `normalize_kp`), in graph."""

import tensorflow as tf

from fomm_tf.errors import AnimationError
from fomm_tf.ops import linalg


def movement_scale(kp_source_value, kp_driving_initial_value):
  """sqrt(hull area of source kp) / sqrt(hull area of initial driving kp), per batch element -> (B,)."""
  source_area = linalg.convex_hull_area(kp_source_value)
  driving_area = linalg.convex_hull_area(kp_driving_initial_value)
  return tf.sqrt(source_area) / tf.sqrt(driving_area)


def normalize_kp(kp_source,
                 kp_driving,
                 kp_driving_initial,
                 adapt_movement_scale=False,
                 use_relative_movement=False,
                 use_relative_jacobian=False):
  """Transfers the driving motion onto the source keypoints.

  Relative movement: value = (kp_d - kp_d0) * scale + kp_s; relative Jacobian:
  J = (J_d inv(J_d0)) J_s. Without relative movement the driving keypoints are
  returned unchanged (absolute transfer). Source and initial-driving keypoints
  broadcast against the driving batch (batch 1 against B frames).

  Args:
    adapt_movement_scale: python bool, or a scalar bool tensor (for exported graphs).

  Raises:
    AnimationError: in eager mode, when adapt_movement_scale is on and the hull of
      the initial driving keypoints has zero area.
  """
  kp_new = dict(kp_driving)
  if not _is_tensor(use_relative_movement) and not use_relative_movement:
    return kp_new
  value_d = kp_driving["value"]
  value_d0 = kp_driving_initial["value"]
  value_s = kp_source["value"]
  if _is_tensor(adapt_movement_scale) or adapt_movement_scale:
    scale = movement_scale(value_s, value_d0)
    if tf.executing_eagerly() and not _is_tensor(adapt_movement_scale) and not bool(
        tf.reduce_all(tf.math.is_finite(scale))):
      raise AnimationError("adapt_movement_scale: the initial driving keypoints span no area (all collinear); "
                           "use relative motion without --adapt_scale")
    if _is_tensor(adapt_movement_scale):
      scale = tf.where(tf.cast(adapt_movement_scale, tf.bool), scale, tf.ones_like(scale))
    scale = scale[:, tf.newaxis, tf.newaxis]
  else:
    scale = 1.0
  relative_value = (value_d - value_d0) * scale + value_s
  if _is_tensor(use_relative_movement):
    relative_value = tf.where(tf.cast(use_relative_movement, tf.bool), relative_value, value_d)
  kp_new["value"] = relative_value
  if "jacobian" in kp_driving and kp_driving["jacobian"] is not None and (_is_tensor(use_relative_jacobian) or
                                                                          use_relative_jacobian):
    jac_diff = linalg.matmul_2x2(kp_driving["jacobian"], linalg.inverse_2x2(kp_driving_initial["jacobian"]))
    relative_jac = linalg.matmul_2x2(jac_diff, kp_source["jacobian"])
    if _is_tensor(use_relative_jacobian) or _is_tensor(use_relative_movement):
      flag = tf.cast(use_relative_jacobian, tf.bool) & tf.cast(use_relative_movement, tf.bool)
      relative_jac = tf.where(flag, relative_jac, kp_driving["jacobian"])
    kp_new["jacobian"] = relative_jac
  return kp_new


def _is_tensor(x):
  return tf.is_tensor(x)
