"""The occlusion-aware generator."""

import tensorflow as tf

from fomm_tf.errors import ConfigError
from fomm_tf.layers import base
from fomm_tf.layers import conv_blocks
from fomm_tf.layers import initializers
from fomm_tf.models import dense_motion as dense_motion_lib
from fomm_tf.ops import grid_sample as grid_sample_lib


def _resize_to(x, height, width):
  if x.shape[1] == height and x.shape[2] == width:
    return x
  # Bilinear with half-pixel centres, as PyTorch's interpolate(align_corners=False).
  return tf.image.resize(x, [height, width], method="bilinear")


@base.register
class OcclusionAwareGenerator(base.Layer):
  """Encodes the source, warps its features by the dense flow, masks occlusions, decodes.

  The work that depends on the source alone (`encode_source`) can be done
  once per source image and reused for every driving frame. The lite networks
  make the down, bottleneck and up blocks depthwise-separable (`separable`) and
  the first and final convs smaller (`head_kernel_size`, 7 in the paper).

  Args:
    blend_deformed: not in the paper. Output the source warped by the dense
      flow where the occlusion map o says it is visible:
      o * deformed + (1 - o) * decoded. The decoder repaints every pixel from
      warped features, which blurs fine texture; with the blend it paints the
      occluded parts and the visible ones keep the source's detail.
  """

  def __init__(self,
               num_channels,
               num_kp,
               block_expansion,
               max_features,
               num_down_blocks,
               num_bottleneck_blocks,
               estimate_occlusion_map=False,
               dense_motion_params=None,
               estimate_jacobian=False,
               align_corners=True,
               separable=False,
               head_kernel_size=7,
               blend_deformed=False,
               **kwargs):
    super().__init__(**kwargs)
    self._record(locals())
    self.align_corners = align_corners
    if blend_deformed and (dense_motion_params is None or not estimate_occlusion_map):
      raise ConfigError("blend_deformed needs a dense motion network with an occlusion map")
    self.blend_deformed = blend_deformed
    if dense_motion_params is not None:
      self.dense_motion_network = self.sublayer(dense_motion_lib.DenseMotionNetwork,
                                                num_kp=num_kp,
                                                num_channels=num_channels,
                                                estimate_occlusion_map=estimate_occlusion_map,
                                                align_corners=align_corners,
                                                name="dense_motion_network",
                                                **dense_motion_params)
    else:
      self.dense_motion_network = None
    # The first block sees the image (3 channels): a plain conv, whose cost is its kernel size.
    self.first = self.sublayer(conv_blocks.SameBlock2d, block_expansion, kernel_size=head_kernel_size, name="first")
    self.down_blocks = [
        self.sublayer(conv_blocks.DownBlock2d,
                      min(max_features, block_expansion * (2**(i + 1))),
                      separable=separable,
                      name=f"down_block_{i}") for i in range(num_down_blocks)
    ]
    self.up_blocks = [
        self.sublayer(conv_blocks.UpBlock2d,
                      min(max_features, block_expansion * (2**(num_down_blocks - i - 1))),
                      separable=separable,
                      name=f"up_block_{i}") for i in range(num_down_blocks)
    ]
    bottleneck_filters = min(max_features, block_expansion * (2**num_down_blocks))
    self.bottleneck = [
        self.sublayer(conv_blocks.ResBlock2d, bottleneck_filters, separable=separable, name=f"r{i}")
        for i in range(num_bottleneck_blocks)
    ]
    self.final = self.sublayer(initializers.Conv2D, num_channels, head_kernel_size, padding="same", name="final")

  def example_inputs(self, input_shape):
    source = super().example_inputs(input_shape)[0]
    kp = base.example_keypoints(self._constructor_args["num_kp"], source.shape[0])
    return source, kp, kp

  def encode_source(self, source, training=False):
    """Source-only work: encoder features and the dense-motion input copy."""
    out = self.first(source, training=training)
    for block in self.down_blocks:
      out = block(out, training=training)
    state = {"features": out}
    if self.dense_motion_network is not None:
      # "source_small" is what decoding needs of the source image: the dense motion's (anti-aliased, scaled) copy,
      # or with blend_deformed the source itself, from which decode makes that copy (a few MFLOPs a call). One
      # key either way, so the exported signatures keep their two state tensors.
      state["source_small"] = source if self.blend_deformed else self.dense_motion_network.downsample(source)
    return state

  def decode(self, source, source_state, kp_source, kp_driving, training=False, with_deformed=True):
    """Everything that depends on the driving keypoints."""
    out = source_state["features"]
    result = {}
    if self.dense_motion_network is not None:
      source_small = source_state["source_small"]
      if self.blend_deformed:
        source = source_small  # The full-size source (see encode_source).
        source_small = self.dense_motion_network.downsample(source)
      motion = self.dense_motion_network(source, kp_source, kp_driving, training=training, source_small=source_small)
      result["mask"] = motion["mask"]
      result["sparse_deformed"] = motion["sparse_deformed"]
      deformation = motion["deformation"]
      result["deformation"] = deformation
      height, width = out.shape[1], out.shape[2]
      out = grid_sample_lib.grid_sample(out, _resize_to(deformation, height, width), align_corners=self.align_corners)
      if "occlusion_map" in motion:
        occlusion = motion["occlusion_map"]
        result["occlusion_map"] = occlusion
        out = out * tf.cast(_resize_to(occlusion, height, width), out.dtype)
      if with_deformed or self.blend_deformed:
        deformed = grid_sample_lib.grid_sample(source,
                                               _resize_to(deformation, source.shape[1], source.shape[2]),
                                               align_corners=self.align_corners)
        if with_deformed:
          result["deformed"] = deformed
    for block in self.bottleneck:
      out = block(out, training=training)
    for block in self.up_blocks:
      out = block(out, training=training)
    prediction = tf.sigmoid(tf.cast(self.final(out), tf.float32))
    if self.blend_deformed:
      visible = _resize_to(tf.cast(result["occlusion_map"], tf.float32), source.shape[1], source.shape[2])
      prediction = visible * tf.cast(deformed, tf.float32) + (1.0 - visible) * prediction
    result["prediction"] = prediction
    return result

  def call(self, source, kp_source, kp_driving, training=False):
    state = self.encode_source(source, training=training)
    return self.decode(source, state, kp_source, kp_driving, training=training)
