"""grid_sample against a direct numpy reference of PyTorch's semantics, plus float64 gradient checks."""

import numpy as np
import tensorflow as tf
from absl.testing import absltest
from absl.testing import parameterized

from fomm_tf.ops import grid_sample as grid_sample_lib


def _reflect_np(x, size, align_corners):
  if align_corners:
    low, span = 0.0, size - 1.0
  else:
    low, span = -0.5, float(size)
  if span <= 0:
    return 0.0
  d = abs(x - low)
  flips = np.floor(d / span)
  extra = d - flips * span
  r = extra + low if flips % 2 == 0 else span - extra + low
  return min(max(r, 0.0), size - 1.0)


def grid_sample_np(image, grid, align_corners, padding_mode):
  """Per-pixel loops written straight from the definition of bilinear sampling."""
  b, h, w, c = image.shape
  _, ho, wo, _ = grid.shape
  out = np.zeros((b, ho, wo, c), np.float64)
  for n in range(b):
    for i in range(ho):
      for j in range(wo):
        x, y = grid[n, i, j]
        if align_corners:
          px, py = (x + 1) / 2 * (w - 1), (y + 1) / 2 * (h - 1)
        else:
          px, py = ((x + 1) * w - 1) / 2, ((y + 1) * h - 1) / 2
        if padding_mode == "reflection":
          px, py = _reflect_np(px, w, align_corners), _reflect_np(py, h, align_corners)
        x0, y0 = int(np.floor(px)), int(np.floor(py))
        for yy, wy in ((y0, 1 - (py - y0)), (y0 + 1, py - y0)):
          for xx, wx in ((x0, 1 - (px - x0)), (x0 + 1, px - x0)):
            if 0 <= xx < w and 0 <= yy < h:
              out[n, i, j] += wy * wx * image[n, yy, xx]
  return out


class GridSampleTest(tf.test.TestCase, parameterized.TestCase):

  @parameterized.product(align_corners=[True, False], padding_mode=["zeros", "reflection"])
  def test_matches_numpy_reference(self, align_corners, padding_mode):
    rng = np.random.default_rng(0)
    image = rng.random((2, 5, 7, 3))
    # Include points far outside [-1, 1] to exercise padding and multiple reflections.
    grid = rng.uniform(-2.5, 2.5, (2, 4, 6, 2))
    grid[0, 0, 0] = [-1.0, -1.0]
    grid[0, 0, 1] = [1.0, 1.0]
    expected = grid_sample_np(image, grid, align_corners, padding_mode)
    for dtype, tol in ((np.float64, 1e-12), (np.float32, 1e-5)):
      actual = grid_sample_lib.grid_sample(image.astype(dtype), grid.astype(dtype), align_corners, padding_mode)
      self.assertAllClose(actual, expected, atol=tol, rtol=0)

  def test_identity_grid_reproduces_image(self):
    from fomm_tf.ops import coordinates
    image = np.random.default_rng(1).random((1, 6, 9, 2)).astype(np.float32)
    grid = coordinates.make_coordinate_grid(6, 9)[tf.newaxis]
    self.assertAllClose(grid_sample_lib.grid_sample(image, grid, align_corners=True), image, atol=1e-6)

  @parameterized.product(align_corners=[True, False], padding_mode=["zeros", "reflection"])
  def test_gradients_float64(self, align_corners, padding_mode):
    rng = np.random.default_rng(2)
    image = tf.constant(rng.random((1, 4, 5, 2)))
    # Keep points away from integer pixel positions, where bilinear sampling has kinks.
    grid = tf.constant(rng.uniform(-1.3, 1.3, (1, 3, 3, 2)) + 0.013)

    def f(img, g):
      return grid_sample_lib.grid_sample(img, g, align_corners, padding_mode)

    theoretical, numerical = tf.test.compute_gradient(f, [image, grid], delta=1e-6)
    for t, n in zip(theoretical, numerical):
      self.assertAllClose(t, n, atol=1e-5, rtol=1e-5)

  def test_rejects_bad_arguments(self):
    with self.assertRaisesRegex(ValueError, "padding_mode"):
      grid_sample_lib.grid_sample(np.zeros((1, 2, 2, 1)), np.zeros((1, 1, 1, 2)), padding_mode="border")
    with self.assertRaisesRegex(ValueError, r"grid \(B,Ho,Wo,2\)"):
      grid_sample_lib.grid_sample(np.zeros((1, 2, 2, 1)), np.zeros((1, 1, 1, 3)))


if __name__ == "__main__":
  absltest.main()
