"""Tests for fomm_tf.data.video_writer: real files written and read back."""

import fractions
import os
import stat

from absl.testing import absltest
import av
import numpy as np

from fomm_tf.io import media
from fomm_tf.io import video_writer
from fomm_tf.errors import MediaError
from fomm_tf.io.video_writer import VideoWriter
from tests import testing


def write_source_with_tone(path, seconds, fps=25, with_audio=True):
  """A small H.264 clip with an optional stereo 440 Hz AAC tone (amplitude 0.5) of `seconds`."""
  testing.write_video(path,
                      testing.moving_square_frames(int(round(seconds * fps))),
                      fps,
                      audio_seconds=seconds if with_audio else None,
                      audio_layout="stereo",
                      audio_amplitude=0.5)


def audio_summary(path):
  """(codec name, duration in seconds, RMS) of the first audio stream."""
  with av.open(path) as container:
    stream = container.streams.audio[0]
    samples = [frame.to_ndarray().astype(np.float64).ravel() for frame in container.decode(stream)]
    rate = stream.codec_context.sample_rate
    channels = stream.codec_context.channels
  samples = np.concatenate(samples)
  duration = samples.size / channels / rate
  return stream.codec_context.name, duration, float(np.sqrt(np.mean(samples**2)))


class VideoWriterRoundTripTest(testing.TestCase):

  def setUp(self):
    super().setUp()
    self.dir = testing.make_temp_dir(self, "video_writer_test_")

  def path(self, name):
    return os.path.join(self.dir, name)

  def write(self, name, frames, fps, **kwargs):
    with VideoWriter(self.path(name), fps, **kwargs) as writer:
      for frame in frames:
        writer.write(frame)
    self.assertEqual(writer.frames_written, len(frames))
    return self.path(name)

  def test_mp4_round_trip_at_several_rates(self):
    frames = testing.as_float(testing.moving_square_frames(15))
    for fps in (25, 30, 29.97, fractions.Fraction(30000, 1001)):
      with self.subTest(fps=fps):
        path = self.write("out.mp4", frames, fps)
        source = media.open_video(path)
        self.assertAlmostEqual(source.fps, float(fps), places=6)
        self.assertEqual(source.num_frames, 15)
        self.assertEqual(source.frame_size, (32, 48))
        self.assertFalse(source.has_audio)
        decoded = list(source)
        self.assertLen(decoded, 15)
        self.assertLess(testing.mean_abs_error(decoded, frames), 0.03)
        with av.open(path) as container:
          stream = container.streams.video[0]
          self.assertEqual(stream.codec_context.name, "h264")
          self.assertEqual(stream.codec_context.pix_fmt, "yuv420p")

  def test_source_fps_float_is_kept_exactly(self):
    # A reader reports 30000/1001 as a float; the writer recovers it.
    fps = float(fractions.Fraction(30000, 1001))
    path = self.write("ntsc.mp4", testing.as_float(testing.moving_square_frames(5)), fps)
    with av.open(path) as container:
      self.assertEqual(container.streams.video[0].average_rate, fractions.Fraction(30000, 1001))

  def test_other_containers(self):
    frames = testing.as_float(testing.moving_square_frames(8))
    for name, codec in (("o.mov", "h264"), ("o.mkv", "h264"), ("o.webm", "vp9")):
      with self.subTest(name=name):
        path = self.write(name, frames, 25)
        with av.open(path) as container:
          self.assertEqual(container.streams.video[0].codec_context.name, codec)
        decoded = media.read_video_frames(path)
        self.assertLen(decoded, 8)
        self.assertLess(testing.mean_abs_error(decoded, frames), 0.03)
        self.assertAlmostEqual(media.open_video(path).fps, 25.0)

  def test_uint8_frames_and_crf(self):
    frames = [(f * 255 + 0.5).astype(np.uint8) for f in testing.as_float(testing.moving_square_frames(6))]
    path = self.write("u8.mp4", frames, 25, crf=0, preset="ultrafast")
    decoded = media.read_video_frames(path)
    expected = [f.astype(np.float32) / 255 for f in frames]
    self.assertLess(testing.mean_abs_error(decoded, expected), 0.02)

  def test_odd_size_is_padded_by_repeating_edges(self):
    frames = testing.as_float(testing.moving_square_frames(4, height=33, width=45))
    path = self.write("odd.mp4", frames, 25)
    decoded = media.read_video_frames(path)
    self.assertEqual(decoded[0].shape, (34, 46, 3))
    self.assertLess(testing.mean_abs_error([d[:33, :45] for d in decoded], frames), 0.03)
    # The added row repeats the last one rather than being black.
    self.assertLess(np.abs(decoded[0][33] - decoded[0][32]).mean(), 0.03)

  def test_gif_round_trip(self):
    frames = testing.as_float(testing.moving_square_frames(10))
    path = self.write("anim.gif", frames, 25)
    source = media.open_video(path)
    self.assertAlmostEqual(source.fps, 25.0)
    self.assertEqual(source.num_frames, 10)
    self.assertEqual(source.frame_size, (32, 48))
    decoded = list(source)
    self.assertLen(decoded, 10)
    self.assertLess(testing.mean_abs_error(decoded, frames), 0.03)

  def test_gif_rate_not_a_whole_number_of_hundredths(self):
    path = self.write("thirty.gif", testing.as_float(testing.moving_square_frames(9)), 30)
    # Delays of 3 or 4 hundredths average to exactly 30 fps.
    self.assertAlmostEqual(media.open_video(path).fps, 30.0)

  def test_audio_copied_and_cut_at_video_duration(self):
    source = self.path("driving.mp4")
    write_source_with_tone(source, seconds=2.0)
    self.assertTrue(media.has_audio(source))
    frames = testing.as_float(testing.moving_square_frames(25))  # One second at 25 fps.
    path = self.write("with_audio.mp4", frames, 25, audio_source=source)
    self.assertTrue(media.has_audio(path))
    codec, seconds, rms = audio_summary(path)
    self.assertEqual(codec, "aac")
    self.assertAlmostEqual(seconds, 1.0, delta=0.05)
    self.assertAlmostEqual(rms, 0.5 / np.sqrt(2), delta=0.05)
    self.assertLen(media.read_video_frames(path), 25)

  def test_audio_at_ntsc_rate_and_in_webm(self):
    source = self.path("driving.mp4")
    write_source_with_tone(source, seconds=1.0)
    frames = testing.as_float(testing.moving_square_frames(20))
    for name, codec in (("a.mkv", "aac"), ("a.webm", "opus")):
      with self.subTest(name=name):
        path = self.write(name, frames, 29.97, audio_source=source)
        audio_codec, seconds, rms = audio_summary(path)
        self.assertEqual(audio_codec, codec)
        self.assertAlmostEqual(seconds, 20 / 29.97, delta=0.05)
        self.assertGreater(rms, 0.2)

  def test_audio_source_shorter_than_video_just_ends(self):
    source = self.path("short.mp4")
    write_source_with_tone(source, seconds=0.4)
    path = self.write("long.mp4", testing.as_float(testing.moving_square_frames(25)), 25, audio_source=source)
    _, seconds, _ = audio_summary(path)
    self.assertAlmostEqual(seconds, 0.4, delta=0.05)
    self.assertLen(media.read_video_frames(path), 25)

  def test_result_file_permissions_follow_umask(self):
    path = self.write("perm.mp4", testing.as_float(testing.moving_square_frames(2)), 25)
    umask = os.umask(0)
    os.umask(umask)
    self.assertEqual(stat.S_IMODE(os.stat(path).st_mode), 0o666 & ~umask)

  def test_partial_file_is_hidden_next_to_output_until_close(self):
    path = self.path("out.mp4")
    writer = VideoWriter(path, 25)
    writer.write(testing.as_float(testing.moving_square_frames(1))[0])
    names = os.listdir(self.dir)
    self.assertLen(names, 1)
    self.assertRegex(names[0], r"^\.out\.mp4\.partial-[0-9a-f]+\.mp4$")
    writer.close()
    self.assertEqual(os.listdir(self.dir), ["out.mp4"])
    writer.close()  # A second close does nothing.


class VideoWriterErrorTest(testing.TestCase):

  def setUp(self):
    super().setUp()
    self.dir = testing.make_temp_dir(self, "video_writer_test_")

  def path(self, name):
    return os.path.join(self.dir, name)

  def assert_only_files(self, *names):
    self.assertCountEqual(os.listdir(self.dir), names)

  def make_existing_output(self, name="out.mp4"):
    with open(self.path(name), "wb") as stream:
      stream.write(b"previous result")
    return self.path(name)

  def assert_existing_output_intact(self, name="out.mp4"):
    with open(self.path(name), "rb") as stream:
      self.assertEqual(stream.read(), b"previous result")
    self.assert_only_files(name)

  def test_exception_in_with_block_keeps_previous_file(self):
    path = self.make_existing_output()
    with self.assertRaisesRegex(RuntimeError, "model failed"):
      with VideoWriter(path, 25) as writer:
        for frame in testing.as_float(testing.moving_square_frames(5)):
          writer.write(frame)
        raise RuntimeError("model failed")
    self.assert_existing_output_intact()

  def test_abort_keeps_previous_file(self):
    path = self.make_existing_output("out.gif")
    writer = VideoWriter(path, 10)
    writer.write(testing.as_float(testing.moving_square_frames(1))[0])
    writer.abort()
    self.assert_existing_output_intact("out.gif")
    with self.assertRaisesRegex(MediaError, r"write\(\) after the writer "
                                r"was closed or aborted"):
      writer.write(testing.as_float(testing.moving_square_frames(1))[0])

  def test_bad_frame_mid_video_keeps_previous_file(self):
    path = self.make_existing_output()
    frames = testing.as_float(testing.moving_square_frames(3))
    with self.assertRaisesRegex(MediaError, r"out\.mp4: frame 2 has shape \(16, 16, 3\), but "
                                r"frame 0 had \(32, 48, 3\)"):
      with VideoWriter(path, 25) as writer:
        writer.write(frames[0])
        writer.write(frames[1])
        writer.write(np.zeros((16, 16, 3), np.float32))
    self.assert_existing_output_intact()

  def test_close_without_frames(self):
    path = self.make_existing_output()
    with self.assertRaisesRegex(MediaError, r"out\.mp4: no frames were written"):
      with VideoWriter(path, 25):
        pass
    self.assert_existing_output_intact()

  def test_bad_frames(self):
    with VideoWriter(self.path("f.mp4"), 25) as writer:
      with self.assertRaisesRegex(MediaError, r"frame 0 must have shape "
                                  r"\(H, W, 3\), got \(8, 8\)"):
        writer.write(np.zeros((8, 8), np.float32))
      with self.assertRaisesRegex(MediaError, r"frame 0 must be float "
                                  r"in \[0, 1\] or uint8, got int32"):
        writer.write(np.zeros((8, 8, 3), np.int32))
      bad = np.zeros((8, 8, 3), np.float32)
      bad[2, 3, 1] = np.nan
      with self.assertRaisesRegex(MediaError, r"frame 0 contains NaN or infinite"):
        writer.write(bad)
      writer.write(np.zeros((8, 8, 3), np.float32))
    self.assert_only_files("f.mp4")

  def test_unknown_extension_before_anything_is_written(self):
    for name in ("out.avi", "out.txt", "out"):
      with self.subTest(name=name):
        with self.assertRaisesRegex(MediaError, r"unsupported output extension .*use one "
                                    r"of \.gif, \.mkv, \.mov, \.mp4, \.webm"):
          VideoWriter(self.path(name), 25)
    self.assert_only_files()

  def test_missing_output_directory(self):
    missing = self.path("no_such_dir")
    with self.assertRaisesRegex(MediaError, r"no_such_dir: output directory does not exist"):
      VideoWriter(os.path.join(missing, "out.mp4"), 25)

  def test_output_directory_not_writable(self):
    # Nobody, root included, can create files in /proc, so this holds
    # whoever runs the tests (permission bits do not stop root).
    with self.assertRaisesRegex(MediaError, r"^/proc: output directory is not writable: .+"):
      VideoWriter("/proc/out.mp4", 25)

  def test_output_directory_is_a_file(self):
    with open(self.path("plain"), "w") as stream:
      stream.write("x")
    with self.assertRaisesRegex(MediaError, r"plain: output directory is not a directory"):
      VideoWriter(self.path("plain/out.mp4"), 25)

  def test_output_path_is_a_directory(self):
    os.mkdir(self.path("d.mp4"))
    with self.assertRaisesRegex(MediaError, r"d\.mp4: output path is a directory"):
      VideoWriter(self.path("d.mp4"), 25)

  def test_bad_settings(self):
    for fps in (0, -5, 1e-4, 5000, float("nan"), float("inf"), "25", True):
      with self.subTest(fps=fps):
        with self.assertRaisesRegex(MediaError, r"fps must be a number from 0.1 to 1000"):
          VideoWriter(self.path("o.mp4"), fps)
    with self.assertRaisesRegex(MediaError, r"GIF fps must be at most 100"):
      VideoWriter(self.path("o.gif"), 120)
    with self.assertRaisesRegex(MediaError, r"crf for libx264 must be an "
                                r"integer in 0\.\.51, got 60"):
      VideoWriter(self.path("o.mp4"), 25, crf=60)
    with self.assertRaisesRegex(MediaError, r"preset must be one of"):
      VideoWriter(self.path("o.mp4"), 25, preset="warp")
    self.assert_only_files()

  def test_audio_errors(self):
    silent = self.path("silent.mp4")
    write_source_with_tone(silent, seconds=0.2, with_audio=False)
    self.assertFalse(media.has_audio(silent))
    with self.assertRaisesRegex(MediaError, r"silent\.mp4: has no audio stream to copy"):
      VideoWriter(self.path("o.mp4"), 25, audio_source=silent)
    with self.assertRaisesRegex(MediaError, r"gone\.mp4: audio source: no such file"):
      VideoWriter(self.path("o.mp4"), 25, audio_source=self.path("gone.mp4"))
    with open(self.path("junk.mp4"), "wb") as stream:
      stream.write(b"junk" * 100)
    with self.assertRaisesRegex(MediaError, r"junk\.mp4: audio source cannot be opened"):
      VideoWriter(self.path("o.mp4"), 25, audio_source=self.path("junk.mp4"))
    with self.assertRaisesRegex(MediaError, r"o\.gif: GIF cannot hold "
                                r"audio"):
      VideoWriter(self.path("o.gif"), 25, audio_source=silent)
    self.assert_only_files("silent.mp4", "junk.mp4")


if __name__ == "__main__":
  absltest.main()
