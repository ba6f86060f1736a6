"""The patch discriminator and its multi-scale wrapper (used when generator_gan != 0)."""

import keras
import tensorflow as tf

from fomm_tf.layers import base
from fomm_tf.layers import initializers
from fomm_tf.layers import spectral_norm_conv
from fomm_tf.ops import antialias
from fomm_tf.ops import coordinates


@base.register
class DiscriminatorBlock(base.Layer):
  """4x4 VALID conv (optionally spectral-normalised) -> instance norm -> LeakyReLU(0.2) -> avg-pool."""

  def __init__(self, filters, norm=False, kernel_size=4, pool=False, sn=False, **kwargs):
    super().__init__(**kwargs)
    self._record(locals())
    self.pool = pool
    self.sn = sn
    if sn:
      self.conv = self.sublayer(spectral_norm_conv.SpectralNormConv2D, filters, kernel_size, name="conv")
    else:
      self.conv = self.sublayer(initializers.Conv2D, filters, kernel_size, padding="valid", name="conv")
    # Instance norm with affine weight 1 and bias 0, as nn.InstanceNorm2d(affine=True).
    self.norm = self.sublayer(keras.layers.GroupNormalization, groups=-1, epsilon=1e-5, name="norm") if norm else None

  def call(self, x, training=False):
    out = self.conv(x, training=training) if self.sn else self.conv(x)
    if self.norm is not None:
      out = self.norm(out)
    out = tf.nn.leaky_relu(out, 0.2)
    if self.pool:
      out = tf.nn.avg_pool2d(out, 2, 2, "VALID")
    return out


@base.register
class Discriminator(base.Layer):
  """Returns (feature_maps, prediction_map) for (B, H, W, C) frames, optionally with keypoint heatmaps."""

  def __init__(self,
               num_channels=3,
               block_expansion=64,
               num_blocks=4,
               max_features=512,
               sn=False,
               use_kp=False,
               num_kp=10,
               kp_variance=0.01,
               **kwargs):
    super().__init__(**kwargs)
    self._record(locals())
    self.sn = sn
    self.use_kp = use_kp
    self.kp_variance = kp_variance
    self.down_blocks = [
        self.sublayer(DiscriminatorBlock,
                      min(max_features, block_expansion * (2**(i + 1))),
                      norm=(i != 0),
                      pool=(i != num_blocks - 1),
                      sn=sn,
                      name=f"down_block_{i}") for i in range(num_blocks)
    ]
    if sn:
      self.conv = self.sublayer(spectral_norm_conv.SpectralNormConv2D, 1, 1, name="conv")
    else:
      self.conv = self.sublayer(initializers.Conv2D, 1, 1, name="conv")

  def call(self, x, kp=None, training=False):
    out = x
    if self.use_kp:
      if kp is None:
        raise ValueError("Discriminator: use_kp is on, so keypoints are required")
      heat = coordinates.keypoints_to_gaussian(kp["value"], x.shape[1], x.shape[2], self.kp_variance)
      out = tf.concat([out, tf.cast(heat, out.dtype)], axis=-1)
    feature_maps = []
    for block in self.down_blocks:
      out = block(out, training=training)
      feature_maps.append(out)
    prediction = self.conv(out, training=training) if self.sn else self.conv(out)
    return feature_maps, prediction


@base.register
class MultiScaleDiscriminator(base.Layer):
  """One discriminator per pyramid scale; input and output keyed like the official module."""

  def __init__(self,
               scales=(1,),
               num_channels=3,
               block_expansion=64,
               num_blocks=4,
               max_features=512,
               sn=False,
               use_kp=False,
               num_kp=10,
               kp_variance=0.01,
               **kwargs):
    super().__init__(**kwargs)
    self._record(locals())
    names = [antialias.scale_name(s) for s in scales]
    self.discs = {
        name:
            self.sublayer(Discriminator,
                          num_channels=num_channels,
                          block_expansion=block_expansion,
                          num_blocks=num_blocks,
                          max_features=max_features,
                          sn=sn,
                          use_kp=use_kp,
                          num_kp=num_kp,
                          kp_variance=kp_variance,
                          name=f"disc_{name.replace('.', '_')}") for name in names
    }

  def call(self, pyramid, kp=None, training=False):
    out = {}
    for name, disc in self.discs.items():
      feature_maps, prediction = disc(pyramid["prediction_" + name], kp, training=training)
      out["feature_maps_" + name] = feature_maps
      out["prediction_map_" + name] = prediction
    return out
