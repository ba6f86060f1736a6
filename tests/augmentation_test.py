"""Tests for fomm_tf/data/augmentation.py: flips, resize, crop, colour jitter."""

import colorsys

from absl.testing import absltest
import numpy as np

import fomm_tf
from fomm_tf.data import augmentation as aug
from tests import testing


def _clip(seed=0, num_frames=2, height=12, width=16):
  """A random clip whose frames all differ."""
  rng = np.random.default_rng(seed)
  return rng.random((num_frames, height, width, 3), dtype=np.float32)


class FlipTest(testing.TestCase):

  def test_horizontal_flip_mirrors_every_frame_or_none(self):
    clip = _clip()
    outcomes = set()
    for seed in range(20):
      out = aug.random_flip(clip, np.random.default_rng(seed), flip_time=False, flip_horizontal=True)
      mirrored = np.array_equal(out, clip[:, :, ::-1])
      self.assertTrue(mirrored or np.array_equal(out, clip), seed)
      outcomes.add(mirrored)
    self.assertEqual(outcomes, {True, False})

  def test_time_flip_swaps_source_and_driving(self):
    clip = _clip()
    outcomes = set()
    for seed in range(20):
      out = aug.random_flip(clip, np.random.default_rng(seed), flip_time=True, flip_horizontal=False)
      swapped = np.array_equal(out, clip[::-1])
      self.assertTrue(swapped or np.array_equal(out, clip), seed)
      outcomes.add(swapped)
    self.assertEqual(outcomes, {True, False})

  def _flip_counts(self, mode, draws=4000):
    clip = _clip()
    counts = {"none": 0, "time": 0, "horizontal": 0, "both": 0}
    rng = np.random.default_rng(0)
    for _ in range(draws):
      out = aug.random_flip(clip, rng, True, True, mode)
      for name, expected in (("none", clip), ("time", clip[::-1]), ("horizontal", clip[:, :, ::-1]),
                             ("both", clip[::-1, :, ::-1])):
        if np.array_equal(out, expected):
          counts[name] += 1
          break
    self.assertEqual(sum(counts.values()), draws)
    return {k: v / draws for k, v in counts.items()}

  def test_official_flips_time_half_horizontal_quarter_never_both(self):
    # The official RandomFlip: time flip with p=0.5 and stop; else a horizontal flip with p=0.5.
    share = self._flip_counts("official")
    self.assertEqual(share["both"], 0.0)
    # 4000 draws: the standard error of a share near 0.25-0.5 is under 0.008; 0.03 is ~4 sigma.
    self.assertAlmostEqual(share["time"], 0.5, delta=0.03)
    self.assertAlmostEqual(share["horizontal"], 0.25, delta=0.03)
    self.assertAlmostEqual(share["none"], 0.25, delta=0.03)

  def test_independent_flips_can_happen_together(self):
    share = self._flip_counts("independent")
    for name in ("none", "time", "horizontal", "both"):
      self.assertAlmostEqual(share[name], 0.25, delta=0.03, msg=name)

  def test_flips_off_keep_the_clip(self):
    clip = _clip()
    for seed in range(5):
      np.testing.assert_array_equal(aug.random_flip(clip, np.random.default_rng(seed), False, False), clip)


class ResizeCropTest(testing.TestCase):

  def test_resize_scales_all_frames_within_the_ratio(self):
    clip = _clip(height=40, width=50)
    sizes = set()
    for seed in range(10):
      out = aug.random_resize(clip, np.random.default_rng(seed), (0.5, 1.5))
      self.assertEqual(out.shape[0], 2)
      self.assertBetween(out.shape[1], 20, 60)
      self.assertBetween(out.shape[2], 25, 75)
      sizes.add(out.shape[1:3])
    self.assertGreater(len(sizes), 3)

  def test_crop_takes_the_same_window_from_both_frames(self):
    base = _clip(num_frames=1, height=20, width=20)[0]
    clip = np.stack([base, base * 0.5])
    offsets = set()
    for seed in range(10):
      out = aug.random_crop(clip, np.random.default_rng(seed), (8, 6))
      self.assertEqual(out.shape, (2, 8, 6, 3))
      np.testing.assert_allclose(out[1], out[0] * 0.5)
      # Find where the window came from in the original frame.
      matches = [(top, left)
                 for top in range(13)
                 for left in range(15)
                 if np.array_equal(base[top:top + 8, left:left + 6], out[0])]
      self.assertLen(matches, 1)
      offsets.add(matches[0])
    self.assertGreater(len(offsets), 3)

  def test_crop_larger_than_frame_pads_with_edge_pixels(self):
    clip = _clip(height=4, width=6)
    out = aug.random_crop(clip, np.random.default_rng(0), (8, 6))
    self.assertEqual(out.shape, (2, 8, 6, 3))
    np.testing.assert_array_equal(out[:, 2:6], clip)
    np.testing.assert_array_equal(out[:, 0], clip[:, 0])
    np.testing.assert_array_equal(out[:, 1], clip[:, 0])
    np.testing.assert_array_equal(out[:, 7], clip[:, -1])

  def test_mgif_resize_then_crop_output_shape(self):
    cfg = fomm_tf.load_config("mgif-256", frame_shape=[32, 32, 3], crop_size=[32, 32])
    params = aug.AugmentationParams.from_config(cfg.dataset)
    self.assertEqual(params.resize_ratio, (0.9, 1.1))
    self.assertEqual(params.crop_size, (32, 32))
    self.assertEqual(params.hue, 0.5)
    for seed in range(8):
      out = aug.augment_clip(_clip(seed, height=32, width=32), params, np.random.default_rng(seed))
      self.assertEqual(out.shape, (2, 32, 32, 3))
      self.assertEqual(out.dtype, np.float32)
      self.assertBetween(float(out.min()), 0.0, 1.0)
      self.assertBetween(float(out.max()), 0.0, 1.0)


class ColourTest(testing.TestCase):

  def test_brightness_contrast_saturation_at_zero(self):
    clip = _clip()
    np.testing.assert_array_equal(aug.adjust_brightness(clip, 0.0), 0.0)
    luma = clip @ np.array([0.299, 0.587, 0.114], np.float32)
    grey = aug.adjust_saturation(clip, 0.0)
    for channel in range(3):
      np.testing.assert_allclose(grey[..., channel], luma, atol=1e-6)
    flat = aug.adjust_contrast(clip, 0.0)
    for frame in range(2):
      np.testing.assert_allclose(flat[frame], luma[frame].mean(), atol=1e-6)

  def test_factor_one_is_identity(self):
    clip = _clip()
    for adjust in (aug.adjust_brightness, aug.adjust_contrast, aug.adjust_saturation):
      np.testing.assert_allclose(adjust(clip, 1.0), clip, atol=1e-6)
    np.testing.assert_allclose(aug.adjust_hue(clip, 0.0), clip, atol=1e-5)

  def test_hsv_matches_colorsys(self):
    pixels = np.random.default_rng(1).random((200, 3), dtype=np.float32)
    pixels[:4] = [[0, 0, 0], [1, 1, 1], [0.5, 0.5, 0.5], [1, 0, 0]]
    hsv = aug.rgb_to_hsv(pixels)
    expected = np.array([colorsys.rgb_to_hsv(*p) for p in pixels])
    np.testing.assert_allclose(hsv, expected, atol=1e-5)
    np.testing.assert_allclose(aug.hsv_to_rgb(hsv), pixels, atol=1e-5)

  def test_hue_shift_turns_red_into_green(self):
    red = np.zeros((1, 2, 2, 3), np.float32)
    red[..., 0] = 1.0
    green = aug.adjust_hue(red, 1.0 / 3.0)
    np.testing.assert_allclose(green[0, 0, 0], [0, 1, 0], atol=1e-5)
    blue = aug.adjust_hue(red, -1.0 / 3.0)
    np.testing.assert_allclose(blue[0, 0, 0], [0, 0, 1], atol=1e-5)

  def test_jitter_factors_stay_in_torchvision_ranges(self):
    rng = np.random.default_rng(0)
    draws = [aug.sample_jitter_factors(rng, 0.4, 1.5, 0.1, 0.2) for _ in range(500)]
    factors = np.array([d[1] for d in draws], dtype=np.float64)
    self.assertBetween(factors[:, 0].min(), 0.6, 0.65)
    self.assertBetween(factors[:, 0].max(), 1.35, 1.4)
    self.assertBetween(factors[:, 1].min(), 0.0, 0.1)  # max(0, 1 - 1.5)
    self.assertBetween(factors[:, 1].max(), 2.35, 2.5)
    self.assertBetween(factors[:, 2].min(), 0.9, 0.91)
    self.assertBetween(factors[:, 3].min(), -0.2, -0.18)
    self.assertBetween(factors[:, 3].max(), 0.18, 0.2)
    orders = {tuple(d[0]) for d in draws}
    self.assertGreater(len(orders), 12)
    for order in orders:
      self.assertEqual(sorted(order), [0, 1, 2, 3])

  def test_disabled_jitter_has_no_factor(self):
    _, factors = aug.sample_jitter_factors(np.random.default_rng(0), 0.0, 0.1, 0.0, 0.0)
    self.assertIsNone(factors[0])
    self.assertIsNotNone(factors[1])
    self.assertIsNone(factors[2])
    self.assertIsNone(factors[3])

  def test_jitter_stays_in_unit_range_and_treats_frames_alike(self):
    frame = _clip(num_frames=1)[0]
    clip = np.stack([frame, frame])
    for seed in range(10):
      out = aug.color_jitter(clip, np.random.default_rng(seed), 0.9, 0.9, 0.9, 0.5)
      self.assertEqual(out.dtype, np.float32)
      self.assertGreaterEqual(float(out.min()), 0.0)
      self.assertLessEqual(float(out.max()), 1.0)
      np.testing.assert_array_equal(out[0], out[1])
      self.assertGreater(float(np.abs(out - clip).max()), 1e-3)


class AugmentClipTest(testing.TestCase):

  def test_same_generator_state_same_result(self):
    params = aug.AugmentationParams(True, True, 0.3, 0.3, 0.3, 0.1, (0.8, 1.2), (10, 10))
    clip = _clip(height=12, width=12)
    first = aug.augment_clip(clip, params, np.random.default_rng(7))
    second = aug.augment_clip(clip, params, np.random.default_rng(7))
    np.testing.assert_array_equal(first, second)
    other = aug.augment_clip(clip, params, np.random.default_rng(8))
    self.assertFalse(np.array_equal(first, other))

  def test_invalid_parameters_raise_one_line_errors(self):
    cases = [
        (dict(brightness=-0.1), "brightness"),
        (dict(hue=0.6), "hue"),
        (dict(resize_ratio=(1.1, 0.9), crop_size=(4, 4)), "resize_ratio"),
        (dict(resize_ratio=(0.9, 1.1)), "crop_size"),
        (dict(crop_size=(4, 0)), "crop_size"),
        (dict(flip_time="yes"), "flip_time"),
    ]
    for kwargs, word in cases:
      with self.assertRaisesRegex(aug.AugmentationError, word) as ctx:
        aug.AugmentationParams(**kwargs)
      self.assertNotIn("\n", str(ctx.exception))

  def test_bad_clip_shape_raises(self):
    with self.assertRaisesRegex(aug.AugmentationError, r"\(T, H, W, 3\)"):
      aug.random_flip(np.zeros((4, 4, 3), np.float32), np.random.default_rng(0), True, True)


if __name__ == "__main__":
  absltest.main()
