"""A 2-D convolution with spectral normalisation, PyTorch `spectral_norm` semantics."""

import keras
import tensorflow as tf

from fomm_tf.layers import base
from fomm_tf.layers import initializers

_NORM_EPS = 1e-12


def _l2_normalize(x):
  return x / tf.maximum(tf.norm(x), _NORM_EPS)


@base.register
class SpectralNormConv2D(base.Layer):
  """VALID convolution whose kernel is divided by its largest singular value.

  The weight matrix is the kernel flattened PyTorch style, (out, in * kh * kw).
  As in PyTorch, a training call runs one power iteration updating `u` and `v`
  before normalising; an inference call uses the stored `u` and `v`:
  sigma = u . (W v).
  """

  def __init__(self, filters, kernel_size, **kwargs):
    super().__init__(**kwargs)
    self._record(locals())
    self.filters = filters
    self.kernel_size = kernel_size

  def build(self, input_shape):
    in_channels = int(input_shape[-1])
    k = self.kernel_size
    fan_in = in_channels * k * k
    self.kernel = self.add_weight(name="kernel",
                                  shape=(k, k, in_channels, self.filters),
                                  initializer=initializers.TorchConvKernel())
    self.bias = self.add_weight(name="bias", shape=(self.filters,), initializer=initializers.FanInUniform(fan_in))
    self.u = self.add_weight(name="u",
                             shape=(self.filters,),
                             trainable=False,
                             initializer=keras.initializers.RandomNormal())
    self.v = self.add_weight(name="v",
                             shape=(in_channels * k * k,),
                             trainable=False,
                             initializer=keras.initializers.RandomNormal())

  def weight_matrix(self):
    return tf.reshape(tf.transpose(self.kernel, [3, 2, 0, 1]), [self.filters, -1])

  def normalized_kernel(self, training=False):
    w = self.weight_matrix()
    u = tf.convert_to_tensor(self.u)
    v = tf.convert_to_tensor(self.v)
    if training:
      w_const = tf.stop_gradient(w)
      v = _l2_normalize(tf.linalg.matvec(w_const, u, transpose_a=True))
      u = _l2_normalize(tf.linalg.matvec(w_const, v))
      self.u.assign(u)
      self.v.assign(v)
    sigma = tf.tensordot(u, tf.linalg.matvec(w, v), 1)
    return self.kernel / sigma

  def call(self, x, training=False):
    kernel = tf.cast(self.normalized_kernel(training), x.dtype)
    return tf.nn.conv2d(x, kernel, strides=1, padding="VALID") + tf.cast(self.bias, x.dtype)
