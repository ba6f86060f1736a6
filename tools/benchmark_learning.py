"""Learning speed: trains a fresh model for a few hundred steps and prints held-out reconstruction L1 as it goes.

  python tools/benchmark_learning.py                       # built-in setting: synthetic puppets, 64 px
  python tools/benchmark_learning.py --dataset_root=DIR --steps=400 --eval_every=100 \\
      --config=vox-256 --overrides=frame_shape=64,64,3 --overrides=kp_scale_factor=0.5 ... \\
      --vgg19_weights=vgg19.pth

Everything is seeded (data order, augmentation, equivariance transforms,
initial weights), so a change that slows learning shows as a worse curve
between two runs of the same command. Held-out L1 is the reconstruction
protocol of `fomm_tf.evaluate` (frame 0 drives every frame with absolute
keypoints, BatchNorm with its running statistics) over the test split.
Prints one row per evaluation, then the mean training losses of the first and
last 50 steps.
"""

import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import flags  # pylint: disable=g-import-not-at-top

# The default setting: small synthetic puppets, a small network, pixel pyramid loss (no VGG weights needed).
DEFAULT_OVERRIDES = ("frame_shape=64,64,3", "kp_block_expansion=16", "kp_max_features=128", "kp_num_blocks=4",
                     "gen_block_expansion=16", "gen_max_features=128", "gen_num_bottleneck_blocks=3",
                     "dm_block_expansion=16", "dm_max_features=128", "dm_num_blocks=4", "perceptual_scales=1,0.5",
                     "loss_perceptual=0,0,0,0,0", "loss_pixel=10", "num_repeats=20", "id_sampling=false",
                     "jitter_brightness=0", "jitter_contrast=0", "jitter_saturation=0", "jitter_hue=0",
                     "train_batch_size=4", "epoch_milestones=", "lr_generator=2e-4", "lr_kp_detector=2e-4")


def define_flags(flag_values):
  kw = {"flag_values": flag_values}
  flags.DEFINE_string("dataset_root", None, "A dataset with train/ and test/ (default: a synthetic one, "
                      "written to a temp folder).", **kw)
  flags.DEFINE_string("config", "vox-256", "Base config.", **kw)
  flags.DEFINE_multi_string("overrides", list(DEFAULT_OVERRIDES), "name=value config changes (flag syntax).", **kw)
  flags.DEFINE_integer("steps", 400, "Training steps.", **kw)
  flags.DEFINE_integer("eval_every", 100, "Steps between held-out evaluations.", **kw)
  flags.DEFINE_integer("seed", 0, "Seed of weights, data and transforms.", **kw)
  flags.DEFINE_string("vgg19_weights", "random", "For configs with perceptual loss.", **kw)
  flags.DEFINE_string("init_checkpoint", None, "Start from these weights instead of a fresh initialisation.", **kw)
  flags.DEFINE_string("model_dir", None, "Training directory (default: a temp folder).", **kw)


def parse_overrides(items):
  """['a=1,2', 'b=true'] -> {'a': '1,2', 'b': 'true'} as flagfile lines."""
  from fomm_tf.errors import UsageError  # pylint: disable=import-outside-toplevel
  lines = []
  for item in items:
    if "=" not in item:
      raise UsageError(f"--overrides: expected name=value, got {item!r}")
    lines.append(f"--{item}")
  return lines


def run(flag_values):
  import numpy as np  # pylint: disable=import-outside-toplevel
  from fomm_tf.config import flagfiles  # pylint: disable=import-outside-toplevel
  from fomm_tf.data import synthetic  # pylint: disable=import-outside-toplevel
  from fomm_tf.evaluation import reconstruction  # pylint: disable=import-outside-toplevel
  from fomm_tf.evaluation import videos as videos_lib  # pylint: disable=import-outside-toplevel
  from fomm_tf.inference import keras_backend  # pylint: disable=import-outside-toplevel
  from fomm_tf.training import loop  # pylint: disable=import-outside-toplevel

  work = tempfile.mkdtemp(prefix="benchmark-learning-")
  flagfile = os.path.join(work, "setting.flags")
  with open(flagfile, "w") as f:
    f.write(f"--flagfile={flagfiles.resolve_config_path(flag_values.config)}\n")
    f.write("\n".join(parse_overrides(flag_values.overrides)) + "\n")
  cfg = flagfiles.load_config(flagfile)
  root = flag_values.dataset_root
  if root is None:
    root = os.path.join(work, "data")
    synthetic.write_dataset(root,
                            num_train=32,
                            num_test=4,
                            num_frames=24,
                            frame_size=cfg.frame_shape[0],
                            seed=0,
                            fmt="png_folder")
  videos = videos_lib.find_test_videos(root)
  trainer = loop.Trainer(cfg,
                         root,
                         flag_values.model_dir or os.path.join(work, "run"),
                         max_steps=1,
                         vgg19_weights=flag_values.vgg19_weights,
                         seed=flag_values.seed,
                         summary_every=1,
                         image_every=0,
                         checkpoint_every=10**9,
                         init_checkpoint=flag_values.init_checkpoint)

  def held_out_l1():
    rows, summary = reconstruction.evaluate_reconstruction(keras_backend.KerasBackend(trainer.state.model), videos)
    del rows
    return summary["l1"]

  print(f"{'step':>6s} {'held-out L1':>12s} {'train s/step':>13s}", flush=True)
  print(f"{0:6d} {held_out_l1():12.5f} {'-':>13s}", flush=True)
  done = 0
  while done < flag_values.steps:
    target = min(done + flag_values.eval_every, flag_values.steps)
    trainer.max_steps = target
    start = time.perf_counter()
    trainer.train()
    seconds = (time.perf_counter() - start) / (target - done)
    done = target
    print(f"{done:6d} {held_out_l1():12.5f} {seconds:13.2f}", flush=True)
  history = [losses for _, losses in trainer.history]
  for name, part in (("first 50", history[:50]), ("last 50", history[-50:])):
    means = {k: float(np.mean([h[k] for h in part])) for k in part[0]}
    print(f"mean losses, {name} steps: " + ", ".join(f"{k} {v:.4f}" for k, v in means.items()))


if __name__ == "__main__":
  from fomm_tf import cli  # pylint: disable=g-import-not-at-top
  cli.main_function(define_flags, run)()
