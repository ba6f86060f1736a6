"""OpenVinoModelBackend: a FommModel's networks converted in memory to OpenVINO, with no export and no files.

`--backend=openvino` without `--export_dir` (and `python -m fomm_tf.live`'s
default): the Keras model that `--backend=keras` would run (the built-in one, or
a config and checkpoint) is traced into TensorFlow graphs, which OpenVINO's
TensorFlow frontend converts (`openvino.convert_model`) and compiles for the CPU
in float32. On the 2-core AVX2 machine (no AVX512) this runs the same
networks faster than TensorFlow (docs/live.md has the measurements).
"""

import numpy as np
import tensorflow as tf

from fomm_tf.inference import backend as backend_lib
from fomm_tf.inference import exported_backends
from fomm_tf.inference import generation


def from_keras_model(load_model, quantize="float32", report=print):
  """`--backend=openvino` without `--export_dir`: the OpenVinoModelBackend of `load_model()`, the FommModel that
  `--backend=keras` would run. What cannot work (another --quantize, no OpenVINO) is refused before it loads.

  Raises:
    UsageError: `quantize` is not float32 (int8 runs an export's ONNX files), or OpenVINO is missing
      (exported_backends.check_openvino_conversion, which the commands call before this module loads TensorFlow).
  """
  exported_backends.check_openvino_conversion(quantize)
  model = load_model()
  report("converting the networks to OpenVINO (float32, in memory)")
  return OpenVinoModelBackend(model)


class OpenVinoModelBackend(exported_backends.SignatureBackend):
  """A Backend over a float32 FommModel, its detector, source encoder and generator run by OpenVINO Runtime.

  Each network is compiled for one frame (OpenVINO's CPU kernels are faster on static shapes); a batch of B runs
  as B calls. Relative motion (normalize_kp) stays in TensorFlow (Backend's graph): it is a few hundred numbers a
  frame.

  Args:
    model: a FommModel built under the float32 policy (bfloat16 or float16 models are refused).
    num_threads: inference threads (default: all CPU cores).
  """

  name = "openvino"
  batch_mode = "loop"

  def __init__(self, model, num_threads=None):
    threads = exported_backends.check_threads(num_threads)
    ov = exported_backends.import_openvino(files=False)
    if model.dtype_policy.name != "float32":
      raise ValueError(f"OpenVinoModelBackend runs float32 models, this one computes in {model.dtype_policy.name}")
    self.frame_shape = tuple(model.frame_shape)
    self.num_kp = model.num_kp
    frames = lambda name: tf.TensorSpec((1,) + self.frame_shape, tf.float32, name=name)
    zeros = tf.zeros((1,) + self.frame_shape)
    # The output names of each network (what its dict holds, in the sorted order in which tf.function flattens a
    # dict): the detector's keys depend on the config (no 'jacobian' without estimate_jacobian), the state's on
    # whether the generator has a dense motion network.
    self._kp_keys = sorted(model.kp_detector(zeros, training=False))
    state = generation.encode_source(model.generator, zeros)
    self._state_keys = sorted(state)
    self._kp_shapes = {"value": (self.num_kp, 2), "jacobian": (self.num_kp, 2, 2)}
    kp_specs = lambda prefix: [
        tf.TensorSpec((1,) + self._kp_shapes[k], tf.float32, name=f"{prefix}_{k}") for k in self._kp_keys
    ]
    state_specs = [tf.TensorSpec(state[k].shape, tf.float32, name=k) for k in self._state_keys]

    def generate(*args):
      n, m = len(self._state_keys), len(self._kp_keys)
      state = dict(zip(self._state_keys, args[:n]))
      kp_source = dict(zip(self._kp_keys, args[n:n + m]))
      kp_driving = dict(zip(self._kp_keys, args[n + m:]))
      return {"prediction": generation.generate_from_state(model.generator, state, kp_source, kp_driving)}

    functions = {
        "detect_keypoints": (lambda image: model.kp_detector(image, training=False), [frames("image")]),
        "encode_source": (lambda source: generation.encode_source(model.generator, source), [frames("source")]),
        "generate_from_state": (generate, state_specs + kp_specs("kp_source") + kp_specs("kp_driving")),
    }
    output_names = {
        "detect_keypoints": self._kp_keys,
        "encode_source": self._state_keys,
        "generate_from_state": ["prediction"]
    }
    core = exported_backends.openvino_core()
    compiled = {}
    for signature, (function, specs) in functions.items():
      # No autograph, as FommModel's functions; share_weights=False: OpenVINO keeps its own copy of the weights, so
      # nothing ties it to the TensorFlow variables (which training or another backend may change).
      traced = tf.function(function, autograph=False).get_concrete_function(*specs)
      converted = ov.convert_model(traced, share_weights=False)
      # The function returns a dict, flattened in the sorted order of output_names, and OpenVINO names each
      # output by its key, except one that is an input passed through (the built-in model's source_small is its
      # source), which keeps the input's name: so the outputs are taken in order, their names and shapes checked.
      # The converted model may have more: OpenVINO's TensorFlow frontend also makes a result of a value the graph
      # computes but never uses (a strided slice in the dense motion network), computed every frame for nothing.
      names = output_names[signature]
      outputs = converted.outputs[:len(names)]
      for k, output in enumerate(converted.outputs):
        wrong = set(names) - {names[k]} if k < len(names) else set(names)
        if (k < len(names) and
            output.get_partial_shape() != ov.PartialShape(traced.structured_outputs[names[k]].shape.as_list()) or
            wrong & output.get_names()):
          raise AssertionError(f"{signature}: output {k} of the converted network is not {names[k:k + 1]}")
      converted = ov.Model(outputs, converted.get_parameters(), signature)
      compiled[signature] = core.compile_model(converted, "CPU", exported_backends.openvino_config(threads))
    self._networks = exported_backends.OpenVinoNetworks(compiled, output_names)

  def _run(self, signature, inputs):
    return self._networks(signature, inputs)

  # Not the export's normalize_kp network: none was converted.
  normalize_kp = backend_lib.Backend.normalize_kp

  def generate(self, state, kp_source, kp_driving):
    if not isinstance(state, dict) or sorted(state) != self._state_keys:
      raise ValueError("generate: state must come from this backend's prepare_source")
    inputs = dict(state)
    for prefix, kp in (("kp_source", kp_source), ("kp_driving", kp_driving)):
      for key in self._kp_keys:
        value = np.ascontiguousarray(kp[key], np.float32) if isinstance(kp, dict) and key in kp else None
        if value is None or value.ndim < 1 or value.shape[1:] != self._kp_shapes[key]:
          raise ValueError(
              f"generate {prefix}: expected '{key}' of shape (B, {', '.join(map(str, self._kp_shapes[key]))})")
        inputs[f"{prefix}_{key}"] = value
    source_batches = {inputs[f"kp_source_{key}"].shape[0] for key in self._kp_keys}
    if source_batches != {1}:
      raise ValueError(f"generate: kp_source must be of the one prepared source, batch 1, got batch "
                       f"{', '.join(map(str, sorted(source_batches)))}")
    driving = tuple(f"kp_driving_{key}" for key in self._kp_keys)
    if len({inputs[name].shape[0] for name in driving}) != 1:
      raise ValueError("generate kp_driving: its arrays differ in batch size")
    return self._run_batched("generate_from_state", inputs, driving)["prediction"]
