"""The built-in demo model and sample media that ship inside the package.

The model is trained by this project's own trainer on the synthetic puppet
dataset (configs/synthetic-128.flags; `tools/train_builtin_model.sh` reproduces
it). Its weights are stored as float16 in a compressed .npz (a few MB) keyed by
Keras variable path (fomm_tf/checkpoint/npz_weights.py).
"""

import os

ASSETS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "assets")
CONFIG = "synthetic-128"
WEIGHTS = os.path.join(ASSETS_DIR, "synthetic-128.weights.npz")
SAMPLE_SOURCE = os.path.join(ASSETS_DIR, "sample_source.png")
SAMPLE_DRIVING = os.path.join(ASSETS_DIR, "sample_driving.mp4")


def load_builtin_model(dtype=None):
  """The shipped synthetic-128 FommModel, ready for animation (optionally in mixed precision)."""
  from fomm_tf.checkpoint import loading  # pylint: disable=import-outside-toplevel
  from fomm_tf.errors import CheckpointError  # pylint: disable=import-outside-toplevel
  if not os.path.isfile(WEIGHTS):
    raise CheckpointError(f"{WEIGHTS}: the built-in weights are missing from this installation")
  return loading.load_model(CONFIG, checkpoint=WEIGHTS, dtype=dtype)
