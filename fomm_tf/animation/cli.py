"""`python -m fomm_tf.animate` (also `fomm-animate`): animate a still image with the motion of a driving video.

  python -m fomm_tf.animate --flagfile=configs/vox-256.flags --checkpoint=vox-cpk.pth.tar \\
      --source_image=face.png --driving_video=driving.mp4 --result_video=result.mp4

With no media, model or checkpoint flags it animates the built-in sample with
the built-in model. Every flag value is checked before anything is loaded, the
result never replaces one of the inputs, and it is written to a hidden
temporary file renamed at the end, so an error or a signal leaves nothing behind.
"""

import os

from absl import flags

from fomm_tf import builtin
from fomm_tf import cli
from fomm_tf.animation import job
from fomm_tf.animation import options as options_lib
from fomm_tf.animation import progress as progress_lib
from fomm_tf.errors import UsageError
from fomm_tf.config import flagfiles

BACKENDS = ("keras", "saved_model", "tflite", "onnx", "openvino")


def define_backend_flags(flag_values, default_backend="keras"):
  """The model flags and what runs the networks (shared with `python -m fomm_tf.live`, whose default backend is
  openvino)."""
  cli.define_model_flags(flag_values)
  kw = {"flag_values": flag_values}
  flags.DEFINE_enum(
      "backend", default_backend, list(BACKENDS),
      "What runs the networks: keras (TensorFlow); openvino (OpenVINO Runtime: the Keras model converted in "
      "memory, or with --export_dir the export's ONNX files, which need fomm-tf[openvino]); onnx (ONNX Runtime, "
      "needs fomm-tf[onnx]); saved_model, tflite (an --export_dir).", **kw)
  flags.DEFINE_string("export_dir", None, "Export directory (from fomm_tf.export) for "
                      "--backend=saved_model|tflite|onnx|openvino.", **kw)
  flags.DEFINE_boolean(
      "allow_modified_export", False, "Run an --export_dir whose files differ from the SHA-256 "
      "its manifest recorded (or one exported before hashes were recorded), with a warning. The "
      "op allowlist is checked regardless (docs/security.md).", **kw)
  flags.DEFINE_enum(
      "mixed_precision", None, ["bfloat16", "float16"],
      "--backend=keras: compute in this precision (bfloat16 is ~1.8x faster on CPUs with "
      "AVX512-BF16; see tools/benchmark_animate.py).", **kw)
  flags.DEFINE_string("quantize", "float32", "TFLite (or ONNX) variant for --backend=tflite (onnx, openvino).", **kw)


def define_flags(flag_values):
  """Defines the config flags (--crop among them) and the animation flags on `flag_values`."""
  define_backend_flags(flag_values)
  flagfiles.define_section_flags(options_lib.AnimationOptions,
                                 flag_values,
                                 skip=options_lib.AnimationOptions.MODEL_FIELDS)


def make_backend(flag_values, cfg):
  """The Backend the flags ask for; with no config, the built-in model."""
  if flag_values.mixed_precision and flag_values.backend != "keras":
    runs = ("the Keras model converted in float32"
            if cli.converts_keras_model(flag_values) else "the precision it was exported in (--quantize)")
    raise UsageError(f"--mixed_precision is for --backend=keras; --backend={flag_values.backend} runs {runs}")
  if flag_values.backend == "keras":
    from fomm_tf.inference import keras_backend  # pylint: disable=import-outside-toplevel
    return keras_backend.KerasBackend(_keras_model(flag_values, cfg))
  from fomm_tf.inference import exported_backends  # pylint: disable=import-outside-toplevel
  if cli.converts_keras_model(flag_values):
    exported_backends.check_openvino_conversion(flag_values.quantize)  # Before openvino_model loads TensorFlow.
    from fomm_tf.inference import openvino_model  # pylint: disable=import-outside-toplevel
    return openvino_model.from_keras_model(lambda: _keras_model(flag_values, cfg), flag_values.quantize)
  if not flag_values.export_dir:
    raise UsageError(f"--backend={flag_values.backend} needs --export_dir (a directory written by fomm_tf.export)")
  if flag_values.backend == "saved_model":
    return exported_backends.SavedModelBackend(flag_values.export_dir, allow_modified=flag_values.allow_modified_export)
  return exported_backends.open_exported(flag_values.backend,
                                         flag_values.export_dir,
                                         flag_values.quantize,
                                         allow_modified=flag_values.allow_modified_export)


def _keras_model(flag_values, cfg):
  """The model of the flags: with no config the built-in one, else the config with --checkpoint."""
  if cfg is None:
    print(f"using the built-in {builtin.CONFIG} model (trained on synthetic puppets)")
    return builtin.load_builtin_model(dtype=flag_values.mixed_precision)
  return cli.load_model(cfg, cli.checkpoint_flag(flag_values), dtype=flag_values.mixed_precision)


def use_samples(flag_values):
  """With no media and no checkpoint, and no model or a built-in one, animate the built-in sample."""
  if flag_values.source_image or flag_values.driving_video:
    return False
  runs_keras_model = flag_values.backend == "keras" or cli.converts_keras_model(flag_values)
  if flag_values.checkpoint is not None or not runs_keras_model:
    return False
  if cli.config_flags_given(flag_values) and builtin.builtin_name(cli.resolve_config(flag_values)) is None:
    return False
  flag_values.source_image = builtin.SAMPLE_SOURCE
  flag_values.driving_video = builtin.SAMPLE_DRIVING
  print(f"no --source_image/--driving_video: animating the built-in sample {builtin.SAMPLE_SOURCE} "
        f"with {builtin.SAMPLE_DRIVING}")
  return True


def crop_from_flags(flag_values, cfg):
  """--crop as given, else the config's (the VoxCeleb configs crop faces), else center."""
  return flag_values.crop if flag_values["crop"].present or cfg is None else cfg.animation.crop


def options_from_flags(flag_values, cfg):
  """The AnimationOptions the flags spell out, checked (nothing is read or loaded yet)."""
  checkpoint = cli.checkpoint_flag(flag_values)
  if checkpoint is not None and not cli.config_flags_given(flag_values):
    raise UsageError("--checkpoint needs its config: pass --flagfile=configs/NAME.flags (or --config=NAME)")
  options = flagfiles.section_from_flags(options_lib.AnimationOptions,
                                         flag_values,
                                         crop=crop_from_flags(flag_values, cfg),
                                         checkpoint=checkpoint)
  options.check()
  return options


class _BarProgress(job.Progress):

  def __init__(self):
    self.bar = None

  def start(self, total, batch_size):
    self.bar = progress_lib.ProgressBar(total=total, batch=batch_size)

  def update(self, done, total):
    del total
    self.bar.update(done - self.bar.done)

  def close(self):
    if self.bar is not None:
      self.bar.close()


def run(flag_values):
  use_samples(flag_values)
  cfg = cli.resolve_config(flag_values)
  options = options_from_flags(flag_values, cfg)
  backend = make_backend(flag_values, cfg)
  visualizer = cfg.visualizer if cfg is not None else None
  bar = _BarProgress()
  try:
    count = job.run(backend,
                    options,
                    progress=bar,
                    radius=visualizer.kp_size if visualizer else 5,
                    colormap=visualizer.colormap if visualizer else "gist_rainbow")
  finally:
    bar.close()
  if not options.crop_preview:
    print(f"wrote {count} frames to {os.path.abspath(options.result_video)}")


main = cli.main_function(define_flags, run)
