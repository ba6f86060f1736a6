"""Coordinate grids and keypoint heatmaps in the official FOMM convention.

Coordinates are (x, y) in [-1, 1] where -1 and +1 sit on the centres of the
corner pixels and x runs along the width.
"""

import tensorflow as tf


def make_coordinate_grid(height, width, dtype=tf.float32):
  """Returns a (height, width, 2) grid of (x, y) pixel-centre coordinates."""
  x = tf.range(width, dtype=dtype)
  y = tf.range(height, dtype=dtype)
  # Written as 2 * (i / (n - 1)) - 1, the official formula, so that float32
  # values agree bit for bit rather than to a few ulps.
  x = 2.0 * (x / tf.cast(width - 1, dtype)) - 1.0
  y = 2.0 * (y / tf.cast(height - 1, dtype)) - 1.0
  xx = tf.tile(x[tf.newaxis, :], [height, 1])
  yy = tf.tile(y[:, tf.newaxis], [1, width])
  return tf.stack([xx, yy], axis=-1)


def keypoints_to_gaussian(kp_value, height, width, kp_variance):
  """Gaussian heatmaps exp(-|z - kp|^2 / (2 variance)) for each keypoint.

  Args:
    kp_value: (B, K, 2) keypoints.
    height, width: the heatmap size.
    kp_variance: the Gaussian variance in normalised coordinates.

  Returns:
    (B, height, width, K) heatmaps.
  """
  grid = make_coordinate_grid(height, width, kp_value.dtype)
  diff = grid[tf.newaxis, :, :, tf.newaxis, :] - kp_value[:, tf.newaxis, tf.newaxis, :, :]
  sq = tf.reduce_sum(tf.square(diff), axis=-1)
  return tf.exp(-0.5 * sq / kp_variance)
