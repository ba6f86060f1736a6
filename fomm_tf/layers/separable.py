"""The depthwise-separable convolution of the lite networks (MobileNet style).

A k x k convolution from C to F channels costs k*k*C*F multiply-adds a pixel; a
k x k depthwise convolution followed by a 1x1 one costs k*k*C + C*F, about 8x
less for 3x3 kernels at FOMM's widths. Both halves are builtin TFLite kernels
(DEPTHWISE_CONV_2D, CONV_2D), so a lite model exports without custom ops.
"""

import keras

from fomm_tf.layers import base
from fomm_tf.layers import initializers


@base.register
class SeparableConv2D(base.Layer):
  """`depthwise` (k x k, one filter per channel, no bias) then `pointwise` (1x1, with bias), padding "same".

  Initialised as PyTorch would a grouped conv (groups = channels): U(+-1/sqrt(k*k)) depthwise, and PyTorch's
  default 1x1 conv pointwise.

  Args:
    filters: output channels.
    kernel_size: the depthwise kernel's size (odd).
  """

  def __init__(self, filters, kernel_size=3, **kwargs):
    super().__init__(**kwargs)
    self._record(locals())
    self.filters = filters
    self.kernel_size = kernel_size
    self.depthwise = self.sublayer(keras.layers.DepthwiseConv2D,
                                   kernel_size,
                                   padding="same",
                                   use_bias=False,
                                   depthwise_initializer=initializers.FanInUniform(kernel_size * kernel_size),
                                   name="depthwise")
    self.pointwise = self.sublayer(initializers.Conv2D, filters, 1, name="pointwise")

  def call(self, x):
    return self.pointwise(self.depthwise(x))


def conv(owner, filters, kernel_size, separable, name):
  """A "same" convolution sublayer of `owner`: separable (kernel_size > 1) or a plain PyTorch-initialised one."""
  if separable and kernel_size > 1:
    return owner.sublayer(SeparableConv2D, filters, kernel_size, name=name)
  return owner.sublayer(initializers.Conv2D, filters, kernel_size, padding="same", name=name)
