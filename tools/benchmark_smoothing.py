"""Keypoint jitter with and without `--smooth`: the frame-to-frame motion of the driving keypoints of a still head.

  python tools/benchmark_smoothing.py                     # the built-in model
  python tools/benchmark_smoothing.py --config=vox-256 --checkpoint=vox-cpk.pth.tar

The clip is a real photo (scikit-image's astronaut) seen by a camera that does
not move, with sensor noise (Gaussian, sigma 2/255) and H.264 compression, written
as an mp4 and read back, as a webcam clip of someone holding still would be.
The motion in it is only noise, so every keypoint movement is jitter. Prints the
mean frame-to-frame keypoint displacement in pixels of the model's input for
each smoothing window.
"""

import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import flags  # pylint: disable=g-import-not-at-top


def define_flags(flag_values):
  kw = {"flag_values": flag_values}
  flags.DEFINE_string("config", None, "Config name or flagfile (default: the built-in model).", **kw)
  flags.DEFINE_string("checkpoint", None, "Weights for --config.", **kw)
  flags.DEFINE_integer("frames", 100, "Clip length.", **kw)
  flags.DEFINE_list("windows", ["1", "3", "5", "9"], "Smoothing windows to measure.", **kw)


def run(flag_values):
  import numpy as np  # pylint: disable=import-outside-toplevel
  from skimage import data  # pylint: disable=import-outside-toplevel
  from fomm_tf import builtin  # pylint: disable=import-outside-toplevel
  from fomm_tf.checkpoint import loading  # pylint: disable=import-outside-toplevel
  from fomm_tf.config import flagfiles  # pylint: disable=import-outside-toplevel
  from fomm_tf.inference import pipeline  # pylint: disable=import-outside-toplevel
  from fomm_tf.inference import smoothing  # pylint: disable=import-outside-toplevel
  from fomm_tf.io import media  # pylint: disable=import-outside-toplevel
  from fomm_tf.io import video_writer  # pylint: disable=import-outside-toplevel

  if flag_values.config:
    cfg = flagfiles.load_config(flag_values.config)
    model = loading.load_model(cfg, checkpoint=flag_values.checkpoint)
  else:
    cfg, model = flagfiles.load_config(builtin.CONFIG), builtin.load_builtin_model()
  size = cfg.frame_shape[0]
  rng = np.random.default_rng(0)
  photo = data.astronaut()[16:464, 32:480].astype(np.float32) / 255.0  # The head and shoulders.
  path = os.path.join(tempfile.mkdtemp(prefix="benchmark-smoothing-"), "still.mp4")
  with video_writer.VideoWriter(path, fps=25) as writer:
    for _ in range(flag_values.frames):
      writer.write(np.clip(photo + rng.normal(0, 2 / 255, photo.shape).astype(np.float32), 0, 1))
  frames = np.stack([pipeline.prepare_frame(f, size, "crop") for f in media.open_video(path)])
  values, jacobians = [], []
  for start in range(0, len(frames), 8):
    kp = model.detect_keypoints(frames[start:start + 8])
    values.append(np.asarray(kp["value"]))
    jacobians.append(np.asarray(kp["jacobian"]))
  kp = {"value": np.concatenate(values), "jacobian": np.concatenate(jacobians)}
  to_pixels = (size - 1) / 2  # Keypoints are in [-1, 1].
  print(f"model: {cfg.source} at {size}x{size}; {len(frames)} frames of a still head (real photo, sensor noise, "
        "H.264)")
  print("| --smooth | jitter px/frame | vs off |")
  print("|---|---|---|")
  base = None
  for window in (int(w) for w in flag_values.windows):
    smoothed = smoothing.KeypointSmoother(window)(kp)["value"]
    # Leave out the first frames, where the average has fewer than `window` entries.
    value = smoothing.jitter(smoothed[max(window, 1):]) * to_pixels
    base = value if base is None else base
    print(f"| {window} | {value:.3f} | {value / base:.2f}x |")


if __name__ == "__main__":
  from fomm_tf import cli  # pylint: disable=g-import-not-at-top
  cli.main_function(define_flags, run)()
