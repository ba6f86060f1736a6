"""The training step: one tf.function that computes the losses, updates every network and records metrics.

The keypoint detector and the generator are updated from one summed loss, as the
official trainer does (one backward pass); the discriminator, when the GAN is
on, from its own loss. Each replica's loss is a mean over its share of the
global batch and gradients are summed across replicas, so losses are divided by
the number of replicas. The replica-averaged losses go into `LossMetrics`
inside the graph; the host reads them only when it writes a summary.
"""

import tensorflow as tf

from fomm_tf.training import loss_scale as loss_scale_lib

# What an image-grid step returns, where the losses produced it (the teacher's entries only in a distillation).
IMAGE_OUTPUTS = ("prediction", "deformed", "occlusion_map", "mask", "sparse_deformed", "transformed_frame",
                 "teacher_prediction")
KEYPOINT_OUTPUTS = ("kp_source", "kp_driving", "kp_transformed", "teacher_kp_driving")


def _apply(optimizer, grads, variables):
  optimizer.apply_gradients(zip(grads, variables))


def _apply_if(finite, updates, scaled):
  """Applies [(optimizer, grads, variables)]; with a loss scale, only when every gradient is finite."""
  if not scaled:
    for update in updates:
      _apply(*update)
    return

  def apply_all():
    for update in updates:
      _apply(*update)
    return tf.constant(True)

  tf.cond(finite, apply_all, lambda: tf.constant(False))


class TrainStep:
  """The step function `run(batch)` for a TrainState and a TrainingModel (the losses).

  With `with_outputs` every step returns what an image grid shows (IMAGE_OUTPUTS, KEYPOINT_OUTPUTS), else {}:
  one graph for every step of a run, traced once (a second graph for the image steps cost a second trace, seconds
  to minutes, and rounded differently from the others), and the same on every worker.
  """

  def __init__(self, state, training_model, metrics, jit_compile=False, with_outputs=False):
    self.state = state
    self.training_model = training_model
    self.metrics = metrics
    self.jit_compile = jit_compile
    self.use_gan = training_model.use_gan
    self.run = self._make(with_outputs)

  def _replica_step(self, batch, with_outputs):
    state, tm = self.state, self.training_model
    num_replicas = state.strategy.num_replicas_in_sync
    kp_vars, gen_vars = state.variables("kp_detector"), state.variables("generator")
    gen_scale = state.loss_scales["generator"]
    with tf.GradientTape() as tape:
      losses, generated = tm.generator_losses(batch, training=True)
      total = tf.add_n(list(losses.values())) / num_replicas
      scaled = gen_scale.scale_loss(total)
    grads, finite = gen_scale.unscale(tape.gradient(scaled, kp_vars + gen_vars))
    dynamic = isinstance(gen_scale, loss_scale_lib.DynamicLossScale)
    _apply_if(finite, [(state.optimizers["kp_detector"], grads[:len(kp_vars)], kp_vars),
                       (state.optimizers["generator"], grads[len(kp_vars):], gen_vars)], dynamic)
    if self.use_gan:
      disc_vars = state.variables("discriminator")
      disc_scale = state.loss_scales["discriminator"]
      with tf.GradientTape() as tape:
        disc_losses = tm.discriminator_losses(batch, generated, training=True)
        disc_total = disc_scale.scale_loss(tf.add_n(list(disc_losses.values())) / num_replicas)
      disc_grads, disc_finite = disc_scale.unscale(tape.gradient(disc_total, disc_vars))
      _apply_if(disc_finite, [(state.optimizers["discriminator"], disc_grads, disc_vars)], dynamic)
      losses.update(disc_losses)
    if not with_outputs:
      return losses, {}
    keep = {k: generated[k] for k in IMAGE_OUTPUTS if k in generated}
    for k in KEYPOINT_OUTPUTS:
      if k in generated:
        keep[k] = {"value": generated[k]["value"]}
    return losses, keep

  def _make(self, with_outputs):
    strategy = self.state.strategy

    def step(batch):
      losses, outputs = strategy.run(self._replica_step, args=(batch, with_outputs))
      losses = {k: strategy.reduce(tf.distribute.ReduceOp.MEAN, v, axis=None) for k, v in losses.items()}
      self.state.step.assign_add(1)
      self.metrics.update(losses, self.state.step)
      return outputs

    # No autograph: the step's control flow is explicit (tf.cond in _apply_if), and converting every function it
    # calls cost about a second of each run's start-up.
    return tf.function(step, jit_compile=self.jit_compile or None, autograph=False)
