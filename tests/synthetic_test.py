"""Tests for fomm_tf/data/synthetic.py and tools/make_synthetic_dataset.py."""

import json
import os
import subprocess
import sys

from absl.testing import absltest
import av
import numpy as np
from PIL import Image

from fomm_tf.data import synthetic
from fomm_tf.errors import DatasetError
from fomm_tf.io import media
from tests import testing

_REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_TOOL = os.path.join(_REPO_ROOT, "tools", "make_synthetic_dataset.py")


def _bilinear(image, x, y):
  """Image colour (float RGB, 0..255) at a sub-pixel position."""
  x0, y0 = int(np.floor(x)), int(np.floor(y))
  fx, fy = x - x0, y - y0
  pixels = image.astype(np.float64)
  top = pixels[y0, x0] * (1 - fx) + pixels[y0, x0 + 1] * fx
  bottom = pixels[y0 + 1, x0] * (1 - fx) + pixels[y0 + 1, x0 + 1] * fx
  return top * (1 - fy) + bottom * fy


def _to_pixels(keypoints, frame_size):
  return (keypoints + 1.0) * (frame_size - 1) / 2.0


def _read_png(path):
  with Image.open(path) as image:
    return np.asarray(image.convert("RGB"))


def _read_mp4(path):
  with av.open(path) as container:
    return np.stack([frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)])


def _one_line(error):
  return "\n" not in str(error) and str(error).strip() == str(error) and str(error)


class RenderVideoTest(testing.TestCase):

  def test_shapes_dtypes_and_keypoint_range(self):
    for seed in range(5):
      frames, keypoints = synthetic.render_video(seed, 6, 64)
      self.assertEqual(frames.shape, (6, 64, 64, 3))
      self.assertEqual(frames.dtype, np.uint8)
      self.assertEqual(keypoints.shape, (6, synthetic.NUM_KEYPOINTS, 2))
      self.assertEqual(keypoints.dtype, np.float32)
      self.assertLessEqual(float(np.abs(keypoints).max()), 1.0)
    self.assertLen(synthetic.KEYPOINT_NAMES, synthetic.NUM_KEYPOINTS)

  def test_same_seed_same_video_different_seed_different_video(self):
    frames_a, keypoints_a = synthetic.render_video(7, 4, 48)
    frames_b, keypoints_b = synthetic.render_video(np.random.default_rng(7), 4, 48)
    frames_c, keypoints_c = synthetic.render_video(8, 4, 48)
    np.testing.assert_array_equal(frames_a, frames_b)
    np.testing.assert_array_equal(keypoints_a, keypoints_b)
    self.assertGreater(np.abs(frames_a.astype(int) - frames_c).mean(), 5.0)
    self.assertGreater(np.abs(keypoints_a - keypoints_c).max(), 0.05)

  def test_frames_change_over_time(self):
    frames, keypoints = synthetic.render_video(3, 8, 64)
    for t in range(1, 8):
      self.assertGreater(np.abs(frames[t].astype(int) - frames[0]).mean(), 0.1, msg=f"frame {t}")
      self.assertGreater(np.abs(keypoints[t] - keypoints[0]).max(), 1e-3, msg=f"frame {t}")

  def test_keypoints_track_the_textured_body_and_head(self):
    # Textures are attached to the parts, so the colour at a keypoint that
    # follows a part stays at the part's colour at that point while the
    # part moves over a different-looking background.
    size = 128
    for seed in range(4):
      identity = synthetic.sample_identity(seed)
      frames, keypoints = synthetic.render_video(100 + seed, 12, size, identity=identity)
      pixels = _to_pixels(keypoints, size)
      origin = np.zeros(1)
      torso_colour = identity.torso.colour_at(origin, origin)[0] * 255.0
      head_colour = identity.head.colour_at(origin, origin)[0] * 255.0
      torso_errors = [np.abs(_bilinear(frames[t], *pixels[t, 0]) - torso_colour).max() for t in range(12)]
      head_errors = [np.abs(_bilinear(frames[t], *pixels[t, 1]) - head_colour).max() for t in range(12)]
      self.assertLess(max(torso_errors), 25.0, msg=f"seed {seed}")
      self.assertLess(np.mean(torso_errors), 5.0, msg=f"seed {seed}")
      self.assertLess(max(head_errors), 25.0, msg=f"seed {seed}")
      self.assertLess(np.mean(head_errors), 5.0, msg=f"seed {seed}")
      self.assertGreater(np.abs(pixels[:, 0] - pixels[0, 0]).max(), 3.0, msg=f"seed {seed}: body did not move")

  def test_videos_of_one_identity_share_the_puppet_but_not_the_motion(self):
    identity = synthetic.sample_identity(11)
    frames_a, keypoints_a = synthetic.render_video(1, 3, 64, identity=identity)
    frames_b, keypoints_b = synthetic.render_video(2, 3, 64, identity=identity)
    self.assertGreater(np.abs(keypoints_a - keypoints_b).max(), 0.02)
    # Same identity, same background: pixels far from both puppets agree exactly.
    self.assertGreater(np.mean(np.all(frames_a[0] == frames_b[0], axis=-1)), 0.3)

  def test_bad_arguments_give_one_line_errors(self):
    cases = [
        (dict(rng_or_seed=0, num_frames=0, frame_size=64), "num_frames"),
        (dict(rng_or_seed=0, num_frames=2, frame_size=16), "frame_size must be >= 32, got 16"),
        (dict(rng_or_seed=-1, num_frames=2, frame_size=64), "non-negative"),
        (dict(rng_or_seed=0, num_frames=2.5, frame_size=64), "num_frames must be an int"),
        (dict(rng_or_seed=0, num_frames=2, frame_size=64, identity="x"), "identity"),
    ]
    for kwargs, message in cases:
      with self.assertRaises(DatasetError, msg=str(kwargs)) as context:
        synthetic.render_video(**kwargs)
      self.assertIn(message, str(context.exception))
      self.assertTrue(_one_line(context.exception))


class WriteDatasetTest(testing.TestCase):

  def _write(self, fmt, seed=0, output_dir=None, **kwargs):
    output_dir = output_dir or os.path.join(self.create_tempdir().full_path, "dataset")
    args = dict(num_train=5, num_test=2, num_frames=4, frame_size=64, seed=seed, fmt=fmt, videos_per_identity=2)
    args.update(kwargs)
    return synthetic.write_dataset(output_dir, **args)

  def test_layout_names_and_dataset_json(self):
    summary = self._write("png_folder")
    root = summary["output_dir"]
    self.assertEqual(sorted(os.listdir(root)), ["dataset.json", "test", "train"])
    self.assertEqual(summary["splits"]["train"], ["id000#00", "id000#01", "id001#00", "id001#01", "id002#00"])
    # Test identities continue after the train ones, so the splits share no identity.
    self.assertEqual(summary["splits"]["test"], ["id003#00", "id003#01"])
    with open(os.path.join(root, "dataset.json"), encoding="utf-8") as handle:
      description = json.load(handle)
    for key, value in dict(seed=0,
                           format="png_folder",
                           num_train=5,
                           num_test=2,
                           num_frames=4,
                           frame_size=64,
                           num_keypoints=synthetic.NUM_KEYPOINTS,
                           videos_per_identity=2).items():
      self.assertEqual(description[key], value, msg=key)
    self.assertEqual(description["splits"], summary["splits"])
    self.assertIn("description", description)
    for split, names in description["splits"].items():
      expected = set()
      for name in names:
        expected |= {name, name + ".keypoints.npy"}
        self.assertEqual(sorted(os.listdir(os.path.join(root, split, name))),
                         ["0000.png", "0001.png", "0002.png", "0003.png"])
        keypoints = np.load(os.path.join(root, split, name + ".keypoints.npy"))
        self.assertEqual(keypoints.shape, (4, synthetic.NUM_KEYPOINTS, 2))
        self.assertEqual(keypoints.dtype, np.float32)
        self.assertLessEqual(float(np.abs(keypoints).max()), 1.0)
      self.assertEqual(set(os.listdir(os.path.join(root, split))), expected)
    # No staging folders are left next to the dataset.
    self.assertEqual(os.listdir(os.path.dirname(root)), ["dataset"])

  def test_png_output_is_byte_identical_for_one_seed_and_differs_across_seeds(self):
    first = self._write("png_folder", seed=3)["output_dir"]
    second = self._write("png_folder", seed=3)["output_dir"]
    third = self._write("png_folder", seed=4)["output_dir"]
    for split in ("train", "test"):
      for entry in sorted(os.listdir(os.path.join(first, split))):
        path = os.path.join(split, entry)
        if entry.endswith(".npy"):
          np.testing.assert_array_equal(np.load(os.path.join(first, path)), np.load(os.path.join(second, path)))
          self.assertFalse(np.array_equal(np.load(os.path.join(first, path)), np.load(os.path.join(third, path))))
          continue
        for frame in sorted(os.listdir(os.path.join(first, path))):
          with open(os.path.join(first, path, frame), "rb") as a, open(os.path.join(second, path, frame), "rb") as b:
            self.assertEqual(a.read(), b.read(), msg=os.path.join(path, frame))
    with open(os.path.join(first, "dataset.json"), "rb") as a, open(os.path.join(second, "dataset.json"), "rb") as b:
      self.assertEqual(a.read(), b.read())

  def test_strip_and_mp4_read_back_as_the_png_frames(self):
    folders = self._write("png_folder", seed=1)["output_dir"]
    strips = self._write("strip", seed=1)["output_dir"]
    videos = self._write("mp4", seed=1)["output_dir"]
    for split, names in (("train", ["id000#00", "id002#00"]), ("test", ["id003#01"])):
      for name in names:
        expected = np.stack([_read_png(os.path.join(folders, split, name, f"{t:04d}.png")) for t in range(4)])
        self.assertEqual(expected.shape, (4, 64, 64, 3))

        strip = _read_png(os.path.join(strips, split, name + ".png"))
        self.assertEqual(strip.shape, (64, 4 * 64, 3))
        np.testing.assert_array_equal(np.stack(np.split(strip, 4, axis=1)), expected)

        decoded = _read_mp4(os.path.join(videos, split, name + ".mp4"))
        self.assertEqual(decoded.shape, (4, 64, 64, 3))
        self.assertLess(np.abs(decoded.astype(int) - expected).mean(), 6.0, msg=name)

        keypoints = np.load(os.path.join(folders, split, name + ".keypoints.npy"))
        for other in (strips, videos):
          np.testing.assert_array_equal(np.load(os.path.join(other, split, name + ".keypoints.npy")), keypoints)
    with av.open(os.path.join(videos, "train", "id000#00.mp4")) as container:
      stream = container.streams.video[0]
      self.assertEqual(stream.codec_context.name, "h264")
      self.assertEqual(stream.codec_context.pix_fmt, "yuv420p")

  def test_the_background_of_an_identity_is_each_frame_but_the_puppet(self):
    summary = self._write("png_folder", seed=3, num_train=1, num_test=1, videos_per_identity=1)
    root = summary["output_dir"]
    for split, name in (("train", "id000#00"), ("test", "id001#00")):
      frames = np.stack(media.read_video_frames(os.path.join(root, split, name)))
      background = synthetic.dataset_background(3, synthetic.identity_of(name), 64)
      difference = np.abs(frames - background).max(axis=-1)
      # Everywhere but the puppet the frame is the background, to the 8-bit rounding of the PNG.
      self.assertBetween(np.mean(difference > 0.03), 0.01, 0.5)
      self.assertGreater(np.mean(difference <= 1 / 255), 0.5)
      other = np.abs(frames - synthetic.dataset_background(3, 1 - synthetic.identity_of(name), 64)).max(axis=-1)
      self.assertLess(np.mean(other <= 1 / 255), 0.1)
    self.assertEqual(synthetic.identity_of("id012#03"), 12)
    with self.assertRaisesRegex(DatasetError, r"'clip' is not a video name of the synthetic dataset"):
      synthetic.identity_of("clip")

  def test_non_empty_output_dir_needs_overwrite(self):
    root = self._write("strip", seed=0)["output_dir"]
    with self.assertRaises(DatasetError) as context:
      self._write("strip", seed=1, output_dir=root)
    self.assertIn(root, str(context.exception))
    self.assertTrue(_one_line(context.exception))

    with open(os.path.join(root, "train", "stale.txt"), "w", encoding="utf-8") as handle:
      handle.write("old")
    summary = self._write("strip", seed=1, output_dir=root, overwrite=True)
    self.assertEqual(summary["seed"], 1)
    self.assertFalse(os.path.exists(os.path.join(root, "train", "stale.txt")))
    self.assertEqual(os.listdir(os.path.dirname(root)), ["dataset"])

  def test_overwrite_refuses_a_folder_that_is_not_a_dataset(self):
    root = self.create_tempdir().full_path
    with open(os.path.join(root, "notes.txt"), "w", encoding="utf-8") as handle:
      handle.write("keep me")
    with self.assertRaises(DatasetError) as context:
      self._write("strip", output_dir=root, overwrite=True)
    self.assertIn("does not look like a synthetic dataset", str(context.exception))
    self.assertEqual(os.listdir(root), ["notes.txt"])

  def test_empty_output_dir_is_used(self):
    root = self.create_tempdir().full_path
    summary = self._write("strip", output_dir=root, num_train=1, num_test=0)
    self.assertEqual(summary["splits"], {"train": ["id000#00"], "test": []})
    self.assertTrue(os.path.isfile(os.path.join(root, "dataset.json")))

  def test_bad_arguments_give_one_line_errors(self):
    cases = [
        (dict(frame_size=31), "frame_size must be >= 32, got 31"),
        (dict(num_frames=1), "num_frames must be >= 2, got 1"),
        (dict(num_train=0, num_test=0), "num_train + num_test"),
        (dict(num_test=-1), "num_test must be >= 0"),
        (dict(fmt="gif"), "fmt must be one of mp4, png_folder, strip, got 'gif'"),
        (dict(fmt="mp4", frame_size=65), "frame_size must be even for mp4"),
        (dict(seed=-2), "seed must be >= 0"),
        (dict(videos_per_identity=0), "videos_per_identity must be >= 1"),
    ]
    parent = self.create_tempdir().full_path
    for overrides, message in cases:
      args = dict(num_train=1, num_test=1, num_frames=2, frame_size=64, seed=0, fmt="strip")
      args.update(overrides)
      with self.assertRaises(DatasetError, msg=str(overrides)) as context:
        synthetic.write_dataset(os.path.join(parent, "dataset"), **args)
      self.assertIn(message, str(context.exception))
      self.assertTrue(_one_line(context.exception))
    self.assertEqual(os.listdir(parent), [])


class CommandLineTest(testing.TestCase):

  def _run(self, *flags):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.run([sys.executable, _TOOL, *flags],
                          capture_output=True,
                          text=True,
                          env=env,
                          cwd=_REPO_ROOT,
                          check=False)

  def test_writes_a_dataset_then_refuses_to_overwrite_it(self):
    root = os.path.join(self.create_tempdir().full_path, "out")
    flags = [
        f"--output_dir={root}", "--num_train=2", "--num_test=1", "--num_frames=3", "--frame_size=32", "--seed=5",
        "--format=strip"
    ]
    result = self._run(*flags)
    self.assertEqual(result.returncode, 0, msg=result.stderr)
    self.assertEqual(json.loads(result.stdout.strip().splitlines()[-1])["train_videos"], 2)
    self.assertEqual(sorted(os.listdir(os.path.join(root, "train"))),
                     ["id000#00.keypoints.npy", "id000#00.png", "id000#01.keypoints.npy", "id000#01.png"])
    self.assertEqual(_read_png(os.path.join(root, "test", "id001#00.png")).shape, (32, 96, 3))

    result = self._run(*flags)
    self.assertNotEqual(result.returncode, 0)
    error_lines = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    self.assertLen(error_lines, 1, msg=result.stderr)
    self.assertEqual(error_lines[0], result.stderr.strip().splitlines()[-1])
    self.assertIn(f"{root} is not empty", error_lines[0])
    self.assertNotIn("Traceback", result.stderr)


if __name__ == "__main__":
  absltest.main()
