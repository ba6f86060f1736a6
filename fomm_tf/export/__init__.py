"""Export of FOMM models: a SavedModel, TFLite files (builtin ops only) and ONNX files (standard ops) with a manifest.

Command line: `python -m fomm_tf.export --help`. From Python:

    manifest = fomm_tf.export.export_model(model, "export/vox", quantizations=["float32", "float16"])
    backend = fomm_tf.inference.exported_backends.TFLiteBackend("export/vox", quantize="float16")
    frames = fomm_tf.animate(backend, source_image, driving_frames)

Imports are lazy, like the package's, so that the command line can quieten
TensorFlow's C++ logging before TensorFlow loads.
"""

import importlib

__all__ = ["FORMATS", "QUANTIZATIONS", "export_model", "read_manifest"]

_LAZY = {
    "FORMATS": "fomm_tf.export.preflight",
    "QUANTIZATIONS": "fomm_tf.export.preflight",
    "export_model": "fomm_tf.export.exporter",
    "read_manifest": "fomm_tf.export.manifest",
}


def __getattr__(name):
  if name in _LAZY:
    return getattr(importlib.import_module(_LAZY[name]), name)
  raise AttributeError(f"module 'fomm_tf.export' has no attribute {name!r}")
