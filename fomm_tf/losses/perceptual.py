"""Multi-scale VGG19 perceptual loss (relu1_1 .. relu5_1), as in the official trainer."""

import tensorflow as tf

from fomm_tf.ops import antialias


def perceptual_loss(vgg, real_pyramid, generated_pyramid, scales, layer_weights):
  """sum over scales and layers of weight * mean|vgg(generated) - vgg(real)|, real features held constant."""
  total = 0.0
  # Layers past the last weighted one cost time and change nothing.
  depth = max((i + 1 for i, weight in enumerate(layer_weights) if weight != 0), default=0)
  if depth == 0:
    return total
  for scale in scales:
    key = antialias.pyramid_key(scale)
    generated = vgg(generated_pyramid[key], depth=depth)
    real = vgg(tf.stop_gradient(real_pyramid[key]), depth=depth)
    for weight, g, r in zip(layer_weights, generated, real):
      if weight == 0:
        continue
      total += weight * tf.reduce_mean(tf.abs(tf.cast(g, tf.float32) - tf.stop_gradient(tf.cast(r, tf.float32))))
  return total
