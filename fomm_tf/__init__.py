"""fomm-tf: the First Order Motion Model for image animation in TensorFlow 2 / Keras 3."""

from fomm_tf.config import load_config
from fomm_tf.models.loading import load_model
from fomm_tf.ops.normalize_kp import normalize_kp

__all__ = ["load_config", "load_model", "normalize_kp"]
