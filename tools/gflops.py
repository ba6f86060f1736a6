"""Prints the GFLOPs of a model's animation graphs: per signature, first frame and further frames.

  .venv/bin/python tools/gflops.py --config=vox-256
  .venv/bin/python tools/gflops.py --flagfile=configs/taichi-256.flags

Counted from the graphs (fomm_tf/export/flops.py); weights do not matter, so
the model is built with random weights.
"""

import os
import sys

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO_ROOT not in sys.path:
  sys.path.insert(0, REPO_ROOT)

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from fomm_tf import cli  # pylint: disable=g-import-not-at-top,wrong-import-position
from fomm_tf import errors  # pylint: disable=g-import-not-at-top,wrong-import-position


def define_flags(flag_values):
  cli.define_model_flags(flag_values, checkpoint_help=None)


def run(flag_values):
  """Prints the table; returns animation_gflops' dict."""
  from fomm_tf.export import flops  # pylint: disable=import-outside-toplevel
  cfg = cli.resolve_config(flag_values)
  if cfg is None:
    raise errors.UsageError("no model config: pass --config=NAME (e.g. vox-256) or --flagfile=configs/NAME.flags")
  import fomm_tf  # pylint: disable=import-outside-toplevel
  result = flops.animation_gflops(fomm_tf.load_model(cfg))
  print(f"{cfg.source}: GFLOPs at batch 1 (counted from the graphs)")
  for name, value in result["signatures"].items():
    print(f"  {name:<22} {value:10.3f}")
  print(f"  {'first frame':<22} {result['first_frame']:10.3f}")
  print(f"  {'further frame':<22} {result['further_frame']:10.3f}")
  return result


main = cli.main_function(define_flags, run)

if __name__ == "__main__":
  main()
