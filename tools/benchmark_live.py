"""Live animation on this CPU: frames animated per second, frames dropped and camera-to-screen latency.

  python tools/benchmark_live.py                      # the built-in models, a 30 fps camera stand-in, 20 s
  python tools/benchmark_live.py --setting="lite:--config=vox-256-lite --crop=center" \
      --setting="lite int8:--backend=tflite --export_dir=EXPORT --quantize=int8 --crop=center"

Each row names the model (config and frame size), the backend, its precision
and the networks' GFLOPs per further driving frame (counted from the graph,
fomm_tf/export/flops.py; for an exported model, of the config in its manifest).

The camera is a real video file paced at its frame rate (as `--camera=FILE`
does in `python -m fomm_tf.live`): a moving crop of the astronaut portrait of
scikit-image when it is installed, else the built-in driving sample. Each row
is one `python -m fomm_tf.live` process; start-up is not counted (the clock
starts at the first camera frame).
"""

import json
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import flags  # pylint: disable=g-import-not-at-top

from tools import machine  # pylint: disable=g-import-not-at-top,wrong-import-position

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def define_flags(flag_values):
  kw = {"flag_values": flag_values}
  flags.DEFINE_float("seconds", 20.0, "Camera time per row.", **kw)
  flags.DEFINE_float("camera_fps", 30.0, "Frame rate of the camera stand-in.", **kw)
  flags.DEFINE_multi_string("setting", [
      "builtin:", "builtin, keras:--backend=keras", "builtin, smooth 1:--smooth=1",
      "builtin lite:--config=synthetic-128-lite"
  ], "NAME:ARGS rows (ARGS: space-separated fomm_tf.live flags).", **kw)


def write_camera(path, seconds, fps):
  """A moving 256x256 crop of a real photo as an mp4 (libx264), `seconds` long at `fps`."""
  import numpy as np  # pylint: disable=import-outside-toplevel
  from fomm_tf.io import video_writer  # pylint: disable=import-outside-toplevel
  try:
    from skimage import data  # pylint: disable=import-outside-toplevel
    photo = data.astronaut().astype(np.float32) / 255.0
  except ImportError:
    from fomm_tf import builtin  # pylint: disable=import-outside-toplevel
    from fomm_tf.io import media  # pylint: disable=import-outside-toplevel
    photo = media.read_image(builtin.SAMPLE_SOURCE)
  count = int(round(seconds * fps))
  size = min(photo.shape[:2]) * 3 // 4
  with video_writer.VideoWriter(path, fps=fps) as writer:
    for i in range(count):
      phase = 2 * np.pi * i / (2.5 * fps)
      top = int((photo.shape[0] - size) / 2 * (1 + 0.5 * np.sin(phase)))
      left = int((photo.shape[1] - size) / 2 * (1 + 0.5 * np.cos(phase)))
      crop = photo[top:top + size, left:left + size]
      step = max(1, size // 256)
      writer.write(np.ascontiguousarray(crop[::step, ::step][:256, :256]))
  return path


def _flag(args, name, default=None):
  values = [a.split("=", 1)[1] for a in args if a.startswith(f"--{name}=")]
  return values[-1] if values else default


def describe(args):
  """(model, backend, precision, GFLOPs per further frame) of one row's fomm_tf.live arguments."""
  from fomm_tf import builtin  # pylint: disable=import-outside-toplevel
  from fomm_tf.config import flagfiles  # pylint: disable=import-outside-toplevel
  from fomm_tf.config import fomm_config  # pylint: disable=import-outside-toplevel
  from fomm_tf.checkpoint import loading  # pylint: disable=import-outside-toplevel
  from fomm_tf.export import flops  # pylint: disable=import-outside-toplevel
  from fomm_tf.live import cli as live_cli  # pylint: disable=import-outside-toplevel
  backend = _flag(args, "backend", live_cli.DEFAULT_BACKEND)
  export_dir = _flag(args, "export_dir")
  if backend != "keras" and export_dir:
    with open(os.path.join(export_dir, "manifest.json")) as f:
      manifest = json.load(f)
    cfg = fomm_config.FommConfig.from_flat(manifest["config"])
    source = manifest.get("config_source") or ""
    # A config built from command-line flags has no file name: the export directory names the model then.
    name = os.path.basename(source if not source.startswith("<") else os.path.normpath(export_dir))
    name = name.removesuffix(".flags")
  else:
    name = _flag(args, "config") or _flag(args, "flagfile") or builtin.CONFIG
    cfg = flagfiles.load_config(name)
    name = os.path.basename(name).removesuffix(".flags")
  precision = {
      "keras": _flag(args, "mixed_precision", "float32"),
      "saved_model": "float32"
  }.get(backend, _flag(args, "quantize", "float32"))
  gflops = flops.animation_gflops(loading.load_model(cfg))["further_frame"]  # (weights do not change it)
  return f"{name} {cfg.frame_size[0]}x{cfg.frame_size[1]}", backend, precision, gflops


def run(flag_values):
  work = tempfile.mkdtemp(prefix="benchmark-live-")
  camera = write_camera(os.path.join(work, "camera.mp4"), flag_values.seconds, flag_values.camera_fps)
  rows = []
  for setting in flag_values.setting:
    name, _, args = setting.partition(":")
    stats = os.path.join(work, f"stats-{len(rows)}.json")
    # Recording on, as a user keeps the session: encoding the result is part of the pipeline's cost.
    command = [
        sys.executable, "-m", "fomm_tf.live", f"--camera={camera}", f"--stats_json={stats}",
        f"--record={os.path.join(work, f'record-{len(rows)}.mp4')}", *args.split()
    ]
    done = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, check=False)
    if done.returncode != 0:
      print(done.stderr[-3000:], file=sys.stderr)
      raise SystemExit(f"{name}: fomm_tf.live exited with {done.returncode}")
    with open(stats) as f:
      rows.append((name, describe(args.split()), json.load(f)))
  print(f"camera: {flag_values.camera_fps:g} fps, {flag_values.seconds:g} s; machine: {machine.describe()}")
  print("| setting | model | backend | precision | GFLOPs/frame | frames in | animated | dropped | fps | "
        "latency p50 ms | latency p95 ms |")
  print("|---|---|---|---|---|---|---|---|---|---|---|")
  for name, (model, backend, precision, gflops), s in rows:
    print(f"| {name} | {model} | {backend} | {precision} | {gflops:.2f} | {s['frames_in']} | {s['frames_animated']} "
          f"| {s['frames_dropped']} | {s['fps']:.1f} | {s['latency_p50_ms']:.0f} | {s['latency_p95_ms']:.0f} |")


if __name__ == "__main__":
  from fomm_tf import cli  # pylint: disable=g-import-not-at-top
  cli.main_function(define_flags, run)()
