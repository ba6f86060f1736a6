"""The reconstruction baselines: the source copied, and one global affine warp fitted to the keypoints."""

import numpy as np
from absl.testing import absltest

import fomm_tf
from fomm_tf import errors
from fomm_tf.evaluation import baselines
from tests import testing


class BaselinesTest(testing.TestCase):

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls.model = fomm_tf.load_model(testing.fixture_config(), checkpoint=testing.CHECKPOINT)
    cls.source = testing.nchw_to_nhwc(testing.arrays()["source"])

  def test_fit_affine_recovers_a_known_transform(self):
    rng = np.random.default_rng(0)
    points = rng.uniform(-1, 1, (10, 2))
    affine = np.array([[0.9, 0.1, 0.05], [-0.2, 1.1, -0.1]])
    moved = points @ affine[:, :2].T + affine[:, 2]
    np.testing.assert_allclose(baselines.fit_affine(points, moved), affine, atol=1e-5)

  def test_no_motion_returns_the_source(self):
    backend = baselines.NoMotionBackend(self.model)
    state = backend.prepare_source(self.source)
    kp = backend.detect_keypoints(np.repeat(self.source, 3, axis=0))
    out = backend.generate(state, kp, kp)
    self.assertEqual(out.shape, (3, 256, 256, 3))
    np.testing.assert_array_equal(out[2], self.source[0])

  def test_global_affine_with_identical_keypoints_is_the_identity(self):
    backend = baselines.GlobalAffineBackend(self.model)
    state = backend.prepare_source(self.source)
    kp = backend.detect_keypoints(self.source)
    np.testing.assert_allclose(backend.generate(state, kp, kp)[0], self.source[0], atol=1e-4)

  def test_global_affine_shift(self):
    backend = baselines.GlobalAffineBackend(self.model)
    state = backend.prepare_source(self.source)
    kp = backend.detect_keypoints(self.source)
    # Driving keypoints 8 pixels to the right: the result is the source moved right by 8 pixels.
    step = 2.0 / 255
    shifted = {"value": kp["value"] + np.array([8 * step, 0.0], np.float32)}
    out = backend.generate(state, kp, shifted)[0]
    np.testing.assert_allclose(out[:, 8:], self.source[0, :, :-8], atol=1e-3)

  def test_unknown_method(self):
    with self.assertRaisesRegex(errors.UsageError, "--method must be one of fomm, no_motion, global_affine"):
      baselines.make_backend("optical_flow", self.model)


if __name__ == "__main__":
  absltest.main()
