"""Frames and temp dirs shared by the media and video writer tests."""

import tempfile

import av
import numpy as np


def make_temp_dir(test_case, prefix):
  """A temp dir removed after the test.

  tempfile rather than absltest's create_tempdir, which needs absl flags
  parsed and so fails under pytest.
  """
  return test_case.enterContext(tempfile.TemporaryDirectory(prefix=prefix))


def moving_square_frames(count, height=32, width=48):
  """uint8 frames: a light square moving right over a coloured ramp."""
  rows = np.linspace(30, 120, height, dtype=np.float32)[:, None]
  base = np.zeros((height, width, 3), np.uint8)
  base[..., 0] = rows
  base[..., 1] = 90
  base[..., 2] = 150
  frames = []
  for index in range(count):
    frame = base.copy()
    left = (2 * index) % max(1, width - 12)
    frame[8:20, left:left + 12] = (230, 220, 60)
    frames.append(frame)
  return frames


def moving_square_float_frames(count, height=32, width=48):
  """The same frames as float32 in [0, 1]."""
  return [frame.astype(np.float32) / 255.0 for frame in moving_square_frames(count, height, width)]


def mean_abs_error(frames_a, frames_b):
  return float(np.mean([np.abs(np.asarray(a, np.float32) - np.asarray(b, np.float32)).mean()
                        for a, b in zip(frames_a, frames_b)]))


def write_video(path, frames, fps, codec="libx264", audio_seconds=None, audio_layout="mono", audio_amplitude=0.3,
                rotation=None, container_options=None):
  """Writes uint8 frames (and optionally a 440 Hz AAC tone of `audio_seconds`) with PyAV."""
  height, width = frames[0].shape[:2]
  with av.open(path, "w", container_options=container_options) as container:
    stream = container.add_stream(codec, rate=fps)
    stream.width, stream.height = width, height
    stream.pix_fmt = "yuv420p" if codec == "libx264" else "rgb24"
    if rotation is not None:
      stream.set_display_rotation(rotation)
    audio = None
    if audio_seconds is not None:
      audio = container.add_stream("aac", rate=44100, layout=audio_layout)
    for frame in frames:
      for packet in stream.encode(av.VideoFrame.from_ndarray(frame)):
        container.mux(packet)
    for packet in stream.encode(None):
      container.mux(packet)
    if audio is not None:
      channels = 2 if audio_layout == "stereo" else 1
      total = int(audio_seconds * 44100)
      tone = audio_amplitude * np.sin(2 * np.pi * 440 * np.arange(total) / 44100)
      for start in range(0, total, 1024):
        chunk = np.repeat(tone[start:start + 1024].astype(np.float32)[None], channels, axis=0)
        audio_frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout=audio_layout)
        audio_frame.sample_rate = 44100
        audio_frame.pts = start
        for packet in audio.encode(audio_frame):
          container.mux(packet)
      for packet in audio.encode(None):
        container.mux(packet)
