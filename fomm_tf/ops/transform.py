"""The random equivariance transform: affine + thin-plate-spline warp.

Follows the official `Transform`: coordinates are mapped by an affine matrix
theta and a TPS term sum_c w_c r_c^2 log(r_c + 1e-6) with r_c the L1 distance
to control point c. As in the official code, the scalar TPS term is added to
both the x and the y coordinate.
"""

import tensorflow as tf

from fomm_tf.ops import coordinates
from fomm_tf.ops import grid_sample as grid_sample_lib

_TPS_EPS = 1e-6


class RandomTransform:
  """A batch of random affine + TPS transforms of [-1, 1] coordinates."""

  def __init__(self, theta, control_points=None, control_params=None):
    """Builds a transform from explicit parameters.

    Args:
      theta: (B, 2, 3) affine matrices.
      control_points: (P, 2) TPS control points, or None for affine only.
      control_params: (B, 1, P) TPS weights, or None for affine only.
    """
    self.theta = tf.convert_to_tensor(theta, tf.float32)
    self.tps = control_points is not None
    if self.tps:
      self.control_points = tf.convert_to_tensor(control_points, tf.float32)
      self.control_params = tf.convert_to_tensor(control_params, tf.float32)

  def _cast(self, dtype):
    if not self.tps:
      return tf.cast(self.theta, dtype), None, None
    return (tf.cast(self.theta, dtype), tf.cast(self.control_points, dtype), tf.cast(self.control_params, dtype))

  def warp_coordinates(self, coords):
    """Maps (B, N, 2) coordinates through the transform."""
    theta, points, params = self._cast(coords.dtype)
    x = coords[..., 0]
    y = coords[..., 1]
    new_x = theta[:, 0:1, 0] * x + theta[:, 0:1, 1] * y + theta[:, 0:1, 2]
    new_y = theta[:, 1:2, 0] * x + theta[:, 1:2, 1] * y + theta[:, 1:2, 2]
    if self.tps:
      diff = coords[:, :, tf.newaxis, :] - points[tf.newaxis, tf.newaxis, :, :]
      r = tf.reduce_sum(tf.abs(diff), axis=-1)
      term = tf.reduce_sum(tf.square(r) * tf.math.log(r + _TPS_EPS) * params, axis=-1)
      new_x += term
      new_y += term
    return tf.stack([new_x, new_y], axis=-1)

  def jacobian(self, coords):
    """(B, N, 2, 2) Jacobian d warp / d coords at (B, N, 2) coordinates, in closed form."""
    theta, points, params = self._cast(coords.dtype)
    batch_n = tf.shape(coords)[:2]
    a = tf.broadcast_to(theta[:, tf.newaxis, :, :2], tf.concat([batch_n, [2, 2]], axis=0))
    if not self.tps:
      return a
    diff = coords[:, :, tf.newaxis, :] - points[tf.newaxis, tf.newaxis, :, :]
    r = tf.reduce_sum(tf.abs(diff), axis=-1)
    # d/dr [r^2 log(r + eps)] = 2 r log(r + eps) + r^2 / (r + eps); dr/dx = sign(dx).
    dterm = 2.0 * r * tf.math.log(r + _TPS_EPS) + tf.square(r) / (r + _TPS_EPS)
    grad = tf.reduce_sum((dterm * params)[..., tf.newaxis] * tf.sign(diff), axis=2)  # (B, N, 2)
    return a + grad[:, :, tf.newaxis, :]

  def transform_frame(self, frame, align_corners=True):
    """Warps (B, H, W, C) frames with reflection padding, like the official code."""
    height, width = frame.shape[1], frame.shape[2]
    grid = coordinates.make_coordinate_grid(height, width, frame.dtype)
    grid = tf.reshape(grid, [1, height * width, 2])
    grid = tf.tile(grid, [tf.shape(frame)[0], 1, 1])
    warped = tf.reshape(self.warp_coordinates(grid), [-1, height, width, 2])
    return grid_sample_lib.grid_sample(frame, warped, align_corners=align_corners, padding_mode="reflection")
