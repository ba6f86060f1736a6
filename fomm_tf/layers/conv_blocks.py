"""The small convolution blocks shared by the hourglasses and the generator.

Each mirrors an official module (`DownBlock2d`, `UpBlock2d`, `SameBlock2d`,
`ResBlock2d`) so that checkpoints map one to one: a `conv` and a `norm`
sublayer (or `conv1`/`conv2`/`norm1`/`norm2`).
"""

import keras
import tensorflow as tf

BATCH_NORM_EPSILON = 1e-5
# PyTorch's momentum 0.1 updates running = 0.9 running + 0.1 batch.
BATCH_NORM_MOMENTUM = 0.9


def batch_norm(name):
  # Under a multi-replica strategy the batch statistics are those of the global
  # batch, as the official SynchronizedBatchNorm2d does. With one replica the
  # cross-replica sum is a no-op that still costs about half the training step
  # time on CPU, so it is only asked for when the model is built under a
  # strategy with several replicas.
  synchronized = tf.distribute.get_strategy().num_replicas_in_sync > 1
  return keras.layers.BatchNormalization(epsilon=BATCH_NORM_EPSILON, momentum=BATCH_NORM_MOMENTUM,
                                         synchronized=synchronized, name=name)


def conv2d(filters, kernel_size, name, padding="same", **kwargs):
  return keras.layers.Conv2D(filters, kernel_size, padding=padding, name=name, **kwargs)


class DownBlock2d(keras.layers.Layer):
  """conv3x3 -> BatchNorm -> ReLU -> 2x2 average pooling."""

  def __init__(self, filters, kernel_size=3, **kwargs):
    super().__init__(**kwargs)
    self.filters = filters
    self.kernel_size = kernel_size
    self.conv = conv2d(filters, kernel_size, "conv")
    self.norm = batch_norm("norm")
    self.pool = keras.layers.AveragePooling2D(2, name="pool")

  def call(self, x, training=False):
    x = self.norm(self.conv(x), training=training)
    return self.pool(keras.activations.relu(x))

  def get_config(self):
    return {**super().get_config(), "filters": self.filters, "kernel_size": self.kernel_size}


def upsample_nearest_2x(x):
  # A resize to a static size: UpSampling2D computes its output shape at run
  # time, which loses the height under a dynamic batch in TFLite conversion.
  return keras.ops.image.resize(x, (2 * x.shape[1], 2 * x.shape[2]), interpolation="nearest")


class UpBlock2d(keras.layers.Layer):
  """Nearest x2 upsampling -> conv3x3 -> BatchNorm -> ReLU."""

  def __init__(self, filters, kernel_size=3, **kwargs):
    super().__init__(**kwargs)
    self.filters = filters
    self.kernel_size = kernel_size
    self.conv = conv2d(filters, kernel_size, "conv")
    self.norm = batch_norm("norm")

  def call(self, x, training=False):
    x = self.norm(self.conv(upsample_nearest_2x(x)), training=training)
    return keras.activations.relu(x)

  def get_config(self):
    return {**super().get_config(), "filters": self.filters, "kernel_size": self.kernel_size}


class SameBlock2d(keras.layers.Layer):
  """conv -> BatchNorm -> ReLU at the same resolution."""

  def __init__(self, filters, kernel_size=3, **kwargs):
    super().__init__(**kwargs)
    self.filters = filters
    self.kernel_size = kernel_size
    self.conv = conv2d(filters, kernel_size, "conv")
    self.norm = batch_norm("norm")

  def call(self, x, training=False):
    return keras.activations.relu(self.norm(self.conv(x), training=training))

  def get_config(self):
    return {**super().get_config(), "filters": self.filters, "kernel_size": self.kernel_size}


class ResBlock2d(keras.layers.Layer):
  """Pre-activation residual block: BN-ReLU-conv-BN-ReLU-conv + x."""

  def __init__(self, filters, kernel_size=3, **kwargs):
    super().__init__(**kwargs)
    self.filters = filters
    self.kernel_size = kernel_size
    self.norm1 = batch_norm("norm1")
    self.conv1 = conv2d(filters, kernel_size, "conv1")
    self.norm2 = batch_norm("norm2")
    self.conv2 = conv2d(filters, kernel_size, "conv2")

  def call(self, x, training=False):
    out = self.conv1(keras.activations.relu(self.norm1(x, training=training)))
    out = self.conv2(keras.activations.relu(self.norm2(out, training=training)))
    return out + x

  def get_config(self):
    return {**super().get_config(), "filters": self.filters, "kernel_size": self.kernel_size}
