"""One dynamic loss scale for float16 training, shared by every network updated from the same loss.

The keypoint detector and the generator learn from one summed loss, so they
share one scale: the loss is multiplied by it, the gradients of both networks
divided by it, and when any gradient is not finite neither network is updated
and the scale halves; after `growth_interval` finite steps it doubles (the
usual dynamic loss scaling, as Keras' LossScaleOptimizer does per optimizer).
"""

import tensorflow as tf


class DynamicLossScale(tf.Module):
  """A checkpointable dynamic loss scale (state: `scale`, `finite_steps`)."""

  def __init__(self, initial_scale=2.0**15, growth_interval=2000, name="loss_scale"):
    super().__init__(name=name)
    self.growth_interval = int(growth_interval)
    # Every replica computes the same update (the finiteness test is all-reduced), so the first one writes it.
    first = tf.VariableAggregation.ONLY_FIRST_REPLICA
    self.scale = tf.Variable(float(initial_scale), trainable=False, dtype=tf.float32, name="scale", aggregation=first)
    self.finite_steps = tf.Variable(0, trainable=False, dtype=tf.int64, name="finite_steps", aggregation=first)

  def scale_loss(self, loss):
    return loss * tf.cast(self.scale, loss.dtype)

  def unscale(self, grads):
    """(unscaled gradients, whether all are finite); also updates the scale for the next step."""
    inverse = 1.0 / self.scale
    grads = [None if g is None else tf.cast(g, tf.float32) * inverse for g in grads]
    finite = tf.reduce_all([tf.reduce_all(tf.math.is_finite(g)) for g in grads if g is not None])
    context = tf.distribute.get_replica_context()
    if context is not None and context.num_replicas_in_sync > 1:
      finite = context.all_reduce(tf.distribute.ReduceOp.MIN, tf.cast(finite, tf.float32)) > 0.5
    grow = finite & (self.finite_steps + 1 >= self.growth_interval)
    self.scale.assign(tf.where(finite, tf.where(grow, self.scale * 2.0, self.scale), tf.maximum(self.scale * 0.5, 1.0)))
    self.finite_steps.assign(tf.where(finite & ~grow, self.finite_steps + 1, tf.zeros_like(self.finite_steps)))
    return grads, finite


class NoLossScale:
  """Float32 and bfloat16 need no scaling."""

  def scale_loss(self, loss):
    return loss

  def unscale(self, grads):
    return grads, tf.constant(True)
