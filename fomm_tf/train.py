"""Train FOMM: `python -m fomm_tf.train --flagfile=configs/vox-256.flags --dataset_root=DIR --model_dir=DIR`.

Runs under MultiWorkerMirroredStrategy when TF_CONFIG is set, MirroredStrategy
over all local GPUs (or --num_cpu_replicas logical CPUs), one device otherwise.
Resumes from the latest checkpoint in --model_dir; SIGTERM/SIGINT save a
checkpoint before exiting.
"""

import sys

from absl import app
from absl import flags
from absl import logging

from fomm_tf import cli_util
from fomm_tf import config as config_lib

FLAGS = flags.FLAGS


def define_flags(flag_values=FLAGS):
  cli_util.define_model_flags(flag_values, checkpoint_help=None)
  kw = {"flag_values": flag_values}
  flags.DEFINE_string("dataset_root", None, "Dataset root (train/ and test/ subfolders, or one folder of videos).",
                      **kw)
  flags.DEFINE_string("model_dir", None, "Checkpoints and TensorBoard logs; an existing checkpoint resumes.", **kw)
  flags.DEFINE_integer("max_steps", None, "Stop after this many global steps (default: the config's epochs).", **kw)
  flags.DEFINE_integer("batch_size", None, "Global batch size (default: the config's train_batch_size).", **kw)
  flags.DEFINE_string("vgg19_weights", "imagenet",
                      "VGG19 weights for the perceptual loss: imagenet (Keras download), a local .h5 path, or random "
                      "(tests and offline smoke runs only).", **kw)
  flags.DEFINE_integer("num_cpu_replicas", 0, "Mirror over this many logical CPU devices (testing).", **kw)
  flags.DEFINE_enum("mixed_precision", None, ["bfloat16", "float16"], "Mixed precision compute dtype.", **kw)
  flags.DEFINE_boolean("jit_compile", False, "XLA-compile the training step.", **kw)
  flags.DEFINE_integer("seed", 0, "Seed of data order, augmentation and equivariance transforms.", **kw)
  flags.DEFINE_integer("checkpoint_every", 1000, "Steps between checkpoints (plus one at each epoch end).", **kw)
  flags.DEFINE_integer("summary_every", 10, "Steps between TensorBoard scalars.", **kw)
  flags.DEFINE_integer("image_every", 500, "Steps between TensorBoard image grids (0: never).", **kw)
  flags.DEFINE_string("init_checkpoint", None,
                      "Start from these weights (e.g. vox-256 for vox-adv-256); ignored when resuming.", **kw)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
  from fomm_tf.checkpoint import loading
  from fomm_tf.checkpoint import official_mapping
  from fomm_tf.data import dataset as dataset_lib
  from fomm_tf.losses import perceptual
  from fomm_tf.training import strategy as strategy_lib
  from fomm_tf.training import trainer as trainer_lib
  errors = (ValueError, OSError, config_lib.ConfigError, dataset_lib.DatasetError, perceptual.WeightsUnavailableError,
            trainer_lib.TrainingError, loading.CheckpointLoadError, official_mapping.MappingError)
  try:
    for name in ("dataset_root", "model_dir"):
      if not FLAGS[name].value:
        raise ValueError(f"--{name} is required")
    cfg = cli_util.resolve_config(FLAGS) or config_lib.load_config(None)
    strategy = strategy_lib.make_strategy(FLAGS.num_cpu_replicas)
    trainer = trainer_lib.Trainer(
        cfg, FLAGS.dataset_root, FLAGS.model_dir, batch_size=FLAGS.batch_size, max_steps=FLAGS.max_steps,
        strategy=strategy, vgg19_weights=FLAGS.vgg19_weights, mixed_precision=FLAGS.mixed_precision,
        jit_compile=FLAGS.jit_compile, seed=FLAGS.seed, checkpoint_every=FLAGS.checkpoint_every,
        summary_every=FLAGS.summary_every, image_every=FLAGS.image_every, init_checkpoint=FLAGS.init_checkpoint)
    logging.info("training %d steps (%d per epoch) on %d replica(s), global batch %d", trainer.max_steps,
                 trainer.steps_per_epoch, trainer.num_replicas, trainer.batch_size)
    losses = trainer.train()
    print(f"done at step {int(trainer.step.numpy())}: " + ", ".join(f"{k} {v:.4f}" for k, v in losses.items()))
    print(f"checkpoint: {trainer.manager.latest_checkpoint}")
  except trainer_lib.TrainingInterrupted as e:
    print(f"interrupted: {e}", file=sys.stderr)
    sys.exit(128 + e.signum)
  except errors as e:
    print(f"error: {cli_util.one_line(e)}", file=sys.stderr)
    sys.exit(1)


if __name__ == "__main__":
  define_flags()
  app.run(main)
