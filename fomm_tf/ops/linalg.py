"""Small closed-form linear algebra that stays in TFLite builtin ops."""

import tensorflow as tf


def inverse_2x2(matrix):
  """Inverse of (..., 2, 2) matrices in closed form (tf.linalg.inv needs select ops in TFLite)."""
  a = matrix[..., 0, 0]
  b = matrix[..., 0, 1]
  c = matrix[..., 1, 0]
  d = matrix[..., 1, 1]
  det = a * d - b * c
  row0 = tf.stack([d, -b], axis=-1)
  row1 = tf.stack([-c, a], axis=-1)
  return tf.stack([row0, row1], axis=-2) / det[..., tf.newaxis, tf.newaxis]


def matmul_2x2(lhs, rhs):
  """Product of (..., 2, 2) matrices written elementwise (exact and TFLite-friendly)."""
  rows = []
  for i in range(2):
    rows.append(tf.stack([lhs[..., i, 0] * rhs[..., 0, j] + lhs[..., i, 1] * rhs[..., 1, j] for j in range(2)],
                         axis=-1))
  return tf.stack(rows, axis=-2)


def convex_hull_area(points):
  """Area of the convex hull of each set of 2-D points, in graph.

  An ordered pair (i, j) is a counter-clockwise hull edge when no point lies
  strictly to its right and no point lies strictly inside the segment. Summing
  the shoelace terms of these edges gives the hull area. With K points this
  costs O(K^3) elementwise work, trivial for K = 10 keypoints.

  Args:
    points: (..., K, 2) tensor.

  Returns:
    (...) tensor of areas (0 for degenerate, e.g. collinear, point sets).
  """
  points = tf.convert_to_tensor(points)
  num = points.shape[-2]
  p = points[..., :, tf.newaxis, tf.newaxis, :]  # start i
  q = points[..., tf.newaxis, :, tf.newaxis, :]  # end j
  r = points[..., tf.newaxis, tf.newaxis, :, :]  # tested point k
  edge = q - p  # (..., i, j, 1, 2)
  rel = r - p  # (..., i, 1, k, 2)
  cross = edge[..., 0] * rel[..., 1] - edge[..., 1] * rel[..., 0]  # (..., i, j, k)
  along = tf.reduce_sum(edge * rel, axis=-1)  # (..., i, j, k)
  edge_len2 = tf.reduce_sum(tf.square(edge[..., 0, :]), axis=-1)  # (..., i, j)
  extent = tf.reduce_max(tf.abs(points), axis=[-2, -1])
  tol = (1e-6 * tf.square(tf.maximum(extent, 1.0)))[..., tf.newaxis, tf.newaxis]  # (..., 1, 1)
  tol3 = tol[..., tf.newaxis]
  # Points that coincide with an earlier point are dropped so that a doubled
  # vertex does not count its edges twice.
  earlier = tf.linalg.band_part(tf.ones([num, num], tf.bool), -1, 0) & ~tf.eye(num, dtype=tf.bool)
  duplicate = tf.reduce_any((edge_len2 <= tol) & earlier, axis=-1)  # (..., i)
  keep = ~duplicate
  right = cross < -tol3
  strictly_inside = (tf.abs(cross) <= tol3) & (along > tol3) & (along < edge_len2[..., tf.newaxis] - tol3)
  blocked = tf.reduce_any((right | strictly_inside) & keep[..., tf.newaxis, tf.newaxis, :], axis=-1)
  is_edge = ~blocked & (edge_len2 > tol) & keep[..., :, tf.newaxis] & keep[..., tf.newaxis, :]
  xi = points[..., :, tf.newaxis, 0]
  yi = points[..., :, tf.newaxis, 1]
  xj = points[..., tf.newaxis, :, 0]
  yj = points[..., tf.newaxis, :, 1]
  shoelace = xi * yj - xj * yi
  area = 0.5 * tf.reduce_sum(tf.where(is_edge, shoelace, tf.zeros_like(shoelace)), axis=[-2, -1])
  return tf.maximum(area, 0.0)
