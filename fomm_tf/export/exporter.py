"""Exports a FommModel to a directory: SavedModel, TFLite variants, ONNX files and a manifest, all or nothing.

Everything is written into a staging directory next to the output directory
and renamed into place at the end, so a failed (or interrupted) export leaves
no partial output, and an existing export is only replaced by a complete one.
`--overwrite` only ever replaces a directory that holds a previous export's
manifest, and never one that holds a file the export reads.
"""

import os
import tempfile
import time

import numpy as np
import tensorflow as tf
from absl import logging

from fomm_tf.errors import ExportError
from fomm_tf.errors import one_line
from fomm_tf.export import evaluation
from fomm_tf.export import manifest as manifest_lib
from fomm_tf.export import onnx_export
from fomm_tf.export import preflight
from fomm_tf.export import saved_model as saved_model_lib
from fomm_tf.export import signatures as signatures_lib
from fomm_tf.export import tflite as tflite_lib
from fomm_tf.inference import export_checks
from fomm_tf.inference import export_layout as layout
from fomm_tf.io import files


def _prepare_frames(model, representative_frames, wants_int8, num_calibration_frames):
  if representative_frames is None:
    if wants_int8:
      raise ExportError("int8 quantisation needs representative frames to calibrate on "
                        "(--representative_data=frames.npy, a video or images)")
    return None, evaluation.synthetic_frames(model.frame_shape), (
        f"synthetic: a smooth random image (seed {evaluation.SYNTHETIC_SEED}) as source and two shifted copies "
        "as driving frames")
  frames = evaluation.check_frames(representative_frames, model.frame_shape, "representative frames")
  if len(frames) < 3:
    raise ExportError("representative frames: need at least 3 (a source and two driving frames), "
                      f"got {len(frames)}")
  calibration = frames[:num_calibration_frames]
  return calibration, frames[:3], "representative frames 0 (source) and 1-2 (driving)"


def export_model(model,
                 output_dir,
                 formats=preflight.FORMATS,
                 quantizations=("float32",),
                 overwrite=False,
                 representative_frames=None,
                 checkpoint=None,
                 num_calibration_frames=16,
                 progress=None,
                 inputs=(),
                 check_allowlist=True):
  """Exports `model` (a FommModel) to `output_dir`; returns the manifest dict.

  Args:
    model: the FommModel to export.
    output_dir: the directory to create (or, with `overwrite`, to replace).
    formats: any of "saved_model", "tflite", "onnx" (ONNX needs tf2onnx and onnx, the `onnx` extra).
    quantizations: the variants (float32, float16, dynamic_int8, int8): TFLite writes each; ONNX writes float32
      and, when asked, int8 (see preflight.split_quantizations).
    overwrite: replace a non-empty `output_dir`.
    representative_frames: (N >= 3, H, W, 3) frames in [0, 1] (float) or
      uint8. Needed for int8 (calibration uses the first
      `num_calibration_frames`); when given, frames 0-2 are also the fixed
      input of the error measurements, else a synthetic input is used.
    checkpoint: recorded in the manifest.
    progress: called with one line per finished step (default: absl logging.info).
    inputs: [(flag name, path)] of the files the export reads (the checkpoint, the
      representative data): the output directory may not hold any of them.
    check_allowlist: refuse to finish an export holding an op that the backends' allowlist
      (fomm_tf/inference/export_allowlist.py) lacks, as they would refuse to run it; only
      tools/update_export_allowlist.py, which makes that list, turns this off.

  Raises:
    ExportError: bad arguments, an existing output directory, or a conversion
      that fails (e.g. one that would need TensorFlow select ops); nothing is
      left behind.
  """
  formats = preflight.parse_formats(formats)
  preflight.require_formats(formats)
  report = progress or (lambda message: logging.info("%s", message))
  tflite_quantizations, onnx_quantizations = preflight.split_quantizations(formats, quantizations)
  inputs = list(inputs) + ([("checkpoint", checkpoint)] if checkpoint else [])
  preflight.check_output_dir(os.path.abspath(output_dir), overwrite, inputs)
  if num_calibration_frames < 1:
    raise ExportError(f"num_calibration_frames must be >= 1, got {num_calibration_frames}")
  wants_int8 = "int8" in tflite_quantizations + onnx_quantizations
  calibration_frames, eval_frames, eval_description = _prepare_frames(model, representative_frames, wants_int8,
                                                                      num_calibration_frames)
  functions = signatures_lib.ExportFunctions(model)
  manifest = manifest_lib.base_manifest(model, checkpoint, formats, tflite_quantizations, onnx_quantizations,
                                        eval_description)
  if "int8" in tflite_quantizations:
    manifest["int8_ops"] = list(tflite_lib.INT8_OPS)
  if "int8" in onnx_quantizations:
    manifest["onnx_int8_ops"] = list(onnx_export.INT8_OPS)
  inputs = evaluation.reference_inputs(functions, eval_frames)
  expected = {name: evaluation.run_keras(functions, name, inputs[name]) for name in inputs}

  staged = files.staged_directory(output_dir,
                                  ExportError,
                                  replace_if=lambda path: overwrite and preflight.is_previous_export(path))
  with staged as staging, tempfile.TemporaryDirectory() as scratch:
    keep_saved_model = "saved_model" in formats
    saved_model_dir = os.path.join(staging if keep_saved_model else scratch, layout.SAVED_MODEL)
    start = time.time()
    saved_model_lib.write_saved_model(functions, saved_model_dir)
    report(f"wrote the SavedModel in {time.time() - start:.1f} s")
    loaded = tf.saved_model.load(saved_model_dir)
    if keep_saved_model:
      manifest["files"][layout.SAVED_MODEL] = _describe_saved_model(loaded, inputs, expected)
    # Calibration inputs are only for int8 (without int8, representative frames only fix the error measurements).
    samples = evaluation.calibration_inputs(functions, calibration_frames) if wants_int8 else None
    if tflite_quantizations:
      manifest["files"].update(_write_tflite(loaded, staging, tflite_quantizations, samples, inputs, expected, report))
      manifest["tflite_animation"] = _animation_errors(staging, manifest, tflite_quantizations,
                                                       inputs["serving_default"], expected["serving_default"])
    if onnx_quantizations:
      manifest["files"].update(_write_onnx(loaded, staging, onnx_quantizations, samples, inputs, expected, report))
      manifest["onnx_animation"] = _animation_errors(staging,
                                                     manifest,
                                                     onnx_quantizations,
                                                     inputs["serving_default"],
                                                     expected["serving_default"],
                                                     kind="onnx")
    if check_allowlist:
      _check_allowlist(staging)
    # Every file's size and SHA-256: the backends refuse a file that differs (modified, or from another export).
    manifest["file_hashes"] = export_checks.describe_files(staging)
    manifest_lib.write_manifest(staging, manifest)
  return manifest


def _check_allowlist(staging):
  """Runs the backends' op checks on the new files, so an export they would refuse fails here, not later."""
  paths = sorted(os.path.join(root, name) for root, _, names in os.walk(staging) for name in names)
  try:
    if os.path.isdir(os.path.join(staging, layout.SAVED_MODEL)):
      export_checks.check_saved_model(os.path.join(staging, layout.SAVED_MODEL))
    for path in paths:
      if path.endswith(".tflite"):
        export_checks.check_tflite(path)
      elif path.endswith(".onnx"):
        export_checks.check_onnx(path, staging)
  except ExportError as error:
    raise ExportError(f"this export holds an op that fomm_tf/inference/export_allowlist.py lacks, so the backends "
                      f"would refuse it; if the change is intended, run tools/update_export_allowlist.py "
                      f"({error})") from None


def _describe_saved_model(loaded, inputs, expected):
  signatures = {}
  for name in layout.SAVED_MODEL_SIGNATURES:
    signature = loaded.signatures[name]
    outputs = signature(**{k: tf.constant(v) for k, v in inputs[name].items()})
    signatures[name] = {
        **saved_model_lib.signature_io(signature),
        **evaluation.compare({
            k: v.numpy() for k, v in outputs.items()
        }, expected[name])
    }
  return {"kind": "saved_model", "signatures": signatures}


def _run_tflite(content, inputs):
  from ai_edge_litert.interpreter import Interpreter
  interpreter = Interpreter(model_content=content)
  (key,) = interpreter.get_signature_list()
  return interpreter.get_signature_runner(key)(**inputs)


def _write_tflite(loaded, staging, quantizations, samples, inputs, expected, report):
  described = {}
  converted = {}  # (signature, effective quantisation) -> bytes, so float-only files convert once
  for quantization in quantizations:
    os.makedirs(os.path.join(staging, layout.TFLITE, quantization))
    for signature in layout.TFLITE_FILES:
      actual_quantization = tflite_lib.effective_quantization(signature, quantization)
      key = (signature, actual_quantization)
      relpath = layout.tflite_relpath(quantization, signature)
      if key not in converted:
        start = time.time()
        converted[key] = tflite_lib.convert(loaded.signatures[signature],
                                            actual_quantization,
                                            relpath,
                                            representative_inputs=samples[signature] if samples is not None else None)
        report(f"converted {relpath} in {time.time() - start:.1f} s")
      content = converted[key]
      files.write_bytes_atomically(os.path.join(staging, relpath), content, ExportError)
      outputs = _run_tflite(content, inputs[signature])
      described[relpath] = {
          "kind": "tflite",
          "quantization": actual_quantization,
          "size_bytes": len(content),
          "operators": tflite_lib.operator_names(content),
          **tflite_lib.signature_io(content),
          **evaluation.compare(outputs, expected[signature])
      }
  return described


def _write_onnx(loaded, staging, quantizations, samples, inputs, expected, report):
  """Converts the four signatures to ONNX (float32, and int8 where asked), checks each with ONNX Runtime; returns
  their manifest entries."""
  from fomm_tf.inference import exported_backends
  described = {}
  converted = {}  # signature -> float32 bytes, which int8 quantises
  for quantization in quantizations:
    os.makedirs(os.path.join(staging, layout.ONNX, quantization))
    for signature in layout.ONNX_FILES:
      actual_quantization = tflite_lib.effective_quantization(signature, quantization)
      relpath = layout.onnx_relpath(quantization, signature)
      start = time.time()
      if signature not in converted:
        converted[signature] = onnx_export.convert(loaded.signatures[signature], relpath)
      content = converted[signature]
      converter = _converter_version()
      if actual_quantization == "int8":
        content = onnx_export.quantize_int8(content, samples[signature], relpath)
        converter += f", onnxruntime.quantization {exported_backends.import_onnxruntime().__version__}"
      report(f"converted {relpath} in {time.time() - start:.1f} s")
      files.write_bytes_atomically(os.path.join(staging, relpath), content, ExportError)
      session = exported_backends.onnx_session(content)
      names = [o.name for o in session.get_outputs()]
      outputs = dict(zip(names, session.run(names, inputs[signature])))
      described[relpath] = {
          "kind": "onnx",
          "quantization": actual_quantization,
          "converter": converter,
          "size_bytes": len(content),
          **onnx_export.describe(content),
          **evaluation.compare(outputs, expected[signature])
      }
  return described


def _converter_version():
  import tf2onnx  # pylint: disable=import-outside-toplevel
  from google.protobuf.internal import api_implementation  # pylint: disable=import-outside-toplevel
  # Which protobuf tf2onnx ran on decides the conversion's memory (export/cli.py: prefer_pure_python_protobuf).
  return f"tf2onnx {tf2onnx.__version__} (protobuf {api_implementation.Type()})"


def _animation_errors(staging, manifest, quantizations, inputs, expected, kind="tflite"):
  """Whole-chain error of each TFLite (or ONNX) variant (detect, normalise, encode, generate) against Keras."""
  from fomm_tf.inference import exported_backends
  errors = {}
  make = exported_backends.TFLiteBackend if kind == "tflite" else exported_backends.OnnxBackend
  for quantization in quantizations:
    backend = make(staging, quantize=quantization, manifest=manifest)
    kp_source = backend.detect_keypoints(inputs["source"])
    kp_driving = backend.detect_keypoints(inputs["driving"])
    kp_initial = {"value": inputs["kp_driving_initial_value"], "jacobian": inputs["kp_driving_initial_jacobian"]}
    relative = bool(inputs["relative"])
    kp_norm = backend.normalize_kp(kp_source,
                                   kp_driving,
                                   kp_initial,
                                   adapt_movement_scale=bool(inputs["adapt_scale"]),
                                   use_relative_movement=relative,
                                   use_relative_jacobian=relative)
    prediction = backend.generate(backend.prepare_source(inputs["source"]), kp_source, kp_norm)
    errors[quantization] = evaluation.compare({"prediction": prediction}, expected)
  return errors


def load_representative_frames(paths, frame_shape, max_frames):
  """Up to `max_frames` float32 frames from .npy files (N, H, W, C), images or videos.

  Frames of the model's exact size are used as they are; others are centre
  cropped and resized as animation does (square models only).
  """
  from fomm_tf.inference import pipeline
  from fomm_tf.io import media
  frame_shape = tuple(frame_shape)
  frames = []
  for path in paths:
    if len(frames) >= max_frames:
      break
    if not os.path.exists(path):
      raise ExportError(f"{path}: no such file or directory")
    if path.endswith(".npy"):
      # Memory-mapped: only the frames used are ever read, whatever the header claims.
      try:
        array = np.load(files.check_regular_file(path, ExportError, ".npy file"), mmap_mode="r", allow_pickle=False)
      except (OSError, ValueError) as error:
        raise ExportError(f"{path}: not a readable .npy array: {one_line(error)}") from None
      if array.ndim != 4 or array.shape[-1] != frame_shape[2] or array.dtype.kind not in "fu":
        raise ExportError(f"{path}: expected frames of shape (N, H, W, {frame_shape[2]}), got {array.shape} "
                          f"{array.dtype}")
      media.check_pixels(path, array.shape[1], array.shape[2], "frame")
      items = [np.array(frame) for frame in array[:max_frames - len(frames)]]
    elif media.is_image_path(path) and not os.path.isdir(path):
      items = [media.read_image(path)]
    else:
      items = media.read_video_frames(path, max_frames=max_frames - len(frames))
    for frame in items:
      if frame.dtype == np.uint8:
        frame = frame.astype(np.float32) / 255.0
      if not np.all(np.isfinite(frame)) or frame.min() < 0 or frame.max() > 1:
        raise ExportError(f"{path}: float frames must be finite and in [0, 1], got range "
                          f"[{np.nanmin(frame):.3g}, {np.nanmax(frame):.3g}]")
      if tuple(frame.shape) != frame_shape:
        if frame_shape[0] != frame_shape[1]:
          raise ExportError(f"{path}: frames of shape {frame.shape} need resizing, which works for "
                            f"square models only (this one is {frame_shape[0]}x{frame_shape[1]}); "
                            "give frames of that size")
        frame = pipeline.prepare_frame(frame, frame_shape[0])
      frames.append(np.asarray(frame, np.float32))
  if not frames:
    raise ExportError(f"representative data: no frames in {', '.join(paths)}")
  return np.stack(frames[:max_frames])
