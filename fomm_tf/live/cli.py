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

from fomm_tf import builtin
from fomm_tf import cli
from fomm_tf.animation import cli as animation_cli
from fomm_tf.config import flagfiles
from fomm_tf.errors import MediaError
from fomm_tf.errors import UsageError
from fomm_tf.io import files
from fomm_tf.io import media
from fomm_tf.live import animator as animator_lib
from fomm_tf.live import options as options_lib
from fomm_tf.live import runner as runner_lib

# OpenVINO by default: on the 2-core AVX2 machine it animated every frame of a 30 fps camera with the built-in model
# (p95 latency 29 ms, Keras 68), and vox-256-lite at 29.5 fps against Keras' 14.2 (docs/live.md); it converts the
# Keras model in memory, so it needs no export.
DEFAULT_BACKEND = "openvino"


def define_flags(flag_values):
  animation_cli.define_backend_flags(flag_values, default_backend=DEFAULT_BACKEND)
  flagfiles.define_section_flags(options_lib.LiveOptions, flag_values, defaults=options_lib.DEFAULTS)


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
  options = flagfiles.section_from_flags(options_lib.LiveOptions, flag_values)
  source_path = options.source_image or builtin.SAMPLE_SOURCE
  cfg = cli.resolve_config(flag_values)
  crop = animation_cli.crop_from_flags(flag_values, cfg)
  if options.paste_back and crop != "face":
    raise UsageError("--paste_back needs --crop=face")
  inputs = [("source_image", source_path), ("camera", options.camera)]
  outputs = [(name, getattr(options, name)) for name in ("record", "stats_json") if getattr(options, name)]
  files.refuse_overwrite(outputs, inputs)
  source = media.read_image(source_path)
  if runner_lib.is_file(options.camera):  # A missing file is one line before the model loads.
    files.check_regular_file(options.camera, MediaError, "video")
  backend = animation_cli.make_backend(flag_values, cfg)
  animator = animator_lib.LiveAnimator(backend,
                                       source,
                                       crop=crop,
                                       relative=options.relative,
                                       adapt_scale=options.adapt_scale,
                                       reference=options.reference,
                                       auto_frames=options.auto_frames,
                                       smooth=options.smooth,
                                       paste_back=options.paste_back,
                                       max_output_size=options.max_output_size)
  extra = []
  if options.preview:
    extra.append(_preview_output())
  if options.virtual_camera:
    extra.append(_virtual_camera_output(animator.source.shape[:2]))
  recorder = runner_lib.Recorder(options.record) if options.record else None
  runner = runner_lib.LiveRunner(options.camera,
                                 animator, ([recorder] if recorder else []) + extra,
                                 max_frames=options.max_frames,
                                 duration=options.duration,
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
    print(f"recorded {recorder.frames_written} frames to {os.path.abspath(options.record)}")
  if options.stats_json:
    runner_lib.write_stats(options.stats_json, summary)
  return summary


main = cli.main_function(define_flags, run, handle_signals=False)
