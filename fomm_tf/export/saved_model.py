"""Writes a FommModel as a SavedModel through Keras 3 export (keras.export.ExportArchive).

The archive tracks the Keras layers, so the SavedModel carries their variables
and every signature reads them; TFLite files are converted from this
SavedModel (see tflite.py), never from a hand-made tf.Module around Keras 3
layers, whose variables the converter would not freeze.
"""

import keras
import tensorflow as tf

from fomm_tf import errors
from fomm_tf.inference import export_checks
from fomm_tf.inference import export_layout as layout


def build_archive(functions, names=layout.SAVED_MODEL_SIGNATURES):
  """An ExportArchive with one endpoint per signature name (tracked layers, named TensorSpecs)."""
  archive = keras.export.ExportArchive()
  archive.track(functions.model.kp_detector)
  archive.track(functions.model.generator)
  for name in names:
    archive.add_endpoint(name, functions.function(name), input_signature=functions.specs[name])
  return archive


def write_saved_model(functions, path, names=layout.SAVED_MODEL_SIGNATURES):
  """Writes the SavedModel of `functions` (an ExportFunctions) to the directory `path`.

  A write that fails in TensorFlow's file layer (a full disk, a read-only or vanished directory) raises
  tf.errors, not OSError, so it is made an ExportError naming the path here; plain OSErrors are the
  caller's staging directory's to report (files.staged_directory), which also takes the partial files away.
  """
  archive = build_archive(functions, names)
  try:
    archive.write_out(path, verbose=False)
  except (tf.errors.ResourceExhaustedError, tf.errors.PermissionDeniedError, tf.errors.NotFoundError,
          tf.errors.FailedPreconditionError) as error:
    reason = "no space left on device" if "No space left" in str(error) else errors.one_line(error.message)
    raise errors.ExportError(f"{path}: cannot write the SavedModel: {reason}") from None
  return path


# Shared with the SavedModel backend, which checks a loaded export against the manifest's record.
signature_io = export_checks.saved_model_signature_io
