"""Converts signatures of an exported SavedModel to ONNX files made of standard ONNX ops only.

Converter: tf2onnx (`tf2onnx.convert.from_function`), on the signatures of the
SavedModel that saved_model.py wrote (loaded back with tf.saved_model.load), so
the ONNX files hold exactly the graphs of the SavedModel and TFLite files.
Keras 3's own `model.export(format="onnx")` runs the same tf2onnx conversion
under the TensorFlow backend but only for one Keras model's `call`; the
exported signatures here are functions of two layers (keypoint detector and
generator) with named, flat inputs, which tf2onnx converts directly.

Opset 18 (the newest tf2onnx 1.17 writes; ONNX Runtime >= 1.14 runs it).
Inputs and outputs keep the SavedModel signature's names, batch dimensions stay
dynamic, and a file that holds any op outside the standard ONNX domains (or an
op the ONNX schemas do not know, which tf2onnx leaves behind for TensorFlow ops
it cannot convert) is refused.

int8 (`quantize_int8`): ONNX Runtime's static quantiser rewrites the float32
file's convolutions (depthwise ones included) to QuantizeLinear ->
DequantizeLinear -> Conv (QDQ, standard ops), 7-bit int8 weights per output
channel, uint8 activations with ranges calibrated on representative inputs; ONNX
Runtime fuses each group into an integer convolution. Everything else (the
keypoint soft-argmax, Gaussians, 2x2 inverses, grid sampling, softmax) stays
float32, as in the TFLite int8 files. Why ONNX Runtime's int8 and not only
TFLite's: on a CPU with AVX2 but no AVX512-VNNI, XNNPACK runs TFLite's int8
convolutions on its `qs8_qc8w_igemm_3x8c8__avx2` kernel (sign-extended 16-bit
multiply-adds), about as fast as its float32 ones, while ONNX Runtime's
uint8 x int8 kernels run them 1.4 to 1.6x faster than its float32 ones
(docs/cpu-speed.md has the measurements). Weights use 7 of the 8 bits
(`reduce_range`): without AVX512-VNNI those kernels add pairs of uint8 x int8
products in 16 bits, which full-range weights overflow (the fixtures' trained
model, whole chain against Keras: 35.0 dB with 8-bit weights, 59.4 dB with
7-bit ones, at the same speed on vox-256; uint8 weights, which cannot
overflow, gave 64.9 dB on the generator alone, 7-bit int8 59.5 dB, but ran
at float32's speed).
"""

import contextlib
import logging
import os
import tempfile

import numpy as np
import tensorflow as tf

from fomm_tf.errors import ExportError
from fomm_tf.errors import one_line
from fomm_tf.export import preflight
from fomm_tf.inference import export_checks

OPSET = 18
# The default ONNX domain ("" and its alias "ai.onnx"); anything else (custom ops, "ai.onnx.ml",
# com.microsoft contrib ops) would tie the files to one runtime.
STANDARD_DOMAINS = export_checks.ONNX_STANDARD_DOMAINS
# The op types int8 quantises; every other op stays float32.
INT8_OPS = ("Conv",)


def _positional_function(signature):
  """A tf.function over `signature` (a loaded SavedModel signature) with its inputs as positional arguments.

  tf2onnx traces a function from a list of TensorSpecs; the names given to the
  specs become the ONNX input names, the signature's output keys the output names.
  """
  _, specs = signature.structured_input_signature
  names = tuple(sorted(specs))
  input_signature = [tf.TensorSpec(specs[n].shape, specs[n].dtype, name=n) for n in names]

  def call(*args):
    return signature(**dict(zip(names, args)))

  return tf.function(call, input_signature=input_signature), input_signature


def convert(signature, what):
  """Converts one loaded SavedModel signature; returns the serialised ONNX model.

  Raises:
    ExportError: tf2onnx failed, or the result holds ops outside the standard ONNX domains.
  """
  preflight.require_converter()
  import tf2onnx  # pylint: disable=import-outside-toplevel
  # tf2onnx logs every rewrite pass at INFO; the export prints its own progress.
  logging.getLogger("tf2onnx").setLevel(logging.WARNING)
  function, input_signature = _positional_function(signature)
  try:
    model, _ = tf2onnx.convert.from_function(function, input_signature=input_signature, opset=OPSET)
  except Exception as error:  # tf2onnx raises many error types; all end the export here.
    raise ExportError(f"{what}: ONNX conversion failed: {one_line(error)}") from None
  _drop_unused_opset_imports(model)
  _replace_deprecated_nearest_resize(model)
  check_standard_ops(model, what)
  return model.SerializeToString()


def quantize_int8(content, samples, what):
  """Statically quantises the convolutions of a float32 ONNX model (see the module docstring); returns the bytes.

  Args:
    content: the serialised float32 model (`convert`'s result).
    samples: [{input name: array}] to calibrate the activation ranges on (representative inputs).
    what: the file's name, for messages.

  Raises:
    ExportError: the quantiser failed, or its result holds ops outside the standard ONNX domains.
  """
  import onnx  # pylint: disable=import-outside-toplevel
  from onnxruntime import quantization  # pylint: disable=import-outside-toplevel

  class Reader(quantization.CalibrationDataReader):

    def __init__(self):
      self._samples = iter(samples)

    def get_next(self):
      return next(self._samples, None)

  with tempfile.TemporaryDirectory(prefix="fomm_onnx_int8_") as scratch, _quiet_quantizer():
    path = os.path.join(scratch, "int8.onnx")
    try:
      quantization.quantize_static(onnx.load_from_string(content),
                                   path,
                                   Reader(),
                                   quant_format=quantization.QuantFormat.QDQ,
                                   op_types_to_quantize=list(INT8_OPS),
                                   per_channel=True,
                                   reduce_range=True,
                                   activation_type=quantization.QuantType.QUInt8,
                                   weight_type=quantization.QuantType.QInt8,
                                   calibrate_method=quantization.CalibrationMethod.MinMax)
    except Exception as error:  # The quantiser raises many error types; all end the export here.
      raise ExportError(f"{what}: ONNX int8 quantisation failed: {one_line(error)}") from None
    model = onnx.load(path)
  _drop_unused_opset_imports(model)
  check_standard_ops(model, what)
  return model.SerializeToString()


class _PreprocessingAdvice(logging.Filter):
  """Drops the quantiser's advice to pre-process the model, logged on the root logger at WARNING for every file.

  Its pre-processing (symbolic shape inference and ONNX Runtime's graph
  optimisation, saved) is not run: ONNX Runtime optimises each session's graph
  when it loads the file anyway, and the file keeps the converter's op types.
  Every other message of the quantiser passes.
  """

  def filter(self, record):
    return not record.getMessage().startswith(
        ("Please consider to run pre-processing", "Please consider pre-processing"))


@contextlib.contextmanager
def _quiet_quantizer():
  advice = _PreprocessingAdvice()
  root = logging.getLogger()
  root.addFilter(advice)
  try:
    yield
  finally:
    root.removeFilter(advice)


def operator_names(model):
  """Sorted op types of a ModelProto, as 'Op' (standard domain) or 'domain:Op'."""
  return sorted({
      n.op_type if n.domain in STANDARD_DOMAINS else f"{n.domain}:{n.op_type}" for n in export_checks.onnx_nodes(model)
  })


def _drop_unused_opset_imports(model):
  """tf2onnx declares the ai.onnx.ml opset in every file; a declared domain that no node uses is removed."""
  used = {n.domain for n in export_checks.onnx_nodes(model)} | set(STANDARD_DOMAINS)
  kept = [o for o in model.opset_import if o.domain in used]
  del model.opset_import[:]
  model.opset_import.extend(kept)


def _replace_deprecated_nearest_resize(model):
  """Rewrites tf2onnx's nearest-neighbour Resize to a mode every ONNX runtime supports, where that is exact.

  tf2onnx writes TensorFlow's half-pixel nearest resizing as the
  `tf_half_pixel_for_nn` coordinate mode (deprecated since opset 13; ONNX
  Runtime warns at every session start, other runtimes reject it). With
  nearest_mode floor and an integer scale s, floor((x + 0.5) / s) equals
  floor(x / s) for every output index x, which is the `asymmetric` mode.
  Resize nodes with non-constant or non-integer scales are left as they are.
  """
  from onnx import numpy_helper  # pylint: disable=import-outside-toplevel
  initializers = {i.name: i for i in model.graph.initializer}
  for node in model.graph.node:
    if node.op_type != "Resize" or len(node.input) < 3 or node.input[2] not in initializers:
      continue
    attributes = {a.name: a for a in node.attribute}
    mode = attributes.get("coordinate_transformation_mode")
    if (mode is None or mode.s != b"tf_half_pixel_for_nn" or "nearest_mode" not in attributes or
        attributes["nearest_mode"].s != b"floor"):
      continue
    scales = numpy_helper.to_array(initializers[node.input[2]])
    if scales.size and np.all(scales >= 1) and np.all(scales == np.round(scales)):
      mode.s = b"asymmetric"


def check_standard_ops(model, what):
  """Raises ExportError unless every op of `model` is a standard ONNX op that the ONNX schemas define."""
  import onnx  # pylint: disable=import-outside-toplevel
  foreign = [d for d in export_checks.onnx_domains(model) if d not in STANDARD_DOMAINS]
  if foreign:
    raise ExportError(f"{what}: the ONNX model uses non-standard op domains ({', '.join(foreign)})")
  unknown = sorted({n.op_type for n in export_checks.onnx_nodes(model) if not onnx.defs.has(n.op_type)})
  if unknown:
    raise ExportError(f"{what}: the ONNX model holds ops that ONNX does not define ({', '.join(unknown)}); "
                      "tf2onnx could not convert them")
  try:
    onnx.checker.check_model(model)
  except onnx.checker.ValidationError as error:
    raise ExportError(f"{what}: the ONNX model is not valid: {one_line(error)}") from None


def describe(content):
  """{'opset', 'inputs': {name: {shape, dtype}}, 'outputs': {...}, 'operators', 'domains'} of an ONNX model.

  Dimensions that the file leaves symbolic (the batch, and output sizes tf2onnx
  could not infer) are null.
  """
  import onnx  # pylint: disable=import-outside-toplevel
  model = onnx.load_from_string(content)

  def values(infos):
    out = {}
    for info in infos:
      tensor = info.type.tensor_type
      shape = [int(d.dim_value) if d.HasField("dim_value") else None for d in tensor.shape.dim]
      dtype = np.dtype(onnx.helper.tensor_dtype_to_np_dtype(tensor.elem_type)).name
      out[info.name] = {"shape": shape, "dtype": dtype}
    return dict(sorted(out.items()))

  opset = max(o.version for o in model.opset_import if o.domain in STANDARD_DOMAINS)
  return {
      "opset": int(opset),
      "inputs": values(model.graph.input),
      "outputs": values(model.graph.output),
      "operators": operator_names(model),
      "domains": export_checks.onnx_domains(model)
  }
