"""FommModel: the keypoint detector and generator (and, for training, the discriminator) of one config.

A registered keras.Model: `model(inputs)` reconstructs `inputs["driving"]` from
`inputs["source"]` with absolute keypoints, get_config/from_config round-trip
through the config, and `dtype` (e.g. "mixed_bfloat16") reaches every layer
without touching Keras' global policy.
"""

import keras
import numpy as np
import tensorflow as tf

from fomm_tf.config import fomm_config
from fomm_tf.layers import base
from fomm_tf.models import discriminator as discriminator_lib
from fomm_tf.models import generator as generator_lib
from fomm_tf.models import keypoint_detector as keypoint_detector_lib
from fomm_tf.ops import antialias

PRECISIONS = {
    None: None,
    "float32": "float32",
    "bfloat16": "mixed_bfloat16",
    "float16": "mixed_float16",
    "mixed_bfloat16": "mixed_bfloat16",
    "mixed_float16": "mixed_float16"
}


def dtype_policy(precision):
  """The Keras dtype policy name for a precision: None/"float32", "bfloat16" or "float16" (mixed)."""
  if precision not in PRECISIONS:
    raise ValueError(f"precision must be one of float32, bfloat16, float16, got {precision!r}")
  return PRECISIONS[precision]


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


@base.register
class FommModel(keras.Model):
  """Keypoint detector, generator and (with `build_discriminator`) discriminator built from one FommConfig.

  Args:
    config: a FommConfig.
    build_discriminator: also build the GAN discriminator (training only).
    dtype: None / "float32", or a mixed policy ("mixed_bfloat16", "mixed_float16"; "bfloat16" and
      "float16" mean the same): layers compute in it, variables stay float32.
  """

  def __init__(self, config, build_discriminator=False, dtype=None, **kwargs):
    policy = dtype_policy(dtype)
    super().__init__(dtype=policy, **kwargs)
    self.config = config
    self.build_discriminator = bool(build_discriminator)
    self.kp_detector = keypoint_detector_lib.KeypointDetector(name="kp_detector",
                                                              dtype=policy,
                                                              **config.kp_detector_kwargs())
    self.generator = generator_lib.OcclusionAwareGenerator(name="generator", dtype=policy, **config.generator_kwargs())
    self.discriminator = (discriminator_lib.MultiScaleDiscriminator(
        name="discriminator", dtype=policy, **config.discriminator_kwargs()) if build_discriminator else None)
    self._build_networks()
    # No autograph (as the training step and the export): the networks' control flow is plain Python over
    # config values, and converting every function they call doubled the time to trace them (vox-256 generator
    # 2.8 against 1.5 s), paid by every process that animates.
    self._detect = tf.function(self._detect_impl, reduce_retracing=True, autograph=False)
    self._generate = tf.function(self._generate_impl, reduce_retracing=True, autograph=False)

  @property
  def frame_shape(self):
    return tuple(self.config.frame_shape)

  @property
  def num_kp(self):
    return self.config.num_kp

  def _build_networks(self):
    # Built one by one outside any enclosing call, so variable paths stay "kp_detector/...", "generator/...".
    frames = tf.zeros((1,) + self.frame_shape)
    kp = self.kp_detector(frames)
    self.generator(frames, kp, kp)
    if self.discriminator is not None:
      self.discriminator(antialias.image_pyramid(frames, self.config.discriminator.scales), kp)
    self.built = True

  def call(self, inputs, training=False):
    """Reconstruction: {"source", "driving"} (B, H, W, C) -> the generator's outputs for absolute keypoints."""
    kp_source = self.kp_detector(inputs["source"], training=training)
    kp_driving = self.kp_detector(inputs["driving"], training=training)
    return self.generator(inputs["source"], kp_source, kp_driving, training=training)

  def get_config(self):
    return {
        "name": self.name,
        "config": self.config.to_dict(),
        "build_discriminator": self.build_discriminator,
        "dtype": self.dtype_policy.name
    }

  @classmethod
  def from_config(cls, config):
    config = dict(config)
    cfg = fomm_config.FommConfig.from_dict(config.pop("config"))
    return cls(cfg, **config)

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

  def inference_variables(self):
    """{variable path: variable} of the keypoint detector and generator (what animation needs)."""
    return {v.path: v for v in self.kp_detector.weights + self.generator.weights}

  def parameter_counts(self):
    """Trainable element counts per network, PyTorch style (buffers excluded)."""
    return {name: int(sum(np.prod(v.shape) for v in net.trainable_weights)) for name, net in self.networks().items()}
