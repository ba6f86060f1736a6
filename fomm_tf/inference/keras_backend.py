"""KerasBackend: runs a FommModel; source features are computed once per video, each batch is one graph call."""

import numpy as np
import tensorflow as tf

from fomm_tf.inference import backend
from fomm_tf.inference import generation

# The attribute of a FommModel that keeps its backend (for_model).
_CACHE_ATTRIBUTE = "_fomm_keras_backend"


def for_model(model):
  """The KerasBackend of `model`, made on first use and kept on the model.

  A backend traces its graphs on its first call (seconds for a 256x256 model); a fresh backend per
  `fomm_tf.animate` call would trace them again for every video.
  """
  found = getattr(model, _CACHE_ATTRIBUTE, None)
  if found is None:
    found = KerasBackend(model)
    # object.__setattr__: a plain attribute, not a Keras-tracked one (the backend holds no weights of its own).
    object.__setattr__(model, _CACHE_ATTRIBUTE, found)
  return found


class KerasBackend(backend.Backend):
  """A Backend over a FommModel (in whatever dtype policy the model was built)."""

  name = "keras"

  def __init__(self, model):
    self.model = model
    self.frame_shape = tuple(model.frame_shape)
    self.num_kp = model.num_kp
    self.precision = model.dtype_policy.name
    generator = model.generator
    # No autograph, as FommModel's functions (see there).
    self._prepare = tf.function(lambda source: generation.encode_source(generator, source), autograph=False)
    self._generate = tf.function(
        lambda state, kp_source, kp_driving: generation.generate_from_state(generator, state, kp_source, kp_driving),
        reduce_retracing=True,
        autograph=False)

  def detect_keypoints(self, frames):
    out = self.model.detect_keypoints(np.asarray(frames, np.float32))
    return {k: v.numpy() for k, v in out.items()}

  def prepare_source(self, source):
    return self._prepare(tf.convert_to_tensor(np.asarray(source, np.float32)))

  def prepare_sources(self, sources):
    return self.prepare_source(sources)  # The encoder takes a batch: one call for every source.

  def generate_sources(self, state, kp_source, kp_driving):
    backend.sources_and_batch(kp_source, kp_driving)
    # generation.generate_from_state repeats each of the F states and source keypoints B times in place
    # (tf.repeat), which is the source-major order of kp_driving: one graph call for every source.
    return self.generate(state, kp_source, kp_driving)

  def generate(self, state, kp_source, kp_driving):
    kp_source = {k: tf.convert_to_tensor(v, tf.float32) for k, v in kp_source.items()}
    kp_driving = {k: tf.convert_to_tensor(v, tf.float32) for k, v in kp_driving.items()}
    return self._generate(state, kp_source, kp_driving).numpy().astype(np.float32)
