"""A one-line terminal progress bar: frames done, fps, ETA."""

import sys
import time


class ProgressBar:

  def __init__(self, total=None, stream=None, width=30, label="animating"):
    self.total = total
    self.stream = stream if stream is not None else sys.stderr
    self.width = width
    self.label = label
    self.done = 0
    self.start = time.monotonic()

  def update(self, count=1):
    self.done += count
    elapsed = max(time.monotonic() - self.start, 1e-9)
    fps = self.done / elapsed
    if self.total:
      filled = int(self.width * min(self.done / self.total, 1.0))
      bar = "#" * filled + "." * (self.width - filled)
      remaining = max(self.total - self.done, 0) / fps if fps > 0 else 0
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
