"""Animate a still image with the motion of a driving video.

  python -m fomm_tf.animate --flagfile=configs/vox-256.flags --checkpoint=vox-cpk.pth.tar \
      --source_image=face.png --driving_video=driving.mp4 --result_video=result.mp4

Also importable: `fomm_tf.animate(model, source_image, driving_frames, ...)`
yields result frames lazily (see fomm_tf.animation.pipeline.animate).
"""

import sys
import types

from absl import app
from absl import flags

from fomm_tf import cli_util
from fomm_tf.animation.pipeline import animate as _animate_frames

FLAGS = flags.FLAGS


def define_flags(flag_values=FLAGS):
  """Defines the config flags and the animation flags on `flag_values`."""
  cli_util.define_model_flags(flag_values)
  kw = {"flag_values": flag_values}
  flags.DEFINE_string("source_image", None, "The image to animate (PNG, JPEG, ...).", **kw)
  flags.DEFINE_string("driving_video", None, "The motion: a video file (mp4, mov, avi, webm, mkv, gif), "
                      "a folder of frames or a horizontal frame strip.", **kw)
  flags.DEFINE_string("result_video", "animation.mp4", "Output .mp4 (H.264) or .gif.", **kw)
  flags.DEFINE_boolean("relative", True, "Relative motion transfer (--norelative: absolute keypoints).", **kw)
  flags.DEFINE_boolean("adapt_scale", False, "Scale relative motion by the keypoints' convex-hull areas.", **kw)
  flags.DEFINE_boolean("find_best_frame", False, "Start from the driving frame whose pose best matches the "
                       "source (found with our own keypoint detector).", **kw)
  flags.DEFINE_integer("best_frame", None, "Use this driving frame (0-based) as the initial frame.", **kw)
  flags.DEFINE_boolean("audio", False, "Copy the driving video's audio into the result.", **kw)
  flags.DEFINE_integer("batch_size", 8, "Driving frames animated per step.", **kw)
  flags.DEFINE_float("fps", None, "Result frame rate (default: the driving video's).", **kw)
  flags.DEFINE_boolean("visualize", False, "Write source | driving with keypoints | result side by side.", **kw)
  flags.DEFINE_enum("backend", "keras", ["keras", "saved_model", "tflite"], "What runs the networks.", **kw)
  flags.DEFINE_string("model_dir", None, "Export directory for --backend=saved_model|tflite.", **kw)
  flags.DEFINE_enum("mixed_precision", None, ["bfloat16", "float16"],
                    "--backend=keras: compute in this precision (bfloat16 is ~1.8x faster on CPUs with "
                    "AVX512-BF16; see tools/benchmark_animate.py).", **kw)
  flags.DEFINE_string("quantize", "float32", "TFLite variant for --backend=tflite.", **kw)
  flags.DEFINE_string("output_size", None, "Resize the result to N or HxW (default: the model's frame size).", **kw)
  flags.DEFINE_enum("fit", "crop", ["crop", "pad"],
                    "How non-square inputs become square: centre crop or black padding (never stretched).", **kw)


def parse_size(text):
  """'512' -> (512, 512); '480x640' -> (480, 640)."""
  parts = text.lower().split("x")
  try:
    size = tuple(int(p) for p in parts)
  except ValueError:
    raise ValueError(f"--output_size must be N or HxW, got {text!r}") from None
  if len(size) == 1:
    size = size * 2
  if len(size) != 2 or min(size) < 1:
    raise ValueError(f"--output_size must be N or HxW, got {text!r}")
  return size


def _callable_module():
  """Lets `fomm_tf.animate(...)` call the animation function even after this module is imported."""

  class _Module(types.ModuleType):

    def __call__(self, *args, **kwargs):
      return _animate_frames(*args, **kwargs)

  sys.modules[__name__].__class__ = _Module


_callable_module()


def main(argv):
  from fomm_tf.animation import cli
  cli_util.run_main(argv, lambda: cli.run(FLAGS), cli.USER_ERRORS)


if __name__ == "__main__":
  define_flags()
  app.run(main)
