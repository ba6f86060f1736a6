"""The built-in models' report: how the teacher, its lite student and two baselines reconstruct puppets.

  .venv/bin/python tools/builtin_model_report.py --dataset_roots=builtin-model-run/data,unseen
  .venv/bin/python tools/builtin_model_report.py --dataset_roots=DATA --teacher=run/teacher --student=run/student

For each dataset root (a synthetic puppet dataset of tools/make_synthetic_dataset.py: its test split, and its
dataset.json for the seed), every test video is reconstructed from its frame 0 with absolute keypoints, as
`python -m fomm_tf.evaluate --mode=reconstruction` does, by the teacher (synthetic-128), the student
(synthetic-128-lite), the source copied (no motion) and one global affine warp fitted to the teacher's keypoints.
Printed per method: L1 and its ratio to copying the source, AKD, sharpness and PSNR against the teacher's frames.

Sharpness is the mean gradient magnitude of the predicted frames inside the puppet, divided by that of the real
frames (1.0: as sharp as the real frames; a blur is well below). The puppet is where the real frame differs
from the identity's static background, which the dataset's seed re-renders (synthetic.dataset_background).
Then one table of cost: GFLOPs per further frame (from the graph) and ms per further frame of Keras float32 on
this CPU (the built-in sample, batch 8, after a warm-up, fastest of 3 runs). Live fps is tools/benchmark_live.py's.
"""

import json
import os
import sys
import time

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO_ROOT not in sys.path:
  sys.path.insert(0, REPO_ROOT)

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import flags  # pylint: disable=g-import-not-at-top,wrong-import-position
import numpy as np  # pylint: disable=g-import-not-at-top,wrong-import-position

from fomm_tf import builtin  # pylint: disable=g-import-not-at-top,wrong-import-position
from fomm_tf import cli  # pylint: disable=g-import-not-at-top,wrong-import-position
from fomm_tf.errors import UsageError  # pylint: disable=g-import-not-at-top,wrong-import-position
from tools import machine  # pylint: disable=g-import-not-at-top,wrong-import-position

# A real frame differs from the background by more than this (max over channels) inside the puppet; elsewhere by
# the PNG rounding alone (about 0.002).
PUPPET_THRESHOLD = 0.03


def define_flags(flag_values):
  kw = {"flag_values": flag_values}
  flags.DEFINE_list("dataset_roots", None, "Synthetic puppet datasets whose test splits are reconstructed.", **kw)
  flags.DEFINE_string("teacher", None, "synthetic-128 weights (default: the shipped ones).", **kw)
  flags.DEFINE_string("student", None, "synthetic-128-lite weights (default: the shipped ones).", **kw)
  flags.DEFINE_integer("batch_size", 8, "Frames per network call.", **kw)
  flags.DEFINE_string(
      "demo_picture", None, "Also write the README's picture here (.png): four rows of source, driving frame with its "
      "keypoints and the teacher's animation of the built-in sample (relative motion, as the default "
      "command animates it).", **kw)


def gradient_magnitude(image):
  """|grad| of the grey image, (H, W)."""
  dy, dx = np.gradient(image.mean(axis=-1))
  return np.hypot(dx, dy)


class FrameMeasures:
  """Collects, per reconstructed frame, the gradient inside the puppet (predicted and real) and the frames."""

  def __init__(self):
    self.predicted, self.real, self.frames = [], [], []
    self.background = None

  def __call__(self, source, driving, prediction):
    del source
    puppet = np.abs(driving - self.background).max(axis=-1) > PUPPET_THRESHOLD
    if puppet.any():
      self.predicted.append(gradient_magnitude(prediction)[puppet].mean())
      self.real.append(gradient_magnitude(driving)[puppet].mean())
    self.frames.append(prediction)

  def sharpness(self):
    return float(np.mean(self.predicted) / np.mean(self.real))


def psnr(a, b):
  return float(10 * np.log10(1.0 / np.mean((a - b)**2)))


def reconstruct(backend, root, batch_size):
  """(summary of reconstruction.summarize, FrameMeasures) of `backend` on the test split of `root`."""
  # pylint: disable=import-outside-toplevel
  from fomm_tf.data import synthetic
  from fomm_tf.evaluation import reconstruction
  from fomm_tf.evaluation import videos as videos_lib
  with open(os.path.join(root, "dataset.json"), encoding="utf-8") as f:
    dataset = json.load(f)
  measures = FrameMeasures()
  rows = []
  for video in videos_lib.find_test_videos(root):
    measures.background = synthetic.dataset_background(dataset["seed"], synthetic.identity_of(video.name),
                                                       dataset["frame_size"])
    rows.append(reconstruction.evaluate_video(backend, video, batch_size, on_frame=measures))
  return reconstruction.summarize(rows), measures


def ms_per_further_frame(model, batch_size):
  """Keras float32 ms per driving frame after the first, on the built-in sample (the source encoded once)."""
  import fomm_tf  # pylint: disable=import-outside-toplevel
  from fomm_tf.io import media  # pylint: disable=import-outside-toplevel
  source = media.read_image(builtin.SAMPLE_SOURCE)
  driving = np.stack(media.read_video_frames(builtin.SAMPLE_DRIVING))
  list(fomm_tf.animate(model, source, driving[:batch_size], batch_size=batch_size))  # Warm-up (tracing).
  times = []
  for count in (batch_size, len(driving)):
    # The fastest of three runs: what the machine can do, not what another process left it.
    runs = []
    for _ in range(3):
      start = time.perf_counter()
      list(fomm_tf.animate(model, source, driving[:count], batch_size=batch_size))
      runs.append(time.perf_counter() - start)
    times.append(min(runs))
  return 1000 * (times[1] - times[0]) / (len(driving) - batch_size)


def write_demo_picture(model, path, rows=4):
  """The README's picture: `rows` evenly spaced frames of the sample, each [source, driving + keypoints, result]."""
  # pylint: disable=import-outside-toplevel
  import fomm_tf
  from PIL import Image
  from fomm_tf import visualization
  from fomm_tf.evaluation import figures
  from fomm_tf.io import media
  source = media.read_image(builtin.SAMPLE_SOURCE)
  driving = np.stack(media.read_video_frames(builtin.SAMPLE_DRIVING))
  result = np.stack(list(fomm_tf.animate(model, source, driving, batch_size=8)))
  panels = []
  for index in figures.frame_indices(len(driving), rows):
    keypoints = model.detect_keypoints(driving[index][np.newaxis])["value"][0].numpy()
    panels.append([source, visualization.draw_keypoints(driving[index], keypoints, 3), result[index]])
  image = np.clip(figures.panel_grid(panels), 0.0, 1.0)
  Image.fromarray(np.round(image * 255).astype(np.uint8)).save(path)
  print(f"wrote {path}")


def run(flag_values):
  # pylint: disable=import-outside-toplevel
  from fomm_tf.checkpoint import loading
  from fomm_tf.evaluation import baselines
  from fomm_tf.export import flops
  if not flag_values.dataset_roots:
    raise UsageError("--dataset_roots is required (synthetic puppet datasets)")
  models = {
      builtin.CONFIG:
          loading.load_model(builtin.CONFIG, flag_values.teacher or builtin.weights_path(builtin.CONFIG)),
      builtin.LITE_CONFIG:
          loading.load_model(builtin.LITE_CONFIG, flag_values.student or builtin.weights_path(builtin.LITE_CONFIG)),
  }
  methods = [(f"teacher ({builtin.CONFIG})", builtin.CONFIG, "fomm"),
             (f"student ({builtin.LITE_CONFIG})", builtin.LITE_CONFIG, "fomm"),
             ("no motion (source copied)", builtin.CONFIG, "no_motion"),
             ("global affine (teacher's keypoints)", builtin.CONFIG, "global_affine")]
  report = {"datasets": {}}
  for root in flag_values.dataset_roots:
    results = {}
    for label, name, method in methods:
      summary, measures = reconstruct(baselines.make_backend(method, models[name]), root, flag_values.batch_size)
      results[label] = (summary, measures)
    teacher_frames = np.stack(results[methods[0][0]][1].frames)
    copy_l1 = results[methods[2][0]][0]["l1"]
    print(f"\n{root}: {results[methods[0][0]][0]['num_videos']} test videos")
    print("| method | L1 | L1 / no motion | AKD px | sharpness | PSNR vs teacher dB |")
    print("|---|---|---|---|---|---|")
    rows = {}
    for label, (summary, measures) in results.items():
      row = {
          "l1": summary["l1"],
          "l1_ratio": summary["l1"] / copy_l1,
          "akd": summary["akd"],
          "sharpness": measures.sharpness(),
          "psnr_vs_teacher": psnr(np.stack(measures.frames), teacher_frames) if label != methods[0][0] else None
      }
      rows[label] = row
      versus = "-" if row["psnr_vs_teacher"] is None else f"{row['psnr_vs_teacher']:.1f}"
      print(f"| {label} | {row['l1']:.4f} | {row['l1_ratio']:.2f} | {row['akd']:.2f} | {row['sharpness']:.2f} | "
            f"{versus} |")
    print(f"(AKD fit floor: {results[methods[0][0]][0]['akd_real']:.2f} px)")
    report["datasets"][root] = rows
  print("\n| model | GFLOPs per further frame | Keras float32 ms per further frame |")
  print("|---|---|---|")
  for name, model in models.items():
    gflops = flops.animation_gflops(model)["further_frame"]
    ms = ms_per_further_frame(model, flag_values.batch_size)
    report[name] = {"gflops": gflops, "ms_per_frame": ms}
    print(f"| {name} | {gflops:.3f} | {ms:.1f} |")
  print(f"(measured on {machine.describe()})")
  if flag_values.demo_picture:
    write_demo_picture(models[builtin.CONFIG], flag_values.demo_picture)
  return report


main = cli.main_function(define_flags, run)

if __name__ == "__main__":
  main()
