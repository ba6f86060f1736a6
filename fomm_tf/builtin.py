"""The built-in demo model and sample media that ship inside the package.

The model is trained by this project's own trainer on the synthetic puppet
dataset (configs/synthetic-128.flags; `tools/train_builtin_model.sh` reproduces
it). Its weights are stored as float16 in a compressed .npz (a few MB) keyed by
Keras variable path.
"""

import os
import tempfile

import numpy as np

ASSETS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "assets")
CONFIG = "synthetic-128"
WEIGHTS = os.path.join(ASSETS_DIR, "synthetic-128.weights.npz")
SAMPLE_SOURCE = os.path.join(ASSETS_DIR, "sample_source.png")
SAMPLE_DRIVING = os.path.join(ASSETS_DIR, "sample_driving.mp4")


class WeightsFileError(ValueError):
  pass


def _inference_variables(model):
  return {v.path: v for v in model.kp_detector.weights + model.generator.weights}


def save_npz_weights(model, path, dtype=np.float16):
  """Writes the keypoint detector and generator weights (not the discriminator) to `path` atomically."""
  arrays = {name: v.numpy().astype(dtype) for name, v in _inference_variables(model).items()}
  directory = os.path.dirname(os.path.abspath(path))
  fd, tmp = tempfile.mkstemp(dir=directory, prefix=".weights-", suffix=".npz")
  os.close(fd)
  try:
    np.savez_compressed(tmp, **arrays)
    os.chmod(tmp, 0o644)  # mkstemp's private mode would make an installed package unreadable to others.
    os.replace(tmp, path)
  except BaseException:
    if os.path.exists(tmp):
      os.remove(tmp)
    raise
  return path


def load_npz_weights(model, path):
  """Assigns weights saved by `save_npz_weights`; every variable must be present with its shape."""
  try:
    data = np.load(path, allow_pickle=False)
  except (OSError, ValueError) as e:
    raise WeightsFileError(f"{path}: not a weights .npz file ({str(e).splitlines()[0]})") from None
  with data:
    variables = _inference_variables(model)
    missing = sorted(set(variables) - set(data.files))
    if missing:
      raise WeightsFileError(f"{path}: no weights for {missing[0]} ({len(missing)} missing); "
                             f"was it saved for another config?")
    extra = sorted(set(data.files) - set(variables))
    if extra:
      raise WeightsFileError(f"{path}: {extra[0]} is not a variable of this model ({len(extra)} extra)")
    assignments = []
    for name, variable in variables.items():
      array = data[name]
      if tuple(array.shape) != tuple(variable.shape):
        raise WeightsFileError(f"{path}: {name} has shape {list(array.shape)}, the model expects "
                               f"{list(variable.shape)}")
      assignments.append((variable, array.astype(np.float32)))
  for variable, array in assignments:
    variable.assign(array)
  return path


def load_builtin_model():
  """The shipped synthetic-128 FommModel, ready for animation."""
  from fomm_tf import config as config_lib
  from fomm_tf.models import fomm_model
  if not os.path.isfile(WEIGHTS):
    raise WeightsFileError(f"{WEIGHTS}: the built-in weights are missing from this installation")
  model = fomm_model.FommModel(config_lib.load_config(CONFIG), build_discriminator=False)
  load_npz_weights(model, WEIGHTS)
  return model
