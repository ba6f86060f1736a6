"""Anti-aliased downsampling exactly as the official FOMM implementation does it.

The official code blurs with a Gaussian (sigma = (1/scale - 1) / 2, kernel
2 * round(4 sigma) + 1) after explicit zero padding of kernel // 2 pixels, and
keeps every (1/scale)-th row and column starting from index 0. A strided VALID
convolution over the explicitly padded input gives exactly those samples,
whereas TF's SAME padding with a stride would shift them.
"""

import numpy as np
import tensorflow as tf


def gaussian_kernel_size(scale):
  sigma = (1.0 / scale - 1.0) / 2.0
  # Python's round (half to even) is what the official code uses.
  return 2 * round(sigma * 4) + 1


def gaussian_blur_kernel(scale):
  """Returns the normalised (k, k) float32 Gaussian kernel for `scale`."""
  if not 0.0 < scale < 1.0:
    raise ValueError(f"anti-alias scale must be in (0, 1), got {scale}")
  sigma = (1.0 / scale - 1.0) / 2.0
  size = gaussian_kernel_size(scale)
  mean = (size - 1) / 2.0
  ax = np.arange(size, dtype=np.float32)
  g = np.exp(-((ax - mean)**2) / np.float32(2 * sigma**2)).astype(np.float32)
  kernel = g[:, None] * g[None, :]
  return (kernel / kernel.sum()).astype(np.float32)


def padding_for_kernel(size):
  ka = size // 2
  kb = ka - 1 if size % 2 == 0 else ka
  return ka, kb


def anti_alias_downsample(image, scale, kernel=None):
  """Downsamples (B, H, W, C) `image` by `scale` (e.g. 0.25) with the official blur.

  Args:
    image: (B, H, W, C) tensor.
    scale: the downsampling factor; 1 returns the input unchanged.
    kernel: optional (k, k) kernel (e.g. the buffer loaded from a checkpoint);
      defaults to `gaussian_blur_kernel(scale)`.
  """
  if scale == 1:
    return image
  if kernel is None:
    kernel = gaussian_blur_kernel(scale)
  kernel = tf.cast(kernel, image.dtype)
  size = int(kernel.shape[0])
  ka, kb = padding_for_kernel(size)
  stride = int(1 / scale)
  channels = image.shape[-1]
  padded = tf.pad(image, [[0, 0], [ka, kb], [ka, kb], [0, 0]])
  depthwise = tf.tile(kernel[:, :, tf.newaxis, tf.newaxis], [1, 1, channels, 1])
  return tf.nn.depthwise_conv2d(padded, depthwise, strides=[1, stride, stride, 1], padding="VALID")


def scale_name(scale):
  """'1' for 1 or 1.0, '0.5' for 0.5: how the official code names a scale."""
  scale = float(scale)
  return str(int(scale)) if scale.is_integer() else str(scale)


def pyramid_key(scale):
  """The official dictionary key of a pyramid level, e.g. 0.5 -> 'prediction_0.5', 1.0 -> 'prediction_1'."""
  return "prediction_" + scale_name(scale)


def image_pyramid(image, scales):
  """Anti-aliased copies of `image` at each scale, keyed like the official ImagePyramide."""
  return {pyramid_key(s): anti_alias_downsample(image, s) for s in scales}
