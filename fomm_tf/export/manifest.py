"""The manifest.json of an export directory: config, shapes, quantisation and measured errors per file.

Layout:
  {
    "format_version": 2,
    "config": {...all config values...}, "config_source": "...", "checkpoint": path or null,
    "frame_shape": [H, W, C], "num_kp": K, "align_corners": bool,
    "formats": [...], "quantizations": [...TFLite variants], "onnx_quantizations": [...ONNX variants],
    "evaluation_input": "...how the fixed input was made...",
    "files": {
      "saved_model": {"kind": "saved_model", "signatures": {name: {inputs, outputs, max_abs_error, psnr_db?}}},
      "tflite/float32/kp_detector.tflite": {"kind": "tflite", "quantization": ..., "size_bytes": ...,
                                            "signature_key": ..., "inputs": ..., "outputs": ...,
                                            "operators": [TFLite op names],
                                            "max_abs_error": {...}, "psnr_db"?: ...},
      "onnx/float32/kp_detector.onnx": {"kind": "onnx", "quantization": "float32", "size_bytes": ...,
                                        "converter": "tf2onnx x.y (protobuf python|upb)"
                                                     (int8: + ", onnxruntime.quantization x.y"),
                                        "opset": 18, "inputs": ..., "outputs": ...,
                                        "operators": [ONNX op types], "domains": [""],
                                        "max_abs_error": {...}, "psnr_db"?: ...},
      ...
    },
    "onnx_animation": {quantization: {"max_abs_error": ..., "psnr_db": ...}},  # with onnx: whole chain vs Keras
    "tflite_animation": {quantization: {"max_abs_error": ..., "psnr_db": ...}},  # whole chain vs Keras
    "int8_ops": [...],  # with TFLite int8 only: the ops quantised to int8 (the rest stay float32)
    "onnx_int8_ops": [...],  # with ONNX int8 only: the same for the ONNX files
    "file_hashes": {"saved_model/saved_model.pb": {"sha256": hex, "size_bytes": n}, ...}  # every file but this one
  }
Format 1 (before file hashes) is refused by the backends unless --allow_modified_export.
Shapes use null for the dynamic batch dimension.
"""

import json
import os

from fomm_tf.errors import ExportError
from fomm_tf.inference import export_layout as layout
from fomm_tf.io import files

FORMAT_VERSION = layout.MANIFEST_FORMAT_VERSION
# Reading lives beside the layout, so that the backends (fomm_tf.inference) can check an export against it.
read_manifest = layout.read_manifest


def base_manifest(model, checkpoint, formats, quantizations, onnx_quantizations, evaluation_input):
  config = model.config
  return {
      "format_version": FORMAT_VERSION,
      "config": {
          name: list(value) if isinstance(value, tuple) else value for name, value in config.flat().items()
      },
      "config_source": config.source,
      "checkpoint": os.path.abspath(checkpoint) if checkpoint else None,
      "frame_shape": list(model.frame_shape),
      "num_kp": int(model.num_kp),
      "align_corners": bool(config.model.align_corners),
      "formats": list(formats),
      "quantizations": list(quantizations) if "tflite" in formats else [],
      "onnx_quantizations": list(onnx_quantizations) if "onnx" in formats else [],
      "evaluation_input": evaluation_input,
      "files": {},
  }


def write_manifest(directory, manifest):
  """Writes DIR/manifest.json through a temporary file, so a reader never sees half of it."""
  path = os.path.join(directory, layout.MANIFEST)
  text = json.dumps(manifest, indent=2, sort_keys=True, allow_nan=False) + "\n"
  return files.write_bytes_atomically(path, text.encode("utf-8"), ExportError)
