"""Real-time animation from a camera or stream that never falls behind.

Three stages run in their own threads, so decoding, inference and output
overlap on the cores: the capture thread reads frames (a camera device, a file
paced at its own frame rate as a camera would deliver it, or any stream FFmpeg
opens) into a one-frame slot; the animation loop always takes the newest frame
in the slot, so when it is slower than the camera the frames it had no time for
are dropped (counted, never queued); finished frames go to the outputs (a
recording with each frame's capture time, a callback such as a preview window
or a virtual camera) through a short queue.

Statistics: frames in (captured), animated, dropped (captured but replaced in
the slot before the loop took them: in = animated + dropped), fps (frames
animated per second of camera time) and latency from capture to result.
"""

import dataclasses
import json
import queue
import threading
import time
from typing import Callable, List, Optional

import av
import numpy as np

from fomm_tf.errors import MediaError
from fomm_tf.errors import one_line
from fomm_tf.io import files
from fomm_tf.io import media


@dataclasses.dataclass
class Captured:
  frame: np.ndarray
  index: int
  camera_time: float  # Seconds since the first frame, in the camera's (or file's) own clock.
  arrival: float  # time.monotonic() when the frame became available.


def is_file(spec):
  """Whether the camera `spec` names a video file (not a camera index, a /dev/video device or a stream URL)."""
  spec = str(spec)
  return not (spec.isdigit() or spec.startswith("/dev/video") or "://" in spec)


def open_camera(spec):
  """An av container for `spec`: a camera index or device (v4l2), a video file, or a stream URL.

  Returns (container, paced): files are paced at their own frame rate; cameras and streams deliver in real time.
  """
  spec = str(spec)
  try:
    if spec.isdigit():
      return av.open(f"/dev/video{spec}", format="v4l2"), False
    if spec.startswith("/dev/video"):
      return av.open(spec, format="v4l2"), False
    if "://" in spec:
      return av.open(spec, timeout=10), False
    files.check_regular_file(spec, MediaError, "video")
    return av.open(spec), True
  except av.error.FFmpegError as error:
    raise MediaError(f"{spec}: cannot open the camera or stream: {one_line(error)}") from None


class LatestSlot:
  """Holds the newest item only; putting over an unread item counts it as dropped."""

  def __init__(self):
    self._condition = threading.Condition()
    self._item = None
    self._closed = False
    self.dropped = 0

  def put(self, item):
    with self._condition:
      if self._item is not None:
        self.dropped += 1
      self._item = item
      self._condition.notify()

  def close(self):
    with self._condition:
      self._closed = True
      self._condition.notify()

  def take(self, timeout=None):
    """The newest item (waiting for one), or None once closed and empty."""
    with self._condition:
      while self._item is None and not self._closed:
        if not self._condition.wait(timeout):
          return None
      item, self._item = self._item, None
      return item


class Stats:
  """Counts and latencies of one live session."""

  def __init__(self):
    self.frames_in = 0
    self.frames_animated = 0
    self.frames_dropped = 0
    self.latencies = []
    self.first_camera_time = None
    self.last_camera_time = None

  def summary(self):
    span = (self.last_camera_time or 0.0) - (self.first_camera_time or 0.0)
    latencies = np.asarray(self.latencies) * 1000.0
    return {
        "frames_in": self.frames_in,
        "frames_animated": self.frames_animated,
        "frames_dropped": self.frames_dropped,
        "fps": float(self.frames_animated / span) if span > 0 else 0.0,
        "latency_p50_ms": float(np.percentile(latencies, 50)) if latencies.size else float("nan"),
        "latency_p95_ms": float(np.percentile(latencies, 95)) if latencies.size else float("nan"),
    }

  def line(self):
    s = self.summary()
    return (f"live: in {s['frames_in']}, animated {s['frames_animated']}, dropped {s['frames_dropped']} | "
            f"{s['fps']:.1f} fps | latency p50 {s['latency_p50_ms']:.0f} ms, p95 {s['latency_p95_ms']:.0f} ms")


class LiveRunner:
  """Runs `animate` (frame -> picture) on the frames of `camera` until it ends or `stop()` is called.

  Args:
    camera: a camera spec for `open_camera`, or an iterable of (frame uint8/float, camera_time) for tests and the
      web app.
    animate: frame -> picture (a LiveAnimator).
    outputs: callables (picture, captured) run in the output thread, in order, for every animated frame.
    max_frames: stop after capturing this many frames (None: until the camera ends).
    duration: stop after this many seconds of camera time (None: no limit).
  """

  def __init__(self, camera, animate, outputs=(), max_frames=None, duration=None, report=None, report_every=1.0):
    self.camera = camera
    self.animate = animate
    self.outputs = list(outputs)
    self.max_frames = max_frames
    self.duration = duration
    self.report = report
    self.report_every = report_every
    self.stats = Stats()
    self._slot = LatestSlot()
    self._out = queue.Queue(maxsize=4)
    self._stop = threading.Event()
    self._errors: List[BaseException] = []

  def stop(self):
    self._stop.set()

  def _frames(self):
    if not isinstance(self.camera, (str, int)):
      yield from self.camera
      return
    container, paced = open_camera(self.camera)
    with container:
      stream = container.streams.video[0]
      stream.thread_type = "AUTO"
      start_pts = None
      try:
        for frame in container.decode(stream):
          if frame.pts is not None and frame.time_base is not None:
            start_pts = frame.pts if start_pts is None else start_pts
            camera_time = float((frame.pts - start_pts) * frame.time_base)
          else:
            camera_time = None
          media.check_pixels(str(self.camera), frame.height, frame.width, "camera frame")
          yield frame.to_ndarray(format="rgb24"), camera_time, paced
      except av.error.FFmpegError as error:
        raise MediaError(f"{self.camera}: the camera or stream failed: {one_line(error)}") from None

  def _capture(self):
    try:
      start = time.monotonic()
      for index, item in enumerate(self._frames()):
        if self._stop.is_set():
          break
        frame, camera_time = item[0], item[1]
        paced = len(item) > 2 and item[2]
        if camera_time is None:
          camera_time = time.monotonic() - start
        if paced:
          delay = start + camera_time - time.monotonic()
          if delay > 0:
            time.sleep(delay)
        if self.duration is not None and camera_time > self.duration:
          break
        self.stats.frames_in += 1
        if self.stats.first_camera_time is None:
          self.stats.first_camera_time = camera_time
        self.stats.last_camera_time = camera_time
        self._slot.put(Captured(frame, index, camera_time, time.monotonic()))
        if self.max_frames is not None and self.stats.frames_in >= self.max_frames:
          break
    except BaseException as error:  # Passed to the main thread, which raises it.
      self._errors.append(error)
    finally:
      self._slot.close()

  def _output(self):
    try:
      while True:
        item = self._out.get()
        if item is None:
          return
        picture, captured = item
        for output in self.outputs:
          output(picture, captured)
    except BaseException as error:  # Passed to the main thread, which raises it.
      self._errors.append(error)
      self._stop.set()

  def run(self):
    """Runs the session; returns the statistics summary. Errors of any stage are raised here."""
    capture = threading.Thread(target=self._capture, name="live-capture", daemon=True)
    output = threading.Thread(target=self._output, name="live-output", daemon=True)
    capture.start()
    output.start()
    last_report = time.monotonic()
    try:
      while not self._stop.is_set() and not self._errors:
        captured = self._slot.take(timeout=0.5)
        if captured is None:
          if not capture.is_alive():
            break
          continue
        picture = self.animate(captured.frame)
        self.stats.frames_animated += 1
        self.stats.latencies.append(time.monotonic() - captured.arrival)
        self._out.put((picture, captured))
        if self.report is not None and time.monotonic() - last_report >= self.report_every:
          self.stats.frames_dropped = self._slot.dropped
          self.report(self.stats.line())
          last_report = time.monotonic()
    finally:
      self._stop.set()
      self._out.put(None)
      output.join()
      capture.join(timeout=5)
      # A frame captured but still in the slot when the session ended was never animated either.
      self.stats.frames_dropped = self.stats.frames_in - self.stats.frames_animated
    if self._errors:
      raise self._errors[0]
    return self.stats.summary()


class Recorder:
  """An output writing each animated picture at its capture time (the achieved timing) to a video file."""

  def __init__(self, path, nominal_fps=25):
    from fomm_tf.io import video_writer  # pylint: disable=import-outside-toplevel
    self._writer = video_writer.VideoWriter(path, nominal_fps, timestamps=True)
    self.path = path

  def __call__(self, picture, captured):
    self._writer.write(picture, captured.camera_time)

  @property
  def frames_written(self):
    return self._writer.frames_written

  def close(self):
    self._writer.close()

  def abort(self):
    self._writer.abort()


def write_stats(path, summary):
  """The session's statistics as JSON (written atomically)."""
  text = json.dumps(summary, indent=2, allow_nan=True) + "\n"
  return files.write_bytes_atomically(path, text.encode("utf-8"), MediaError)


def make_outputs(record: Optional[str], callback: Optional[Callable] = None):
  """(outputs, recorder or None)."""
  recorder = Recorder(record) if record else None
  outputs = [o for o in (recorder, callback) if o is not None]
  return outputs, recorder
