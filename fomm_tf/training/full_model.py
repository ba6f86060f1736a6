"""The training forward passes: generator + keypoint detector losses, and discriminator losses."""

import tensorflow as tf

from fomm_tf.errors import ConfigError
from fomm_tf.losses import equivariance
from fomm_tf.losses import gan
from fomm_tf.losses import perceptual
from fomm_tf.ops import antialias
from fomm_tf.ops import coordinates
from fomm_tf.ops import transform as transform_lib


def _detach_kp(kp):
  return {k: tf.stop_gradient(v) for k, v in kp.items()}


class TrainingModel:
  """Computes the official loss terms for a batch {'source', 'driving', 'transform_theta', 'transform_params'}."""

  def __init__(self, model, vgg=None):
    self.model = model
    self.cfg = model.config.train
    self.align_corners = model.config.model.align_corners
    self.vgg = vgg
    cfg = self.cfg
    self.use_gan = cfg.loss_generator_gan != 0
    self.use_perceptual = sum(cfg.loss_perceptual) != 0
    self.use_equivariance = (cfg.loss_equivariance_value + cfg.loss_equivariance_jacobian) != 0
    if self.use_perceptual and vgg is None:
      raise ValueError("the config has perceptual loss weights but no VGG19 feature extractor was given")
    if self.use_perceptual:
      # relu5_1 sits behind four 2x2 poolings.
      frame_size = model.config.frame_shape[0]
      smallest = int(frame_size * min(cfg.perceptual_scales))
      if smallest < 16:
        raise ConfigError(f"perceptual loss: the {min(cfg.perceptual_scales)} pyramid level of "
                          f"{frame_size}px frames is {smallest}px, below VGG19's 16px minimum "
                          f"(drop that scale from --perceptual_scales)")
    # One pyramid serves the perceptual loss and the discriminator.
    disc_scales = set(model.config.discriminator.scales) if self.use_gan else set()
    self.pyramid_scales = sorted(set(cfg.perceptual_scales) | disc_scales, reverse=True)
    points = cfg.points_tps
    self.control_points = tf.reshape(coordinates.make_coordinate_grid(points, points), [-1, 2])

  def loss_names(self):
    """The names of the losses a training step computes with this config, in a fixed order."""
    cfg = self.cfg
    names = []
    if self.use_perceptual:
      names.append("perceptual")
    if cfg.loss_pixel != 0:
      names.append("pixel")
    if self.use_gan:
      names.append("gen_gan")
      if sum(cfg.loss_feature_matching) != 0:
        names.append("feature_matching")
    if self.use_equivariance:
      if cfg.loss_equivariance_value != 0:
        names.append("equivariance_value")
      if cfg.loss_equivariance_jacobian != 0:
        names.append("equivariance_jacobian")
    if self.use_gan:
      names.append("disc_gan")
    return names

  def sample_transform_params(self, batch_size, seed):
    """Per-sample equivariance transform parameters, stateless under `seed` (2 ints)."""
    cfg = self.cfg
    theta = tf.random.stateless_normal([batch_size, 2, 3], seed=seed, stddev=cfg.sigma_affine) + tf.eye(2, 3)
    params = tf.random.stateless_normal([batch_size, 1, cfg.points_tps**2], seed=seed + [0, 1], stddev=cfg.sigma_tps)
    return {"transform_theta": theta, "transform_params": params}

  def generator_losses(self, batch, training=True):
    cfg = self.cfg
    kp_detector, generator = self.model.kp_detector, self.model.generator
    source, driving = batch["source"], batch["driving"]
    kp_source = kp_detector(source, training=training)
    kp_driving = kp_detector(driving, training=training)
    generated = generator(source, kp_source, kp_driving, training=training)
    generated.update({"kp_source": kp_source, "kp_driving": kp_driving})
    losses = {}
    real_pyramid = antialias.image_pyramid(driving, self.pyramid_scales)
    generated_pyramid = antialias.image_pyramid(generated["prediction"], self.pyramid_scales)
    if self.use_perceptual:
      losses["perceptual"] = perceptual.perceptual_loss(self.vgg, real_pyramid, generated_pyramid,
                                                        cfg.perceptual_scales, cfg.loss_perceptual)
    if cfg.loss_pixel != 0:
      losses["pixel"] = cfg.loss_pixel * tf.add_n([
          tf.reduce_mean(tf.abs(generated_pyramid[k] - real_pyramid[k]))
          for k in (antialias.pyramid_key(s) for s in cfg.perceptual_scales)
      ])
    if self.use_gan:
      kp = _detach_kp(kp_driving)
      disc = self.model.discriminator
      maps_generated = disc(generated_pyramid, kp, training=training)
      maps_real = disc(real_pyramid, kp, training=training)
      losses["gen_gan"] = gan.generator_gan_loss(maps_generated, cfg.loss_generator_gan)
      if sum(cfg.loss_feature_matching) != 0:
        losses["feature_matching"] = gan.feature_matching_loss(maps_real, maps_generated, cfg.loss_feature_matching)
    if self.use_equivariance:
      transform = transform_lib.RandomTransform(batch["transform_theta"], self.control_points,
                                                batch["transform_params"])
      transformed = transform.transform_frame(driving, align_corners=self.align_corners)
      kp_transformed = kp_detector(transformed, training=training)
      generated["transformed_frame"] = transformed
      generated["kp_transformed"] = kp_transformed
      if cfg.loss_equivariance_value != 0:
        losses["equivariance_value"] = cfg.loss_equivariance_value * equivariance.equivariance_value_loss(
            kp_driving, kp_transformed, transform)
      if cfg.loss_equivariance_jacobian != 0:
        losses["equivariance_jacobian"] = cfg.loss_equivariance_jacobian * (equivariance.equivariance_jacobian_loss(
            kp_driving, kp_transformed, transform))
    return losses, generated

  def discriminator_losses(self, batch, generated, training=True):
    cfg = self.cfg
    real_pyramid = antialias.image_pyramid(batch["driving"], self.pyramid_scales)
    generated_pyramid = antialias.image_pyramid(tf.stop_gradient(generated["prediction"]), self.pyramid_scales)
    kp = _detach_kp(generated["kp_driving"])
    disc = self.model.discriminator
    maps_generated = disc(generated_pyramid, kp, training=training)
    maps_real = disc(real_pyramid, kp, training=training)
    return {"disc_gan": gan.discriminator_gan_loss(maps_real, maps_generated, cfg.loss_discriminator_gan)}
