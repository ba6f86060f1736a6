"""Converts signatures of an exported SavedModel to TFLite files made of builtin ops only.

The conversion starts from the SavedModel that saved_model.py wrote (loaded
back with tf.saved_model.load), so the converter sees restored variables and
freezes them into constants.

Quantisation variants:
  float32       no optimisation.
  float16       weights stored as float16 (dequantised at load).
  dynamic_int8  dynamic-range: int8 weights, activations quantised on the fly.
  int8          convolutions (and the pooling, padding, resizing and
                concatenations between them) run on int8 weights and
                activations with ranges calibrated on representative inputs;
                the keypoint and motion arithmetic (softmax, Gaussians, 2x2
                inverses, grid sampling, residual sums) stays float32, as do
                the inputs and outputs. Fully int8 keypoint arithmetic is not
                usable: quantised Jacobian determinants reach zero and the
                generator's DIV fails at run time.
"""

import re
import warnings

import tensorflow as tf

from fomm_tf.errors import ExportError
from fomm_tf.export import preflight
from fomm_tf.inference import export_checks

# normalize_kp has no weights to compress, and int8 keypoint arithmetic (convex hull tests, 2x2 inverses)
# would cost accuracy for nothing, so every variant holds the float32 conversion.
FLOAT_ONLY_SIGNATURES = ("normalize_kp",)
# The ops that int8 quantises; every other op of a model is kept float32 (see the module docstring).
INT8_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "AVERAGE_POOL_2D", "RESIZE_NEAREST_NEIGHBOR", "PAD", "CONCATENATION")
# What a TFLite op code name looks like when the model would need TensorFlow ops.
_SELECT_OP_PREFIXES = ("Flex", "CUSTOM")


def effective_quantization(signature, quantization):
  return "float32" if signature in FLOAT_ONLY_SIGNATURES else quantization


def _variable_owner(concrete_function):
  """A module tracking only the variables `concrete_function` reads.

  The converter saves its trackable to a temporary SavedModel and loads it back before converting; the loaded
  export as that trackable (every signature, every function) made each conversion 5-10x slower (6-8 s against
  0.4-3 s for the tiny test model on this round's CPU) for byte-for-byte the same operators and outputs.
  """
  owner = tf.Module()
  owner.read_variables = list(concrete_function.variables)
  return owner


def make_converter(concrete_function, quantization, representative_inputs=None):
  """A TFLiteConverter for one concrete function (of a loaded SavedModel), set up for `quantization`."""
  if quantization not in preflight.QUANTIZATIONS:
    raise ExportError(f"unknown quantisation {quantization!r}; "
                      f"choose from {', '.join(preflight.QUANTIZATIONS)}")
  converter = tf.lite.TFLiteConverter.from_concrete_functions([concrete_function], _variable_owner(concrete_function))
  converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
  if quantization == "float16":
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.target_spec.supported_types = [tf.float16]
  elif quantization == "dynamic_int8":
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
  elif quantization == "int8":
    if not representative_inputs:
      raise ExportError("int8 quantisation needs representative inputs (frames to calibrate on)")
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: iter(representative_inputs)
  return converter


def convert(concrete_function, quantization, what, representative_inputs=None):
  """Converts one concrete function; returns the .tflite bytes.

  Raises:
    ExportError: the conversion failed, e.g. because it would need TensorFlow
      select (Flex) ops, which are not allowed here.
  """
  converter = make_converter(concrete_function, quantization, representative_inputs)
  try:
    if quantization == "int8":
      content = _quantize_int8(converter, representative_inputs)
    else:
      content = converter.convert()
  except Exception as e:  # The converter raises several error types; all end the export here.
    failure = _conversion_failure(e)
    raise ExportError(f"{what}: {quantization} conversion failed: {failure}") from None
  check_builtin_only(content, f"{what} ({quantization})")
  return content


def _quantize_int8(converter, representative_inputs):
  """Calibrates, then quantises only INT8_OPS (TFLite's selective quantisation via QuantizationDebugger)."""
  from ai_edge_litert import schema_py_generated as schema
  float_ops = [name for name in vars(schema.BuiltinOperator) if not name.startswith("_") and name not in INT8_OPS]
  options = tf.lite.experimental.QuantizationDebugOptions(denylisted_ops=float_ops)
  with warnings.catch_warnings():
    # TensorFlow's calibration runs its own deprecated tf.lite.Interpreter; nothing to act on here.
    warnings.filterwarnings("ignore", message=r"\s*Warning: tf.lite.Interpreter is deprecated", category=UserWarning)
    debugger = tf.lite.experimental.QuantizationDebugger(converter=converter,
                                                         debug_dataset=lambda: iter(representative_inputs),
                                                         debug_options=options)
    return debugger.get_nondebug_quantized_model()


def _conversion_failure(error):
  text = str(error)
  select = re.search(r"TF Select ops: ([^\n]+)", text)
  if select:
    return (f"needs TensorFlow select ops ({select.group(1).strip()}), which are not allowed "
            "(supported_ops = TFLITE_BUILTINS only)")
  lines = [line.strip() for line in text.splitlines() if line.strip()]
  return lines[0] if lines else type(error).__name__


def operator_names(content):
  """Sorted names of the op codes a .tflite model (bytes or a path) uses, read from its flatbuffer.

  Non-builtin ops come out as their custom code ("FlexConv2D", or "CUSTOM:name").
  """
  if isinstance(content, str):
    return export_checks.tflite_ops(content)
  return export_checks.operator_names_of(content)


def check_builtin_only(content, what):
  select = [name for name in operator_names(content) if name.startswith(_SELECT_OP_PREFIXES)]
  if select:
    raise ExportError(f"{what}: the TFLite model needs non-builtin ops ({', '.join(select)})")


def signature_io(content):
  """{'signature_key', 'inputs': {name: {shape, dtype}}, 'outputs': {...}} of a one-signature .tflite model."""
  from ai_edge_litert.interpreter import Interpreter
  interpreter = Interpreter(model_content=content)
  (key,) = interpreter.get_signature_list()
  return {"signature_key": key, **export_checks.tflite_runner_io(interpreter.get_signature_runner(key))}
