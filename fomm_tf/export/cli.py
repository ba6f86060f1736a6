"""`python -m fomm_tf.export` (also `fomm-export`): a SavedModel, TFLite and ONNX files, with a manifest of errors.

  python -m fomm_tf.export --flagfile=configs/vox-256.flags --checkpoint=vox-cpk.pth.tar \\
      --output_dir=export/vox-256 --quantize=float32,float16,dynamic_int8,int8 \\
      --representative_data=driving.mp4

Writes OUTPUT_DIR/saved_model/, OUTPUT_DIR/tflite/<quantization>/{kp_detector,source_encoder,generator,
normalize_kp}.tflite, with --formats=onnx OUTPUT_DIR/onnx/float32/<the same names>.onnx (and onnx/int8/ with
--quantize=int8; needs `pip install fomm-tf[onnx]`; see docs/onnx.md) and OUTPUT_DIR/manifest.json; nothing is
left behind when the export fails or is interrupted, and --overwrite only replaces a previous export that holds
none of the export's inputs.
"""

import os
import sys

from absl import flags
from absl import logging

from fomm_tf import cli
from fomm_tf.errors import UsageError
from fomm_tf.export import preflight

# TensorFlow's C++ INFO and WARNING lines (one set per temporary SavedModel the converter writes) drown the
# progress output. Set here, before TensorFlow loads (this module does not load it), so that `fomm-export` and
# `python -m fomm_tf.export` both get it, and only when the caller has not chosen a level.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def define_flags(flag_values):
  """Defines the config flags and the export flags on `flag_values`."""
  cli.define_model_flags(flag_values,
                         checkpoint_help="Official .pth.tar or a checkpoint of this project "
                         "(default: random weights, with a warning).")
  kw = {"flag_values": flag_values}
  flags.DEFINE_string("output_dir", None, "Directory to create with the exported files.", **kw)
  flags.DEFINE_list("formats", ["saved_model", "tflite"], "What to write: saved_model, tflite, onnx "
                    "(onnx needs pip install fomm-tf[onnx]).", **kw)
  flags.DEFINE_list(
      "quantize", ["float32"], "Variants: float32, float16, dynamic_int8, int8 for TFLite; ONNX writes "
      "float32 and, with int8 here, int8 too.", **kw)
  flags.DEFINE_boolean("overwrite", False, "Replace --output_dir when it holds a previous export.", **kw)
  flags.DEFINE_list(
      "representative_data", [], "Frames for int8 calibration and the error measurements: "
      ".npy arrays (N, H, W, 3), images or videos. Required for --quantize=int8.", **kw)
  flags.DEFINE_integer("num_calibration_frames", 16, "Frames read from --representative_data.", **kw)


def run(flag_values):
  """Exports as the flags say; returns the manifest."""
  # Checked before TensorFlow loads and the model is built, so that a refusal is immediate.
  if not flag_values.output_dir:
    raise UsageError("--output_dir is required")
  formats = preflight.parse_formats(flag_values.formats)
  if "onnx" in formats:
    prefer_pure_python_protobuf()  # Before the converter's check, which loads protobuf.
  preflight.require_formats(formats)
  tflite_quantizations, onnx_quantizations = preflight.split_quantizations(formats, flag_values.quantize)
  inputs = [("checkpoint", cli.checkpoint_flag(flag_values))
           ] + [("representative_data", path) for path in flag_values.representative_data]
  preflight.check_output_dir(os.path.abspath(flag_values.output_dir), flag_values.overwrite, inputs)
  if flag_values.num_calibration_frames < 3:
    raise UsageError(f"--num_calibration_frames must be >= 3, got {flag_values.num_calibration_frames}")
  if "int8" in tflite_quantizations + onnx_quantizations and not flag_values.representative_data:
    raise UsageError("--quantize=int8 needs --representative_data (frames to calibrate on)")
  from fomm_tf.export import exporter  # pylint: disable=import-outside-toplevel
  cfg, model = cli.load_model_from_flags(flag_values)
  frames = None
  if flag_values.representative_data:
    frames = exporter.load_representative_frames(flag_values.representative_data, model.frame_shape,
                                                 flag_values.num_calibration_frames)
  manifest = exporter.export_model(model,
                                   flag_values.output_dir,
                                   formats=formats,
                                   quantizations=flag_values.quantize,
                                   overwrite=flag_values.overwrite,
                                   representative_frames=frames,
                                   checkpoint=flag_values.checkpoint or cli.builtin_weights(cfg),
                                   num_calibration_frames=flag_values.num_calibration_frames,
                                   progress=lambda message: print(message, flush=True),
                                   inputs=inputs)
  print_summary(flag_values.output_dir, manifest)
  return manifest


def prefer_pure_python_protobuf():
  """Has protobuf load its pure-Python implementation (unless the caller chose one), for an ONNX export.

  tf2onnx's optimiser passes (15 optimisers, repeated until nothing changes: 45 or more) each rewrite every node's
  attributes, weights included; under protobuf's default upb implementation the replaced attributes stay in the
  node's arena until the node is freed, so every pass kept another copy of the network's weights. vox-256 on the
  AVX512 machine: SavedModel + TFLite + ONNX float32 peaked at 14.7 GB resident (68 s), 5.6 GB (63 s) with this;
  TFLite and ONNX float32 + int8 11.2 GB (99 s), 5.6 GB (107 s); the same networks (ONNX Runtime's outputs
  identical). But pure-Python protobuf makes building and writing graphs slower: small models gain no memory and
  export 2.7x slower (synthetic-128 and vox-256-lite with ONNX 15 -> 40 and 17 -> 45 s), so exports without ONNX
  keep upb. docs/onnx.md. Only before anything has loaded protobuf (this command loads it right after, checking for
  the converter): later it could not take effect, and the variable would only reach child processes (e.g. a test's
  process running the command in-process). The manifest's "converter" says which implementation ran.
  """
  if "google.protobuf" not in sys.modules:
    os.environ.setdefault("PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION", "python")


def print_summary(output_dir, manifest):
  rows = []
  for path, info in sorted(manifest["files"].items()):
    parts = info["signatures"].items() if info["kind"] == "saved_model" else [(None, info)]
    for signature, measured in parts:
      rows.append(_summary_row(f"{path}:{signature}" if signature else path, measured))
  for kind in ("tflite", "onnx"):
    for quantization, measured in manifest.get(f"{kind}_animation", {}).items():
      rows.append(_summary_row(f"animation with {kind}/{quantization}", measured))
  print(f"exported to {output_dir} (errors against the Keras model, {manifest['evaluation_input']}):")
  print("\n".join(rows))


def _summary_row(name, measured):
  error = max(measured["max_abs_error"].values())
  psnr = f"{measured['psnr_db']:.1f} dB" if "psnr_db" in measured else "-"
  return f"  {name:<48} max abs error {error:<9.3g} PSNR {psnr}"


def _quiet_logging(flag_values):
  # TensorFlow logs every temporary SavedModel the converter writes (through absl, at INFO); progress is
  # printed instead, so only warnings are logged unless --verbosity asks for more.
  if not flag_values["verbosity"].present:
    logging.set_verbosity(logging.WARNING)


main = cli.main_function(define_flags, run, before_run=_quiet_logging)
