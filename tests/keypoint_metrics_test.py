"""AKD / MKR / AED, the fitted keypoint map and the external-detector file layout, on exact numbers."""

import os

import numpy as np
from absl.testing import absltest

from fomm_tf.evaluation import keypoint_metrics as km
from fomm_tf.errors import EvaluationError
from tests import testing


def random_keypoints(frames, num_kp, seed=0, scale=64.0):
  return np.random.default_rng(seed).uniform(0.0, scale, (frames, num_kp, 2))


class KeypointMetricsTest(testing.TestCase):

  def test_identical_keypoints_score_zero(self):
    kp = random_keypoints(7, 5)
    scores = km.keypoint_metrics(kp, kp.copy())
    self.assertEqual(scores["akd"], 0.0)
    self.assertEqual(scores["mkr"], 0.0)
    self.assertEqual((scores["num_gt_found"], scores["num_matched"], scores["num_missing"]), (35, 35, 0))

  def test_akd_is_mean_euclidean_distance_in_pixels(self):
    gt = random_keypoints(4, 3)
    pred = gt.copy()
    pred[..., 0] += 3.0
    pred[..., 1] -= 4.0
    pred[0, 0] = gt[0, 0] + [6.0, 8.0]  # one keypoint 10 px away, the other 11 at 5 px.
    self.assertAlmostEqual(km.keypoint_metrics(pred, gt)["akd"], (10.0 + 11 * 5.0) / 12, places=12)

  def test_nan_keypoints_count_as_missing(self):
    gt = random_keypoints(3, 4)
    pred = gt + 1.0  # every matched keypoint sqrt(2) px away.
    gt[0, 0] = np.nan  # not found in ground truth: counts nowhere, even though pred has it.
    gt[2, 3, 1] = np.nan  # one NaN coordinate is enough.
    pred[1, 1] = np.nan  # found in gt, missing in pred.
    pred[1, 2] = np.nan
    pred[2, 0, 0] = np.nan
    pred[2, 3] = np.nan  # missing in both: counts nowhere.
    scores = km.keypoint_metrics(pred, gt)
    self.assertEqual(scores["num_gt_found"], 10)
    self.assertEqual(scores["num_missing"], 3)
    self.assertEqual(scores["num_matched"], 7)
    self.assertAlmostEqual(scores["mkr"], 0.3, places=12)
    self.assertAlmostEqual(scores["akd"], np.sqrt(2.0), places=12)

  def test_found_masks_add_to_nan(self):
    gt = random_keypoints(2, 5)
    pred = gt.copy()
    pred[0, 4] += [30.0, 40.0]
    pred_found = np.ones((2, 5), bool)
    pred_found[0, 4] = False  # the far-off keypoint is reported as not found.
    gt_found = np.ones((2, 5), bool)
    gt_found[1, :2] = False
    scores = km.keypoint_metrics(pred, gt, pred_found=pred_found, gt_found=gt_found)
    self.assertEqual((scores["num_gt_found"], scores["num_matched"], scores["num_missing"]), (8, 7, 1))
    self.assertEqual(scores["akd"], 0.0)
    self.assertAlmostEqual(scores["mkr"], 1 / 8, places=12)

  def test_nothing_found_gives_nan(self):
    gt = np.full((2, 3, 2), np.nan)
    scores = km.keypoint_metrics(random_keypoints(2, 3), gt)
    self.assertTrue(np.isnan(scores["akd"]))
    self.assertTrue(np.isnan(scores["mkr"]))
    self.assertEqual(scores["num_gt_found"], 0)

  def test_bad_inputs_raise_one_line_errors(self):
    kp = random_keypoints(2, 3)
    cases = [
        (lambda: km.keypoint_metrics(kp, kp[:, :2]), "pred_kp has shape (2, 3, 2) but gt_kp has shape (2, 2, 2)"),
        (lambda: km.keypoint_metrics(np.zeros((2, 3, 3)), np.zeros((2, 3, 3))), "expected keypoints of shape"),
        (lambda: km.keypoint_metrics(np.full((2, 3, 2), np.inf), kp), "infinite"),
        (lambda: km.keypoint_metrics(kp, kp, pred_found=np.ones((2, 3))), "must be a boolean array"),
        (lambda: km.keypoint_metrics(kp, kp, gt_found=np.ones((3, 2), bool)), "does not match"),
        (lambda: km.aed(np.zeros((2, 4)), np.zeros((2, 5))), "aed: pred_embeddings has shape (2, 4)"),
        (lambda: km.aed(np.zeros((2, 4)), np.full((2, 4), np.nan)), "NaN"),
    ]
    for call, message in cases:
      with self.assertRaises(EvaluationError) as context:
        call()
      self.assertIn(message, str(context.exception))
      self.assertNotIn("\n", str(context.exception))

  def test_combine_pools_all_keypoints(self):
    first, second = random_keypoints(3, 4, seed=1), random_keypoints(5, 4, seed=2)
    pred_first, pred_second = first + 1.0, second + 2.0
    pred_second[0, 0] = np.nan
    combined = km.combine_keypoint_metrics(
        [km.keypoint_metrics(pred_first, first),
         km.keypoint_metrics(pred_second, second)])
    pooled = km.keypoint_metrics(np.concatenate([pred_first, pred_second]), np.concatenate([first, second]))
    for key in pooled:
      self.assertAlmostEqual(combined[key], pooled[key], places=12)

  def test_aed_is_mean_l2_distance(self):
    gt = np.zeros((2, 3, 4))
    pred = np.zeros((2, 3, 4))
    pred[0, 0, :2] = [3.0, 4.0]
    self.assertAlmostEqual(km.aed(pred, gt), 5.0 / 6, places=12)
    self.assertEqual(km.aed(gt, gt), 0.0)

  def test_normalized_to_pixels_puts_minus_one_and_one_at_corner_pixel_centres(self):
    pixels = km.normalized_to_pixels([[-1.0, -1.0], [1.0, 1.0], [0.0, 0.0]], (48, 64))
    np.testing.assert_allclose(pixels, [[0.0, 0.0], [63.0, 47.0], [31.5, 23.5]])


class KeypointMapTest(testing.TestCase):

  def test_map_recovers_an_affine_combination_exactly(self):
    detected = random_keypoints(9, 6, seed=3)
    weights = np.random.default_rng(4).normal(size=(4, 6))
    offsets = np.random.default_rng(5).normal(size=(4, 2)) * 10
    target = np.einsum("gk,tkc->tgc", weights, detected) + offsets
    keypoint_map = km.fit_keypoint_map(detected, target)
    np.testing.assert_allclose(keypoint_map(detected), target, atol=1e-9)
    unseen = random_keypoints(3, 6, seed=6)
    np.testing.assert_allclose(keypoint_map(unseen), np.einsum("gk,tkc->tgc", weights, unseen) + offsets, atol=1e-9)

  def test_identity_map_gives_zero_akd(self):
    detected = random_keypoints(8, 5, seed=7)
    scores = km.mapped_akd(detected, detected, detected)
    self.assertAlmostEqual(scores["akd"], 0.0, places=9)
    self.assertAlmostEqual(scores["akd_real"], 0.0, places=9)

  def test_mapped_akd_measures_generated_error_through_the_map(self):
    real = random_keypoints(10, 5, seed=8)
    generated = real.copy()
    generated[:, :, 0] += 2.0  # every generated keypoint 2 px to the right.
    gt = real * 2.0 + 5.0  # ground truth at twice the detector's scale: the map doubles distances.
    scores = km.mapped_akd(real, generated, gt)
    self.assertAlmostEqual(scores["akd_real"], 0.0, places=9)
    self.assertAlmostEqual(scores["akd"], 4.0, places=9)

  def test_map_is_rotation_aware(self):
    # The target is 'elbow + 1.5 * (wrist - elbow)' at any orientation: one shared weight set fits all frames.
    angles = np.linspace(0.0, 2 * np.pi, 12)
    elbow = np.stack([10 + 0 * angles, 20 + 0 * angles], axis=-1)
    wrist = elbow + 8 * np.stack([np.cos(angles), np.sin(angles)], axis=-1)
    detected = np.stack([elbow, wrist], axis=1)
    target = (elbow + 1.5 * (wrist - elbow))[:, np.newaxis]
    np.testing.assert_allclose(km.fit_keypoint_map(detected, target)(detected), target, atol=1e-9)

  def test_map_rejects_nan_and_mismatched_frames(self):
    with self.assertRaisesRegex(EvaluationError, "same T"):
      km.fit_keypoint_map(random_keypoints(3, 2), random_keypoints(4, 2))
    bad = random_keypoints(3, 2)
    bad[0, 0, 0] = np.nan
    with self.assertRaisesRegex(EvaluationError, "finite"):
      km.fit_keypoint_map(bad, random_keypoints(3, 2))


class ExternalKeypointsTest(testing.TestCase):

  def write(self, directory, name, array):
    np.save(os.path.join(directory, name), np.asarray(array))

  def test_per_video_and_pooled_scores(self):
    directory = self.create_tempdir().full_path
    gt_a = random_keypoints(4, 3, seed=1)
    pred_a = gt_a + [3.0, 4.0]
    pred_a[0, 0] = np.nan
    gt_b = random_keypoints(2, 3, seed=2)
    self.write(directory, "a_gt.npy", gt_a)
    self.write(directory, "a_pred.npy", pred_a)
    self.write(directory, "b_gt.npy", gt_b)
    self.write(directory, "b_pred.npy", gt_b)
    self.write(directory, "unrelated.npy", np.zeros(3))
    rows, overall = km.evaluate_external_keypoints(directory)
    self.assertEqual([r["video"] for r in rows], ["a", "b"])
    self.assertEqual((rows[0]["frames"], rows[0]["num_keypoints"]), (4, 3))
    self.assertAlmostEqual(rows[0]["akd"], 5.0, places=9)
    self.assertAlmostEqual(rows[0]["mkr"], 1 / 12, places=12)
    self.assertEqual(rows[1]["akd"], 0.0)
    self.assertAlmostEqual(overall["akd"], 5.0 * 11 / 17, places=9)
    self.assertAlmostEqual(overall["mkr"], 1 / 18, places=12)

  def test_layout_errors_name_the_file(self):
    directory = self.create_tempdir().full_path
    with self.assertRaisesRegex(EvaluationError, "no NAME_gt.npy / NAME_pred.npy"):
      km.load_external_keypoints(directory)
    self.write(directory, "a_gt.npy", random_keypoints(4, 3))
    with self.assertRaisesRegex(EvaluationError, r"a_gt\.npy: no matching a_pred\.npy"):
      km.load_external_keypoints(directory)
    self.write(directory, "a_pred.npy", random_keypoints(5, 3))
    with self.assertRaisesRegex(EvaluationError, r"a_pred\.npy: shape \(5, 3, 2\) differs"):
      km.load_external_keypoints(directory)
    self.write(directory, "a_pred.npy", random_keypoints(4, 3)[..., :1])
    with self.assertRaisesRegex(EvaluationError, r"expected keypoints of shape \(T, N, 2\), got \(4, 3, 1\)"):
      km.load_external_keypoints(directory)
    with self.assertRaisesRegex(EvaluationError, "does not exist"):
      km.load_external_keypoints(os.path.join(directory, "missing"))


if __name__ == "__main__":
  absltest.main()
