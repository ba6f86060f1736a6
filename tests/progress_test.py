"""Tests of the terminal progress bar's rate and ETA."""

import io

from absl.testing import absltest

from fomm_tf.animation import progress
from tests import testing


class _Clock:

  def __init__(self):
    self.now = 100.0

  def __call__(self):
    return self.now


def _last_line(stream):
  return stream.getvalue().split("\r")[-1]


class ProgressBarTest(testing.TestCase):

  def test_frames_of_a_batch_arriving_together_show_the_batch_rate_from_the_first_frame(self):
    clock, stream = _Clock(), io.StringIO()
    bar = progress.ProgressBar(total=32, stream=stream, batch=8, clock=clock)
    clock.now += 2.0  # The first batch of 8 took 2 s: 4 fps, 24 frames left -> 6 s.
    for _ in range(8):
      bar.update()
      self.assertIn("4.00 fps", _last_line(stream))
      clock.now += 1e-6
    self.assertIn("ETA 00:06", _last_line(stream))
    clock.now = 104.0  # The second batch after 4 s in all: still 4 fps.
    bar.update()
    self.assertIn("9/32 frames  4.00 fps", _last_line(stream))

  def test_the_last_short_batch_counts_only_the_frames_there_are(self):
    clock, stream = _Clock(), io.StringIO()
    bar = progress.ProgressBar(total=10, stream=stream, batch=8, clock=clock)
    clock.now += 1.0
    bar.update(8)
    clock.now += 1.0
    bar.update()
    self.assertIn("9/10 frames  5.00 fps", _last_line(stream))  # 10 frames done over 2 s.
    bar.update()
    bar.close()
    self.assertTrue(stream.getvalue().endswith("ETA 00:00\n"))

  def test_unknown_total_shows_frames_and_rate(self):
    clock, stream = _Clock(), io.StringIO()
    bar = progress.ProgressBar(stream=stream, batch=4, clock=clock)
    clock.now += 0.5
    bar.update()
    self.assertEqual(_last_line(stream), "animating 1 frames  8.00 fps")


if __name__ == "__main__":
  absltest.main()
