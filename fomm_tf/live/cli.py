"""`python -m fomm_tf.live` (also `fomm-live`): animate a photo from a webcam (or a video, or a stream) in real time.

  python -m fomm_tf.live --source_image=face.png --camera=0 [--record=live.mp4] [--stats_json=stats.json]
  python -m fomm_tf.live --source_image=face.png --camera=clip.mp4      # a file is paced at its frame rate

It never falls behind the camera: frames it has no time for are dropped, and
the result follows the newest frame. While it runs it prints frames in,
animated, dropped, fps and latency every second; at the end the same as one
line (and as JSON with --stats_json). In a terminal: `r` + Enter re-takes the
reference frame, `q` + Enter stops. SIGINT (Ctrl-C) and SIGTERM also end the
session: the recording so far is kept and the statistics written, since that is
what a live session ending means (exit status 0). A preview window opens when
OpenCV and a display are available (--preview); a virtual camera for
video-call apps when pyvirtualcam is installed (--virtual_camera).
"""

import os
import signal
import sys
import threading

from absl import flags

from fomm_tf import builtin
from fomm_tf import cli
from fomm_tf.animation import cli as animation_cli
from fomm_tf.errors import UsageError
from fomm_tf.io import files
from fomm_tf.io import media
from fomm_tf.live import animator as animator_lib
from fomm_tf.live import runner as runner_lib


def define_flags(flag_values):
  animation_cli.define_backend_flags(flag_values)
  kw = {"flag_values": flag_values}
  flags.DEFINE_string("source_image", None, "The photo to animate (default: the built-in sample).", **kw)
  flags.DEFINE_string("camera", "0", "A camera index (0 is /dev/video0) or device path (v4l2), a video file "
                      "(played at its own rate), or a stream URL FFmpeg opens.", **kw)
  flags.DEFINE_string("record", None, "Write the result to this video (each frame at its capture time).", **kw)
  flags.DEFINE_string("stats_json", None, "Write the session's statistics here at the end (JSON).", **kw)
  flags.DEFINE_enum("reference", "first", list(animator_lib.REFERENCES),
                    "Reference frame: the first frame (re-taken with r + Enter), or auto (the best pose match with "
                    "the source over the first --auto_frames frames).", **kw)
  flags.DEFINE_integer("auto_frames", 50, "--reference=auto: how many frames to look at.", **kw)
  flags.DEFINE_boolean("relative", True, "Relative motion transfer.", **kw)
  flags.DEFINE_boolean("adapt_scale", False, "Scale relative motion by the keypoints' convex-hull areas.", **kw)
  flags.DEFINE_integer("smooth", 2, "Average the camera keypoints over this many frames (1: off).", **kw)
  flags.DEFINE_boolean("paste_back", False, "--crop=face: show the whole photo with the animated head.", **kw)
  flags.DEFINE_integer("max_output_size", 1024, "--paste_back: the longest side of the result.", **kw)
  flags.DEFINE_float("duration", None, "Stop after this many seconds of camera time.", **kw)
  flags.DEFINE_integer("max_frames", None, "Stop after this many camera frames.", **kw)
  flags.DEFINE_boolean("preview", False, "Show the result in a window (needs OpenCV and a display).", **kw)
  flags.DEFINE_boolean("virtual_camera", False, "Send the result to a virtual camera (needs pyvirtualcam).", **kw)


def _preview_output():
  try:
    import cv2  # pylint: disable=import-outside-toplevel
  except ImportError:
    raise UsageError("--preview needs OpenCV (pip install opencv-python)") from None
  if sys.platform.startswith("linux") and not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY"):
    raise UsageError("--preview needs a display (DISPLAY is not set)")

  def show(picture, captured):
    del captured
    cv2.imshow("fomm-tf live", (picture[..., ::-1] * 255).astype("uint8"))
    cv2.waitKey(1)

  return show


def _virtual_camera_output(size, fps=30):
  try:
    import pyvirtualcam  # pylint: disable=import-outside-toplevel
  except ImportError:
    raise UsageError("--virtual_camera needs pyvirtualcam (pip install pyvirtualcam) and a virtual camera driver "
                     "(v4l2loopback on Linux, OBS on Windows and macOS)") from None
  camera = pyvirtualcam.Camera(width=size[1], height=size[0], fps=fps)

  def send(picture, captured):
    del captured
    camera.send((picture * 255).astype("uint8"))

  return send


def _keyboard(animator, runner):
  """r + Enter re-takes the reference, q + Enter stops (only when stdin is a terminal)."""
  for line in sys.stdin:
    command = line.strip().lower()
    if command == "r":
      animator.retake_reference()
      print("live: reference re-taken", file=sys.stderr)
    elif command == "q":
      runner.stop()
      return


def run(flag_values):
  cli.require_positive(flag_values, "smooth", "auto_frames", "max_output_size", "max_frames")
  if flag_values.duration is not None and flag_values.duration <= 0:
    raise UsageError(f"--duration must be > 0, got {flag_values.duration}")
  source_path = flag_values.source_image or builtin.SAMPLE_SOURCE
  cfg = cli.resolve_config(flag_values)
  crop = flag_values.crop if flag_values["crop"].present or cfg is None else cfg.animation.crop
  if flag_values.paste_back and crop != "face":
    raise UsageError("--paste_back needs --crop=face")
  inputs = [("source_image", source_path), ("camera", flag_values.camera)]
  outputs = [(name, flag_values[name].value) for name in ("record", "stats_json") if flag_values[name].value]
  files.refuse_overwrite(outputs, inputs)
  source = media.read_image(source_path)
  backend = animation_cli.make_backend(flag_values, cfg)
  animator = animator_lib.LiveAnimator(backend, source, crop=crop, relative=flag_values.relative,
                                       adapt_scale=flag_values.adapt_scale, reference=flag_values.reference,
                                       auto_frames=flag_values.auto_frames, smooth=flag_values.smooth,
                                       paste_back=flag_values.paste_back,
                                       max_output_size=flag_values.max_output_size)
  extra = []
  if flag_values.preview:
    extra.append(_preview_output())
  if flag_values.virtual_camera:
    extra.append(_virtual_camera_output(animator.source.shape[:2]))
  recorder = runner_lib.Recorder(flag_values.record) if flag_values.record else None
  runner = runner_lib.LiveRunner(flag_values.camera, animator, ([recorder] if recorder else []) + extra,
                                 max_frames=flag_values.max_frames, duration=flag_values.duration,
                                 report=lambda line: print(line, file=sys.stderr, flush=True))
  if sys.stdin is not None and sys.stdin.isatty():
    threading.Thread(target=_keyboard, args=(animator, runner), daemon=True).start()
  # A signal ends the session like q: the recording so far is kept.
  stopped_by = []

  def on_signal(signum, frame):
    del frame
    stopped_by.append(signum)
    runner.stop()

  previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
  try:
    summary = runner.run()
  except BaseException:
    if recorder is not None:
      recorder.abort()
    raise
  finally:
    for s, handler in previous.items():
      signal.signal(s, handler)
  if recorder is not None:
    if recorder.frames_written:
      recorder.close()
    else:
      recorder.abort()
  print(runner.stats.line())
  if stopped_by:
    print(f"live: stopped by signal {stopped_by[0]}", file=sys.stderr)
  if recorder is not None and recorder.frames_written:
    print(f"recorded {recorder.frames_written} frames to {os.path.abspath(flag_values.record)}")
  if flag_values.stats_json:
    runner_lib.write_stats(flag_values.stats_json, summary)
  return summary


main = cli.main_function(define_flags, run, handle_signals=False)
