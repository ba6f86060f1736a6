"""Animation backends that run an exported model: SavedModelBackend, TFLiteBackend, OnnxBackend, OpenVinoBackend.

All implement fomm_tf.inference.backend.Backend on a directory written by
`python -m fomm_tf.export` and take everything they need (frame size, K) from
the exported files themselves. Arrays in and out are numpy float32, NHWC.

Before any file reaches TensorFlow or LiteRT it is checked (export_checks.py): its size and SHA-256 against the
manifest (`allow_modified=True` makes differences warnings), and its op types against the allowlist of what
fomm-tf exports (always). After loading, the signatures' shapes are checked against the manifest, so the files of
two exports cannot be mixed.
"""

import contextlib
import importlib.util
import os
import sys
import threading

import numpy as np

from fomm_tf.errors import ExportError
from fomm_tf.errors import UsageError
from fomm_tf.errors import one_line
from fomm_tf.inference import backend as backend_lib
from fomm_tf.inference import export_checks
from fomm_tf.inference import export_layout as layout

BATCH_MODES = ("loop", "resize")
MISSING_ONNXRUNTIME = "--backend=onnx needs ONNX Runtime: pip install fomm-tf[onnx] (or pip install onnxruntime)"
MISSING_OPENVINO = ("--backend=openvino needs OpenVINO, a dependency of fomm-tf: pip install openvino (or pass "
                    "--backend=keras)")
MISSING_ONNX_FOR_OPENVINO = ("--backend=openvino --export_dir needs the onnx package to check the ONNX files: "
                             "pip install fomm-tf[openvino] (or pip install onnx)")


def _check_frames(frames, frame_shape, what):
  frames = np.asarray(frames)
  if frames.ndim == 3:
    frames = frames[np.newaxis]
  if frames.ndim != 4 or tuple(frames.shape[1:]) != tuple(frame_shape) or frames.shape[0] < 1:
    raise ValueError(f"{what}: expected frames of shape (B, {', '.join(map(str, frame_shape))}), "
                     f"got {np.shape(frames)}")
  return np.ascontiguousarray(frames, np.float32)


def _check_kp(kp, num_kp, what):
  if not isinstance(kp, dict) or "value" not in kp or "jacobian" not in kp:
    raise ValueError(f"{what}: expected a dict with 'value' (B, {num_kp}, 2) and 'jacobian' (B, {num_kp}, 2, 2)")
  value = np.ascontiguousarray(kp["value"], np.float32)
  jacobian = np.ascontiguousarray(kp["jacobian"], np.float32)
  if (value.ndim != 3 or value.shape[1:] != (num_kp, 2) or jacobian.shape != value.shape[:1] + (num_kp, 2, 2)):
    raise ValueError(f"{what}: expected value (B, {num_kp}, 2) and jacobian (B, {num_kp}, 2, 2), "
                     f"got {value.shape} and {jacobian.shape}")
  return {"value": value, "jacobian": jacobian}


def _normalize_inputs(backend, kp_source, kp_driving, kp_driving_initial, adapt_movement_scale, use_relative_movement,
                      use_relative_jacobian):
  kp_source = _check_kp(kp_source, backend.num_kp, "normalize_kp kp_source")
  kp_driving = _check_kp(kp_driving, backend.num_kp, "normalize_kp kp_driving")
  kp_initial = _check_kp(kp_driving_initial, backend.num_kp, "normalize_kp kp_driving_initial")
  return layout.normalize_kp_inputs(kp_source,
                                    kp_driving,
                                    kp_initial,
                                    adapt_movement_scale=np.array(bool(adapt_movement_scale)),
                                    use_relative_movement=np.array(bool(use_relative_movement)),
                                    use_relative_jacobian=np.array(bool(use_relative_jacobian)))


def _check_one_source(source, frame_shape):
  source = _check_frames(source, frame_shape, "prepare_source")
  if source.shape[0] != 1:
    raise ValueError(f"prepare_source: expected one source frame, got a batch of {source.shape[0]}")
  return source


def _generate_inputs(backend, state, kp_source, kp_driving):
  if not isinstance(state, dict) or set(state) != {"features", "source_small"}:
    raise ValueError("generate: state must come from this backend's prepare_source")
  kp_source = _check_kp(kp_source, backend.num_kp, "generate kp_source")
  kp_driving = _check_kp(kp_driving, backend.num_kp, "generate kp_driving")
  if kp_source["value"].shape[0] != 1:
    raise ValueError(f"generate: kp_source must be of the one prepared source, batch 1, "
                     f"got batch {kp_source['value'].shape[0]}")
  return {
      **state, "kp_source_value": kp_source["value"],
      "kp_source_jacobian": kp_source["jacobian"],
      "kp_driving_value": kp_driving["value"],
      "kp_driving_jacobian": kp_driving["jacobian"]
  }


def _check_batch_options(batch_mode, num_threads):
  if batch_mode not in BATCH_MODES:
    raise ValueError(f"batch_mode must be one of {', '.join(BATCH_MODES)}, got {batch_mode!r}")
  return check_threads(num_threads)


def check_threads(num_threads):
  """The number of threads to run with: `num_threads`, or with None every CPU core."""
  if num_threads is not None and num_threads < 1:
    raise ValueError(f"num_threads must be >= 1, got {num_threads}")
  return num_threads or os.cpu_count() or 1


def _run_batched(run, batch_mode, signature, inputs, batched_names):
  """Runs a batch in one call ("resize") or entry by entry ("loop"), concatenating the outputs."""
  batch = inputs[batched_names[0]].shape[0]
  if batch_mode == "resize" or batch == 1:
    return run(signature, inputs)
  parts = []
  for i in range(batch):
    entry = {k: (v[i:i + 1] if k in batched_names else v) for k, v in inputs.items()}
    parts.append(run(signature, entry))
  return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


class SavedModelBackend(backend_lib.Backend):
  """Runs the signatures of an exported SavedModel (tf.saved_model.load; no Keras code involved)."""

  name = "saved_model"

  def __init__(self, path, allow_modified=False):
    import tensorflow as tf
    self._tf = tf
    self.path = layout.saved_model_dir(path)
    export_dir, manifest = export_checks.open_export(self.path, allow_modified)
    if manifest is not None:
      export_checks.verify_saved_model_files(export_dir, manifest, allow_modified)
    export_checks.check_saved_model(self.path)
    try:
      self._model = tf.saved_model.load(self.path)
    except (OSError, ValueError, tf.errors.OpError) as error:
      raise ExportError(f"{self.path}: cannot load the SavedModel: {one_line(error)}") from None
    needed = ("detect_keypoints", "normalize_kp", "encode_source", "generate_from_state")
    missing = [name for name in needed if name not in self._model.signatures]
    if missing:
      raise ExportError(f"{self.path}: SavedModel lacks the signature(s) {', '.join(missing)} "
                        f"(has {', '.join(sorted(self._model.signatures))})")
    io = {name: export_checks.saved_model_signature_io(self._model.signatures[name]) for name in needed}
    if manifest is not None:
      for name in needed:
        export_checks.check_io(self.path, name, io[name],
                               export_checks.recorded_io(manifest, "files", layout.SAVED_MODEL, "signatures", name))
    self.frame_shape, self.num_kp = export_checks.check_consistent(self.path, io)

  def _run(self, name, inputs):
    outputs = self._model.signatures[name](**{k: self._tf.constant(v) for k, v in inputs.items()})
    return {k: v.numpy() for k, v in outputs.items()}

  def detect_keypoints(self, frames):
    return self._run("detect_keypoints", {"image": _check_frames(frames, self.frame_shape, "detect_keypoints")})

  def prepare_source(self, source):
    return self._run("encode_source", {"source": _check_one_source(source, self.frame_shape)})

  def generate(self, state, kp_source, kp_driving):
    return self._run("generate_from_state", _generate_inputs(self, state, kp_source, kp_driving))["prediction"]

  def normalize_kp(self, kp_source, kp_driving, kp_driving_initial, adapt_movement_scale, use_relative_movement,
                   use_relative_jacobian):
    inputs = _normalize_inputs(self, kp_source, kp_driving, kp_driving_initial, adapt_movement_scale,
                               use_relative_movement, use_relative_jacobian)
    return backend_lib.check_normalized(self._run("normalize_kp", inputs), adapt_movement_scale)


class SignatureBackend(backend_lib.Backend):
  """A Backend over one network per export signature (the TFLite or ONNX files, or networks converted in memory:
  openvino_model.py): subclasses run a signature in `_run`, with `frame_shape`, `batch_mode` set; batching, input
  checks and the Backend methods are shared."""

  def _run(self, signature, inputs):
    raise NotImplementedError

  @staticmethod
  def _checked_export(model_paths, allow_modified, manifest, check_file):
    """(export directory, manifest) of `model_paths`, the files of one variant: with no `manifest` given (the
    exporter passes the one it is writing, of files it has just made) the export's manifest is read, the files'
    hashes are verified against it and each file passes `check_file(path, export directory)` before any runtime
    reads it."""
    variant_dir = os.path.dirname(model_paths[0])
    if manifest is not None:
      return os.path.dirname(os.path.dirname(os.path.abspath(variant_dir))), manifest
    export_dir, manifest = export_checks.open_export(variant_dir, allow_modified)
    if manifest is not None:
      export_checks.verify_files(export_dir, manifest, [os.path.relpath(p, export_dir) for p in model_paths],
                                 allow_modified)
    for model_path in model_paths:
      check_file(model_path, export_dir)
    return export_dir, manifest

  def _run_batched(self, signature, inputs, batched_names):
    return _run_batched(self._run, self.batch_mode, signature, inputs, batched_names)

  def detect_keypoints(self, frames):
    frames = _check_frames(frames, self.frame_shape, "detect_keypoints")
    return self._run_batched("detect_keypoints", {"image": frames}, ("image",))

  def prepare_source(self, source):
    return self._run("encode_source", {"source": _check_one_source(source, self.frame_shape)})

  def generate(self, state, kp_source, kp_driving):
    inputs = _generate_inputs(self, state, kp_source, kp_driving)
    out = self._run_batched("generate_from_state", inputs, ("kp_driving_value", "kp_driving_jacobian"))
    return out["prediction"]

  def normalize_kp(self, kp_source, kp_driving, kp_driving_initial, adapt_movement_scale, use_relative_movement,
                   use_relative_jacobian):
    inputs = _normalize_inputs(self, kp_source, kp_driving, kp_driving_initial, adapt_movement_scale,
                               use_relative_movement, use_relative_jacobian)
    return backend_lib.check_normalized(self._run("normalize_kp", inputs), adapt_movement_scale)


class TFLiteBackend(SignatureBackend):
  """Runs the four TFLite files of one quantisation variant with the LiteRT interpreter.

  Args:
    path: an export directory (holding tflite/<quantize>/) or a folder with the four .tflite files.
    quantize: the variant: float32, float16, dynamic_int8 or int8.
    allow_modified: run files whose hashes differ from the manifest's (or an export without hashes), warning.
    manifest: only for the exporter, measuring the files it has just written (their manifest is not on disk
      yet): the files are then not checked against hashes or the op allowlist.
    num_threads: interpreter threads (default: all CPU cores).
    batch_mode: "loop" runs B calls of batch 1; "resize" runs a batch of B
      frames as one call with the inputs resized to B. Measured with
      tools/benchmark_animate.py (vox-256, batch 8, 2-core CPU): both take
      the same time per frame (within 2%, float32 and int8), and "resize"
      peaks about 500 MB higher (float32), so "loop" is the default.
  """

  name = "tflite"

  def __init__(self,
               path,
               quantize="float32",
               num_threads=None,
               batch_mode="loop",
               allow_modified=False,
               manifest=None):
    from ai_edge_litert.interpreter import Interpreter
    threads = _check_batch_options(batch_mode, num_threads)
    self.path = layout.tflite_dir(path, quantize)
    self.quantize = quantize
    self.batch_mode = batch_mode
    self._interpreters = {}
    self._runners = {}
    model_paths = [os.path.join(self.path, filename) for filename in layout.TFLITE_FILES.values()]
    export_dir, manifest = self._checked_export(model_paths, allow_modified, manifest,
                                                lambda path, _: export_checks.check_tflite(path))
    io = {}
    for signature, filename in layout.TFLITE_FILES.items():
      model_path = os.path.join(self.path, filename)
      try:
        interpreter = Interpreter(model_path=model_path, num_threads=threads)
      except (OSError, ValueError, RuntimeError) as error:
        raise ExportError(f"{model_path}: not a usable TFLite model: {one_line(error)}") from None
      keys = list(interpreter.get_signature_list())
      if len(keys) != 1:
        raise ExportError(f"{model_path}: expected one signature, found {keys}")
      self._interpreters[signature] = interpreter
      self._runners[signature] = interpreter.get_signature_runner(keys[0])
      io[signature] = export_checks.tflite_runner_io(self._runners[signature])
      if manifest is not None:
        relpath = os.path.relpath(model_path, export_dir).replace(os.sep, "/")
        export_checks.check_io(model_path, signature, io[signature],
                               export_checks.recorded_io(manifest, "files", relpath))
    self.frame_shape, self.num_kp = export_checks.check_consistent(self.path, io)

  def _run(self, signature, inputs):
    return self._runners[signature](**inputs)


def import_onnxruntime():
  """The onnxruntime module, or a one-line UsageError naming the extra to install."""
  try:
    import onnxruntime  # pylint: disable=import-outside-toplevel
  except ImportError:
    raise UsageError(MISSING_ONNXRUNTIME) from None
  return onnxruntime


def onnx_session(model, num_threads=None):
  """An ONNX Runtime CPU InferenceSession of `model` (a path or the serialised bytes).

  Raises:
    ExportError: the file is missing, not ONNX, or not runnable.
  """
  ort = import_onnxruntime()
  options = ort.SessionOptions()
  options.intra_op_num_threads = num_threads or os.cpu_count() or 1
  options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
  what = model if isinstance(model, str) else "ONNX model"
  # ONNX Runtime's own errors (InvalidProtobuf, NoSuchFile, Fail, ...) derive from Exception directly.
  runtime_errors = tuple(
      v for v in vars(ort.capi.onnxruntime_pybind11_state).values() if isinstance(v, type) and issubclass(v, Exception))
  try:
    return ort.InferenceSession(model, sess_options=options, providers=["CPUExecutionProvider"])
  except (OSError, ValueError, RuntimeError) + runtime_errors as error:
    raise ExportError(f"{what}: not a usable ONNX model: {one_line(error)}") from None


class OnnxBackend(SignatureBackend):
  """Runs the four ONNX files of an export directory with ONNX Runtime (CPU).

  onnxruntime is an optional extra (pip install fomm-tf[onnx]); without it the
  backend raises a one-line UsageError naming it.

  Args:
    path: an export directory (holding onnx/<quantize>/) or a folder with the four .onnx files.
    quantize: the variant (float32 or int8).
    allow_modified: run files whose hashes differ from the manifest's (or an export without hashes), warning.
    manifest: the manifest of files just written (the exporter's own check); None reads and checks the files.
    num_threads: intra-op threads (default: all CPU cores).
    batch_mode: "loop" runs B calls of batch 1; "resize" runs a batch of B
      frames as one call (the files have a dynamic batch dimension).
  """

  name = "onnx"

  def __init__(self,
               path,
               quantize="float32",
               num_threads=None,
               batch_mode="loop",
               allow_modified=False,
               manifest=None):
    threads = _check_batch_options(batch_mode, num_threads)
    import_onnxruntime()
    self.path = layout.onnx_dir(path, quantize)
    self.quantize = quantize
    self.batch_mode = batch_mode
    self._sessions = {}
    self._outputs = {}
    model_paths = [os.path.join(self.path, filename) for filename in layout.ONNX_FILES.values()]
    self._checked_export(model_paths, allow_modified, manifest, export_checks.check_onnx)
    for signature, filename in layout.ONNX_FILES.items():
      session = onnx_session(os.path.join(self.path, filename), threads)
      self._sessions[signature] = session
      self._outputs[signature] = [o.name for o in session.get_outputs()]
    # ONNX Runtime gives a dimension as an int, or a name (or None) when it is dynamic.
    dims = lambda shape: None if shape is None else tuple(d if isinstance(d, int) else None for d in shape)
    self.frame_shape, self.num_kp = _frame_shape_and_num_kp(self.path, {
        s: {
            i.name: dims(i.shape) for i in session.get_inputs()
        } for s, session in self._sessions.items()
    })

  def _run(self, signature, inputs):
    values = self._sessions[signature].run(self._outputs[signature], inputs)
    return dict(zip(self._outputs[signature], values))


def import_openvino(files=True):
  """The openvino module, or a one-line UsageError naming what to install.

  Args:
    files: whether exported ONNX files will be run, which the export checks read with the onnx package first.
  """
  if "openvino" not in sys.modules:
    # OpenVINO's model converter (ov.convert_model, openvino_model.py) reports every conversion to Google Analytics
    # unless the user ran `opt_in_out --opt_out`: it writes ~/intel/openvino_ga_cid and ~/intel/stats and forks
    # this process for each event it sends (2.2 s of CPU per network converted on the 2-core machine, offline).
    # fomm-tf sends nothing anywhere (as the web app's Gradio analytics): an openvino_telemetry that cannot be
    # imported makes OpenVINO use its own no-op stub, as where openvino-telemetry is not installed (for the rest of
    # the process: a program that imports fomm-tf's OpenVINO backends cannot import openvino_telemetry after them).
    # A program that imported openvino before fomm-tf did keeps OpenVINO's own setting.
    sys.modules.setdefault("openvino_telemetry", None)
  try:
    import openvino  # pylint: disable=import-outside-toplevel
  except ImportError:
    raise UsageError(MISSING_OPENVINO) from None
  if files:
    try:
      import onnx  # pylint: disable=import-outside-toplevel,unused-import
    except ImportError:
      raise UsageError(MISSING_ONNX_FOR_OPENVINO) from None
  return openvino


def check_openvino_conversion(quantize):
  """Refuses what `--backend=openvino` without `--export_dir` (openvino_model.from_keras_model) cannot run: another
  variant than float32, or no OpenVINO. TensorFlow-free, so that the commands refuse it before TensorFlow loads.

  Raises:
    UsageError: `quantize` is not float32 (int8 runs an export's ONNX files), or OpenVINO is missing.
  """
  if quantize != "float32":
    raise UsageError(f"--backend=openvino converts the Keras model in float32; --quantize={quantize} runs an "
                     "export's ONNX files: pass --export_dir (written by fomm_tf.export --formats=onnx)")
  import_openvino(files=False)


_core_lock = threading.Lock()
_core = []  # The process's one openvino.Core, made on first use.


def openvino_core():
  """The one OpenVINO Core of this process, made on first use and kept until exit (OpenVINO's Core is thread-safe).

  Why never a Core per backend: OpenVINO's CPU plugin (2026.4) gives the thread that first compiles on a Core an
  alternate signal stack of its own and puts back, when that Core is destroyed, the stack it found. Two Cores
  destroyed in the order they were made leave the main thread's alternate stack on unmapped memory, and the next
  signal with a Python handler (SIGINT, SIGTERM: cli.signals_raise_interrupted) then kills the process with SIGSEGV
  instead of removing the staged output (measured: a test process died so after the OpenVINO tests). A Core that
  lives as long as the process never puts back a stale stack.
  """
  with _core_lock:
    if not _core:
      _core.append(import_openvino(files=False).Core())
    return _core[0]


class OpenVinoBackend(SignatureBackend):
  """Runs the four ONNX files of an export directory with OpenVINO Runtime on the CPU (the same files as
  OnnxBackend, checked the same way before OpenVINO reads them).

  openvino is a dependency of fomm-tf; onnx, with which the export checks read the
  files first, is the extra fomm-tf[openvino]: without either the backend raises
  a one-line UsageError naming it. (Without an export, --backend=openvino runs
  the Keras model converted in memory: openvino_model.py.)

  Why a second engine for the same files: on a CPU without AVX512 (2-core AVX2
  machine, vox-256) OpenVINO runs the int8 files on integer kernels that pay,
  where ONNX Runtime and LiteRT gain little over float32 (docs/onnx.md has the
  measurements). Computation stays in float32 (INFERENCE_PRECISION_HINT f32):
  OpenVINO would otherwise compute in bfloat16 on CPUs that have it.

  Args:
    path: an export directory (holding onnx/<quantize>/) or a folder with the four .onnx files.
    quantize: the variant (float32 or int8).
    allow_modified: run files whose hashes differ from the manifest's (or an export without hashes), warning.
    num_threads: inference threads (default: all CPU cores).
    batch_mode: "loop" runs B calls of batch 1 on networks compiled for batch 1
      (OpenVINO's CPU kernels are 1.5-2.5x faster on static shapes than on the
      files' dynamic batch, measured on the fixture model); "resize" runs a
      batch of B frames as one call on the dynamic-batch networks.
  """

  name = "openvino"

  def __init__(self, path, quantize="float32", num_threads=None, batch_mode="loop", allow_modified=False):
    threads = _check_batch_options(batch_mode, num_threads)
    import_openvino()  # One line naming what to install, before anything is read.
    self.path = layout.onnx_dir(path, quantize)
    self.quantize = quantize
    self.batch_mode = batch_mode
    model_paths = [os.path.join(self.path, filename) for filename in layout.ONNX_FILES.values()]
    self._checked_export(model_paths, allow_modified, None, export_checks.check_onnx)
    core = openvino_core()
    models = {}
    for signature, filename in layout.ONNX_FILES.items():
      with _openvino_errors(os.path.join(self.path, filename)):
        models[signature] = core.read_model(os.path.join(self.path, filename))
    # The inputs are checked before anything is reshaped or compiled, so files of other networks are one line.
    inputs = {signature: {i.get_any_name(): i.get_partial_shape() for i in m.inputs} for signature, m in models.items()}
    dims = lambda shape: None if shape.rank.is_dynamic else tuple(None if d.is_dynamic else d.get_length()
                                                                  for d in shape)
    self.frame_shape, self.num_kp = _frame_shape_and_num_kp(self.path, {
        s: {
            name: dims(shape) for name, shape in shapes.items()
        } for s, shapes in inputs.items()
    })
    compiled = {}
    for signature, model in models.items():
      with _openvino_errors(os.path.join(self.path, layout.ONNX_FILES[signature])):
        if batch_mode == "loop" and signature in ("detect_keypoints", "generate_from_state"):
          # The networks that _run_batched feeds one entry at a time; normalize_kp keeps its batch of B.
          model.reshape({name: _batch_one(shape) for name, shape in inputs[signature].items()})
        compiled[signature] = core.compile_model(model, "CPU", openvino_config(threads))
    self._networks = OpenVinoNetworks(compiled, {s: [o.get_any_name() for o in c.outputs] for s, c in compiled.items()})

  def _run(self, signature, inputs):
    return self._networks(signature, inputs)


def openvino_config(threads):
  """OpenVINO's CPU settings for fomm-tf's networks: `threads` inference threads, float32 arithmetic (it would
  compute in bfloat16 on CPUs that have it) and the latency hint (vox-256's int8 generator took 377 ms a frame
  against 583-661 with the throughput hint on the 2-core AVX2 machine)."""
  return {"INFERENCE_NUM_THREADS": threads, "INFERENCE_PRECISION_HINT": "f32", "PERFORMANCE_HINT": "LATENCY"}


class OpenVinoNetworks:
  """Compiled OpenVINO networks by signature, called as `run(signature, inputs)` -> {output name: array}.

  One infer request per thread and network: a request holds the network's buffers, so two threads (the web app's
  --concurrency) must not share one, and making one per call would allocate them every frame.

  Args:
    compiled: {signature: openvino CompiledModel}.
    output_names: {signature: the names its outputs get, in the order of the CompiledModel's outputs}.
  """

  def __init__(self, compiled, output_names):
    for signature, names in output_names.items():
      if len(compiled[signature].outputs) != len(names):
        raise AssertionError(f"OpenVINO's {signature} network has {len(compiled[signature].outputs)} outputs, "
                             f"expected {len(names)} ({', '.join(names)})")
    self._compiled = compiled
    self._output_names = output_names
    self._requests = threading.local()

  def __call__(self, signature, inputs):
    requests = self._requests.__dict__.setdefault("by_signature", {})
    if signature not in requests:
      requests[signature] = self._compiled[signature].create_infer_request()
    results = requests[signature].infer(inputs)  # Copies the outputs out of the request's buffers.
    compiled = self._compiled[signature]
    return {name: np.asarray(results[output]) for name, output in zip(self._output_names[signature], compiled.outputs)}


@contextlib.contextmanager
def _openvino_errors(model_path):
  """OpenVINO's errors (it reports every failure to read, reshape or compile a network as a RuntimeError) as one
  ExportError line naming the file."""
  try:
    yield
  except RuntimeError as error:
    raise ExportError(f"{model_path}: not a usable ONNX model for OpenVINO: {one_line(error)}") from None


def _batch_one(shape):
  """An OpenVINO PartialShape's dimensions with a dynamic batch (the first) made 1."""
  return [1 if k == 0 and dim.is_dynamic else dim.get_length() for k, dim in enumerate(shape)]


def _frame_shape_and_num_kp(path, inputs):
  """(frame_shape, K) of the four ONNX files of `path` (OnnxBackend and OpenVinoBackend), or an ExportError.

  Args:
    path: the files' folder, for the message.
    inputs: {signature: {input name: its dimensions, a tuple with None for a dynamic one, or None when even the
      rank is unknown}}.
  """
  source = inputs["encode_source"].get("source")
  if "image" not in inputs["detect_keypoints"] or source is None or len(source) != 4 or None in source[1:]:
    raise ExportError(f"{path}: the ONNX files lack the inputs of python -m fomm_tf.export's signatures")
  kp = inputs["generate_from_state"].get("kp_source_value")
  if kp is None or len(kp) != 3 or kp[1] is None:
    raise ExportError(f"{path}: generator.onnx lacks the input kp_source_value (B, K, 2)")
  return tuple(source[1:]), kp[1]


# What runs an export directory, by --backend name; all but the SavedModel run one variant of their files
# (--quantize) and take the same arguments.
VARIANT_BACKENDS = {"tflite": TFLiteBackend, "onnx": OnnxBackend, "openvino": OpenVinoBackend}
EXPORTED_BACKENDS = ("saved_model", *VARIANT_BACKENDS)


def openvino_installed():
  """Whether --backend=openvino can run here (the app and the precision tool offer it only then)."""
  return importlib.util.find_spec("openvino") is not None


def open_exported(backend, path, quantize="float32", allow_modified=False):
  """The Backend `backend` (saved_model, tflite, onnx or openvino) over the export directory `path`.

  Args:
    backend: one of EXPORTED_BACKENDS.
    path: a directory written by python -m fomm_tf.export.
    quantize: the TFLite or ONNX variant (onnx and openvino run the same files; the SavedModel is float32).
    allow_modified: run files whose hashes differ from the manifest's, with a warning (export_checks).
  """
  if backend == "saved_model":
    if quantize != "float32":
      raise UsageError(f"--backend=saved_model runs the float32 SavedModel; --quantize={quantize} is for tflite")
    return SavedModelBackend(path, allow_modified=allow_modified)
  if backend in VARIANT_BACKENDS:
    return VARIANT_BACKENDS[backend](path, quantize=quantize, allow_modified=allow_modified)
  raise UsageError(f"unknown exported backend {backend!r}; choose from {', '.join(EXPORTED_BACKENDS)}")
