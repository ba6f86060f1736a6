"""End-to-end animation: the Python API and `python -m fomm_tf.animate` on real media files."""

import inspect
import os
import subprocess
import sys

import keras
import numpy as np
from absl import flags
from absl.testing import absltest

import fomm_tf
from fomm_tf import animate as animate_main
from fomm_tf.animation import cli
from fomm_tf.animation import best_frame as best_frame_lib
from tests import fixture_util
from tests import tiny_model_util as tiny

_MODEL = None


def tiny_model(directory):
  global _MODEL
  if _MODEL is None:
    keras.utils.set_random_seed(0)  # The same random weights in every run.
    _MODEL = fomm_tf.load_model(tiny.write_tiny_flagfile(directory))
  return _MODEL


class AnimateTest(absltest.TestCase):

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls.dir = absltest.get_default_test_tmpdir()
    os.makedirs(cls.dir, exist_ok=True)
    cls.flagfile = tiny.write_tiny_flagfile(cls.dir)
    frames = tiny.moving_square_frames(12)
    cls.source_png = tiny.write_image(os.path.join(cls.dir, "source.png"), frames[0])
    cls.driving_mp4 = tiny.write_video(os.path.join(cls.dir, "driving.mp4"), frames, fps=30)
    cls.driving_audio = tiny.write_video(os.path.join(cls.dir, "driving_audio.mp4"), frames, fps=25, audio=True)

  def run_cli(self, *args):
    """Runs the animate entry point in-process with fresh flags; returns the output path."""
    flag_values = flags.FlagValues()
    animate_main.define_flags(flag_values)
    flag_values(["animate", f"--flagfile={self.flagfile}", *args])
    cli.run(flag_values)
    return flag_values.result_video

  def out(self, name):
    return os.path.join(self.create_tempdir().full_path, name)

  def test_mp4_keeps_frame_count_and_fps(self):
    result = self.run_cli(f"--source_image={self.source_png}", f"--driving_video={self.driving_mp4}",
                          f"--result_video={self.out('r.mp4')}", "--batch_size=5")
    count, fps, has_audio, size = tiny.probe(result)
    self.assertEqual(count, 12)
    self.assertAlmostEqual(fps, 30.0, places=3)
    self.assertFalse(has_audio)
    self.assertEqual(size, (64, 64))

  def test_fps_output_size_and_gif(self):
    result = self.run_cli(f"--source_image={self.source_png}", f"--driving_video={self.driving_mp4}",
                          f"--result_video={self.out('r.gif')}", "--fps=10", "--output_size=96x80")
    count, fps, _, size = tiny.probe(result)
    self.assertEqual(count, 12)
    self.assertEqual(size, (96, 80))
    self.assertAlmostEqual(fps, 10.0, delta=0.5)

  def test_audio_is_kept(self):
    result = self.run_cli(f"--source_image={self.source_png}", f"--driving_video={self.driving_audio}",
                          f"--result_video={self.out('a.mp4')}", "--audio")
    count, _, has_audio, _ = tiny.probe(result)
    self.assertEqual(count, 12)
    self.assertTrue(has_audio)

  def test_visualize_is_three_panels_wide(self):
    result = self.run_cli(f"--source_image={self.source_png}", f"--driving_video={self.driving_mp4}",
                          f"--result_video={self.out('v.mp4')}", "--visualize")
    self.assertEqual(tiny.probe(result)[3], (64, 192))

  def test_frame_folder_strip_and_gif_inputs(self):
    frames = tiny.moving_square_frames(6, 40, 40)
    folder = self.create_tempdir().full_path
    for i, frame in enumerate(frames):
      tiny.write_image(os.path.join(folder, f"frame{i}.png"), frame)
    strip = tiny.write_image(self.out("strip.png"), np.concatenate(frames, axis=1))
    gif = tiny.write_video(self.out("drive.gif"), frames, fps=10)
    rgba = np.concatenate([frames[0], np.full((40, 40, 1), 255, np.uint8)], axis=-1)
    grey = frames[0][..., 0]
    for driving, source in ((folder, rgba), (strip, grey), (gif, frames[0])):
      source_path = tiny.write_image(self.out("src.png"), source)
      result = self.run_cli(f"--source_image={source_path}", f"--driving_video={driving}",
                            f"--result_video={self.out('r.mp4')}")
      self.assertEqual(tiny.probe(result)[0], 6, driving)

  def test_python_api_is_lazy(self):
    model = tiny_model(self.dir)
    frames = [f.astype(np.float32) / 255 for f in tiny.moving_square_frames(5)]
    results = fomm_tf.animate(model, frames[0], iter(frames), batch_size=2)
    self.assertTrue(inspect.isgenerator(results))
    out = list(results)
    self.assertLen(out, 5)
    self.assertEqual(out[0].shape, (64, 64, 3))
    self.assertTrue(all(np.all((o >= 0) & (o <= 1)) for o in out))

  def test_relative_first_frame_equals_absolute(self):
    model = tiny_model(self.dir)
    frames = [f.astype(np.float32) / 255 for f in tiny.moving_square_frames(4)]
    source = frames[0]
    relative = list(fomm_tf.animate(model, source, frames, relative=True))
    absolute = list(fomm_tf.animate(model, source, frames, relative=False))
    np.testing.assert_allclose(relative[0], absolute[0], atol=1e-5)

  def test_relative_motion_starts_from_the_source_pose(self):
    model = tiny_model(self.dir)
    frames = [f.astype(np.float32) / 255 for f in tiny.moving_square_frames(4, 64, 64)]
    source = frames[2]
    relative = list(fomm_tf.animate(model, source, frames, relative=True))
    absolute = list(fomm_tf.animate(model, source, frames, relative=False))
    kp_source = model.detect_keypoints(source[None])
    # The first driving frame carries no motion relative to itself: the source is reproduced as it is posed.
    unmoved = model.generate(source[None], kp_source, kp_source)["prediction"].numpy()[0]
    np.testing.assert_allclose(relative[0], unmoved, atol=1e-5)
    # Absolute mode moves the source to the first driving frame's keypoints instead.
    # (Random weights move the image only a little: 10x the equality tolerance above marks a difference.)
    self.assertGreater(np.abs(absolute[0] - relative[0]).max(), 1e-4)

  def test_batched_streaming_equals_per_frame_reference(self):
    model = tiny_model(self.dir)
    frames = [f.astype(np.float32) / 255 for f in tiny.moving_square_frames(5, 64, 64)]
    streamed = np.stack(list(fomm_tf.animate(model, frames[0], frames, relative=False, batch_size=3)))
    for i, frame in enumerate(frames):
      kp_s = model.detect_keypoints(frames[0][None])
      kp_d = model.detect_keypoints(frame[None])
      reference = model.generate(frames[0][None], kp_s, kp_d)["prediction"].numpy()[0]
      np.testing.assert_allclose(streamed[i], reference, atol=1e-5)

  def test_best_frame_finds_the_source_pose(self):
    model = tiny_model(self.dir)
    frames = tiny.moving_square_frames(9, 64, 64, seed=3)
    source = frames[6]
    kp = model.detect_keypoints(np.stack(frames).astype(np.float32) / 255)["value"].numpy()
    kp_source = model.detect_keypoints(source[None].astype(np.float32) / 255)["value"].numpy()[0]
    self.assertEqual(best_frame_lib.best_frame_index(kp_source, kp), 6)
    source_path = tiny.write_image(self.out("s.png"), source)
    video = tiny.write_video(self.out("d.mkv"), frames)
    with self.assertLogs(level="INFO") as logs:
      self.run_cli(f"--source_image={source_path}", f"--driving_video={video}",
                   f"--result_video={self.out('b.mp4')}", "--find_best_frame")
    self.assertTrue(any("best matching driving frame: 6 of 9" in line for line in logs.output), logs.output)


class AnimateErrorsTest(absltest.TestCase):
  """Each bad input: one clear line, non-zero exit, and no result file left behind."""

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls.dir = os.path.join(absltest.get_default_test_tmpdir(), "errors")
    os.makedirs(cls.dir, exist_ok=True)
    cls.flagfile = tiny.write_tiny_flagfile(cls.dir)
    frames = tiny.moving_square_frames(5)
    cls.source = tiny.write_image(os.path.join(cls.dir, "source.png"), frames[0])
    cls.video = tiny.write_video(os.path.join(cls.dir, "driving.mp4"), frames)

  def assertFails(self, pattern, *args, result=None):
    out_dir = self.create_tempdir().full_path
    result = result or os.path.join(out_dir, "result.mp4")
    cmd = [sys.executable, "-m", "fomm_tf.animate", f"--flagfile={self.flagfile}",
           f"--result_video={result}", *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=fixture_util.REPO_ROOT, timeout=300)
    self.assertNotEqual(proc.returncode, 0)
    error_lines = [l for l in proc.stderr.splitlines() if l.startswith("error: ")]
    self.assertLen(error_lines, 1, proc.stderr[-2000:])
    self.assertRegex(error_lines[0], pattern)
    if os.path.isdir(out_dir):
      self.assertEqual(os.listdir(out_dir), [], "a result or partial file was left behind")

  def test_missing_source(self):
    self.assertFails(r"nope\.png", "--source_image=/nonexistent/nope.png", f"--driving_video={self.video}")

  def test_corrupt_frame_in_folder_reports_index(self):
    folder = self.create_tempdir().full_path
    for i, frame in enumerate(tiny.moving_square_frames(5)):
      tiny.write_image(os.path.join(folder, f"{i:03d}.png"), frame)
    with open(os.path.join(folder, "003.png"), "wb") as f:
      f.write(b"not a png at all")
    self.assertFails(r"frame 3", f"--source_image={self.source}", f"--driving_video={folder}")

  def test_video_without_frames(self):
    empty = os.path.join(self.create_tempdir().full_path, "empty.mp4")
    with open(empty, "wb") as f:
      f.write(b"\x00" * 100)
    self.assertFails(r"empty\.mp4", f"--source_image={self.source}", f"--driving_video={empty}")

  def test_checkpoint_that_does_not_fit(self):
    self.assertFails(r"shape|missing|no counterpart", f"--source_image={self.source}",
                     f"--driving_video={self.video}", f"--checkpoint={fixture_util.CHECKPOINT}")

  def test_unwritable_output(self):
    self.assertFails(r"does not exist", f"--source_image={self.source}", f"--driving_video={self.video}",
                     result="/nonexistent-dir/out.mp4")

  def test_best_frame_out_of_range(self):
    self.assertFails(r"--best_frame=99 is out of range", f"--source_image={self.source}",
                     f"--driving_video={self.video}", "--best_frame=99")

  def test_mixed_precision_needs_the_keras_backend(self):
    self.assertFails(r"--mixed_precision is for --backend=keras", f"--source_image={self.source}",
                     f"--driving_video={self.video}", "--backend=tflite", f"--model_dir={self.dir}",
                     "--mixed_precision=bfloat16")

  def test_audio_requested_without_audio(self):
    self.assertFails(r"no audio", f"--source_image={self.source}", f"--driving_video={self.video}", "--audio")


if __name__ == "__main__":
  absltest.main()
