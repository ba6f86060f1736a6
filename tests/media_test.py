"""Tests for fomm_tf.data.media on real files written in a temp dir."""

import collections.abc
import fractions
import os

from absl.testing import absltest
import av
import numpy as np
from PIL import Image

from fomm_tf.io import media
from fomm_tf.errors import MediaError
from tests import testing

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def as_float(frame):
  return frame.astype(np.float32) / 255.0


class ReadImageTest(testing.TestCase):

  def setUp(self):
    super().setUp()
    self.dir = testing.make_temp_dir(self, "media_test_")
    self.rng = np.random.default_rng(0)

  def path(self, name):
    return os.path.join(self.dir, name)

  def test_png_rgb_exact(self):
    pixels = self.rng.integers(0, 256, (17, 29, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(self.path("a.png"))
    image = media.read_image(self.path("a.png"))
    self.assertEqual(image.dtype, np.float32)
    self.assertEqual(image.shape, (17, 29, 3))
    np.testing.assert_allclose(image, pixels / 255.0, atol=1e-6)

  def test_jpeg_close(self):
    columns, rows = np.meshgrid(np.arange(40), np.arange(30))
    pixels = np.stack([columns, rows, np.full_like(rows, 7)], axis=2) * 5
    Image.fromarray(pixels.astype(np.uint8)).save(self.path("a.jpg"), quality=95)
    image = media.read_image(self.path("a.jpg"))
    self.assertEqual(image.shape, (30, 40, 3))
    self.assertLess(np.abs(image - pixels / 255.0).mean(), 0.03)

  def test_rgba_drops_alpha(self):
    rgba = self.rng.integers(0, 256, (8, 9, 4), dtype=np.uint8)
    rgba[:4, :, 3] = 0  # Fully transparent rows keep their RGB.
    Image.fromarray(rgba, "RGBA").save(self.path("a.png"))
    image = media.read_image(self.path("a.png"))
    np.testing.assert_allclose(image, rgba[..., :3] / 255.0, atol=1e-6)

  def test_greyscale_replicated(self):
    grey = self.rng.integers(0, 256, (12, 10), dtype=np.uint8)
    Image.fromarray(grey, "L").save(self.path("g.png"))
    image = media.read_image(self.path("g.png"))
    self.assertEqual(image.shape, (12, 10, 3))
    for channel in range(3):
      np.testing.assert_allclose(image[..., channel], grey / 255.0, atol=1e-6)

  def test_16bit_greyscale_png_full_precision(self):
    grey = self.rng.integers(0, 65536, (9, 11), dtype=np.uint16)
    Image.fromarray(grey).save(self.path("g16.png"))
    image = media.read_image(self.path("g16.png"))
    expected = np.repeat((grey / 65535.0)[..., None], 3, axis=2)
    np.testing.assert_allclose(image, expected, atol=1e-6)

  def test_16bit_rgb_png_full_precision(self):
    rgb = self.rng.integers(0, 65536, (10, 14, 3), dtype=np.uint16)
    encoder = av.CodecContext.create("png", "w")
    encoder.width, encoder.height, encoder.pix_fmt = 14, 10, "rgb48be"
    frame = av.VideoFrame.from_ndarray(rgb, format="rgb48le")
    packets = encoder.encode(frame.reformat(format="rgb48be"))
    packets += encoder.encode(None)
    with open(self.path("c16.png"), "wb") as stream:
      stream.write(bytes(packets[0]))
    image = media.read_image(self.path("c16.png"))
    # 8-bit decoding would be off by up to 1/255 ~ 4e-3.
    np.testing.assert_allclose(image, rgb / 65535.0, atol=1e-6)

  def test_palette_png(self):
    pixels = np.zeros((6, 6, 3), np.uint8)
    pixels[:3] = (255, 0, 0)
    pixels[3:] = (0, 0, 255)
    Image.fromarray(pixels).convert("P").save(self.path("p.png"))
    image = media.read_image(self.path("p.png"))
    np.testing.assert_allclose(image, pixels / 255.0, atol=1e-6)

  def test_jpeg_exif_orientation_applied(self):
    pixels = np.zeros((20, 40, 3), np.uint8)
    exif = Image.Exif()
    exif[0x0112] = 6  # Stored sideways; display rotated 90 degrees CW.
    Image.fromarray(pixels).save(self.path("r.jpg"), exif=exif)
    self.assertEqual(media.read_image(self.path("r.jpg")).shape, (40, 20, 3))

  def test_missing_file(self):
    with self.assertRaisesRegex(MediaError, r"nope\.png: no such file"):
      media.read_image(self.path("nope.png"))

  def test_directory_is_not_an_image(self):
    with self.assertRaisesRegex(MediaError, r"not a regular file"):
      media.read_image(self.dir)

  def test_garbage_and_empty_files(self):
    with open(self.path("junk.png"), "wb") as stream:
      stream.write(b"definitely not an image" * 10)
    open(self.path("empty.jpg"), "wb").close()
    for name in ("junk.png", "empty.jpg"):
      with self.assertRaisesRegex(MediaError, rf"{name}: cannot read image: .+"):
        media.read_image(self.path(name))

  def test_truncated_png(self):
    pixels = self.rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(self.path("t.png"))
    with open(self.path("t.png"), "rb") as stream:
      data = stream.read()
    with open(self.path("t.png"), "wb") as stream:
      stream.write(data[:len(data) // 2])
    with self.assertRaisesRegex(MediaError, r"t\.png: cannot read image"):
      media.read_image(self.path("t.png"))


class ResizeAndFitTest(testing.TestCase):

  def setUp(self):
    super().setUp()
    self.rng = np.random.default_rng(1)

  def test_equal_size_returns_same_values_as_a_copy(self):
    frame = self.rng.random((16, 16, 3), dtype=np.float32)
    resized = media.resize_frame(frame, (16, 16))
    np.testing.assert_array_equal(resized, frame)
    self.assertIsNot(resized, frame)
    np.testing.assert_array_equal(media.fit_frame(frame, 16), frame)

  def test_shrink_by_two_averages_areas(self):
    frame = self.rng.random((8, 12, 3), dtype=np.float32)
    resized = media.resize_frame(frame, (4, 6))
    expected = frame.reshape(4, 2, 6, 2, 3).mean(axis=(1, 3))
    np.testing.assert_allclose(resized, expected, atol=1e-6)

  def test_shrink_by_fraction_keeps_mean_and_float_precision(self):
    frame = self.rng.random((30, 45, 3)).astype(np.float32) * 1e-3
    resized = media.resize_frame(frame, (7, 11))
    self.assertEqual(resized.shape, (7, 11, 3))
    self.assertEqual(resized.dtype, np.float32)
    # Values far below 1/255 survive: no 8-bit round trip.
    np.testing.assert_allclose(resized.mean(), frame.mean(), rtol=0.05)
    self.assertGreater(resized.min(), 0.0)

  def test_enlarge_is_bilinear(self):
    ramp = np.linspace(0.0, 1.0, 5, dtype=np.float32)
    frame = np.repeat(np.repeat(ramp[None, :, None], 3, 0), 3, 2)
    resized = media.resize_frame(frame, (3, 10))
    # Half-pixel centres: output column j samples input x=(j+0.5)/2-0.5.
    positions = (np.arange(10) + 0.5) / 2.0 - 0.5
    expected = np.interp(positions, np.arange(5), ramp)
    np.testing.assert_allclose(resized[1, :, 0], expected, atol=1e-6)

  def test_mixed_axes_keep_constant_image(self):
    frame = np.full((20, 6, 3), 0.25, np.float32)
    resized = media.resize_frame(frame, (9, 13))
    self.assertEqual(resized.shape, (9, 13, 3))
    np.testing.assert_allclose(resized, 0.25, atol=1e-6)

  def test_crop_keeps_centre_square(self):
    frame = np.zeros((40, 60, 3), np.float32)
    frame[:, 10:50] = (0.0, 1.0, 0.0)  # Centre 40 columns are green.
    fitted = media.fit_frame(frame, 20, mode="crop")
    self.assertEqual(fitted.shape, (20, 20, 3))
    np.testing.assert_allclose(fitted, np.broadcast_to(np.array([0.0, 1.0, 0.0], np.float32), (20, 20, 3)), atol=1e-6)

  def test_crop_tall_frame(self):
    frame = np.zeros((50, 30, 3), np.float32)
    frame[10:40] = 1.0
    np.testing.assert_allclose(media.fit_frame(frame, 30), 1.0, atol=1e-6)

  def test_pad_adds_black_borders_without_stretching(self):
    frame = np.ones((41, 60, 3), np.float32)
    fitted = media.fit_frame(frame, 60, mode="pad")
    self.assertEqual(fitted.shape, (60, 60, 3))
    np.testing.assert_array_equal(fitted[:9], 0.0)
    np.testing.assert_array_equal(fitted[9:50], 1.0)
    np.testing.assert_array_equal(fitted[50:], 0.0)

  def test_bad_arguments(self):
    frame = np.zeros((4, 6, 3), np.float32)
    with self.assertRaisesRegex(MediaError, r"fit mode must be one of"):
      media.fit_frame(frame, 4, mode="stretch")
    with self.assertRaisesRegex(MediaError, r"size must be a positive"):
      media.fit_frame(frame, 0)
    with self.assertRaisesRegex(MediaError, r"shape \(H, W, 3\).*"
                                r"\(4, 6\)"):
      media.fit_frame(frame[..., 0], 4)
    with self.assertRaisesRegex(MediaError, r"must be a float array"):
      media.resize_frame(np.zeros((4, 6, 3), np.uint8), (2, 2))
    with self.assertRaisesRegex(MediaError, r"size must be \(height, "
                                r"width\)"):
      media.resize_frame(frame, (2, -3))


class OpenVideoTest(testing.TestCase):

  def setUp(self):
    super().setUp()
    self.dir = testing.make_temp_dir(self, "media_test_")

  def path(self, name):
    return os.path.join(self.dir, name)

  def test_mp4_frames_fps_size_and_values(self):
    frames = testing.moving_square_frames(12)
    for fps in (25, 30, fractions.Fraction(30000, 1001)):
      with self.subTest(fps=fps):
        testing.write_video(self.path("clip.mp4"), frames, fps)
        source = media.open_video(self.path("clip.mp4"))
        self.assertAlmostEqual(source.fps, float(fps), places=6)
        self.assertEqual(source.num_frames, 12)
        self.assertEqual(source.frame_size, (32, 48))
        self.assertFalse(source.has_audio)
        self.assertEqual(source.path, self.path("clip.mp4"))
        decoded = list(source)
        self.assertLen(decoded, 12)
        self.assertEqual(decoded[0].dtype, np.float32)
        self.assertEqual(decoded[0].shape, (32, 48, 3))
        self.assertLess(testing.mean_abs_error(decoded, [as_float(f) for f in frames]), 0.03)

  def test_streams_lazily_and_can_iterate_twice(self):
    testing.write_video(self.path("long.mp4"), testing.moving_square_frames(150), 25)
    source = media.open_video(self.path("long.mp4"))
    iterator = iter(source)
    self.assertIsInstance(iterator, collections.abc.Iterator)
    self.assertNotIsInstance(iterator, (list, tuple))
    first = next(iterator)
    self.assertEqual(first.shape, (32, 48, 3))
    iterator.close()
    self.assertEqual(sum(1 for _ in source), 150)

  def test_audio_detected(self):
    testing.write_video(self.path("a.mp4"), testing.moving_square_frames(10), 25, audio_seconds=0.5)
    self.assertTrue(media.open_video(self.path("a.mp4")).has_audio)
    self.assertTrue(media.has_audio(self.path("a.mp4")))
    testing.write_video(self.path("b.mp4"), testing.moving_square_frames(10), 25)
    self.assertFalse(media.has_audio(self.path("b.mp4")))

  def test_display_rotation_applied(self):
    frames = testing.moving_square_frames(3, height=32, width=48)
    testing.write_video(self.path("rot.mp4"), frames, 25, rotation=90)
    source = media.open_video(self.path("rot.mp4"))
    self.assertEqual(source.frame_size, (48, 32))
    decoded = list(source)
    expected = [as_float(np.rot90(f)) for f in frames]
    self.assertLess(testing.mean_abs_error(decoded, expected), 0.03)

  def test_other_containers(self):
    frames = testing.moving_square_frames(6)
    for name, codec in (("c.mkv", "libx264"), ("c.mov", "libx264"), ("c.avi", "png")):
      with self.subTest(name=name):
        testing.write_video(self.path(name), frames, 25, codec=codec)
        decoded = media.read_video_frames(self.path(name))
        self.assertLen(decoded, 6)
        self.assertLess(testing.mean_abs_error(decoded, [as_float(f) for f in frames]), 0.03)

  def test_gif_fps_from_frame_durations(self):
    frames = testing.moving_square_frames(4)
    images = [Image.fromarray(f) for f in frames]
    images[0].save(self.path("v.gif"), save_all=True, append_images=images[1:], duration=[100, 50, 50, 200], loop=0)
    source = media.open_video(self.path("v.gif"))
    self.assertAlmostEqual(source.fps, 10.0)  # 4 frames in 0.4 s.
    self.assertEqual(source.num_frames, 4)
    self.assertEqual(source.frame_size, (32, 48))
    decoded = list(source)
    self.assertLen(decoded, 4)
    self.assertLess(testing.mean_abs_error(decoded, [as_float(f) for f in frames]), 0.03)

  def test_gif_written_by_ffmpeg(self):
    frames = testing.moving_square_frames(10)
    with av.open(self.path("f.gif"), "w") as container:
      stream = container.add_stream("gif", rate=25)
      stream.width, stream.height, stream.pix_fmt = 48, 32, "rgb8"
      for frame in frames:
        for packet in stream.encode(av.VideoFrame.from_ndarray(frame)):
          container.mux(packet)
      for packet in stream.encode(None):
        container.mux(packet)
    source = media.open_video(self.path("f.gif"))
    self.assertAlmostEqual(source.fps, 25.0)
    self.assertLen(list(source), 10)

  def test_frame_folder_natural_order(self):
    folder = self.path("frames")
    os.mkdir(folder)
    for number in (1, 2, 10, 3):
      pixels = np.full((16, 20, 3), number * 10, np.uint8)
      Image.fromarray(pixels).save(os.path.join(folder, f"frame{number}.png"))
    # Not frames: other extensions, hidden files, sub-folders.
    with open(os.path.join(folder, "notes.txt"), "w") as stream:
      stream.write("x")
    with open(os.path.join(folder, "._frame1.png"), "wb") as stream:
      stream.write(b"AppleDouble")
    os.mkdir(os.path.join(folder, "sub.png"))
    source = media.open_video(folder)
    self.assertEqual(source.fps, media.DEFAULT_FPS)
    self.assertEqual(source.num_frames, 4)
    self.assertEqual(source.frame_size, (16, 20))
    self.assertFalse(source.has_audio)
    values = [round(float(frame[0, 0, 0]) * 255) for frame in source]
    self.assertEqual(values, [10, 20, 30, 100])

  def test_frame_folder_with_jpeg_and_greyscale(self):
    folder = self.path("mixed")
    os.mkdir(folder)
    Image.fromarray(np.full((8, 8), 200, np.uint8)).save(os.path.join(folder, "a1.png"))
    Image.fromarray(np.full((8, 8, 3), 50, np.uint8)).save(os.path.join(folder, "a2.JPG"))
    frames = media.read_video_frames(folder)
    self.assertLen(frames, 2)
    self.assertEqual(frames[0].shape, (8, 8, 3))

  def test_frame_folder_corrupt_frame_index(self):
    folder = self.path("bad")
    os.mkdir(folder)
    for number in range(1, 5):
      Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(os.path.join(folder, f"f{number}.png"))
    with open(os.path.join(folder, "f3.png"), "wb") as stream:
      stream.write(b"broken")
    source = media.open_video(folder)
    with self.assertRaisesRegex(MediaError, r"bad: frame 2 could not be decoded: .*f3\.png"):
      list(source)

  def test_frame_folder_size_mismatch_names_file(self):
    folder = self.path("sizes")
    os.mkdir(folder)
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(os.path.join(folder, "a.png"))
    Image.fromarray(np.zeros((20, 30, 3), np.uint8)).save(os.path.join(folder, "b.png"))
    with self.assertRaisesRegex(MediaError, r"frame 1 \(.*b\.png\) is 20x30, but frame 0 is "
                                r"32x32"):
      media.read_video_frames(folder)

  def test_empty_folder(self):
    os.mkdir(self.path("empty"))
    with self.assertRaisesRegex(MediaError, r"empty: no decodable frames"):
      media.open_video(self.path("empty"))

  def test_frame_strip(self):
    frames = testing.moving_square_frames(5, height=32, width=32)
    Image.fromarray(np.concatenate(frames, axis=1)).save(self.path("strip.png"))
    source = media.open_video(self.path("strip.png"))
    self.assertEqual(source.num_frames, 5)
    self.assertEqual(source.frame_size, (32, 32))
    self.assertEqual(source.fps, media.DEFAULT_FPS)
    decoded = list(source)
    self.assertLen(decoded, 5)
    for got, expected in zip(decoded, frames):
      np.testing.assert_allclose(got, as_float(expected), atol=1e-6)

  def test_strip_width_not_multiple_of_height(self):
    Image.fromarray(np.zeros((32, 50, 3), np.uint8)).save(self.path("s.png"))
    with self.assertRaisesRegex(MediaError, r"s\.png: not a frame strip: width 50 is not a "
                                r"multiple of height 32"):
      media.open_video(self.path("s.png"))

  def test_corrupt_strip(self):
    with open(self.path("s.jpg"), "wb") as stream:
      stream.write(b"\xff\xd8\xff garbage")
    with self.assertRaisesRegex(MediaError, r"s\.jpg: cannot read image"):
      media.open_video(self.path("s.jpg"))

  def test_corrupt_packet_in_container_reports_frame_index(self):
    frames = [np.random.default_rng(i).integers(0, 256, (16, 16, 3), dtype=np.uint8) for i in range(10)]
    testing.write_video(self.path("png.avi"), frames, 25, codec="png")
    with open(self.path("png.avi"), "rb") as stream:
      data = bytearray(stream.read())
    starts = [i for i in range(len(data)) if data.startswith(_PNG_SIGNATURE, i)]
    self.assertLen(starts, 10)
    data[starts[6]:starts[6] + 8] = bytes(8)  # Break frame 6's PNG.
    with open(self.path("png.avi"), "wb") as stream:
      stream.write(data)
    source = media.open_video(self.path("png.avi"))
    seen = []
    with self.assertRaisesRegex(MediaError, r"png\.avi: frame 6 could not be decoded: .+"):
      for frame in source:
        seen.append(frame)
    self.assertLen(seen, 6)

  def test_resolution_change_mid_stream(self):

    def png_packet(height, width):
      encoder = av.CodecContext.create("png", "w")
      encoder.width, encoder.height, encoder.pix_fmt = (width, height, "rgb24")
      frame = av.VideoFrame.from_ndarray(np.zeros((height, width, 3), np.uint8))
      return (encoder.encode(frame) + encoder.encode(None))[0]

    with av.open(self.path("sizes.avi"), "w") as container:
      stream = container.add_stream("png", rate=25)
      stream.width, stream.height, stream.pix_fmt = 16, 16, "rgb24"
      container.start_encoding()
      for index, size in enumerate([(16, 16), (16, 16), (20, 24)]):
        packet = png_packet(*size)
        packet.stream = stream
        packet.pts = packet.dts = index
        packet.time_base = stream.time_base
        container.mux(packet)
    source = media.open_video(self.path("sizes.avi"))
    with self.assertRaisesRegex(MediaError, r"sizes\.avi: frame 2 is 20x24, but frame 0 is "
                                r"16x16"):
      list(source)

  def test_truncated_mp4_is_an_error_not_a_shorter_video(self):
    # The index goes first (faststart) so that the cut file still opens.
    path = self.path("t.mp4")
    testing.write_video(path, testing.moving_square_frames(40), 25, container_options={"movflags": "+faststart"})
    with av.open(path) as container:
      cut = container.streams.video[0].index_entries[30].pos
    with open(path, "rb") as stream:
      data = stream.read()
    with open(path, "wb") as stream:
      stream.write(data[:cut])  # Ends just before packet 30.
    source = media.open_video(path)
    self.assertEqual(source.num_frames, 40)
    with self.assertRaisesRegex(MediaError, r"t\.mp4: frame \d+ could not be decoded: the "
                                r"file ends early"):
      list(source)

  def test_no_decodable_frames(self):
    with av.open(self.path("empty.avi"), "w") as container:
      stream = container.add_stream("png", rate=25)
      stream.width, stream.height, stream.pix_fmt = 16, 16, "rgb24"
      container.start_encoding()
    with self.assertRaisesRegex(MediaError, r"empty\.avi: no decodable frames"):
      media.open_video(self.path("empty.avi"))

  def test_audio_only_file_has_no_video_stream(self):
    with av.open(self.path("tone.m4a"), "w") as container:
      audio = container.add_stream("aac", rate=44100, layout="mono")
      frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
      frame.sample_rate, frame.pts = 44100, 0
      for packet in audio.encode(frame) + audio.encode(None):
        container.mux(packet)
    with self.assertRaisesRegex(MediaError, r"tone\.m4a: has no video stream"):
      media.open_video(self.path("tone.m4a"))

  def test_missing_and_garbage_paths(self):
    with self.assertRaisesRegex(MediaError, r"gone\.mp4: no such file or directory"):
      media.open_video(self.path("gone.mp4"))
    with self.assertRaisesRegex(MediaError, r"no such file or directory"):
      media.has_audio(self.path("gone.mp4"))
    with open(self.path("junk.mp4"), "wb") as stream:
      stream.write(b"not a video at all " * 50)
    with self.assertRaisesRegex(MediaError, r"junk\.mp4: cannot open as a video: .+"):
      media.open_video(self.path("junk.mp4"))

  def test_read_video_frames_max_frames(self):
    testing.write_video(self.path("m.mp4"), testing.moving_square_frames(10), 25)
    self.assertLen(media.read_video_frames(self.path("m.mp4"), 3), 3)
    self.assertLen(media.read_video_frames(self.path("m.mp4")), 10)
    with self.assertRaisesRegex(MediaError, r"max_frames must be"):
      media.read_video_frames(self.path("m.mp4"), 0)

  def test_path_kind_helpers(self):
    self.assertTrue(media.is_video_path("a/b.MP4"))
    self.assertTrue(media.is_video_path("x.gif"))
    self.assertTrue(media.is_video_path(self.dir))
    self.assertFalse(media.is_video_path("x.png"))
    self.assertTrue(media.is_image_path("x.JPEG"))
    self.assertFalse(media.is_image_path("x.webm"))
    self.assertFalse(media.is_image_path(self.dir))
    self.assertFalse(media.has_audio(self.dir))


if __name__ == "__main__":
  absltest.main()
