"""The FOMM training loop: custom loop under a tf.distribute strategy, resumable, with TensorBoard."""

import math
import os
import shutil
import signal
import time

import keras
import numpy as np
import tensorflow as tf
from absl import logging

from fomm_tf.checkpoint import loading as checkpoint_loading
from fomm_tf.data import dataset as dataset_lib
from fomm_tf.losses import perceptual
from fomm_tf.models import fomm_model
from fomm_tf.training import full_model
from fomm_tf.training import strategy as strategy_lib
from fomm_tf.training import visualizer


class TrainingError(RuntimeError):
  pass


class TrainingInterrupted(Exception):
  """SIGTERM/SIGINT arrived; a checkpoint was saved."""

  def __init__(self, signum, checkpoint):
    super().__init__(f"stopped by signal {signum}; saved {checkpoint}")
    self.signum = signum
    self.checkpoint = checkpoint


class Trainer:
  """Trains the keypoint detector and generator (and the discriminator when generator_gan != 0)."""

  def __init__(self, cfg, dataset_root, model_dir, batch_size=None, max_steps=None, strategy=None,
               vgg19_weights="imagenet", mixed_precision=None, jit_compile=False, seed=0,
               checkpoint_every=1000, summary_every=10, image_every=500, max_to_keep=3, num_parallel_calls=None,
               init_checkpoint=None):
    self.cfg = cfg
    self.dataset_root = dataset_root
    self.model_dir = model_dir
    self.strategy = strategy or tf.distribute.get_strategy()
    self.num_replicas = self.strategy.num_replicas_in_sync
    self.batch_size = int(batch_size or cfg.train_batch_size)
    if self.batch_size % self.num_replicas:
      raise ValueError(f"global batch size {self.batch_size} is not divisible by {self.num_replicas} replicas")
    self.seed = int(seed)
    self.checkpoint_every = int(checkpoint_every)
    self.summary_every = int(summary_every)
    self.image_every = int(image_every)
    self.jit_compile = bool(jit_compile)
    self.num_parallel_calls = num_parallel_calls or tf.data.AUTOTUNE
    self.skips = dataset_lib.SkipCounter()
    self.chief = strategy_lib.is_chief(self.strategy)
    self.history = []
    self._stop_signal = None

    # Probes every video once, and fails before any model is built when the data is unusable.
    self.video_index = dataset_lib.index_videos(dataset_root, "train", bool(cfg.id_sampling),
                                                skip_report=self.skips)
    probe = dataset_lib.make_train_dataset(cfg, self.video_index, self.batch_size, seed=self.seed, epoch=0,
                                           skip_report=self.skips, num_parallel_calls=self.num_parallel_calls)
    self.steps_per_epoch = int(probe.cardinality())
    if self.steps_per_epoch <= 0:
      raise dataset_lib.DatasetError(f"{dataset_root}: fewer training samples per epoch than one batch of "
                                     f"{self.batch_size}")
    self.max_steps = int(max_steps) if max_steps else cfg.num_epochs * self.steps_per_epoch

    if mixed_precision:
      keras.mixed_precision.set_global_policy({"bfloat16": "mixed_bfloat16", "float16": "mixed_float16"}[
          mixed_precision])
    self.mixed_precision = mixed_precision
    # The initial weights follow --seed too, so a run is reproducible end to end.
    keras.utils.set_random_seed(self.seed)
    with self.strategy.scope():
      self.model = fomm_model.FommModel(cfg, build_discriminator=True)
      if init_checkpoint:
        checkpoint_loading.load_weights(self.model, init_checkpoint)
      self.vgg = perceptual.VGG19Features(vgg19_weights) if sum(cfg.loss_perceptual) != 0 else None
      self.training_model = full_model.TrainingModel(self.model, self.vgg)
      self.optimizers = {
          "kp_detector": self._adam(cfg.lr_kp_detector),
          "generator": self._adam(cfg.lr_generator),
          "discriminator": self._adam(cfg.lr_discriminator),
      }
      # Keras 3 optimizers must be built inside the scope before a custom loop's first step.
      for name, opt in self.optimizers.items():
        opt.build(self._variables(name))
      self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="global_step")
      self.epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch")
    self.base_lr = {"kp_detector": cfg.lr_kp_detector, "generator": cfg.lr_generator,
                    "discriminator": cfg.lr_discriminator}
    bags = {name: checkpoint_loading.VariableBag(net) for name, net in self.model.networks().items()}
    opt_bags = {"optimizer_" + name: checkpoint_loading.VariableBag.from_optimizer(opt)
                for name, opt in self.optimizers.items()}
    self.checkpoint = tf.train.Checkpoint(step=self.step, epoch=self.epoch, **bags, **opt_bags)
    directory = model_dir if self.chief else os.path.join(model_dir, f".worker-{strategy_lib.worker_id(self.strategy)}")
    self.manager = tf.train.CheckpointManager(self.checkpoint, directory, max_to_keep=max_to_keep)
    self.restored_from = None
    if self.manager.latest_checkpoint or (not self.chief and tf.train.latest_checkpoint(model_dir)):
      path = tf.train.latest_checkpoint(model_dir)
      self.checkpoint.read(path).assert_existing_objects_matched()
      self.restored_from = path
      logging.info("resumed from %s at step %d, epoch %d", path, int(self.step.numpy()), int(self.epoch.numpy()))
    self.writer = tf.summary.create_file_writer(os.path.join(model_dir, "train")) if self.chief else None
    self._train_step = self._make_step(with_outputs=False)
    self._train_step_outputs = self._make_step(with_outputs=True)

  def _adam(self, lr):
    # Official: torch Adam with betas (0.5, 0.999) and eps 1e-8.
    opt = keras.optimizers.Adam(learning_rate=lr, beta_1=0.5, beta_2=0.999, epsilon=1e-8)
    if self.mixed_precision == "float16":
      opt = keras.optimizers.LossScaleOptimizer(opt)
    return opt

  def _variables(self, name):
    return list(self.model.networks()[name].trainable_variables)

  @property
  def use_gan(self):
    return self.cfg.loss_generator_gan != 0

  def learning_rates(self, epoch):
    """MultiStepLR: x0.1 at each milestone epoch passed."""
    drops = sum(1 for m in self.cfg.epoch_milestones if epoch >= m)
    return {name: lr * (0.1 ** drops) for name, lr in self.base_lr.items()}

  def _make_step(self, with_outputs):
    kp_vars = self._variables("kp_detector")
    gen_vars = self._variables("generator")
    disc_vars = self._variables("discriminator")
    num_replicas = self.num_replicas
    tm = self.training_model
    optimizers = self.optimizers
    use_gan = self.use_gan

    def replica_step(batch):
      with tf.GradientTape() as tape:
        losses, generated = tm.generator_losses(batch, training=True)
        # Each replica's loss is a mean over its share of the global batch;
        # gradients are summed across replicas, so divide by their number.
        total = tf.add_n(list(losses.values())) / num_replicas
        scaled = optimizers["generator"].scale_loss(total)
      grads = tape.gradient(scaled, kp_vars + gen_vars)
      optimizers["kp_detector"].apply_gradients(zip(grads[:len(kp_vars)], kp_vars))
      optimizers["generator"].apply_gradients(zip(grads[len(kp_vars):], gen_vars))
      if use_gan:
        with tf.GradientTape() as tape:
          disc_losses = tm.discriminator_losses(batch, generated, training=True)
          disc_total = optimizers["discriminator"].scale_loss(tf.add_n(list(disc_losses.values())) / num_replicas)
        disc_grads = tape.gradient(disc_total, disc_vars)
        optimizers["discriminator"].apply_gradients(zip(disc_grads, disc_vars))
        losses.update(disc_losses)
      if with_outputs:
        keep = {k: generated[k] for k in ("prediction", "deformed", "occlusion_map", "mask", "sparse_deformed",
                                         "transformed_frame") if k in generated}
        for k in ("kp_source", "kp_driving", "kp_transformed"):
          if k in generated:
            keep[k] = {"value": generated[k]["value"]}
        return losses, keep
      return losses, {}

    strategy = self.strategy

    def step(batch):
      losses, outputs = strategy.run(replica_step, args=(batch,))
      losses = {k: strategy.reduce(tf.distribute.ReduceOp.MEAN, v, axis=None) for k, v in losses.items()}
      return losses, outputs

    return tf.function(step, jit_compile=self.jit_compile or None)

  def _epoch_dataset(self, epoch, offset):
    ds = dataset_lib.make_train_dataset(self.cfg, self.video_index, self.batch_size, seed=self.seed, epoch=epoch,
                                        skip_report=self.skips, num_parallel_calls=self.num_parallel_calls)
    tm = self.training_model
    seed = self.seed
    batch_size = self.batch_size

    def add_transform(index, batch):
      params = tm.sample_transform_params(batch_size, tf.stack([tf.cast(seed * 100003 + epoch, tf.int64), index]))
      return {**batch, **params}

    ds = ds.enumerate().skip(offset).map(add_transform)
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    ds = ds.with_options(options).prefetch(2)
    return self.strategy.experimental_distribute_dataset(ds)

  def _set_learning_rates(self, epoch):
    for name, lr in self.learning_rates(epoch).items():
      self.optimizers[name].learning_rate = lr

  def _on_signal(self, signum, frame):
    del frame
    self._stop_signal = signum
    logging.warning("received signal %d: saving a checkpoint after this step, then exiting", signum)

  def save(self):
    bad = [v.path for v in self.model.kp_detector.weights + self.model.generator.weights
           if not bool(tf.reduce_all(tf.math.is_finite(v)))]
    if bad:
      raise TrainingError(f"{bad[0]} is not finite at step {int(self.step.numpy())}; no checkpoint written "
                          f"(last checkpoint: {self.manager.latest_checkpoint or 'none'})")
    path = self.manager.save(checkpoint_number=int(self.step.numpy()))
    if not self.chief:
      shutil.rmtree(self.manager.directory, ignore_errors=True)
    return path

  def train(self):
    """Runs until max_steps; returns the last step's losses. Raises TrainingError on a non-finite loss."""
    previous = {s: signal.signal(s, self._on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
      return self._loop()
    finally:
      for s, handler in previous.items():
        signal.signal(s, handler)
      if self.writer is not None:
        self.writer.flush()

  def _loop(self):
    step = int(self.step.numpy())
    last = {}
    start_time, start_step = time.monotonic(), step
    while step < self.max_steps:
      epoch, offset = divmod(step, self.steps_per_epoch)
      self.epoch.assign(epoch)
      self._set_learning_rates(epoch)
      for batch in self._epoch_dataset(epoch, offset):
        want_images = self.writer is not None and self.image_every > 0 and (step + 1) % self.image_every == 0
        fn = self._train_step_outputs if want_images else self._train_step
        losses, outputs = fn(batch)
        losses = {k: float(v.numpy()) for k, v in losses.items()}
        step += 1
        self.step.assign(step)
        bad = [k for k, v in losses.items() if not math.isfinite(v)]
        if bad:
          # The weights of this step are already poisoned: keep the last checkpoint as it is.
          raise TrainingError(f"loss {bad[0]} is {losses[bad[0]]} at step {step}; stopped without saving "
                              f"(last checkpoint: {self.manager.latest_checkpoint or 'none'})")
        self.history.append((step, losses))
        last = losses
        if self.writer is not None and (step % self.summary_every == 0 or step == 1):
          elapsed = max(time.monotonic() - start_time, 1e-9)
          self._write_scalars(step, epoch, losses, (step - start_step) / elapsed)
        if want_images:
          self._write_images(step, batch, outputs)
        if step % self.checkpoint_every == 0:
          self.save()
        if self._stop_signal is not None:
          path = self.save()
          logging.warning("stopped by signal %d at step %d; checkpoint %s", self._stop_signal, step, path)
          raise TrainingInterrupted(self._stop_signal, path)
        if step >= self.max_steps:
          break
      if step % self.steps_per_epoch == 0:
        self.epoch.assign(step // self.steps_per_epoch)
        if step % self.checkpoint_every != 0:
          self.save()
    if self.manager.latest_checkpoint is None or not self.manager.latest_checkpoint.endswith(f"-{step}"):
      self.save()
    if self.skips.count:
      logging.warning("%d samples came from videos that could not be decoded: %s", self.skips.count,
                      ", ".join(sorted(set(self.skips.names))[:10]))
    return last

  def _write_scalars(self, step, epoch, losses, steps_per_second):
    with self.writer.as_default(step=step):
      for name, value in losses.items():
        tf.summary.scalar(f"loss/{name}", value)
      tf.summary.scalar("loss/total", sum(v for k, v in losses.items() if k != "disc_gan"))
      for name, lr in self.learning_rates(epoch).items():
        tf.summary.scalar(f"learning_rate/{name}", lr)
      tf.summary.scalar("steps_per_second", steps_per_second)
      tf.summary.scalar("epoch", epoch)
      tf.summary.scalar("skipped_samples", self.skips.count)

  def _write_images(self, step, batch, outputs):
    local_batch = {k: self.strategy.experimental_local_results(batch[k])[0].numpy() for k in ("source", "driving")}
    local = {}
    for k, v in outputs.items():
      if isinstance(v, dict):
        local[k] = {kk: self.strategy.experimental_local_results(vv)[0].numpy() for kk, vv in v.items()}
      else:
        local[k] = self.strategy.experimental_local_results(v)[0].numpy()
    grid = visualizer.training_grid(local_batch, local, 0, self.cfg.kp_size, self.cfg.colormap)
    with self.writer.as_default(step=step):
      tf.summary.image("visualization", grid[np.newaxis], step=step)
