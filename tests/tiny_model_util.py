"""A tiny random FOMM config and real media files for fast end-to-end tests."""

import os

import av
import numpy as np
from PIL import Image

from tests import fixture_util

TINY_FLAGS = """--flagfile={root}/configs/vox-256.flags
--frame_shape=64,64,3
--kp_block_expansion=8
--kp_max_features=32
--kp_num_blocks=3
--gen_block_expansion=8
--gen_max_features=32
--dm_block_expansion=8
--dm_max_features=32
--dm_num_blocks=3
"""


def write_tiny_flagfile(directory):
  path = os.path.join(directory, "tiny.flags")
  with open(path, "w") as f:
    f.write(TINY_FLAGS.format(root=fixture_util.REPO_ROOT))
  return path


def moving_square_frames(num_frames, height=48, width=64, seed=0):
  """uint8 frames of a textured square moving over a gradient background."""
  rng = np.random.default_rng(seed)
  texture = (rng.random((16, 16, 3)) * 255).astype(np.uint8)
  background = np.zeros((height, width, 3), np.uint8)
  background[..., 0] = np.linspace(0, 200, width)[None, :]
  background[..., 2] = np.linspace(50, 150, height)[:, None]
  frames = []
  for t in range(num_frames):
    frame = background.copy()
    y, x = 4 + (t * 2) % (height - 20), 4 + (t * 3) % (width - 20)
    frame[y:y + 16, x:x + 16] = texture
    frames.append(frame)
  return frames


def write_video(path, frames, fps=25, audio=False):
  """Writes uint8 frames with PyAV (H.264 for mp4/mov/mkv, GIF by extension), optionally with a sine AAC track."""
  ext = os.path.splitext(path)[1].lower()
  with av.open(path, "w") as container:
    if ext == ".gif":
      stream = container.add_stream("gif", rate=fps)
      stream.pix_fmt = "rgb8"
    else:
      stream = container.add_stream("libx264", rate=fps)
      stream.pix_fmt = "yuv420p"
    stream.height, stream.width = frames[0].shape[:2]
    audio_stream = None
    if audio:
      audio_stream = container.add_stream("aac", rate=44100)
      audio_stream.layout = "mono"
    for frame in frames:
      for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
        container.mux(packet)
    for packet in stream.encode():
      container.mux(packet)
    if audio_stream is not None:
      seconds = len(frames) / fps
      samples = int(seconds * 44100)
      t = np.arange(samples) / 44100.0
      wave = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
      for start in range(0, samples, 1024):
        chunk = wave[start:start + 1024][None, :]
        frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout="mono")
        frame.sample_rate = 44100
        frame.pts = start
        for packet in audio_stream.encode(frame):
          container.mux(packet)
      for packet in audio_stream.encode():
        container.mux(packet)
  return path


def write_image(path, array):
  Image.fromarray(array).save(path)
  return path


def probe(path):
  """(num_frames, fps, has_audio, (h, w)) of a written video, decoded for real."""
  with av.open(path) as container:
    stream = container.streams.video[0]
    fps = float(stream.average_rate) if stream.average_rate else None
    has_audio = bool(container.streams.audio)
    frames = [f.to_ndarray(format="rgb24") for f in container.decode(stream)]
  return len(frames), fps, has_audio, frames[0].shape[:2]
