"""Batch normalisation with PyTorch's BatchNorm2d semantics, which the official checkpoints and trainer use.

Same as keras BatchNormalization (eps 1e-5; Keras momentum 0.9 is PyTorch's 0.1:
running = 0.9 running + 0.1 batch) except that the running variance is updated
with the *unbiased* batch variance, var * n / (n - 1) with n = batch * h * w
(over all replicas when synchronised), as PyTorch does; the batch itself is
normalised with the biased variance, as in both frameworks.
"""

import keras
import tensorflow as tf
from keras import ops

from fomm_tf.layers import base

EPSILON = 1e-5
# PyTorch's momentum 0.1 updates running = 0.9 running + 0.1 batch.
MOMENTUM = 0.9


def synchronized_by_default():
  # Under a multi-replica strategy the batch statistics are those of the global
  # batch, as the official SynchronizedBatchNorm2d does. With one replica the
  # cross-replica sum is a no-op that still costs about half the training step
  # time on CPU, so it is only asked for when the layer is made under a
  # strategy with several replicas.
  return tf.distribute.get_strategy().num_replicas_in_sync > 1


@base.register
class BatchNorm(keras.layers.BatchNormalization):
  """keras BatchNormalization whose moving variance follows PyTorch (unbiased batch variance)."""

  def __init__(self, epsilon=EPSILON, momentum=MOMENTUM, synchronized=None, **kwargs):
    if synchronized is None:
      synchronized = synchronized_by_default()
    super().__init__(epsilon=epsilon, momentum=momentum, synchronized=synchronized, **kwargs)

  def call(self, inputs, training=None, mask=None):
    if mask is not None or self.renorm or not (training and self.trainable):
      return super().call(inputs, training=training, mask=mask)
    x = ops.cast(inputs, keras.backend.result_type(inputs.dtype, "float32"))
    context = tf.distribute.get_replica_context() if self.synchronized else None
    if context is not None:
      mean, variance, count = synchronized_moments(context, x, self._reduction_axes)
    else:
      mean, variance = self._moments(x, None)
      count = ops.cast(ops.prod(ops.take(ops.shape(x), self._reduction_axes)), variance.dtype)
    unbiased = variance * count / ops.maximum(count - 1.0, 1.0)
    self.moving_mean.assign(ops.cast(self.moving_mean, x.dtype) * self.momentum + mean * (1.0 - self.momentum))
    self.moving_variance.assign(
        ops.cast(self.moving_variance, x.dtype) * self.momentum + unbiased * (1.0 - self.momentum))
    outputs = ops.batch_normalization(x,
                                      mean=mean,
                                      variance=variance,
                                      axis=self.axis,
                                      offset=ops.cast(self.beta, x.dtype) if self.center else None,
                                      scale=ops.cast(self.gamma, x.dtype) if self.scale else None,
                                      epsilon=self.epsilon)
    return ops.cast(outputs, self.compute_dtype)


def synchronized_moments(context, x, axes):
  """Mean, biased variance and number of values of `x` over `axes` and every replica of `context`: Keras'
  synchronised moments (the same sums, the same formulas), with all_sum's gradient."""
  count = context.all_reduce(tf.distribute.ReduceOp.SUM,
                             tf.stop_gradient(tf.reduce_sum(tf.ones_like(x), axis=axes, keepdims=True)))
  mean = tf.math.divide_no_nan(all_sum(context, tf.reduce_sum(x, axis=axes, keepdims=True)), count)
  squared_mean = tf.math.divide_no_nan(all_sum(context, tf.reduce_sum(tf.square(x), axis=axes, keepdims=True)), count)
  variance = tf.maximum(squared_mean - tf.square(mean), 0.0)  # E(x^2) - E(x)^2
  return tf.squeeze(mean, axes), tf.squeeze(variance, axes), tf.squeeze(count, axes)


def all_sum(context, value):
  """The sum of `value` over the replicas of `context`; its gradient is the sum of the replicas' gradients.

  ReplicaContext.all_reduce computes the same, but under MirroredStrategy its tf.custom_gradient looks for the
  variables between the sum and `value` by walking the graph back from the sum, which reads every replica's value:
  the walk goes through all the other replicas' graphs, once per call and again for each call's gradient, so
  tracing a training step grew with the square of the network's size (`tools/benchmark_train.py --configs=tiny
  --num_cpu_replicas=2` on the 2-core machine: first step 150.9 s, 28.8 s with this). Here the reduction reads a
  stop_gradient copy, where that walk ends; the gradient is given explicitly, the same as all_reduce's.
  """

  @tf.custom_gradient
  def summed(local):
    total = context.all_reduce(tf.distribute.ReduceOp.SUM, tf.stop_gradient(local))
    return total, lambda upstream: all_sum(context, upstream)

  return summed(value)
