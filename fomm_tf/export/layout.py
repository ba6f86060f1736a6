"""Where things live in an export directory.

  DIR/manifest.json                        what was exported, how, and how close it is to Keras
  DIR/saved_model/                         the SavedModel (all signatures)
  DIR/tflite/<quantization>/<name>.tflite  kp_detector, source_encoder, generator, normalize_kp
"""

import os

from fomm_tf.export import signatures as signatures_lib

MANIFEST = "manifest.json"
SAVED_MODEL = "saved_model"
TFLITE = "tflite"


def tflite_relpath(quantization, signature):
  return "/".join((TFLITE, quantization, signatures_lib.TFLITE_FILES[signature]))


def saved_model_dir(path):
  """The SavedModel directory of an export directory (or `path` itself when it is a SavedModel)."""
  path = os.fspath(path)
  for candidate in (os.path.join(path, SAVED_MODEL), path):
    if os.path.isfile(os.path.join(candidate, "saved_model.pb")):
      return candidate
  raise ValueError(f"{path}: no SavedModel here (expected {os.path.join(path, SAVED_MODEL, 'saved_model.pb')}, "
                   "written by python -m fomm_tf.export --formats=saved_model)")


def tflite_dir(path, quantization):
  """The folder holding the four .tflite files of `quantization` (in an export directory, or `path` itself)."""
  path = os.fspath(path)
  names = sorted(signatures_lib.TFLITE_FILES.values())
  has_all = lambda folder: all(os.path.isfile(os.path.join(folder, n)) for n in names)
  variant = os.path.join(path, TFLITE, quantization)
  if has_all(variant):
    return variant
  if has_all(path):
    return path
  root = os.path.join(path, TFLITE)
  available = sorted(d for d in os.listdir(root) if has_all(os.path.join(root, d))) if os.path.isdir(root) else []
  if not os.path.isdir(path):
    raise ValueError(f"{path}: no such export directory")
  raise ValueError(f"{path}: no {quantization!r} TFLite variant (expected {', '.join(names)} in {variant}); "
                   f"available: {', '.join(available) if available else 'none'}")
