"""A one-line terminal progress bar: frames done, fps, ETA."""

import sys
import time


class ProgressBar:
  """Draws `label [####....] done/total frames  fps  ETA` on one line of `stream`.

  Frames are computed in batches and arrive together, microseconds apart, so a rate taken at each frame would
  show thousands of fps until the second batch. The rate is taken per batch instead: when the first frame of a
  batch arrives, the whole batch is done, and fps is the frames of the batches done over the time since
  `start` (the moment work began, not the first frame's arrival).

  Args:
    total: frames expected, or None when unknown (no bar, no ETA).
    stream: where to draw (stderr by default).
    width: characters of the bar.
    label: the word before the bar.
    batch: frames that arrive together.
    clock: seconds, monotonic (tests pass their own).
  """

  def __init__(self, total=None, stream=None, width=30, label="animating", batch=1, clock=time.monotonic):
    self.total = total
    self.stream = stream if stream is not None else sys.stderr
    self.width = width
    self.label = label
    self.batch = max(int(batch), 1)
    self.done = 0
    self._clock = clock
    self.start = clock()
    self._finished = 0  # Frames of the batches that have arrived (the last one may still be arriving).
    self._finished_at = self.start

  def fps(self):
    return self._finished / max(self._finished_at - self.start, 1e-9)

  def update(self, count=1):
    self.done += count
    if self.done > self._finished:
      self._finished = self.done + (-self.done) % self.batch
      if self.total:
        self._finished = min(self._finished, max(self.total, self.done))
      self._finished_at = self._clock()
    fps = self.fps()
    if self.total:
      filled = int(self.width * min(self.done / self.total, 1.0))
      bar = "#" * filled + "." * (self.width - filled)
      remaining = max(self.total - self.done, 0) / fps
      line = (f"\r{self.label} [{bar}] {self.done}/{self.total} frames  {fps:.2f} fps  "
              f"ETA {int(remaining // 60):02d}:{int(remaining % 60):02d}")
    else:
      line = f"\r{self.label} {self.done} frames  {fps:.2f} fps"
    self.stream.write(line)
    self.stream.flush()

  def close(self):
    """Ends the bar's line (if it drew one), so that what is printed next starts on a line of its own."""
    if self.done:
      self.stream.write("\n")
      self.stream.flush()
