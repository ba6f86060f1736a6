"""The U-Net style hourglass used by the keypoint detector and the dense motion network."""

import keras

from fomm_tf.layers import base
from fomm_tf.layers import conv_blocks


def encoder_filters(block_expansion, max_features, num_blocks):
  return [min(max_features, block_expansion * (2**(i + 1))) for i in range(num_blocks)]


def decoder_filters(block_expansion, max_features, num_blocks):
  return [min(max_features, block_expansion * (2**i)) for i in reversed(range(num_blocks))]


@base.register
class Hourglass(base.Layer):
  """Encoder of DownBlock2d, decoder of UpBlock2d with skip connections.

  The decoder concatenates [upsampled, skip] and the output ends with the
  input itself, giving `block_expansion + in_features` channels. `separable`
  makes every block's conv depthwise-separable (the lite networks).
  """

  def __init__(self, block_expansion, in_features, num_blocks=3, max_features=256, separable=False, **kwargs):
    super().__init__(**kwargs)
    self._record(locals())
    self.block_expansion = block_expansion
    self.in_features = in_features
    self.down_blocks = [
        self.sublayer(conv_blocks.DownBlock2d, f, separable=separable, name=f"down_block_{i}")
        for i, f in enumerate(encoder_filters(block_expansion, max_features, num_blocks))
    ]
    self.up_blocks = [
        self.sublayer(conv_blocks.UpBlock2d, f, separable=separable, name=f"up_block_{i}")
        for i, f in enumerate(decoder_filters(block_expansion, max_features, num_blocks))
    ]

  @property
  def out_filters(self):
    return self.block_expansion + self.in_features

  def call(self, x, training=False):
    skips = [x]
    for block in self.down_blocks:
      skips.append(block(skips[-1], training=training))
    out = skips.pop()
    for block in self.up_blocks:
      out = block(out, training=training)
      out = keras.ops.concatenate([out, skips.pop()], axis=-1)
    return out
