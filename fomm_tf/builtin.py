"""The built-in demo models and sample media that ship inside the package.

The models are trained by this project's own trainer on the synthetic puppet
dataset: `synthetic-128` (configs/synthetic-128.flags) and its distilled lite
student `synthetic-128-lite` (configs/synthetic-128-lite.flags);
`tools/train_builtin_model.sh` reproduces both. Their weights are stored as
float16 in compressed .npz files (a few MB) keyed by Keras variable path
(fomm_tf/checkpoint/npz_weights.py).
"""

import functools
import os

ASSETS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "assets")
CONFIG = "synthetic-128"
LITE_CONFIG = "synthetic-128-lite"
MODELS = (CONFIG, LITE_CONFIG)
SAMPLE_SOURCE = os.path.join(ASSETS_DIR, "sample_source.png")
SAMPLE_DRIVING = os.path.join(ASSETS_DIR, "sample_driving.mp4")


def weights_path(name=CONFIG):
  """The shipped weights file of the built-in model `name`."""
  if name not in MODELS:
    from fomm_tf.errors import UsageError  # pylint: disable=import-outside-toplevel
    raise UsageError(f"{name!r} is not a built-in model; the built-in models are {', '.join(MODELS)}")
  return os.path.join(ASSETS_DIR, f"{name}.weights.npz")


WEIGHTS = weights_path(CONFIG)


@functools.cache
def _shipped_configs():
  """{name: FommConfig} of the built-in models' flagfiles, read once (a command asks two or three times)."""
  from fomm_tf.config import flagfiles  # pylint: disable=import-outside-toplevel
  return {name: flagfiles.load_config(name) for name in MODELS}


def builtin_name(cfg):
  """The name of the built-in model whose networks `cfg` (a FommConfig, or None) describes, or None."""
  if cfg is None:
    return None
  for name, shipped in _shipped_configs().items():
    if shipped.same_networks(cfg):
      return name
  return None


def load_builtin_model(name=CONFIG, dtype=None, config=None):
  """The shipped FommModel `name` (synthetic-128 or synthetic-128-lite), ready for animation (optionally in
  mixed precision); `config` (a FommConfig of the same networks, see builtin_name) replaces the shipped one."""
  from fomm_tf.checkpoint import loading  # pylint: disable=import-outside-toplevel
  from fomm_tf.errors import CheckpointError  # pylint: disable=import-outside-toplevel
  weights = weights_path(name)
  if not os.path.isfile(weights):
    raise CheckpointError(f"{weights}: the built-in weights are missing from this installation")
  return loading.load_model(config or name, checkpoint=weights, dtype=dtype)
