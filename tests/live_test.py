"""Live animation with a real video file as the camera: pacing, dropping, recording, statistics."""

import json
import os
import shutil
import time

import numpy as np
from absl.testing import absltest

from fomm_tf import builtin
from fomm_tf.inference import keras_backend
from fomm_tf.io import media
from fomm_tf.live import animator as animator_lib
from fomm_tf.live import cli
from fomm_tf.live import runner as runner_lib
from tests import testing

STATS_KEYS = {"frames_in", "frames_animated", "frames_dropped", "fps", "latency_p50_ms", "latency_p95_ms"}


class LiveTest(testing.TestCase):

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls.dir = testing.make_class_dir("live_test_")
    frames = [(f * 255 + 0.5).astype(np.uint8) for f in media.read_video_frames(builtin.SAMPLE_DRIVING)]
    # 48 frames at 24 fps: two seconds of camera time.
    cls.camera = testing.write_video(os.path.join(cls.dir, "camera.mp4"), (frames + frames[::-1])[:48], fps=24)
    cls.backend = keras_backend.KerasBackend(builtin.load_builtin_model())
    cls.source = media.read_image(builtin.SAMPLE_SOURCE)

  @classmethod
  def tearDownClass(cls):
    shutil.rmtree(cls.dir)
    super().tearDownClass()

  def animator(self, **kwargs):
    return animator_lib.LiveAnimator(self.backend, self.source, **kwargs)

  def test_a_file_is_paced_and_the_recording_has_every_animated_frame(self):
    record = self.tmp_path("live.mp4")
    recorder = runner_lib.Recorder(record)
    runner = runner_lib.LiveRunner(self.camera, self.animator(), [recorder])
    start = time.monotonic()
    summary = runner.run()
    elapsed = time.monotonic() - start
    recorder.close()
    self.assertEqual(set(summary), STATS_KEYS)
    self.assertEqual(summary["frames_in"], 48)
    self.assertEqual(summary["frames_in"], summary["frames_animated"] + summary["frames_dropped"])
    # Paced like a camera: 48 frames at 24 fps take about two seconds to arrive, not as fast as decoding goes.
    self.assertGreater(elapsed, 1.8)
    frames = media.read_video_frames(record)
    self.assertLen(frames, summary["frames_animated"])
    self.assertEqual(recorder.frames_written, summary["frames_animated"])
    # Recorded at the achieved timing: the file lasts about the camera time spanned.
    with __import__("av").open(record) as container:
      stream = container.streams.video[0]
      duration = float(stream.duration * stream.time_base)
    self.assertBetween(duration, 1.5, 2.2)
    self.assertGreater(summary["latency_p95_ms"], 0)

  def test_a_slow_model_drops_frames_and_the_counts_add_up(self):
    animator = self.animator()

    def slow(frame):
      time.sleep(0.2)  # Five frames a second against a 24 fps camera.
      return animator(frame)

    summary = runner_lib.LiveRunner(self.camera, slow).run()
    self.assertGreater(summary["frames_dropped"], 20)
    self.assertEqual(summary["frames_in"], summary["frames_animated"] + summary["frames_dropped"])
    self.assertBetween(summary["fps"], 2.0, 6.0)
    # It never falls behind: each result is at most one slow step after its frame arrived.
    self.assertLess(summary["latency_p95_ms"], 600)

  def test_the_reference_is_the_first_frame_retaken_on_request_or_the_best_match(self):
    frames = media.read_video_frames(builtin.SAMPLE_DRIVING)
    animator = self.animator(reference="first")
    # The source with no motion: what any frame animates to when it is the reference itself.
    unmoved = np.clip(
        self.backend.generate(
            animator._state,
            animator._kp_source,  # pylint: disable=protected-access
            animator._kp_source)[0],
        0,
        1)  # pylint: disable=protected-access
    np.testing.assert_allclose(animator(frames[0]), unmoved, atol=1e-5)
    self.assertGreater(np.abs(animator(frames[20]) - unmoved).mean(), 1e-3)
    animator.retake_reference()
    np.testing.assert_allclose(animator(frames[20]), unmoved, atol=1e-5)
    # "auto": a camera frame in exactly the source's pose becomes the reference, whatever came first.
    auto = self.animator(reference="auto", auto_frames=10)
    auto(frames[10])
    auto(frames[25])
    np.testing.assert_allclose(auto(self.source), unmoved, atol=1e-5)
    self.assertGreater(np.abs(auto(frames[25]) - unmoved).mean(), 1e-3)

  def test_the_command_records_and_writes_its_statistics(self):
    record, stats = self.tmp_path("r.mp4"), self.tmp_path("s.json")
    # The lite built-in model, by its config name alone (live offers it like the default one).
    code, stdout, stderr = testing.run_cli(cli,
                                           "--config=synthetic-128-lite",
                                           f"--camera={self.camera}",
                                           f"--record={record}",
                                           f"--stats_json={stats}",
                                           handle_signals=False)
    self.assertEqual(code, 0, stderr[-2000:])
    with open(stats) as f:
      summary = json.load(f)
    self.assertEqual(set(summary), STATS_KEYS)
    self.assertLen(media.read_video_frames(record), summary["frames_animated"])
    self.assertIn(f"recorded {summary['frames_animated']} frames", stdout)
    self.assertRegex(stdout, r"live: in 48, animated \d+, dropped \d+ \| [\d.]+ fps")
    self.assertIn("using the built-in synthetic-128-lite model's weights", stdout)
    self.assertIn("converting the networks to OpenVINO", stdout)  # Live's default backend.

  def test_the_recording_may_not_replace_the_camera_file(self):
    outcome = testing.run_cli(cli, f"--camera={self.camera}", f"--record={self.camera}", handle_signals=False)
    self.assertErrorLine(outcome, r"--record=.*camera\.mp4 is the same file as --camera=")
    self.assertErrorLine(testing.run_cli(cli, "--camera=/nonexistent/cam.mp4", handle_signals=False),
                         r"/nonexistent/cam\.mp4: no such file")


if __name__ == "__main__":
  absltest.main()
