"""Frames and temp dirs shared by the media and video writer tests."""

import tempfile

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
