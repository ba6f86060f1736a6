"""`animate --crop=face --faces=...`: every face of a group photo animated by one driving face, pasted back.

The group photo is real: the astronaut's head (scikit-image) at three sizes on
a real photo's background (scikit-image's coffee, which has no face), so the
face detector finds three faces of 93, 63 and 41 px; the last is under
MIN_FACE_SIDE. The driving video is the astronaut moved under a fixed camera
crop, a real mp4. The networks are the built-in model (trained, so its results
follow the driving motion; at 128 px about as fast here as the tiny one): these
tests are about where the pixels come from (which faces, paste-back, overlaps,
errors, memory), not about how good the animation looks.
"""

import functools
import os
import shutil
import tracemalloc

from absl.testing import absltest
import numpy as np
import skimage.data

from fomm_tf import builtin
from fomm_tf.animation import cli as animate_cli
from fomm_tf.animation import job
from fomm_tf.animation import options as options_lib
from fomm_tf.errors import FaceError
from fomm_tf.errors import UsageError
from fomm_tf.faces import crop
from fomm_tf.faces import detect
from fomm_tf.faces import paste
from fomm_tf.inference import backend as backend_lib
from fomm_tf.inference import keras_backend
from fomm_tf.inference import pipeline
from fomm_tf.io import media
from tests import face_animation_test
from tests import testing

# The photo: 512 x 288; head squares of these sides (the astronaut's head and hair) at x = 4, 224, 386, y = 20.
HEAD_SIDES = (190, 132, 88)
# Columns between the two animated faces' head squares (x 15-192 and 233-353, measured): no face reaches them.
BETWEEN = slice(198, 228)


@functools.lru_cache(maxsize=None)
def builtin_backend():
  """One Keras backend of the built-in model for the whole file (its graphs are traced once)."""
  return keras_backend.KerasBackend(builtin.load_builtin_model())


def group_photo():
  """uint8 (288, 512, 3): three astronaut heads, largest on the left, on the coffee photo."""
  head = skimage.data.astronaut().astype(np.float32)[40:260, 110:330] / 255
  canvas = media.resize_frame(skimage.data.coffee().astype(np.float32) / 255, (288, 512))
  x = 4
  for side in HEAD_SIDES:
    canvas[20:20 + side, x:x + side] = media.resize_frame(head, (side, side))
    x += side + 30
  return (canvas * 255 + 0.5).astype(np.uint8)


class GroupPhotoTest(testing.TestCase):

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls.dir = testing.make_class_dir("group_photo_")
    cls.photo_pixels = group_photo()
    cls.photo = testing.write_image(os.path.join(cls.dir, "group.png"), cls.photo_pixels)
    cls.driving = testing.write_video(os.path.join(cls.dir, "driving.mp4"),
                                      face_animation_test.moving_portrait(8),
                                      fps=25)
    cls.backend = builtin_backend()

  @classmethod
  def tearDownClass(cls):
    shutil.rmtree(cls.dir)
    super().tearDownClass()

  def animate(self, *args, driving=None):
    return testing.run_cli(animate_cli, "--crop=face", f"--source_image={self.photo}",
                           f"--driving_video={driving or self.driving}", *args)

  def test_every_face_is_animated_and_the_photo_between_them_is_kept(self):
    out = self.tmp_path("group.mp4")
    count, lines = self.run_job(result_video=out)
    self.assertEqual(count, 8)
    self.assertRegex(
        lines[0], r"^warning: .*group\.png: skipping face 2 at \(\d+, \d+, \d+, \d+\): 4\d px, under "
        r"the 48 px a face needs to be animated$")
    self.assertRegex(lines[1], "found 3 faces; animating faces 0, 1$")
    frames = np.stack(list(media.open_video(out)))
    self.assertEqual(frames.shape, (8, 288, 512, 3))  # The photo's size (under --max_output_size=1024).
    photo = self.photo_pixels.astype(np.float32) / 255
    between = np.abs(frames[:, :, BETWEEN] - photo[:, BETWEEN]).mean()
    self.assertLess(between, 0.02)
    # Each animated face: changed from the photo, and moving over the result (the driving face moves).
    for x0, y0, x1, y1 in ((70, 50, 140, 130), (270, 45, 315, 95)):
      face = frames[:, y0:y1, x0:x1]
      self.assertGreater(np.abs(face - photo[y0:y1, x0:x1]).mean(), 5 * between)
      self.assertGreater(np.abs(np.diff(face, axis=0)).mean(), 0.002)
    # The skipped small face (x 413-450, y 32-73) is the photo's.
    self.assertLess(np.abs(frames[:, 32:73, 413:450] - photo[32:73, 413:450]).mean(), 0.02)

  def run_job(self, **kwargs):
    """job.run on the group photo with the class's built-in model backend: (frames written, log lines)."""
    lines = []
    options = options_lib.AnimationOptions(
        **{
            "source_image": self.photo,
            "driving_video": self.driving,
            "crop": "face",
            "faces": "all",
            "batch_size": 4,
            **kwargs
        })
    options.check()
    return job.run(self.backend, options, log=lines.append), lines

  def test_the_output_size_is_capped_and_the_preview_draws_every_box(self):
    out = self.tmp_path("small.mp4")
    count, lines = self.run_job(result_video=out, faces=[1, 0], max_output_size=256)
    self.assertEqual(count, 8)
    self.assertIn("animating faces 1, 0", lines[-1])
    self.assertEqual(next(iter(media.open_video(out))).shape, (144, 256, 3))
    preview = self.tmp_path("preview.png")
    self.run_job(crop_preview=preview)
    strip = media.read_image(preview)
    # The photo's panel (256 high, 455 wide): red box edges at both chosen faces' squares (scaled by 256/288).
    panel = strip[:, :455]
    red = (panel[..., 0] > 0.9) & (panel[..., 1] < 0.3) & (panel[..., 2] < 0.3)
    for box in (crop.Placement(15, -8, 177, (288, 512)).box, crop.Placement(233, 2, 120, (288, 512)).box):
      left = round(box[0] * 256 / 288)
      self.assertGreater(red[:, max(0, left - 2):left + 3].sum(), 100, box)
    self.assertLess(red[:, 330:].sum(), 20)  # Not the skipped small face's (x 392-470 in the photo).

  def test_bad_face_choices_are_one_line_errors_and_write_nothing(self):
    out = self.tmp_path("out.mp4")
    self.assertErrorLine(self.animate(f"--result_video={out}", "--faces=0,5"),
                         r"--faces: face index 5 is out of range: .*group\.png has 3 faces \(indices 0 to 2")
    for args, error in ((["--faces=one"], r"--faces must be 'all' or face"), (["--faces=all", "--visualize"],
                                                                              r"--faces pastes every face back"),
                        (["--faces=all", "--crop=center"], r"--faces picks the faces"),
                        (["--faces=all", "--face_index=1"], r"--faces and --face_index both choose faces")):
      self.assertErrorLine(self.animate(f"--result_video={out}", *args), error)
    with self.assertRaisesRegex(FaceError, r"^no face found in .*group\.png; use --crop=center"):
      self.run_job(result_video=out, faces="2")  # The one face asked for is too small.
    self.assertEqual(os.listdir(os.path.dirname(out)), [])

  def test_memory_stays_flat_in_the_driving_video_length(self):
    short = testing.write_video(self.tmp_path("short.mp4"), face_animation_test.moving_portrait(4, side=256), fps=25)
    long = testing.write_video(self.tmp_path("long.mp4"), face_animation_test.moving_portrait(20, side=256), fps=25)

    def peak(driving):
      tracemalloc.start()
      try:
        self.assertEqual(
            self.run_job(driving_video=driving, result_video=self.tmp_path("result.mp4"))[0],
            20 if driving == long else 4)
        return tracemalloc.get_traced_memory()[1]
      finally:
        tracemalloc.stop()

    peak(short)  # Warm up the detector, the graphs and the codec.
    short_peak, long_peak = peak(short), peak(long)
    # 16 more driving frames: 256 x 256 float32 (0.8 MB) each as read, 288 x 512 results (1.8 MB): ~40 MB if kept.
    self.assertLess(long_peak - short_peak, 6 << 20, (short_peak, long_peak))


class BatchedFacesTest(testing.TestCase):

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls.backend = builtin_backend()

  def test_one_generator_call_for_all_faces_equals_one_per_face(self):
    backend = self.backend
    photo = group_photo().astype(np.float32) / 255
    sources = np.stack([crop.crop_square(photo, box, 128)[0] for box in ((15, -8, 177), (233, 2, 120), (392, 9, 78))])
    frames = face_animation_test.moving_portrait(3, side=256)
    got = np.stack(list(pipeline.animate_faces(backend, sources, frames, batch_size=9)))
    self.assertEqual(got.shape, (3, 3, 128, 128, 3))
    for i in range(3):
      alone = np.stack(list(pipeline.animate(backend, sources[i], frames, batch_size=3)))
      np.testing.assert_allclose(got[:, i], alone, atol=2e-5)
    # The generic Backend path (one generate per face, as the exported backends run it) gives the same frames.
    state = backend_lib.Backend.prepare_sources(backend, sources)
    kp_sources = backend.detect_keypoints(sources)
    kp_driving = {k: np.concatenate([v] * 3) for k, v in backend.detect_keypoints(sources).items()}
    np.testing.assert_allclose(backend_lib.Backend.generate_sources(backend, state, kp_sources, kp_driving),
                               backend.generate_sources(backend.prepare_sources(sources), kp_sources, kp_driving),
                               atol=2e-5)

  def test_more_faces_than_the_batch_go_in_groups(self):
    backend = self.backend
    sources = np.stack([crop.crop_square(skimage.data.astronaut(), (150 + 10 * i, 60, 140), 128)[0] for i in range(5)])
    frames = face_animation_test.moving_portrait(2, side=256)
    wide = np.stack(list(pipeline.animate_faces(backend, sources, frames, batch_size=10)))
    narrow = np.stack(list(pipeline.animate_faces(backend, sources, frames, batch_size=2)))
    np.testing.assert_allclose(narrow, wide, atol=2e-5)


class GroupPasteTest(testing.TestCase):
  """Overlapping squares: no seam, nothing pasted twice; apart, each square is exactly the one-face paste; and
  how --faces is read."""

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls.photo = skimage.data.astronaut().astype(np.float32) / 255
    cls.a = crop.Placement(60, 40, 240, (512, 512))
    cls.b = crop.Placement(220, 120, 200, (512, 512))  # Overlaps a: x 220-300, y 120-280.

  def test_overlapping_squares_blend_without_seams_or_double_pasting(self):
    black = np.zeros_like(self.photo)
    red, blue = np.zeros((64, 64, 3), np.float32), np.zeros((64, 64, 3), np.float32)
    red[..., 0], blue[..., 2] = 1.0, 1.0
    out = paste.GroupPasteBack(black, [self.a, self.b], max_output_size=512)([red, blue])
    # The colours' weights add up to at most 1 everywhere (nothing twice), to exactly 1 deep in either square.
    total = out[..., 0] + out[..., 2]
    self.assertLessEqual(total.max(), 1.0 + 1e-6)
    np.testing.assert_allclose(total[150:250, 240:290], 1.0, atol=1e-6)  # The overlap, inside both bands.
    # Each face's own centre is its own crop's.
    self.assertGreater(out[160, 180, 0], 0.99)
    self.assertGreater(out[220, 320, 2], 0.99)
    # No seam: along the line between the centres the mix changes by small steps (a hard edge would be 1).
    steps = np.abs(
        np.diff(out[np.linspace(160, 220, 200).round().astype(int),
                    np.linspace(180, 320, 200).round().astype(int)],
                axis=0))
    self.assertLess(steps.max(), 0.12)
    # Nor anywhere else: neighbouring pixels never differ by much.
    self.assertLess(np.abs(np.diff(out, axis=0)).max(), 0.15)
    self.assertLess(np.abs(np.diff(out, axis=1)).max(), 0.15)

  def test_the_photo_pasted_onto_itself_is_the_photo(self):
    crops = [crop.crop_square(self.photo, p, p.side)[0] for p in (self.a, self.b)]
    out = paste.GroupPasteBack(self.photo, [self.a, self.b], max_output_size=512)(crops)
    np.testing.assert_allclose(out, self.photo, atol=1e-5)

  def test_squares_apart_are_each_the_one_face_paste(self):
    far = crop.Placement(330, 330, 150, (512, 512))
    animated = [media.resize_frame(skimage.data.coffee().astype(np.float32) / 255, (64, 64)), self.photo[:64, :64]]
    both = paste.GroupPasteBack(self.photo, [self.a, far], max_output_size=400)(animated)
    one = paste.PasteBack(self.photo, self.a, max_output_size=400)(animated[0])
    other = paste.PasteBack(self.photo, far, max_output_size=400)(animated[1])
    np.testing.assert_array_equal(both[:250], one[:250])
    np.testing.assert_array_equal(both[:, 250:][250:], other[:, 250:][250:])
    with self.assertRaisesRegex(ValueError, "expected 2 animated crops"):
      paste.GroupPasteBack(self.photo, [self.a, far])(animated[:1])

  def test_choose_faces_skips_small_ones_and_bounds_the_count(self):
    # Faces of a crowd: boxes from 100 px down to 10 px, largest first (as the detector lists them).
    crowd = [
        detect.Face((0.0, 0.0, float(side), float(side)), 0.9, np.zeros((468, 2), np.float32))
        for side in range(100, 9, -2)
    ]
    chosen, skipped = crop.choose_faces(crowd, [0, 20, 30, 0, 45], "crowd.jpg")
    # 100 and 60 px kept; 40 and 10 px skipped; the repeated 0 counts once.
    self.assertEqual(([i for i, _ in chosen], [i for i, _ in skipped]), ([0, 20], [30, 45]))
    with self.assertRaisesRegex(UsageError, r"^--faces: 27 faces of crowd\.jpg to animate, more than the 26 "):
      crop.choose_faces(crowd, "all", "crowd.jpg", max_faces=26)  # 100 down to 48 px: 27 faces.
    self.assertLen(crop.choose_faces(crowd, "all", "crowd.jpg")[0], 27)
    with self.assertRaisesRegex(UsageError, r"face index 46 is out of range: crowd\.jpg has 46 faces"):
      crop.choose_faces(crowd, [46], "crowd.jpg")

  def test_face_choices(self):
    self.assertIsNone(options_lib.parse_faces(""))
    self.assertEqual(options_lib.parse_faces(" ALL "), "all")
    self.assertEqual(options_lib.parse_faces("0, 2"), (0, 2))
    self.assertEqual(options_lib.parse_faces([1, np.int64(3)]), (1, 3))
    for bad in ("0,,2", "-1", [True], "x"):
      with self.assertRaises(UsageError):
        options_lib.parse_faces(bad)


if __name__ == "__main__":
  absltest.main()
