"""Anti-aliased downsampling as a layer whose blur kernel is a (loadable) weight."""

import keras
import tensorflow as tf

from fomm_tf.layers import base
from fomm_tf.ops import antialias


@base.register
class AntiAliasDownsample(base.Layer):
  """Gaussian blur then keep every (1/scale)-th pixel, as the official module.

  The kernel is a non-trainable weight because official checkpoints store it
  as a buffer (`down.weight`); loading checks it against the computed one.
  """

  def __init__(self, scale, **kwargs):
    super().__init__(**kwargs)
    self._record(locals())
    self.scale = scale
    size = antialias.gaussian_kernel_size(scale)
    self.kernel = self.add_weight(name="kernel",
                                  shape=(size, size),
                                  trainable=False,
                                  initializer=keras.initializers.Constant(antialias.gaussian_blur_kernel(scale)))

  def call(self, x):
    return antialias.anti_alias_downsample(x, self.scale, tf.cast(self.kernel, x.dtype))
