"""PSNR of an export's every TFLite and ONNX variant against the same model in Keras float32, on your clips.

  python -m fomm_tf.export --config=synthetic-128-lite --formats=tflite,onnx \
      --quantize=float32,float16,dynamic_int8,int8 --representative_data=calibration.mp4 --output_dir=EXPORT
  python tools/precision_psnr.py --config=synthetic-128-lite --export_dir=EXPORT --clip=a.mp4 --clip=b.mp4
  python tools/precision_psnr.py --flagfile=configs/vox-256-lite.flags --checkpoint=CKPT --export_dir=EXPORT \
      --source_image=photo.png --clip=driving.mp4

Which precision keeps a model's frames close to float32 depends on its trained weights and on the calibration
frames of its int8 files, not on the architecture alone: measure your own model on clips that the calibration
did not see. Each clip (a video or frame folder, at most --max_frames frames) drives the source (its own first
frame, or --source_image) with relative motion, as `python -m fomm_tf.animate` does, once through Keras float32
(the reference) and once through every variant in the export. Printed: PSNR in dB per clip, the minimum and the
mean. The float32 rows also check that the export holds this model's weights (about 120 dB when it does).
"""

import itertools
import os
import sys

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO_ROOT not in sys.path:
  sys.path.insert(0, REPO_ROOT)

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import flags  # pylint: disable=g-import-not-at-top,wrong-import-position
import numpy as np  # pylint: disable=g-import-not-at-top,wrong-import-position

from fomm_tf import cli  # pylint: disable=g-import-not-at-top,wrong-import-position
from fomm_tf.config import fomm_config  # pylint: disable=g-import-not-at-top,wrong-import-position
from fomm_tf.errors import UsageError  # pylint: disable=g-import-not-at-top,wrong-import-position
from tools import machine  # pylint: disable=g-import-not-at-top,wrong-import-position

# The config sections of the networks that animate (the discriminator only trains).
NETWORK_SECTIONS = ("model", "kp_detector", "generator", "dense_motion")


def define_flags(flag_values):
  kw = {"flag_values": flag_values}
  cli.define_model_flags(flag_values)
  flags.DEFINE_string("export_dir", None, "An export of this model (python -m fomm_tf.export).", **kw)
  flags.DEFINE_multi_string("clip", [], "A driving video or frame folder (repeat the flag for more).", **kw)
  flags.DEFINE_string("source_image", None, "The source of every clip (default: each clip's first frame).", **kw)
  flags.DEFINE_integer("max_frames", 64, "Driving frames read per clip.", **kw)
  flags.DEFINE_integer("batch_size", 4, "Driving frames per network call.", **kw)


def variants(export_dir, manifest):
  """[(row name, backend factory)] for every variant the manifest records: its TFLite quantisations, then ONNX (on
  ONNX Runtime, and on OpenVINO where it is installed)."""
  from fomm_tf.inference import export_layout as layout  # pylint: disable=import-outside-toplevel
  from fomm_tf.inference import exported_backends  # pylint: disable=import-outside-toplevel
  # Exports written before ONNX had an int8 variant record no onnx_quantizations and hold float32 files only.
  onnx_quantizations = manifest.get("onnx_quantizations", ["float32"]) if layout.ONNX in manifest["formats"] else []
  engines = [("tflite", manifest["quantizations"]), ("onnx", onnx_quantizations)]
  if exported_backends.openvino_installed():
    engines.append(("openvino", onnx_quantizations))
  factory = lambda engine, quantization: lambda: exported_backends.VARIANT_BACKENDS[engine](export_dir,
                                                                                            quantize=quantization)
  return [(f"{engine} {q}", factory(engine, q)) for engine, quantizations in engines for q in quantizations]


def run(flag_values):
  """Prints the table; returns {row name: [PSNR per clip]}."""
  from fomm_tf.export import evaluation  # pylint: disable=import-outside-toplevel
  from fomm_tf.inference import export_layout as layout  # pylint: disable=import-outside-toplevel
  from fomm_tf.inference import pipeline  # pylint: disable=import-outside-toplevel
  from fomm_tf.io import media  # pylint: disable=import-outside-toplevel
  if not flag_values.export_dir:
    raise UsageError("--export_dir is required (an export of the model, python -m fomm_tf.export)")
  if not flag_values.clip:
    raise UsageError("--clip is required (a driving video or frame folder; repeat the flag for more)")
  cli.require_positive(flag_values, "max_frames", "batch_size")
  # The export is checked before the model loads (seconds for a 256x256 one).
  manifest = layout.read_manifest(flag_values.export_dir)
  kinds = {"config": dict, "formats": list, "quantizations": list}
  if not all(isinstance(manifest.get(key), kind) for key, kind in kinds.items()):
    raise UsageError(f"{flag_values.export_dir}: its manifest lacks the config, formats or quantizations that "
                     "python -m fomm_tf.export records")
  rows = variants(flag_values.export_dir, manifest)
  if not rows:
    raise UsageError(f"{flag_values.export_dir} holds no TFLite or ONNX files (export with --formats=tflite,onnx)")
  cfg, model = cli.load_model_from_flags(flag_values)
  exported = fomm_config.FommConfig.from_flat(manifest["config"]).flat()
  given = cfg.flat()
  differing = sorted(name for name, field in fomm_config.FLAG_FIELDS.items()
                     if field.section in NETWORK_SECTIONS and exported[name] != given[name])
  if differing:
    raise UsageError(f"{flag_values.export_dir} was exported from other networks than the model given "
                     f"({', '.join('--' + name for name in differing[:4])} differ)")
  size = model.frame_shape[0]
  source = None
  if flag_values.source_image:
    source = pipeline.prepare_frame(media.read_image(flag_values.source_image), size)
  clips = []
  for path in flag_values.clip:
    # Framed one by one as they are decoded: a long or large video never sits in memory at its own size.
    frames = [pipeline.prepare_frame(f, size) for f in itertools.islice(media.open_video(path), flag_values.max_frames)]
    if len(frames) < 2:
      raise UsageError(f"{path}: a clip needs at least 2 frames, got {len(frames)}")
    clips.append((os.path.basename(os.path.normpath(path)), source if source is not None else frames[0], frames))
  animate = lambda backend, src, driving: np.stack(
      list(pipeline.animate(backend, src, driving, batch_size=flag_values.batch_size)))
  references = [animate(model, src, driving) for _, src, driving in clips]
  results = {}
  for name, make in rows:
    backend = make()
    results[name] = [
        evaluation.psnr(animate(backend, src, driving), ref) for (_, src, driving), ref in zip(clips, references)
    ]
  print(f"{cfg.source} at {size}x{size}, {flag_values.export_dir}; PSNR dB against Keras float32; "
        f"{machine.describe()}")
  print("| variant | min | mean | " + " | ".join(name for name, _, _ in clips) + " |")
  print("|---" * (3 + len(clips)) + "|")
  for name, values in results.items():
    print(f"| {name} | {min(values):.1f} | {np.mean(values):.1f} | " + " | ".join(f"{v:.1f}" for v in values) + " |")
  return results


main = cli.main_function(define_flags, run)

if __name__ == "__main__":
  main()
