"""LSGAN losses and feature matching for the multi-scale discriminator."""

import tensorflow as tf


def _scale_names(maps):
  return [k[len("prediction_map_"):] for k in maps if k.startswith("prediction_map_")]


def generator_gan_loss(generated_maps, weight):
  """weight * sum over scales of mean (1 - D(generated))^2."""
  total = 0.0
  for name in _scale_names(generated_maps):
    total += weight * tf.reduce_mean(tf.square(1.0 - tf.cast(generated_maps["prediction_map_" + name], tf.float32)))
  return total


def feature_matching_loss(real_maps, generated_maps, weights):
  """sum over scales and discriminator blocks of weight_i * mean|D_i(real) - D_i(generated)|."""
  total = 0.0
  for name in _scale_names(generated_maps):
    for weight, real, fake in zip(weights, real_maps["feature_maps_" + name], generated_maps["feature_maps_" + name]):
      if weight == 0:
        continue
      total += weight * tf.reduce_mean(tf.abs(tf.cast(real, tf.float32) - tf.cast(fake, tf.float32)))
  return total


def discriminator_gan_loss(real_maps, generated_maps, weight):
  """weight * sum over scales of mean[(1 - D(real))^2 + D(generated)^2]."""
  total = 0.0
  for name in _scale_names(generated_maps):
    real = tf.cast(real_maps["prediction_map_" + name], tf.float32)
    fake = tf.cast(generated_maps["prediction_map_" + name], tf.float32)
    total += weight * tf.reduce_mean(tf.square(1.0 - real) + tf.square(fake))
  return total
