"""Equivariance losses under the random TPS transform (unweighted, as means)."""

import tensorflow as tf

from fomm_tf.ops import linalg


def equivariance_value_loss(kp_driving, kp_transformed, transform):
  """mean |kp_d - T(kp_t)|: keypoints of the warped frame, mapped back, must land on the originals."""
  warped = transform.warp_coordinates(kp_transformed["value"])
  return tf.reduce_mean(tf.abs(kp_driving["value"] - warped))


def equivariance_jacobian_loss(kp_driving, kp_transformed, transform):
  """mean |I - inv(J_d) J_T(kp_t) J_t|: Jacobians must compose with the transform's."""
  jac_transformed = linalg.matmul_2x2(transform.jacobian(kp_transformed["value"]), kp_transformed["jacobian"])
  value = linalg.matmul_2x2(linalg.inverse_2x2(kp_driving["jacobian"]), jac_transformed)
  return tf.reduce_mean(tf.abs(tf.eye(2, dtype=value.dtype) - value))
