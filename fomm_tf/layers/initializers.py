"""PyTorch's default initialisation, which the official FOMM code relies on for every layer it does not override.

PyTorch's `nn.Conv2d.reset_parameters` draws the kernel with kaiming_uniform(a=sqrt(5))
and the bias from U(-1/sqrt(fan_in), 1/sqrt(fan_in)), fan_in = in_channels * kh * kw.
kaiming_uniform with a = sqrt(5) has the bound gain * sqrt(3 / fan_in) with
gain = sqrt(2 / (1 + a^2)) = sqrt(1/3), i.e. the same 1/sqrt(fan_in): both the
kernel and the bias are U(-1/sqrt(fan_in), 1/sqrt(fan_in)). Keras' defaults
(Glorot-uniform kernels, zero biases) start training elsewhere.
"""

import math

import keras

from fomm_tf.layers import base


def torch_bound(fan_in):
  """The half-width 1/sqrt(fan_in) of PyTorch's default conv kernel and bias distributions."""
  return 1.0 / math.sqrt(fan_in)


@base.register
class TorchConvKernel(keras.initializers.VarianceScaling):
  """PyTorch's default conv kernel: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) (kaiming_uniform, a = sqrt(5))."""

  def __init__(self, seed=None):
    # VarianceScaling's uniform limit is sqrt(3 * scale / fan_in); scale 1/3 gives 1/sqrt(fan_in).
    super().__init__(scale=1.0 / 3.0, mode="fan_in", distribution="uniform", seed=seed)

  def get_config(self):
    return {"seed": self.seed}


@base.register
class FanInUniform(keras.initializers.RandomUniform):
  """U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for a vector whose shape does not tell the fan-in (a conv bias)."""

  def __init__(self, fan_in, seed=None):
    bound = torch_bound(fan_in)
    super().__init__(minval=-bound, maxval=bound, seed=seed)
    self.fan_in = fan_in

  def get_config(self):
    return {"fan_in": self.fan_in, "seed": self.seed}


@base.register
class Conv2D(keras.layers.Conv2D):
  """keras Conv2D initialised as PyTorch's nn.Conv2d (kernel and bias U(+-1/sqrt(fan_in))).

  The bias bound needs the input channels, so it is set in build(). An explicit
  `kernel_initializer` / `bias_initializer` (e.g. the Jacobian head's) wins.
  """

  def __init__(self, filters, kernel_size, kernel_initializer=None, bias_initializer=None, **kwargs):
    self._torch_bias = bias_initializer is None
    super().__init__(filters,
                     kernel_size,
                     kernel_initializer=kernel_initializer or TorchConvKernel(),
                     bias_initializer=bias_initializer or "zeros",
                     **kwargs)

  def build(self, input_shape):
    if self._torch_bias:
      kh, kw = self.kernel_size
      self.bias_initializer = FanInUniform(int(input_shape[-1]) * kh * kw)
    super().build(input_shape)

  def get_config(self):
    config = super().get_config()
    if self._torch_bias:
      # Rebuilt from this config, the layer derives the bias bound again.
      config["bias_initializer"] = None
    return config
