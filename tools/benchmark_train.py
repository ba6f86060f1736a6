"""Training step time: vox-256 at 256x256 (batch 2) and the tiny test config, on this machine.

  python tools/benchmark_train.py [--configs=vox-256,tiny] [--adam=fused,keras] [--xla=off,on] [--steps=3]
      [--batch_size=2] [--num_cpu_replicas=2]

Prints a table of median seconds per step (after one warm-up step that
includes tracing), with every loss of the config on, per config, Adam update
(fused: training's, one ResourceApplyAdam per variable; keras: Keras' own
Adam) and XLA (train --jit_compile off/on), on one device or mirrored over --num_cpu_replicas logical CPUs (as
train --num_cpu_replicas: the global batch split between them, batch norm synchronised). The VGG19 weights are
random (same cost as ImageNet ones). Compare: the official PyTorch code takes
7.26 s per batch-2 vox-256 step on this 2-core CPU (../shared/reference).
"""

import os
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app  # pylint: disable=g-import-not-at-top
from absl import flags

from tools import machine  # pylint: disable=g-import-not-at-top,wrong-import-position

FLAGS = flags.FLAGS
flags.DEFINE_list("configs", ["vox-256", "tiny"], "Configs to time ('tiny' is the 64x64 test config).")
flags.DEFINE_list("adam", ["fused"], "Adam updates to time: fused (training's FusedAdam) and/or keras (Keras' Adam).")
flags.DEFINE_integer("steps", 3, "Timed steps after the warm-up step.")
flags.DEFINE_integer("batch_size", 2, "Global batch size.")
flags.DEFINE_list("xla", ["off"], "Time the step without XLA (off) and/or XLA-compiled (on, train --jit_compile).")
flags.DEFINE_string("mixed_precision", None, "bfloat16 or float16.")
flags.DEFINE_integer("num_cpu_replicas", 0, "Mirror the step over this many logical CPU devices (0: one device).")

TINY = dict(frame_shape=[64, 64, 3],
            kp_block_expansion=8,
            kp_max_features=32,
            kp_num_blocks=3,
            gen_block_expansion=8,
            gen_max_features=32,
            dm_block_expansion=8,
            dm_max_features=32,
            dm_num_blocks=3,
            perceptual_scales=[1.0, 0.5])


def time_config(name, adam, xla, strategy):
  import keras  # pylint: disable=import-outside-toplevel
  from fomm_tf import config as config_lib
  from fomm_tf.data import synthetic
  from fomm_tf.training import loop as trainer_lib
  from fomm_tf.training import state as state_lib
  cfg = config_lib.load_config("vox-256", **TINY) if name == "tiny" else config_lib.load_config(name)
  size = cfg.frame_shape[0]
  work = tempfile.mkdtemp(prefix="bench-train-")
  synthetic.write_dataset(os.path.join(work, "data"),
                          num_train=4,
                          num_test=1,
                          num_frames=4,
                          frame_size=size,
                          seed=0,
                          fmt="png_folder")
  cfg = cfg.replace(num_repeats=FLAGS.batch_size * (FLAGS.steps + 1), id_sampling=False)
  fused = state_lib.adam
  if adam == "keras":  # The training state's optimizers, for this trainer only.
    state_lib.adam = lambda learning_rate: keras.optimizers.Adam(learning_rate=learning_rate, **state_lib.ADAM)
  try:
    trainer = trainer_lib.Trainer(cfg,
                                  os.path.join(work, "data"),
                                  os.path.join(work, "run"),
                                  batch_size=FLAGS.batch_size,
                                  vgg19_weights="random",
                                  image_every=0,
                                  summary_every=10**9,
                                  checkpoint_every=10**9,
                                  jit_compile=xla == "on",
                                  mixed_precision=FLAGS.mixed_precision,
                                  strategy=strategy)
  finally:
    state_lib.adam = fused
  batches = iter(trainer._epoch_dataset(0, 0))  # pylint: disable=protected-access
  batch = next(batches)
  start = time.perf_counter()
  trainer.train_step.run(batch)
  trainer.metrics.read_and_reset()
  warmup = time.perf_counter() - start
  times = []
  for _ in range(FLAGS.steps):
    batch = next(batches)
    start = time.perf_counter()
    trainer.train_step.run(batch)
    # Reading the losses waits for the step, as the loop does at each summary.
    losses = trainer.metrics.read_and_reset()
    times.append(time.perf_counter() - start)
  return warmup, statistics.median(times), sorted(losses)


def main(argv):
  del argv
  unknown = sorted(set(FLAGS.adam) - {"fused", "keras"})
  if unknown:
    raise app.UsageError(f"--adam: unknown update {unknown[0]!r}; choose from fused, keras")
  unknown = sorted(set(FLAGS.xla) - {"off", "on"})
  if unknown:
    raise app.UsageError(f"--xla: unknown value {unknown[0]!r}; choose from off, on")
  if FLAGS.num_cpu_replicas < 0:
    raise app.UsageError(f"--num_cpu_replicas must be >= 0, got {FLAGS.num_cpu_replicas}")
  from fomm_tf.training import strategy as strategy_lib  # pylint: disable=import-outside-toplevel
  strategy = strategy_lib.make_strategy(FLAGS.num_cpu_replicas)  # Before anything else starts TensorFlow's devices.
  replicas = strategy.num_replicas_in_sync
  rows = []
  for name in FLAGS.configs:
    for adam in FLAGS.adam:
      for xla in FLAGS.xla:
        warmup, median, losses = time_config(name, adam, xla, strategy)
        rows.append((name, adam, xla, FLAGS.batch_size, warmup, median, ", ".join(losses)))
  print(f"\n{'config':13s} {'adam':6s} {'xla':4s} {'batch':>5s} {'replicas':>8s} {'first step s':>13s} {'s/step':>8s}  "
        "losses")
  for name, adam, xla, batch, warmup, median, losses in rows:
    print(f"{name:13s} {adam:6s} {xla:4s} {batch:5d} {replicas:8d} {warmup:13.2f} {median:8.2f}  {losses}")
  print(f"(official PyTorch, vox-256 batch 2 on this CPU: 7.26 s/step; machine: {machine.describe()})")


if __name__ == "__main__":
  app.run(main)
