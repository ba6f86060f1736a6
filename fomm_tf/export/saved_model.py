"""Writes a FommModel as a SavedModel: one concrete function per signature, traced once.

The root object tracks the variables the functions capture (as Keras 3's ExportArchive does), so the SavedModel
carries them and TFLite conversion (tflite.py) freezes them; a hand-made tf.Module that tracked the Keras 3 layers
instead would not. The functions are saved as concrete functions, not tf.functions: tf.saved_model.save traces a
tf.function again under its own save context (whose variable policy is part of the tracing key), and
ExportArchive.write_out traces each endpoint once more before that to list its variables, so an ExportArchive
traced every signature twice (the tiny model's SavedModel: 15.5 s -> 4.5 s here).
"""

import tensorflow as tf

from fomm_tf import errors
from fomm_tf.inference import export_checks
from fomm_tf.inference import export_layout as layout


def build_root(functions, names=layout.SAVED_MODEL_SIGNATURES):
  """(the trackable root to save, {signature name: its concrete function}), each function traced once."""
  concrete = {
      name:
          tf.function(functions.function(name), input_signature=functions.specs[name],
                      autograph=False).get_concrete_function() for name in names
  }
  captured = {}
  for function in concrete.values():
    for variable in function.variables:
      captured.setdefault(id(variable), variable)
  root = tf.Module()
  root.captured_variables = list(captured.values())
  for name, function in concrete.items():
    setattr(root, name, function)
  return root, concrete


def write_saved_model(functions, path, names=layout.SAVED_MODEL_SIGNATURES):
  """Writes the SavedModel of `functions` (an ExportFunctions) to the directory `path`.

  A write that fails in TensorFlow's file layer (a full disk, a read-only or vanished directory) raises
  tf.errors, not OSError, so it is made an ExportError naming the path here; plain OSErrors are the
  caller's staging directory's to report (files.staged_directory), which also takes the partial files away.
  """
  root, concrete = build_root(functions, names)
  try:
    tf.saved_model.save(root, path, signatures=concrete)
  except (tf.errors.ResourceExhaustedError, tf.errors.PermissionDeniedError, tf.errors.NotFoundError,
          tf.errors.FailedPreconditionError) as error:
    reason = "no space left on device" if "No space left" in str(error) else errors.one_line(error.message)
    raise errors.ExportError(f"{path}: cannot write the SavedModel: {reason}") from None
  return path


# Shared with the SavedModel backend, which checks a loaded export against the manifest's record.
signature_io = export_checks.saved_model_signature_io
