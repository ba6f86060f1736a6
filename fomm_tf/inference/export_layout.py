"""Where things live in an export directory.

  DIR/manifest.json                        what was exported, how, and how close it is to Keras
  DIR/saved_model/                         the SavedModel (all signatures)
  DIR/tflite/<quantization>/<name>.tflite  kp_detector, source_encoder, generator, normalize_kp
  DIR/onnx/<quantization>/<name>.onnx      the same four graphs as ONNX files (float32, int8)
"""

import json
import os

from fomm_tf.errors import ExportError
from fomm_tf.errors import one_line

MANIFEST = "manifest.json"
# 2: the manifest records each file's size and SHA-256 ("file_hashes"), checked before any file is used.
MANIFEST_FORMAT_VERSION = 2
# Real manifests are a few tens of kB.
MAX_MANIFEST_BYTES = 16 << 20
SAVED_MODEL = "saved_model"
TFLITE = "tflite"
# SavedModel signature -> the TFLite file converted from it.
TFLITE_FILES = {
    "detect_keypoints": "kp_detector.tflite",
    "encode_source": "source_encoder.tflite",
    "generate_from_state": "generator.tflite",
    "normalize_kp": "normalize_kp.tflite",
}
ONNX = "onnx"
# SavedModel signature -> the ONNX file converted from it (the same graphs as the TFLite files).
ONNX_FILES = {signature: filename.replace(".tflite", ".onnx") for signature, filename in TFLITE_FILES.items()}
# The signatures of the SavedModel; `serving_default` animates a batch of driving frames end to end.
SAVED_MODEL_SIGNATURES = ("detect_keypoints", "normalize_kp", "generate", "encode_source", "generate_from_state",
                          "serving_default")


def normalize_kp_inputs(kp_source, kp_driving, kp_driving_initial, **flags):
  """The normalize_kp signature's inputs by name: each keypoint set's value and Jacobian, then `flags`."""
  inputs = {}
  for prefix, kp in (("kp_source", kp_source), ("kp_driving", kp_driving), ("kp_driving_initial", kp_driving_initial)):
    inputs[f"{prefix}_value"] = kp["value"]
    inputs[f"{prefix}_jacobian"] = kp["jacobian"]
  return {**inputs, **flags}


def tflite_relpath(quantization, signature):
  return "/".join((TFLITE, quantization, TFLITE_FILES[signature]))


def onnx_relpath(quantization, signature):
  return "/".join((ONNX, quantization, ONNX_FILES[signature]))


def saved_model_dir(path):
  """The SavedModel directory of an export directory (or `path` itself when it is a SavedModel)."""
  path = os.fspath(path)
  for candidate in (os.path.join(path, SAVED_MODEL), path):
    if os.path.isfile(os.path.join(candidate, "saved_model.pb")):
      return candidate
  raise ExportError(f"{path}: no SavedModel here (expected {os.path.join(path, SAVED_MODEL, 'saved_model.pb')}, "
                    "written by python -m fomm_tf.export --formats=saved_model)")


def tflite_dir(path, quantization):
  """The folder holding the four .tflite files of `quantization` (in an export directory, or `path` itself)."""
  return _variant_dir(path, quantization, TFLITE, TFLITE_FILES, "TFLite")


def onnx_dir(path, quantization="float32"):
  """The folder holding the four .onnx files of `quantization` (in an export directory, or `path` itself)."""
  return _variant_dir(path, quantization, ONNX, ONNX_FILES, "ONNX")


def _variant_dir(path, quantization, kind, filenames, what):
  path = os.fspath(path)
  names = sorted(filenames.values())
  has_all = lambda folder: all(os.path.isfile(os.path.join(folder, n)) for n in names)
  variant = os.path.join(path, kind, quantization)
  if has_all(variant):
    return variant
  if has_all(path):
    return path
  root = os.path.join(path, kind)
  available = sorted(d for d in os.listdir(root) if has_all(os.path.join(root, d))) if os.path.isdir(root) else []
  if not os.path.isdir(path):
    raise ExportError(f"{path}: no such export directory")
  raise ExportError(f"{path}: no {quantization!r} {what} variant (expected {', '.join(names)} in {variant}); "
                    f"available: {', '.join(available) if available else 'none'}")


def read_manifest(directory, allow_old=False):
  """The manifest of an export directory, or a one-line ExportError.

  Args:
    directory: the export directory.
    allow_old: also accept a format 1 manifest (written before file hashes were recorded).
  """
  path = os.path.join(os.fspath(directory), MANIFEST)
  if not os.path.isfile(path):
    raise ExportError(f"{path}: no manifest (not a directory written by python -m fomm_tf.export)")
  if os.path.getsize(path) > MAX_MANIFEST_BYTES:
    raise ExportError(f"{path}: a manifest of {os.path.getsize(path)} bytes is not one this project wrote")
  try:
    with open(path) as f:
      manifest = json.load(f)
  except (OSError, ValueError) as e:
    raise ExportError(f"{path}: unreadable manifest: {one_line(e)}") from None
  version = manifest.get("format_version") if isinstance(manifest, dict) else None
  if version == 1 and not allow_old:
    raise ExportError(f"{path}: an export from before file hashes were recorded (manifest format_version 1); "
                      "re-export it, or pass --allow_modified_export to run it unchecked")
  if version not in ((1, MANIFEST_FORMAT_VERSION) if allow_old else (MANIFEST_FORMAT_VERSION,)):
    raise ExportError(f"{path}: unsupported manifest (format_version {version}, expected "
                      f"{MANIFEST_FORMAT_VERSION})")
  return manifest
