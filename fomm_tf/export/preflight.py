"""What an export is asked to write, checked before TensorFlow loads: formats, quantisations, the output directory
and the optional packages they need.

The export command runs these checks first, so a mistake in its flags is a one-line error in under a second rather
than after TensorFlow's import and the model's build (seconds to a minute); nothing here imports TensorFlow.
"""

import os

from fomm_tf.errors import ExportError
from fomm_tf.errors import UsageError
from fomm_tf.inference import export_layout as layout
from fomm_tf.io import files

FORMATS = ("saved_model", "tflite", "onnx")
# The TFLite variants (tflite.py says what each is).
QUANTIZATIONS = ("float32", "float16", "dynamic_int8", "int8")
# The ONNX variants an export can write: float32 (always) and int8 (onnx_export.quantize_int8).
ONNX_QUANTIZATIONS = ("float32", "int8")
MISSING_CONVERTER = "ONNX export needs tf2onnx and onnx: pip install fomm-tf[onnx]"


def parse_formats(values):
  values = [v.strip() for v in values if v.strip()]
  unknown = [v for v in values if v not in FORMATS]
  if unknown:
    raise ExportError(f"--formats: unknown format {unknown[0]!r}; choose from {', '.join(FORMATS)}")
  if not values:
    raise ExportError(f"--formats: give at least one of {', '.join(FORMATS)}")
  return tuple(f for f in FORMATS if f in values)


def parse_quantizations(values):
  """Validates a list of quantisation names; returns them de-duplicated, in QUANTIZATIONS order."""
  values = [v.strip() for v in values if v.strip()]
  if not values:
    raise ExportError(f"--quantize: give at least one of {', '.join(QUANTIZATIONS)}")
  unknown = [v for v in values if v not in QUANTIZATIONS]
  if unknown:
    raise ExportError(f"--quantize: unknown quantisation {unknown[0]!r}; "
                      f"choose from {', '.join(QUANTIZATIONS)}")
  return tuple(q for q in QUANTIZATIONS if q in values)


def split_quantizations(formats, quantizations):
  """(TFLite variants, ONNX variants) that an export of `formats` writes for the --quantize list `quantizations`.

  TFLite writes each variant asked for; ONNX writes float32 (always: the files every other variant is measured
  against) and int8 when asked. float16 and dynamic_int8 are TFLite variants only, so asking for one of them
  without tflite in `formats` is an error rather than nothing written.
  """
  quantizations = parse_quantizations(quantizations)
  onnx_quantizations = ()
  if "onnx" in formats:
    onnx_quantizations = tuple(q for q in ONNX_QUANTIZATIONS if q == "float32" or q in quantizations)
    tflite_only = [q for q in quantizations if q not in ONNX_QUANTIZATIONS]
    if tflite_only and "tflite" not in formats:
      raise ExportError(f"--quantize={tflite_only[0]} is a TFLite variant (ONNX files are "
                        f"{' or '.join(ONNX_QUANTIZATIONS)}); add tflite to --formats")
  return (quantizations if "tflite" in formats else ()), onnx_quantizations


def require_converter():
  """Imports tf2onnx and onnx, or raises a one-line UsageError naming the extra to install."""
  try:
    import onnx  # pylint: disable=import-outside-toplevel,unused-import
    import tf2onnx  # pylint: disable=import-outside-toplevel,unused-import
  except ImportError:
    raise UsageError(MISSING_CONVERTER) from None


def require_formats(formats):
  """Raises a one-line UsageError when a package that writing `formats` needs is missing (the onnx extra)."""
  if "onnx" in formats:
    require_converter()
    from fomm_tf.inference import exported_backends  # pylint: disable=import-outside-toplevel
    exported_backends.import_onnxruntime()  # Every ONNX file is checked by running it.


def is_previous_export(path):
  return os.path.isfile(os.path.join(path, layout.MANIFEST))


def check_output_dir(output_dir, overwrite, inputs=()):
  """Refuses an output path that is a file, a non-empty directory unless `overwrite`, a non-empty directory
  that is not a previous export, or one that holds (or lies inside) any of `inputs` [(flag, path)]."""
  files.refuse_overwrite([], inputs, directories=[("output_dir", output_dir)])
  if os.path.exists(output_dir) and not os.path.isdir(output_dir):
    raise ExportError(f"{output_dir}: exists and is not a directory")
  if os.path.isdir(output_dir) and os.listdir(output_dir):
    if not overwrite:
      raise ExportError(f"{output_dir}: directory exists and is not empty (pass --overwrite to replace it)")
    if not is_previous_export(output_dir):
      raise ExportError(f"{output_dir}: --overwrite only replaces a previous export, and this directory has no "
                        f"{layout.MANIFEST}; refusing to delete it")
