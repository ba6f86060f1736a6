"""Multi-scale VGG19 perceptual loss (relu1_1 .. relu5_1), as in the official trainer."""

import os

import keras
import numpy as np
import tensorflow as tf
from absl import logging

from fomm_tf.ops import antialias

VGG_LAYERS = ("block1_conv1", "block2_conv1", "block3_conv1", "block4_conv1", "block5_conv1")
# Keras' ImageNet VGG19 weights come from the original Caffe model: BGR input in
# 0..255 with the ImageNet mean pixel subtracted and no std scaling.
_CAFFE_BGR_MEAN = (103.939, 116.779, 123.68)


class WeightsUnavailableError(RuntimeError):
  pass


def _build_vgg19(weights):
  base = keras.applications.VGG19(include_top=False, weights=None, input_shape=(None, None, 3))
  if weights == "random":
    _seeded_glorot(base)
    logging.warning("VGG19 has RANDOM weights (--vgg19_weights=random): the perceptual loss is only a smoke "
                    "test; pass --vgg19_weights=imagenet or a local weights file for real training")
  elif weights == "imagenet":
    try:
      pretrained = keras.applications.VGG19(include_top=False, weights="imagenet", input_shape=(None, None, 3))
    except Exception as e:  # Download failures surface as several exception types.
      raise WeightsUnavailableError(
          "could not get the ImageNet VGG19 weights through Keras (" + str(e).splitlines()[0][:200] +
          "); download vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5 elsewhere and pass "
          "--vgg19_weights=PATH") from None
    base.set_weights(pretrained.get_weights())
  else:
    if not os.path.isfile(weights):
      raise WeightsUnavailableError(f"VGG19 weights file not found: {weights}")
    try:
      base.load_weights(weights)
    except Exception as e:
      raise WeightsUnavailableError(f"{weights}: not VGG19 (no top) weights: {str(e).splitlines()[0][:200]}") from None
  outputs = [base.get_layer(name).output for name in VGG_LAYERS]
  features = keras.Model(base.input, outputs, name="vgg19_features")
  features.trainable = False
  return features


def _seeded_glorot(model, seed=0):
  """Glorot-uniform kernels and zero biases from a fixed seed, so that random-VGG runs resume identically."""
  rng = np.random.default_rng(seed)
  weights = []
  for w in model.get_weights():
    if w.ndim == 4:
      fan_in, fan_out = w.shape[0] * w.shape[1] * w.shape[2], w.shape[0] * w.shape[1] * w.shape[3]
      limit = np.sqrt(6.0 / (fan_in + fan_out))
      weights.append(rng.uniform(-limit, limit, w.shape).astype(np.float32))
    else:
      weights.append(np.zeros(w.shape, np.float32))
  model.set_weights(weights)


class VGG19Features(keras.layers.Layer):
  """[0, 1] RGB images -> the five VGG19 feature maps used by the perceptual loss."""

  def __init__(self, weights="imagenet", **kwargs):
    super().__init__(trainable=False, **kwargs)
    self.weights_source = weights
    self.vgg = _build_vgg19(weights)

  def call(self, images):
    x = tf.cast(images, tf.float32) * 255.0
    x = x[..., ::-1] - tf.constant(_CAFFE_BGR_MEAN, tf.float32)
    return self.vgg(x)

  def get_config(self):
    return {**super().get_config(), "weights": self.weights_source}


def perceptual_loss(vgg, real_pyramid, generated_pyramid, scales, layer_weights):
  """sum over scales and layers of weight * mean|vgg(generated) - vgg(real)|, real features held constant."""
  total = 0.0
  for scale in scales:
    key = antialias.pyramid_key(scale)
    generated = vgg(generated_pyramid[key])
    real = vgg(real_pyramid[key])
    for weight, g, r in zip(layer_weights, generated, real):
      if weight == 0:
        continue
      total += weight * tf.reduce_mean(tf.abs(tf.cast(g, tf.float32) - tf.stop_gradient(tf.cast(r, tf.float32))))
  return total
