"""The training loop (the controller): it owns the cadence of summaries, image grids, checkpoints and signals.

`Trainer` = a TrainState (what is checkpointed), a TrainStep (the graph) and
this loop. The loop reads losses from the graph's accumulators only when it
writes a summary or a checkpoint, checks them for non-finite values then, and
never writes a checkpoint of non-finite weights. A resumed run continues
exactly where the last complete checkpoint left it (same step, epoch, optimizer
state and data); a damaged latest checkpoint is an error, never skipped.
"""

import os
import signal
import time

import numpy as np
import tensorflow as tf
from absl import logging

from fomm_tf import errors
from fomm_tf.checkpoint import loading as checkpoint_loading
from fomm_tf.data import dataset as dataset_lib
from fomm_tf.data import video_index
from fomm_tf.errors import DatasetError
from fomm_tf.errors import TrainingError
from fomm_tf.errors import UsageError
from fomm_tf.io import files
from fomm_tf.training import checkpoints as checkpoints_lib
from fomm_tf.training import distill
from fomm_tf.training import full_model
from fomm_tf.training import metrics as metrics_lib
from fomm_tf.training import options as options_lib
from fomm_tf.training import state as state_lib
from fomm_tf.training import step as step_lib
from fomm_tf.training import strategy as strategy_lib
from fomm_tf.training import visualizer


class TrainingInterrupted(errors.Interrupted):
  """SIGTERM/SIGINT arrived; a checkpoint was saved."""

  def __init__(self, signum, checkpoint):
    super().__init__(signum, f"saved {checkpoint}")
    self.checkpoint = checkpoint


class Trainer:
  """Trains the keypoint detector and generator (and the discriminator when generator_gan != 0), or distills them.

  Args:
    cfg: the FommConfig.
    dataset_root: the dataset folder (train/ and test/, or one folder of videos).
    model_dir: checkpoints and TensorBoard logs; a checkpoint there is resumed.
    options: the run's options.RunOptions (cadence, checkpoints, seed, precision); or give its fields as keyword
      arguments (`max_steps=2, vgg19_weights="random"`), checked by their declarations.
    strategy: a tf.distribute strategy (default: the current one).
    teacher: None to train, or a distill.Teacher to distill: `cfg` is then the student's config, the losses
      and the image grid are the distillation's (training/distill.py), and no discriminator is built.
    distill_weights: the distill.DistillWeights of a distillation (default: DistillWeights()).
    init_from_teacher: a new distillation starts its student from the teacher's weights where the shapes allow.
  """

  def __init__(self,
               cfg,
               dataset_root,
               model_dir,
               options=None,
               strategy=None,
               num_parallel_calls=None,
               teacher=None,
               distill_weights=None,
               init_from_teacher=False,
               **option_values):
    if options is not None and option_values:
      raise TypeError("give the run's options either as a RunOptions or as keyword arguments, not both")
    self.options = options = options or options_lib.RunOptions(**option_values)
    self.cfg = cfg
    if teacher is not None:
      # Before any data is read or network built: a student that cannot imitate this teacher is a config error.
      distill.check_pair(teacher.config, cfg)
    elif distill_weights is not None or init_from_teacher:
      raise UsageError("distillation settings without a teacher (give --teacher_checkpoint)")
    if options.init_config and not options.init_checkpoint:
      raise UsageError("--init_config names the config of --init_checkpoint; give --init_checkpoint too")
    self.model_dir = os.fspath(model_dir)
    self.strategy = strategy or tf.distribute.get_strategy()
    self.num_replicas = self.strategy.num_replicas_in_sync
    self.batch_size = options.batch_size or cfg.train.batch_size
    if self.batch_size % self.num_replicas:
      raise UsageError(f"global batch size {self.batch_size} is not divisible by {self.num_replicas} replicas")
    # Checkpoint rotation deletes old checkpoints of model_dir, so the initial weights may not live there.
    files.refuse_overwrite([], [("init_checkpoint", options.init_checkpoint)] +
                           ([("teacher_checkpoint", teacher.checkpoint)] if teacher is not None else []),
                           directories=[("model_dir", self.model_dir)])
    files.refuse_writing_inside([("model_dir", self.model_dir)], [("dataset_root", dataset_root)])
    self.num_parallel_calls = num_parallel_calls or tf.data.AUTOTUNE
    self.skips = video_index.SkipCounter()
    self.chief = strategy_lib.is_chief(self.strategy)
    self.history = []
    self._stop_signal = None

    # Probes every video once, and fails before any model is built when the data is unusable.
    dataset_lib.train_frame_size(cfg)
    self.video_index = video_index.index_videos(dataset_root, "train", cfg.dataset.id_sampling, skip_report=self.skips)
    self.steps_per_epoch = dataset_lib.batches_per_epoch(self.video_index, cfg.train.num_repeats, self.batch_size)
    if self.steps_per_epoch <= 0:
      raise DatasetError(f"{dataset_root}: fewer training samples per epoch than one batch of {self.batch_size}")
    self.max_steps = options.max_steps or cfg.train.num_epochs * self.steps_per_epoch

    self.state = state_lib.TrainState(cfg,
                                      self.strategy,
                                      options.mixed_precision,
                                      options.vgg19_weights,
                                      options.seed,
                                      options.init_checkpoint,
                                      options.init_config,
                                      build_discriminator=teacher is None)
    if teacher is None:
      self.teacher = None
      self.training_model = full_model.TrainingModel(self.state.model, self.state.vgg)
    else:
      with self.strategy.scope():
        self.teacher = checkpoint_loading.load_model(teacher.config,
                                                     checkpoint=teacher.checkpoint,
                                                     dtype=options.mixed_precision)
        if init_from_teacher:
          copied = checkpoint_loading.copy_matching_weights(self.teacher, self.state.model)
          logging.info("student: %d variables start from the teacher's", copied)
      self.training_model = distill.DistillationModel(self.state.model, self.teacher, self.state.vgg, distill_weights or
                                                      distill.DistillWeights())
    self.metrics = metrics_lib.LossMetrics(self.training_model.loss_names())
    self.checkpoints = checkpoints_lib.Checkpoints(self.state.checkpoint, self.model_dir, options.keep_checkpoints,
                                                   self.chief, strategy_lib.worker_id(self.strategy))
    self.restored_from = self.checkpoints.restore()
    if self.restored_from:
      logging.info("resuming at step %d, epoch %d", int(self.state.step.numpy()), int(self.state.epoch.numpy()))
    self.writer = tf.summary.create_file_writer(os.path.join(self.model_dir, "train")) if self.chief else None
    self.train_step = step_lib.TrainStep(self.state,
                                         self.training_model,
                                         self.metrics,
                                         options.jit_compile,
                                         with_outputs=options.image_every > 0)

  def _epoch_dataset(self, epoch, offset):
    ds = dataset_lib.make_train_dataset(self.cfg,
                                        self.video_index,
                                        self.batch_size,
                                        seed=self.options.seed,
                                        epoch=epoch,
                                        skip_report=self.skips,
                                        num_parallel_calls=self.num_parallel_calls,
                                        start_batch=offset)
    tm, seed, batch_size = self.training_model, self.options.seed, self.batch_size

    def add_transform(index, batch):
      params = tm.sample_transform_params(batch_size, tf.stack([tf.cast(seed * 100003 + epoch, tf.int64), index]))
      return {**batch, **params}

    ds = ds.enumerate(start=offset).map(add_transform)
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    ds = ds.with_options(options).prefetch(2)
    return self.strategy.experimental_distribute_dataset(ds)

  def _on_signal(self, signum, frame):
    del frame
    self._stop_signal = signum
    logging.warning("received signal %d: saving a checkpoint after this step, then exiting", signum)

  def _check_finite(self):
    bad = self.metrics.first_non_finite()
    if bad is not None:
      name, value, step = bad
      # The weights of this step are already poisoned: keep the last checkpoint as it is.
      raise TrainingError(f"loss {name} is {value} at step {step}; stopped without saving "
                          f"(last checkpoint: {self.checkpoints.latest or 'none'})")

  def save(self, step):
    """Checks the losses and weights, then writes the checkpoint of `step` (never one of non-finite weights)."""
    self._check_finite()
    bad = self.state.non_finite_weight()
    if bad:
      raise TrainingError(f"{bad} is not finite at step {step}; no checkpoint written "
                          f"(last checkpoint: {self.checkpoints.latest or 'none'})")
    return self.checkpoints.save(step)

  def train(self):
    """Runs until max_steps; returns the mean losses of the last summary interval.

    Raises TrainingError on a non-finite loss or weight, TrainingInterrupted after SIGTERM/SIGINT.
    """
    previous = {s: signal.signal(s, self._on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
      return self._loop()
    finally:
      for s, handler in previous.items():
        signal.signal(s, handler)
      if self.writer is not None:
        self.writer.flush()

  def _loop(self):
    step = int(self.state.step.numpy())
    last = {}
    start_time, start_step = time.monotonic(), step
    saved_at = step if self.restored_from else None
    while step < self.max_steps:
      epoch, offset = divmod(step, self.steps_per_epoch)
      self.state.epoch.assign(epoch)
      self.state.set_learning_rates(epoch)
      for batch in self._epoch_dataset(epoch, offset):
        want_images = self.writer is not None and self.options.image_every > 0 and (step == 0 or (step + 1) %
                                                                                    self.options.image_every == 0)
        outputs = self.train_step.run(batch)
        step += 1
        if step % self.options.summary_every == 0 or step == 1 or step >= self.max_steps or want_images:
          self._check_finite()
          last = self.metrics.read_and_reset()
          self.history.append((step, last))
          if self.writer is not None:
            elapsed = max(time.monotonic() - start_time, 1e-9)
            self._write_scalars(step, epoch, last, (step - start_step) / elapsed)
        if want_images:
          self._write_images(step, batch, outputs)
        if step % self.options.checkpoint_every == 0:
          self.save(step)
          saved_at = step
        if self._stop_signal is not None:
          path = self.save(step)
          logging.warning("stopped by signal %d at step %d; checkpoint %s", self._stop_signal, step, path)
          raise TrainingInterrupted(self._stop_signal, path)
        if step >= self.max_steps:
          break
      if step % self.steps_per_epoch == 0:
        self.state.epoch.assign(step // self.steps_per_epoch)
        if saved_at != step:
          self.save(step)
          saved_at = step
    if saved_at != step:
      self.save(step)
    if self.skips.count:
      logging.warning("%d samples came from videos that could not be decoded: %s", self.skips.count,
                      ", ".join(sorted(set(self.skips.names))[:10]))
    return last

  def _write_scalars(self, step, epoch, losses, steps_per_second):
    with self.writer.as_default(step=step):
      for name, value in losses.items():
        tf.summary.scalar(f"loss/{name}", value)
      tf.summary.scalar("loss/total", sum(v for k, v in losses.items() if k != "disc_gan"))
      for name, lr in self.state.learning_rates(epoch).items():
        tf.summary.scalar(f"learning_rate/{name}", lr)
      tf.summary.scalar("steps_per_second", steps_per_second)
      tf.summary.scalar("epoch", epoch)
      tf.summary.scalar("skipped_samples", self.skips.count)

  def _write_images(self, step, batch, outputs):
    local = lambda v: self.strategy.experimental_local_results(v)[0].numpy()
    local_batch = {k: local(batch[k]) for k in ("source", "driving")}
    local_outputs = {
        k: ({
            kk: local(vv) for kk, vv in v.items()
        } if isinstance(v, dict) else local(v)) for k, v in outputs.items()
    }
    make_grid = visualizer.training_grid if self.teacher is None else visualizer.distillation_grid
    grid = make_grid(local_batch,
                     local_outputs,
                     kp_size=self.cfg.visualizer.kp_size,
                     colormap=self.cfg.visualizer.colormap)
    with self.writer.as_default(step=step):
      tf.summary.image("visualization", grid[np.newaxis], step=step)
