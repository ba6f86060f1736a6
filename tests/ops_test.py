"""Numpy reference tests for the small ops: grids, heatmaps, blur, 2x2 algebra, hull area, TPS."""

import numpy as np
import tensorflow as tf
from absl.testing import absltest

from fomm_tf.ops import antialias
from fomm_tf.ops import coordinates
from fomm_tf.ops import linalg
from fomm_tf.ops import transform as transform_lib


def hull_area_np(points):
  """Andrew's monotone chain, then the shoelace formula."""
  pts = sorted(map(tuple, points))

  def cross(o, a, b):
    return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])

  lower, upper = [], []
  for p in pts:
    while len(lower) >= 2 and cross(lower[-2], lower[-1], p) <= 0:
      lower.pop()
    lower.append(p)
  for p in reversed(pts):
    while len(upper) >= 2 and cross(upper[-2], upper[-1], p) <= 0:
      upper.pop()
    upper.append(p)
  hull = lower[:-1] + upper[:-1]
  return 0.5 * abs(
      sum(hull[i][0] * hull[(i + 1) % len(hull)][1] - hull[(i + 1) % len(hull)][0] * hull[i][1]
          for i in range(len(hull))))


def random_transform(batch, seed, sigma_affine=0.05, sigma_tps=0.005, points=5):
  """An equivariance transform drawn like the trainer's: identity + N(0, sigma) affine, N(0, sigma) TPS weights."""
  theta = tf.random.stateless_normal([batch, 2, 3], seed=seed, stddev=sigma_affine) + tf.eye(2, 3)
  params = tf.random.stateless_normal([batch, 1, points**2], seed=[seed[0], seed[1] + 1], stddev=sigma_tps)
  control_points = tf.reshape(coordinates.make_coordinate_grid(points, points), [-1, 2])
  return transform_lib.RandomTransform(theta, control_points, params)


class OpsTest(tf.test.TestCase):

  def test_coordinate_grid(self):
    grid = coordinates.make_coordinate_grid(3, 5).numpy()
    self.assertEqual(grid.shape, (3, 5, 2))
    self.assertAllClose(grid[0, :, 0], np.linspace(-1, 1, 5))
    self.assertAllClose(grid[:, 0, 1], np.linspace(-1, 1, 3))
    self.assertAllEqual(grid[1, :, 1], np.zeros(5))

  def test_gaussian_heatmap(self):
    kp = np.array([[[0.0, 0.0], [1.0, -1.0]]], np.float32)
    heat = coordinates.keypoints_to_gaussian(kp, 5, 5, 0.01).numpy()
    self.assertEqual(heat.shape, (1, 5, 5, 2))
    self.assertAlmostEqual(heat[0, 2, 2, 0], 1.0, places=6)
    self.assertAlmostEqual(heat[0, 0, 4, 1], 1.0, places=6)
    # One pixel (0.5 in normalised units) away: exp(-0.5 * 0.25 / 0.01).
    self.assertAlmostEqual(heat[0, 2, 3, 0], np.exp(-12.5), places=9)

  def test_blur_kernel_matches_official_sizes(self):
    self.assertEqual(antialias.gaussian_kernel_size(0.25), 13)
    self.assertEqual(antialias.gaussian_kernel_size(0.5), 5)
    self.assertEqual(antialias.gaussian_kernel_size(0.125), 29)
    kernel = antialias.gaussian_blur_kernel(0.25)
    self.assertAlmostEqual(float(kernel.sum()), 1.0, places=6)
    self.assertAllClose(kernel, kernel.T)

  def test_anti_alias_downsample_matches_numpy(self):
    rng = np.random.default_rng(0)
    image = rng.random((1, 17, 19, 2)).astype(np.float32)
    scale = 0.25
    kernel = antialias.gaussian_blur_kernel(scale).astype(np.float64)
    ka, kb = antialias.padding_for_kernel(kernel.shape[0])
    padded = np.pad(image.astype(np.float64), ((0, 0), (ka, kb), (ka, kb), (0, 0)))
    k = kernel.shape[0]
    full = np.zeros((1, 17, 19, 2))
    for i in range(17):
      for j in range(19):
        full[0, i, j] = np.tensordot(kernel, padded[0, i:i + k, j:j + k], axes=([0, 1], [0, 1]))
    expected = full[:, ::4, ::4]
    actual = antialias.anti_alias_downsample(image, scale).numpy()
    self.assertEqual(actual.shape, expected.shape)
    self.assertAllClose(actual, expected, atol=1e-6)

  def test_inverse_and_matmul_2x2(self):
    rng = np.random.default_rng(1)
    m = rng.normal(size=(4, 3, 2, 2)) + 2 * np.eye(2)
    self.assertAllClose(linalg.inverse_2x2(m), np.linalg.inv(m), atol=1e-10)
    n = rng.normal(size=(4, 3, 2, 2))
    self.assertAllClose(linalg.matmul_2x2(m, n), m @ n, atol=1e-12)

  def test_convex_hull_area(self):
    rng = np.random.default_rng(2)
    for trial in range(20):
      pts = rng.uniform(-1, 1, (10, 2))
      self.assertAllClose(linalg.convex_hull_area(pts), hull_area_np(pts), atol=1e-10, msg=f"trial {trial}")
    square = np.array([[0, 0], [1, 0], [1, 1], [0, 1], [0.5, 0.5], [0.5, 0], [1, 0], [0, 0.25]], np.float64)
    self.assertAllClose(linalg.convex_hull_area(square), 1.0)
    collinear = np.array([[0, 0], [1, 1], [2, 2], [0.5, 0.5]], np.float64)
    self.assertAllClose(linalg.convex_hull_area(collinear), 0.0)
    batch = rng.uniform(-1, 1, (3, 10, 2)).astype(np.float32)
    self.assertAllClose(linalg.convex_hull_area(batch), [hull_area_np(b) for b in batch], atol=1e-5)

  def test_tps_jacobian_matches_autodiff(self):
    transform = random_transform(2, seed=[3, 4])
    coords = tf.constant(np.random.default_rng(3).uniform(-1, 1, (2, 7, 2)), tf.float32)
    with tf.GradientTape(persistent=True) as tape:
      tape.watch(coords)
      warped = transform.warp_coordinates(coords)
      wx = tf.reduce_sum(warped[..., 0])
      wy = tf.reduce_sum(warped[..., 1])
    expected = tf.stack([tape.gradient(wx, coords), tape.gradient(wy, coords)], axis=-2)
    self.assertAllClose(transform.jacobian(coords), expected, atol=1e-5)

  def test_affine_only_transform(self):
    theta = np.array([[[1.0, 0.0, 0.5], [0.0, 2.0, 0.0]]], np.float32)
    transform = transform_lib.RandomTransform(theta)
    coords = tf.constant([[[0.1, 0.2]]])
    self.assertAllClose(transform.warp_coordinates(coords), [[[0.6, 0.4]]])
    self.assertAllClose(transform.jacobian(coords), [[[[1.0, 0.0], [0.0, 2.0]]]])

  def test_transform_from_parameters_keeps_them(self):
    a = random_transform(2, seed=[1, 2])
    self.assertEqual(a.theta.shape, (2, 2, 3))
    self.assertEqual(a.control_params.shape, (2, 1, 25))
    self.assertEqual(a.control_points.shape, (25, 2))


if __name__ == "__main__":
  absltest.main()
