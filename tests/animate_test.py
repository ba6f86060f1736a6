"""End-to-end animation: the Python API and `python -m fomm_tf.animate` on real media files."""

import inspect
import os

import numpy as np
from absl.testing import absltest

import fomm_tf
from fomm_tf import builtin
from fomm_tf.animation import best_frame as best_frame_lib
from fomm_tf.animation import cli
from fomm_tf.inference import keras_backend
from fomm_tf.io import media
from tests import testing


def tiny_model(unused_directory=None):
  return testing.tiny_model()


class AnimateTest(testing.AnimateFixtures, testing.TestCase):
  DRIVING_FRAMES = 12
  DRIVING_FPS = 30

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls.driving_audio = testing.write_video(os.path.join(cls.dir, "driving_audio.mp4"),
                                            cls.frames,
                                            fps=25,
                                            audio_seconds=len(cls.frames) / 25)

  def run_cli(self, *args):
    """Runs the animate command in-process with fresh flags; returns the output path."""
    code, _, stderr = testing.run_cli(cli, f"--flagfile={self.flagfile}", *args)
    self.assertEqual(code, 0, stderr[-2000:])
    return [a.split("=", 1)[1] for a in args if a.startswith("--result_video=")][0]

  def out(self, name):
    return os.path.join(self.tmp_dir(), name)

  def test_mp4_keeps_frame_count_and_fps(self):
    result = self.run_cli(f"--source_image={self.source_png}", f"--driving_video={self.driving_mp4}",
                          f"--result_video={self.out('r.mp4')}", "--batch_size=5")
    count, fps, has_audio, size = testing.probe(result)
    self.assertEqual(count, 12)
    self.assertAlmostEqual(fps, 30.0, places=3)
    self.assertFalse(has_audio)
    self.assertEqual(size, (64, 64))

  def test_fps_output_size_and_gif(self):
    result = self.run_cli(f"--source_image={self.source_png}", f"--driving_video={self.driving_mp4}",
                          f"--result_video={self.out('r.gif')}", "--fps=10", "--output_size=96x80")
    count, fps, _, size = testing.probe(result)
    self.assertEqual(count, 12)
    self.assertEqual(size, (96, 80))
    self.assertAlmostEqual(fps, 10.0, delta=0.5)

  def test_audio_is_kept(self):
    result = self.run_cli(f"--source_image={self.source_png}", f"--driving_video={self.driving_audio}",
                          f"--result_video={self.out('a.mp4')}", "--audio")
    count, _, has_audio, _ = testing.probe(result)
    self.assertEqual(count, 12)
    self.assertTrue(has_audio)

  def test_visualize_is_three_panels_wide(self):
    result = self.run_cli(f"--source_image={self.source_png}", f"--driving_video={self.driving_mp4}",
                          f"--result_video={self.out('v.mp4')}", "--visualize")
    self.assertEqual(testing.probe(result)[3], (64, 192))

  def test_frame_folder_strip_and_gif_inputs(self):
    frames = testing.textured_square_frames(6, 40, 40)
    folder = self.create_tempdir().full_path
    for i, frame in enumerate(frames):
      testing.write_image(os.path.join(folder, f"frame{i}.png"), frame)
    strip = testing.write_image(self.out("strip.png"), np.concatenate(frames, axis=1))
    gif = testing.write_video(self.out("drive.gif"), frames, fps=10)
    rgba = np.concatenate([frames[0], np.full((40, 40, 1), 255, np.uint8)], axis=-1)
    grey = frames[0][..., 0]
    for driving, source in ((folder, rgba), (strip, grey), (gif, frames[0])):
      source_path = testing.write_image(self.out("src.png"), source)
      result = self.run_cli(f"--source_image={source_path}", f"--driving_video={driving}",
                            f"--result_video={self.out('r.mp4')}")
      self.assertEqual(testing.probe(result)[0], 6, driving)

  def test_python_api_is_lazy(self):
    model = tiny_model(self.dir)
    frames = [f.astype(np.float32) / 255 for f in testing.textured_square_frames(5)]
    results = fomm_tf.animate(model, frames[0], iter(frames), batch_size=2)
    self.assertTrue(inspect.isgenerator(results))
    out = list(results)
    self.assertLen(out, 5)
    self.assertEqual(out[0].shape, (64, 64, 3))
    self.assertTrue(all(np.all((o >= 0) & (o <= 1)) for o in out))

  def test_a_model_animated_again_is_not_traced_again(self):
    model = fomm_tf.load_model(testing.tiny_config())  # Fresh: nothing traced yet.
    backend = keras_backend.for_model(model)
    counts = lambda: (backend._prepare.experimental_get_tracing_count(),
                      backend._generate.experimental_get_tracing_count())
    frames = [f.astype(np.float32) / 255 for f in testing.textured_square_frames(4)]
    first = list(fomm_tf.animate(model, frames[0], frames, batch_size=2))
    self.assertEqual(counts(), (1, 1))  # fomm_tf.animate ran the model's own backend.
    second = list(fomm_tf.animate(model, frames[1], frames, batch_size=2))
    self.assertEqual(counts(), (1, 1))
    self.assertGreater(testing.mean_abs_error(first, second), 0.0)  # Another source: really computed again.

  def test_relative_first_frame_equals_absolute(self):
    model = tiny_model(self.dir)
    frames = [f.astype(np.float32) / 255 for f in testing.textured_square_frames(4)]
    source = frames[0]
    relative = list(fomm_tf.animate(model, source, frames, relative=True))
    absolute = list(fomm_tf.animate(model, source, frames, relative=False))
    np.testing.assert_allclose(relative[0], absolute[0], atol=1e-5)

  def test_relative_motion_starts_from_the_source_pose(self):
    # The trained built-in model: its keypoints follow the motion, so absolute and relative differ clearly.
    model = builtin.load_builtin_model()
    frames = media.read_video_frames(builtin.SAMPLE_DRIVING, max_frames=12)[::4]
    source = frames[2]
    relative = list(fomm_tf.animate(model, source, frames, relative=True))
    absolute = list(fomm_tf.animate(model, source, frames, relative=False))
    kp_source = model.detect_keypoints(source[None])
    # The first driving frame carries no motion relative to itself: the source is reproduced as it is posed.
    unmoved = model.generate(source[None], kp_source, kp_source)["prediction"].numpy()[0]
    np.testing.assert_allclose(relative[0], unmoved, atol=1e-5)
    # Absolute mode moves the source to the first driving frame's keypoints instead.
    self.assertGreater(np.abs(absolute[0] - relative[0]).mean(), 0.005)

  def test_batched_streaming_equals_per_frame_reference(self):
    model = tiny_model(self.dir)
    frames = [f.astype(np.float32) / 255 for f in testing.textured_square_frames(5, 64, 64)]
    streamed = np.stack(list(fomm_tf.animate(model, frames[0], frames, relative=False, batch_size=3)))
    for i, frame in enumerate(frames):
      kp_s = model.detect_keypoints(frames[0][None])
      kp_d = model.detect_keypoints(frame[None])
      reference = model.generate(frames[0][None], kp_s, kp_d)["prediction"].numpy()[0]
      np.testing.assert_allclose(streamed[i], reference, atol=1e-5)

  def test_best_frame_finds_the_source_pose(self):
    model = tiny_model(self.dir)
    frames = testing.textured_square_frames(9, 64, 64, seed=3)
    source = frames[6]
    kp = model.detect_keypoints(np.stack(frames).astype(np.float32) / 255)["value"].numpy()
    kp_source = model.detect_keypoints(source[None].astype(np.float32) / 255)["value"].numpy()[0]
    self.assertEqual(best_frame_lib.best_frame_index(kp_source, kp), 6)
    source_path = testing.write_image(self.out("s.png"), source)
    video = testing.write_video(self.out("d.mkv"), frames)
    code, stdout, stderr = testing.run_cli(cli, f"--flagfile={self.flagfile}", f"--source_image={source_path}",
                                           f"--driving_video={video}", f"--result_video={self.out('b.mp4')}",
                                           "--find_best_frame")
    self.assertEqual(code, 0, stderr[-2000:])
    self.assertIn("best matching driving frame (keypoints): 6 of 9\n", stdout)
    self.assertIn("initial driving frame: 6\n", stdout)


class AnimateErrorsTest(testing.AnimateFixtures, testing.TestCase):
  """Each bad input: one clear line, exit status 1, and no result file left behind (run in-process)."""
  DRIVING_FRAMES = 5

  def assertFails(self, pattern, *args, result=None):
    out_dir = self.tmp_dir()
    result = result or os.path.join(out_dir, "result.mp4")
    outcome = testing.run_cli(cli, f"--flagfile={self.flagfile}", f"--result_video={result}", *args)
    self.assertErrorLine(outcome, ".*" + pattern)
    self.assertLen([l for l in outcome[2].splitlines() if l.startswith("error: ")], 1, outcome[2][-2000:])
    if os.path.isdir(out_dir):
      self.assertEqual(os.listdir(out_dir), [], "a result or partial file was left behind")

  def test_missing_source(self):
    self.assertFails(r"nope\.png", "--source_image=/nonexistent/nope.png", f"--driving_video={self.driving_mp4}")

  def test_corrupt_frame_in_folder_reports_index(self):
    folder = self.create_tempdir().full_path
    for i, frame in enumerate(testing.textured_square_frames(5)):
      testing.write_image(os.path.join(folder, f"{i:03d}.png"), frame)
    with open(os.path.join(folder, "003.png"), "wb") as f:
      f.write(b"not a png at all")
    self.assertFails(r"frame 3", f"--source_image={self.source_png}", f"--driving_video={folder}")

  def test_video_without_frames(self):
    empty = os.path.join(self.create_tempdir().full_path, "empty.mp4")
    with open(empty, "wb") as f:
      f.write(b"\x00" * 100)
    self.assertFails(r"empty\.mp4", f"--source_image={self.source_png}", f"--driving_video={empty}")

  def test_checkpoint_that_does_not_fit(self):
    self.assertFails(r"shape|missing|no counterpart", f"--source_image={self.source_png}",
                     f"--driving_video={self.driving_mp4}", f"--checkpoint={testing.CHECKPOINT}")

  def test_unwritable_output(self):
    self.assertFails(r"does not exist",
                     f"--source_image={self.source_png}",
                     f"--driving_video={self.driving_mp4}",
                     result="/nonexistent-dir/out.mp4")

  def test_best_frame_out_of_range(self):
    self.assertFails(r"--best_frame=99 is out of range", f"--source_image={self.source_png}",
                     f"--driving_video={self.driving_mp4}", "--best_frame=99")

  def test_mixed_precision_needs_the_keras_backend(self):
    self.assertFails(r"--mixed_precision is for --backend=keras", f"--source_image={self.source_png}",
                     f"--driving_video={self.driving_mp4}", "--backend=tflite", f"--export_dir={self.dir}",
                     "--mixed_precision=bfloat16")

  def test_audio_requested_without_audio(self):
    self.assertFails(r"no audio", f"--source_image={self.source_png}", f"--driving_video={self.driving_mp4}", "--audio")


class AnimateProcessTest(testing.TestCase):
  """One real process: the entry point, its exit status and its error line."""

  def test_command_runs_and_reports_errors_in_one_line(self):
    work = self.tmp_dir()
    frames = testing.textured_square_frames(4)
    source = testing.write_image(os.path.join(work, "s.png"), frames[0])
    video = testing.write_video(os.path.join(work, "d.mp4"), frames)
    flagfile = testing.write_tiny_flagfile(work)
    result = os.path.join(work, "r.mp4")
    proc = testing.run_module("fomm_tf.animate", f"--flagfile={flagfile}", f"--source_image={source}",
                              f"--driving_video={video}", f"--result_video={result}")
    self.assertEqual(proc.returncode, 0, proc.stderr[-2000:])
    self.assertEqual(testing.probe(result)[0], 4)
    proc = testing.run_module("fomm_tf.animate", f"--flagfile={flagfile}", "--batch_size=abc")
    self.assertEqual(proc.returncode, 1)
    self.assertRegex(proc.stderr.strip().splitlines()[-1], r"^error: .*batch_size")


if __name__ == "__main__":
  absltest.main()
