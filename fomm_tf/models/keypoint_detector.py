"""The FOMM keypoint detector: heatmap soft-argmax plus local affine Jacobians."""

import keras
import numpy as np
import tensorflow as tf

from fomm_tf.layers import anti_alias
from fomm_tf.layers import base
from fomm_tf.layers import hourglass
from fomm_tf.layers import initializers
from fomm_tf.ops import coordinates


@base.register
class KeypointDetector(base.Layer):
  """Predicts K keypoints (B, K, 2) and their 2x2 Jacobians (B, K, 2, 2).

  Frames are NHWC in [0, 1]. With `scale_factor` < 1 the hourglass sees an
  anti-aliased downsampled copy (0.25 -> 64x64 for 256x256 frames). The lite
  networks make the hourglass depthwise-separable (`separable`) and the
  keypoint/Jacobian heads smaller (`head_kernel_size`, 7 in the paper).
  """

  def __init__(self,
               block_expansion,
               num_kp,
               num_channels,
               max_features,
               num_blocks,
               temperature,
               estimate_jacobian=False,
               scale_factor=1,
               single_jacobian_map=False,
               pad=0,
               separable=False,
               head_kernel_size=7,
               **kwargs):
    super().__init__(**kwargs)
    self._record(locals())
    self.num_kp = num_kp
    self.temperature = temperature
    if pad not in (0, head_kernel_size // 2):
      raise ValueError(f"KeypointDetector: pad must be 0 or {head_kernel_size // 2} for a {head_kernel_size}x"
                       f"{head_kernel_size} kernel, got {pad}")
    padding = "same" if pad else "valid"
    self.predictor = self.sublayer(hourglass.Hourglass,
                                   block_expansion,
                                   in_features=num_channels,
                                   max_features=max_features,
                                   num_blocks=num_blocks,
                                   separable=separable,
                                   name="predictor")
    self.kp = self.sublayer(initializers.Conv2D, num_kp, head_kernel_size, padding=padding, name="kp")
    if estimate_jacobian:
      self.num_jacobian_maps = 1 if single_jacobian_map else num_kp
      # Identity Jacobians at initialisation: the one initialisation the official code overrides.
      self.jacobian = self.sublayer(initializers.Conv2D,
                                    4 * self.num_jacobian_maps,
                                    head_kernel_size,
                                    padding=padding,
                                    name="jacobian",
                                    kernel_initializer="zeros",
                                    bias_initializer=keras.initializers.Constant(
                                        np.array([1, 0, 0, 1] * self.num_jacobian_maps, np.float32)))
    else:
      self.jacobian = None
    self.down = self.sublayer(anti_alias.AntiAliasDownsample, scale_factor, name="down") if scale_factor != 1 else None

  def call(self, frames, training=False, return_internals=False):
    x = frames if self.down is None else self.down(frames)
    feature_map = self.predictor(x, training=training)
    # Heatmap softmax and soft-argmax in float32, also under mixed precision.
    logits = tf.cast(self.kp(feature_map), tf.float32)
    height, width = logits.shape[1], logits.shape[2]
    flat = tf.reshape(logits, [-1, height * width, self.num_kp])
    heatmap = tf.reshape(tf.nn.softmax(flat / self.temperature, axis=1), [-1, height, width, self.num_kp])
    grid = coordinates.make_coordinate_grid(height, width, tf.float32)
    value = tf.einsum("bhwk,hwc->bkc", heatmap, grid)
    out = {"value": value}
    if self.jacobian is not None:
      jacobian_map = tf.cast(self.jacobian(feature_map), tf.float32)
      jacobian_map = tf.reshape(jacobian_map, [-1, height, width, self.num_jacobian_maps, 4])
      jacobian = tf.reduce_sum(heatmap[..., tf.newaxis] * jacobian_map, axis=[1, 2])
      out["jacobian"] = tf.reshape(jacobian, [-1, self.num_kp, 2, 2])
    if return_internals:
      out["logits"] = logits
      out["heatmap"] = heatmap
      out["downsampled"] = x
    return out
