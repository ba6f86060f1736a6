"""The small convolution blocks shared by the hourglasses and the generator.

Each mirrors an official module (`DownBlock2d`, `UpBlock2d`, `SameBlock2d`,
`ResBlock2d`) so that checkpoints map one to one: a `conv` and a `norm`
sublayer (or `conv1`/`conv2`/`norm1`/`norm2`). With `separable=True` (the lite
networks) each conv is a depthwise-separable one (`layers/separable.py`).
"""

import keras
import tensorflow as tf

from fomm_tf.layers import base
from fomm_tf.layers import batch_norm
from fomm_tf.layers import separable as separable_lib


def upsample_nearest_2x(x):
  # A resize to a static size: UpSampling2D computes its output shape at run
  # time, which loses the height under a dynamic batch in TFLite conversion.
  return keras.ops.image.resize(x, (2 * x.shape[1], 2 * x.shape[2]), interpolation="nearest")


@tf.custom_gradient
def upsample_nearest_2x_for_training(x):
  """upsample_nearest_2x whose gradient is the 2x2 sum of the output's (4 x average pooling, exact): the
  resize's own gradient, ResizeNearestNeighborGrad, has no XLA kernel, so a training step with it cannot be
  compiled (--jit_compile). Training only; exports keep the plain resize."""

  def gradient(upstream):
    return tf.nn.avg_pool2d(upstream, 2, 2, "VALID") * 4

  return upsample_nearest_2x(x), gradient


class _ConvNormBlock(base.Layer):
  """A `conv` (3x3 by default, PyTorch initialisation; depthwise-separable with `separable`) and a `norm`."""

  def __init__(self, filters, kernel_size=3, separable=False, **kwargs):
    super().__init__(**kwargs)
    self._record(locals())
    self.filters = filters
    self.kernel_size = kernel_size
    self.conv = separable_lib.conv(self, filters, kernel_size, separable, name="conv")
    self.norm = self.sublayer(batch_norm.BatchNorm, name="norm")


@base.register
class DownBlock2d(_ConvNormBlock):
  """conv3x3 -> BatchNorm -> ReLU -> 2x2 average pooling."""

  def __init__(self, filters, kernel_size=3, separable=False, **kwargs):
    super().__init__(filters, kernel_size, separable, **kwargs)
    self.pool = self.sublayer(keras.layers.AveragePooling2D, 2, name="pool")

  def call(self, x, training=False):
    x = self.norm(self.conv(x), training=training)
    return self.pool(keras.activations.relu(x))


@base.register
class UpBlock2d(_ConvNormBlock):
  """Nearest x2 upsampling -> conv3x3 -> BatchNorm -> ReLU."""

  def call(self, x, training=False):
    upsample = upsample_nearest_2x_for_training if training else upsample_nearest_2x
    x = self.norm(self.conv(upsample(x)), training=training)
    return keras.activations.relu(x)


@base.register
class SameBlock2d(_ConvNormBlock):
  """conv -> BatchNorm -> ReLU at the same resolution."""

  def call(self, x, training=False):
    return keras.activations.relu(self.norm(self.conv(x), training=training))


@base.register
class ResBlock2d(base.Layer):
  """Pre-activation residual block: BN-ReLU-conv-BN-ReLU-conv + x (separable convs with `separable`)."""

  def __init__(self, filters, kernel_size=3, separable=False, **kwargs):
    super().__init__(**kwargs)
    self._record(locals())
    self.filters = filters
    self.kernel_size = kernel_size
    self.norm1 = self.sublayer(batch_norm.BatchNorm, name="norm1")
    self.conv1 = separable_lib.conv(self, filters, kernel_size, separable, name="conv1")
    self.norm2 = self.sublayer(batch_norm.BatchNorm, name="norm2")
    self.conv2 = separable_lib.conv(self, filters, kernel_size, separable, name="conv2")

  def call(self, x, training=False):
    out = self.conv1(keras.activations.relu(self.norm1(x, training=training)))
    out = self.conv2(keras.activations.relu(self.norm2(out, training=training)))
    return out + x
