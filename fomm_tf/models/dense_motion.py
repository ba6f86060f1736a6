"""The dense motion network: K+1 sparse motions blended into a dense flow."""

import tensorflow as tf

from fomm_tf.layers import anti_alias
from fomm_tf.layers import base
from fomm_tf.layers import hourglass
from fomm_tf.layers import initializers
from fomm_tf.ops import coordinates
from fomm_tf.ops import grid_sample as grid_sample_lib
from fomm_tf.ops import linalg


def sparse_motions(height, width, kp_source, kp_driving):
  """Backward motions z -> kp_s + J_s inv(J_d) (z - kp_d), identity first.

  Returns:
    (B, K + 1, height, width, 2) sampling grids into the source.
  """
  value_s = kp_source["value"]
  value_d = kp_driving["value"]
  grid = coordinates.make_coordinate_grid(height, width, value_s.dtype)
  dz = grid[tf.newaxis, tf.newaxis] - value_d[:, :, tf.newaxis, tf.newaxis, :]  # (B, K, h, w, 2)
  if "jacobian" in kp_driving and kp_driving["jacobian"] is not None:
    jac = linalg.matmul_2x2(kp_source["jacobian"], linalg.inverse_2x2(kp_driving["jacobian"]))
    # Entries taken one by one: a 6-D slice has no TFLite kernel.
    entry = lambda i, j: jac[:, :, i, j][:, :, tf.newaxis, tf.newaxis]  # (B, K, 1, 1)
    dx, dy = dz[..., 0], dz[..., 1]
    dz = tf.stack([entry(0, 0) * dx + entry(0, 1) * dy, entry(1, 0) * dx + entry(1, 1) * dy], axis=-1)
  driving_to_source = dz + value_s[:, :, tf.newaxis, tf.newaxis, :]
  identity = tf.broadcast_to(grid[tf.newaxis, tf.newaxis],
                             tf.concat([tf.shape(value_s)[:1], [1, height, width, 2]], axis=0))
  return tf.concat([identity, driving_to_source], axis=1)


@base.register
class DenseMotionNetwork(base.Layer):
  """Predicts the mask over K+1 motions (-> dense deformation) and an occlusion map.

  Works at `scale_factor` of the frame size (64x64 for 256x256 frames). The lite
  networks make the hourglass depthwise-separable (`separable`) and the mask and
  occlusion heads smaller (`head_kernel_size`, 7 in the paper).
  """

  def __init__(self,
               block_expansion,
               num_blocks,
               max_features,
               num_kp,
               num_channels,
               estimate_occlusion_map=False,
               scale_factor=1,
               kp_variance=0.01,
               align_corners=True,
               separable=False,
               head_kernel_size=7,
               **kwargs):
    super().__init__(**kwargs)
    self._record(locals())
    self.num_kp = num_kp
    self.kp_variance = kp_variance
    self.align_corners = align_corners
    self.hourglass = self.sublayer(hourglass.Hourglass,
                                   block_expansion,
                                   in_features=(num_kp + 1) * (num_channels + 1),
                                   max_features=max_features,
                                   num_blocks=num_blocks,
                                   separable=separable,
                                   name="hourglass")
    self.mask = self.sublayer(initializers.Conv2D, num_kp + 1, head_kernel_size, padding="same", name="mask")
    self.occlusion = (self.sublayer(initializers.Conv2D, 1, head_kernel_size, padding="same", name="occlusion")
                      if estimate_occlusion_map else None)
    self.down = self.sublayer(anti_alias.AntiAliasDownsample, scale_factor, name="down") if scale_factor != 1 else None

  def example_inputs(self, input_shape):
    source = super().example_inputs(input_shape)[0]
    kp = base.example_keypoints(self.num_kp, source.shape[0])
    return source, kp, kp

  def downsample(self, source):
    """The source as the network sees it; depends on the source only, so it can be cached."""
    return source if self.down is None else self.down(source)

  def call(self, source, kp_source, kp_driving, training=False, source_small=None):
    # Keypoints and motions stay float32 under mixed precision (Keras casts
    # every float input of a layer to its compute dtype).
    kp_source = {k: tf.cast(v, tf.float32) for k, v in kp_source.items()}
    kp_driving = {k: tf.cast(v, tf.float32) for k, v in kp_driving.items()}
    if source_small is None:
      source_small = self.downsample(source)
    batch = tf.shape(source_small)[0]
    height, width, channels = source_small.shape[1], source_small.shape[2], source_small.shape[3]
    k1 = self.num_kp + 1

    heat_d = coordinates.keypoints_to_gaussian(kp_driving["value"], height, width, self.kp_variance)
    heat_s = coordinates.keypoints_to_gaussian(kp_source["value"], height, width, self.kp_variance)
    heat = heat_d - heat_s
    heat = tf.concat([tf.zeros_like(heat[..., :1]), heat], axis=-1)  # (B, h, w, K+1)

    motions = sparse_motions(height, width, kp_source, kp_driving)  # (B, K+1, h, w, 2)
    # One gather for all K+1 warps: stack the motions along the height axis.
    stacked = tf.reshape(motions, [batch, k1 * height, width, 2])
    deformed = grid_sample_lib.grid_sample(source_small, stacked, align_corners=self.align_corners)
    sparse_deformed = tf.reshape(deformed, [batch, k1, height, width, channels])

    deformed_hw = tf.transpose(sparse_deformed, [0, 2, 3, 1, 4])  # (B, h, w, K+1, C)
    features = tf.concat([heat[..., tf.newaxis], tf.cast(deformed_hw, heat.dtype)], axis=-1)
    features = tf.reshape(features, [batch, height, width, k1 * (channels + 1)])

    prediction = self.hourglass(features, training=training)
    mask = tf.nn.softmax(tf.cast(self.mask(prediction), tf.float32), axis=-1)  # (B, h, w, K+1)
    motions_hw = tf.transpose(motions, [0, 2, 3, 1, 4])  # (B, h, w, K+1, 2)
    deformation = tf.reduce_sum(motions_hw * mask[..., tf.newaxis], axis=3)
    out = {"mask": mask, "sparse_deformed": sparse_deformed, "deformation": deformation}
    if self.occlusion is not None:
      out["occlusion_map"] = tf.sigmoid(tf.cast(self.occlusion(prediction), tf.float32))
    return out
