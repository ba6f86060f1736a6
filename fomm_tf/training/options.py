"""The options of a training run (data, cadence, checkpoints, seeds, precision), declared once with `param()`.

From each declaration come the `python -m fomm_tf.train` flag, its help, its type and its range check, which
runs when the options are made: before any data is read or network built, whether the run comes from the
command line or from `Trainer(...)` in Python.
"""

import dataclasses
from typing import Optional

from fomm_tf.config import schema
from fomm_tf.config.schema import param
from fomm_tf.errors import UsageError


def _not_blank(value):
  # An empty path usually is an unset shell variable; it must not silently mean "none".
  return None if value is None or value.strip() else "is empty (an unset shell variable?); give a path or leave it out"


@dataclasses.dataclass(frozen=True)
class RunOptions(schema.Section):
  """How long a training (or distillation) run goes, and how often it writes what."""
  ERROR = UsageError
  max_steps: Optional[int] = param(None,
                                   "Stop after this many global steps (default: the config's epochs).",
                                   check=schema.at_least(1))
  batch_size: Optional[int] = param(None,
                                    "Global batch size (default: the config's train_batch_size).",
                                    check=schema.at_least(1))
  vgg19_weights: str = param(
      "imagenet", "VGG19 weights for the perceptual loss: imagenet (Keras download), a local "
      "Keras .h5, a local torchvision .pth (vgg19-dcbb9e9d.pth, the official trainer's), or "
      "random (smoke tests only); see fomm_tf/losses/vgg19.py for the input convention of "
      "each.")
  mixed_precision: Optional[str] = param(None,
                                         "Mixed precision compute dtype: bfloat16 or float16.",
                                         check=lambda v: None
                                         if v in (None, "bfloat16", "float16") else "must be bfloat16 or float16")
  jit_compile: bool = param(False,
                            "XLA-compile the training step (for accelerators: on a 2-core CPU it was 1.9x slower).")
  seed: int = param(0,
                    "Seed of the initial weights, data order, augmentation and equivariance transforms.",
                    check=schema.at_least(0))
  checkpoint_every: int = param(1000,
                                "Steps between checkpoints (plus one at each epoch end).",
                                check=schema.at_least(1))
  keep_checkpoints: int = param(3,
                                "How many of the latest checkpoints to keep (0: keep all).",
                                check=schema.at_least(0))
  summary_every: int = param(10, "Steps between TensorBoard scalars.", check=schema.at_least(1))
  image_every: int = param(500,
                           "Steps between TensorBoard image grids (0: never; the first is at step 1).",
                           check=schema.at_least(0))
  init_checkpoint: Optional[str] = param(None, "Start from these weights (e.g. vox-256 for vox-adv-256); ignored "
                                         "when resuming.",
                                         check=_not_blank)
  init_config: Optional[str] = param(None, "The config (a name or flagfile) of --init_checkpoint when it is not "
                                     "this run's, e.g. the same model with a wider generator: then only the "
                                     "variables whose path and shape match start from it, the rest from --seed.",
                                     check=_not_blank)
