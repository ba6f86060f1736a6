"""The three FOMM networks together, with the inference API used by animation and export."""

import numpy as np
import tensorflow as tf

from fomm_tf.models import discriminator as discriminator_lib
from fomm_tf.models import generator as generator_lib
from fomm_tf.models import keypoint_detector as keypoint_detector_lib
from fomm_tf.ops import antialias


def _as_frames(frames, frame_shape, what):
  frames = tf.convert_to_tensor(frames, tf.float32)
  if frames.shape.rank == 3:
    frames = frames[tf.newaxis]
  expected = tuple(frame_shape)
  if frames.shape.rank != 4 or tuple(frames.shape[1:]) != expected:
    raise ValueError(f"{what}: expected frames of shape (B, {', '.join(map(str, expected))}), "
                     f"got {tuple(frames.shape)}")
  return frames


def _as_kp(kp, what):
  if not isinstance(kp, dict) or "value" not in kp:
    raise ValueError(f"{what}: expected a dict with 'value' (B, K, 2) and optionally 'jacobian' (B, K, 2, 2)")
  out = {"value": tf.convert_to_tensor(kp["value"], tf.float32)}
  if kp.get("jacobian") is not None:
    out["jacobian"] = tf.convert_to_tensor(kp["jacobian"], tf.float32)
  return out


class FommModel:
  """Keypoint detector, generator and discriminator built from one config."""

  def __init__(self, config, build_discriminator=True):
    self.config = config
    self.kp_detector = keypoint_detector_lib.KeypointDetector(name="kp_detector", **config.kp_detector_params())
    self.generator = generator_lib.OcclusionAwareGenerator(name="generator", **config.generator_params())
    self.discriminator = (discriminator_lib.MultiScaleDiscriminator(name="discriminator",
                                                                   **config.discriminator_params())
                          if build_discriminator else None)
    self._build()
    self._detect = tf.function(self._detect_impl, reduce_retracing=True)
    self._generate = tf.function(self._generate_impl, reduce_retracing=True)

  @property
  def frame_shape(self):
    return tuple(self.config.frame_shape)

  @property
  def num_kp(self):
    return self.config.num_kp

  def _build(self):
    frames = tf.zeros((1,) + self.frame_shape)
    kp = self.kp_detector(frames)
    self.generator(frames, kp, kp)
    if self.discriminator is not None:
      pyramid = antialias.image_pyramid(frames, self.config.disc_scales)
      self.discriminator(pyramid, kp)

  def _detect_impl(self, frames):
    return self.kp_detector(frames, training=False)

  def _generate_impl(self, source, kp_source, kp_driving):
    return self.generator(source, kp_source, kp_driving, training=False)

  def detect_keypoints(self, frames):
    """frames (B, H, W, 3) float32 in [0, 1] -> {'value': (B, K, 2), 'jacobian': (B, K, 2, 2)}."""
    return self._detect(_as_frames(frames, self.frame_shape, "detect_keypoints"))

  def generate(self, source, kp_source, kp_driving):
    """Animates `source` from `kp_source` to `kp_driving`; a source (and its kp) of batch 1 is broadcast."""
    source = _as_frames(source, self.frame_shape, "generate")
    kp_source = _as_kp(kp_source, "generate kp_source")
    kp_driving = _as_kp(kp_driving, "generate kp_driving")
    batch = kp_driving["value"].shape[0]
    for what, n in (("source", source.shape[0]), ("kp_source", kp_source["value"].shape[0])):
      if n not in (1, batch):
        raise ValueError(f"generate: {what} has batch {n}, kp_driving has batch {batch} (use 1 or {batch})")
    if source.shape[0] == 1 and batch != 1:
      source = tf.repeat(source, batch, axis=0)
    if kp_source["value"].shape[0] == 1 and batch != 1:
      kp_source = {k: tf.repeat(v, batch, axis=0) for k, v in kp_source.items()}
    return self._generate(source, kp_source, kp_driving)

  def networks(self):
    nets = {"kp_detector": self.kp_detector, "generator": self.generator}
    if self.discriminator is not None:
      nets["discriminator"] = self.discriminator
    return nets

  def parameter_counts(self):
    """Trainable + non-trainable element counts per network, PyTorch style (buffers excluded)."""
    counts = {}
    for name, net in self.networks().items():
      counts[name] = int(sum(np.prod(v.shape) for v in parameter_variables(net)))
    return counts


def parameter_variables(layer):
  """Variables that PyTorch would count as parameters (not BN statistics, SN vectors or blur kernels)."""
  return list(layer.trainable_weights)
