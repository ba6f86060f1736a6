"""fomm-tf: the First Order Motion Model for image animation in TensorFlow 2 / Keras 3.

Public API:
  load_model(config, checkpoint=None, align_corners=None, dtype=None) -> FommModel
  load_config(name_or_path, **overrides) -> FommConfig
  normalize_kp(kp_source, kp_driving, kp_driving_initial, ...) -> dict
  animate(model, source_image, driving_frames, relative=True, ...) -> iterator of frames
  FommError: the base of every error fomm-tf raises for a problem of the user's making

Imports are lazy so that light tools (e.g. the synthetic dataset generator)
start without loading TensorFlow.
"""

import importlib

__all__ = ["FommError", "animate", "load_config", "load_model", "normalize_kp"]

_LAZY = {
    "FommError": ("fomm_tf.errors", "FommError"),
    "animate": ("fomm_tf.inference.pipeline", "animate"),
    "load_model": ("fomm_tf.checkpoint.loading", "load_model"),
    "load_config": ("fomm_tf.config", "load_config"),
    "normalize_kp": ("fomm_tf.ops.normalize_kp", "normalize_kp"),
}


def __getattr__(name):
  if name in _LAZY:
    module, attr = _LAZY[name]
    return getattr(importlib.import_module(module), attr)
  raise AttributeError(f"module 'fomm_tf' has no attribute {name!r}")
