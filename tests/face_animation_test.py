"""`animate --crop=face` end to end on a real, uncropped portrait, and streaming keypoint smoothing.

The source is scikit-image's astronaut (512x512, the head in the upper middle);
the driving video is the same photo moved smoothly under a fixed camera crop,
written as a real mp4. The networks are the tiny random test model: these tests
are about where the pixels come from (crop, paste-back, errors), not about how
good the animation looks.
"""

import math
import os
import shutil

import numpy as np
from absl.testing import absltest
import skimage.data

from fomm_tf.animation import cli as animate_cli
from fomm_tf.inference import smoothing
from fomm_tf.io import media
from tests import testing

# The astronaut's head measured by hand (x0, y0, x1, y1), hairline to chin.
HAND_BOX = (180, 78, 272, 177)


def moving_portrait(count, side=448):
  photo = skimage.data.astronaut()
  offsets = [(32 + round(20 * math.sin(t / 3)), 32 + round(10 * math.cos(t / 3))) for t in range(count)]
  return [photo[y:y + side, x:x + side] for x, y in offsets]


class FaceAnimationTest(testing.TestCase):

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls.dir = testing.make_class_dir("face_animation_")
    cls.flagfile = testing.write_tiny_flagfile(cls.dir)
    cls.photo = testing.write_image(os.path.join(cls.dir, "astronaut.png"), skimage.data.astronaut())
    cls.driving = testing.write_video(os.path.join(cls.dir, "driving.mp4"), moving_portrait(8), fps=25)
    cls.coffee = testing.write_image(os.path.join(cls.dir, "coffee.png"), skimage.data.coffee())
    cls.coffee_video = testing.write_video(os.path.join(cls.dir, "coffee.mp4"), [skimage.data.coffee()[:, :400]] * 3,
                                           fps=25)
    two = np.full((512, 768, 3), 200, np.uint8)
    two[:, :512] = skimage.data.astronaut()
    two[128:384, 512:] = skimage.data.astronaut()[::2, ::2]
    cls.two_faces = testing.write_image(os.path.join(cls.dir, "two.png"), two)

  @classmethod
  def tearDownClass(cls):
    shutil.rmtree(cls.dir)
    super().tearDownClass()

  def animate(self, *args, source=None, driving=None):
    return testing.run_cli(animate_cli, f"--flagfile={self.flagfile}", "--crop=face",
                           f"--source_image={source or self.photo}", f"--driving_video={driving or self.driving}",
                           *args)

  def test_paste_back_keeps_the_photo_outside_the_head_and_animates_the_head(self):
    out = self.tmp_path("pasted.mp4")
    preview = self.tmp_path("preview.png")
    code, _, stderr = self.animate(f"--result_video={out}", f"--crop_preview={preview}")
    self.assertEqual(code, 0, stderr[-2000:])
    self.assertFalse(os.path.exists(out))  # A preview only: nothing is animated.
    strip = media.read_image(preview)
    self.assertEqual(strip.shape[0], 256)
    self.assertGreater(strip.shape[1], 3 * 256)
    code, _, stderr = self.animate(f"--result_video={out}", "--paste_back", "--max_output_size=512")
    self.assertEqual(code, 0, stderr[-2000:])
    frames = np.stack(list(media.open_video(out)))
    self.assertEqual(frames.shape, (8, 512, 512, 3))
    photo = skimage.data.astronaut().astype(np.float32) / 255.0
    # Far from the head (the lower third: suit, flag, shuttle) the result is the photo (up to H.264).
    far = np.abs(frames[:, 352:, :] - photo[352:, :]).mean()
    self.assertLess(far, 0.02)
    x0, y0, x1, y1 = HAND_BOX
    head = np.abs(frames[:, y0:y1, x0:x1] - photo[y0:y1, x0:x1]).mean()
    self.assertGreater(head, 5 * far)
    self.assertGreater(head, 0.05)

  def test_the_face_crop_is_the_head_not_the_centre_square(self):
    face = self.tmp_path("face.mp4")
    center = self.tmp_path("center.mp4")
    self.assertEqual(self.animate(f"--result_video={face}", "--visualize")[0], 0)
    code, _, stderr = testing.run_cli(animate_cli, f"--flagfile={self.flagfile}", "--crop=center",
                                      f"--source_image={self.photo}", f"--driving_video={self.driving}",
                                      f"--result_video={center}", "--visualize")
    self.assertEqual(code, 0, stderr[-2000:])
    # The visualisation's first panel is the model's source input: compare it with the hand-measured head.
    face_panel = next(iter(media.open_video(face)))[:, :64]
    center_panel = next(iter(media.open_video(center)))[:, :64]
    photo = skimage.data.astronaut().astype(np.float32) / 255.0
    x0, y0, x1, y1 = HAND_BOX
    # The head fills the middle of the face crop: its mean colour is the skin's, not the centre square's.
    skin = photo[y0 + 30:y1 - 30, x0 + 20:x1 - 20].mean(axis=(0, 1))
    face_middle = face_panel[24:40, 24:40].mean(axis=(0, 1))
    center_middle = center_panel[24:40, 24:40].mean(axis=(0, 1))
    self.assertLess(np.abs(face_middle - skin).mean(), 0.08)
    self.assertGreater(np.abs(center_middle - skin).mean(), np.abs(face_middle - skin).mean() + 0.05)

  def test_no_face_in_the_photo_or_the_video(self):
    out = self.tmp_path("out.mp4")
    self.assertErrorLine(self.animate(f"--result_video={out}", source=self.coffee),
                         r"no face found in .*coffee\.png; use --crop=center")
    self.assertErrorLine(self.animate(f"--result_video={out}", driving=self.coffee_video),
                         r".*coffee\.mp4: no face found in any of its 3 frames; use --crop=center")
    self.assertFalse(os.path.exists(out))
    self.assertEqual([n for n in os.listdir(os.path.dirname(out)) if n != "out.mp4"], [])

  def test_several_faces_animate_the_largest_and_say_how_many(self):
    out = self.tmp_path("out.mp4")
    code, stdout, stderr = self.animate(f"--result_video={out}", source=self.two_faces)
    self.assertEqual(code, 0, stderr[-2000:])
    self.assertIn("found 2 faces; animating face 0 (the largest", stdout + stderr)
    self.assertErrorLine(self.animate(f"--result_video={out}", "--face_index=5", source=self.two_faces),
                         r".*two\.png.*2 faces")


class KeypointSmoothingTest(testing.TestCase):

  def test_streamed_in_any_batches_it_is_the_causal_moving_average(self):
    rng = np.random.default_rng(0)
    values = rng.normal(size=(23, 10, 2)).astype(np.float32)
    jacobians = rng.normal(size=(23, 10, 2, 2)).astype(np.float32)
    expected = np.stack([values[max(0, t - 2):t + 1].mean(axis=0) for t in range(23)])
    for batches in ((23,), (1,) * 23, (5, 7, 11)):
      smoother = smoothing.KeypointSmoother(3)
      got, start = [], 0
      for size in batches:
        out = smoother({"value": values[start:start + size], "jacobian": jacobians[start:start + size]})
        got.append(out["value"])
        start += size
      np.testing.assert_allclose(np.concatenate(got), expected, rtol=1e-6, atol=1e-6)

  def test_jitter_of_a_still_point_falls_with_the_window(self):
    rng = np.random.default_rng(1)
    still = 0.1 + 0.004 * rng.normal(size=(200, 10, 2))  # A still face seen through sensor noise.
    raw = smoothing.jitter(still)
    smoothed = smoothing.jitter(
        smoothing.KeypointSmoother(5)({
            "value": still,
            "jacobian": np.zeros((200, 10, 2, 2))
        })["value"])
    # A moving average of n independent draws moves by about 1/n of a raw step (sqrt(2/n^2) vs sqrt(2)).
    self.assertLess(smoothed, raw / 3)
    with self.assertRaisesRegex(ValueError, "window must be an integer >= 1"):
      smoothing.KeypointSmoother(0)


if __name__ == "__main__":
  absltest.main()
