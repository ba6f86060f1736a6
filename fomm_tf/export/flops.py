"""Floating-point operations of a model's animation graphs, counted from the graphs themselves.

Each exported signature (the same functions the SavedModel, TFLite and ONNX
files serve) is traced at batch 1 and TensorFlow's graph profiler sums the
FLOPs its ops register (a multiply-add counts 2; convolutions dominate).

  first frame    = encode_source + detect_keypoints (source) + detect_keypoints
                   (driving) + normalize_kp + generate_from_state
  further frame  = detect_keypoints + normalize_kp + generate_from_state
                   (the source is encoded once per video)

Command line: `python tools/gflops.py --config=vox-256` (or --flagfile=...).
"""

import tensorflow as tf

from fomm_tf.export import signatures as signatures_lib

# The signatures that animation runs, in the order of one frame.
SIGNATURES = ("encode_source", "detect_keypoints", "normalize_kp", "generate_from_state")


def _batch_one(spec):
  shape = list(spec.shape)
  if shape and shape[0] is None:
    shape[0] = 1
  return tf.TensorSpec(shape, spec.dtype, name=spec.name)


def signature_gflops(functions, name):
  """GFLOPs of one call of signature `name` of `functions` (an ExportFunctions) at batch 1."""
  specs = [_batch_one(spec) for spec in functions.specs[name]]
  graph = tf.function(functions.function(name), autograph=False).get_concrete_function(*specs).graph
  options = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
  options["output"] = "none"
  profile = tf.compat.v1.profiler.profile(graph=graph, options=options)
  return profile.total_float_ops / 1e9


def animation_gflops(model):
  """{'signatures': {name: GFLOPs}, 'first_frame': GFLOPs, 'further_frame': GFLOPs} of a FommModel.

  Args:
    model: a float32 FommModel with a dense motion network and Jacobians (what export takes).
  """
  functions = signatures_lib.ExportFunctions(model)
  per_signature = {name: signature_gflops(functions, name) for name in SIGNATURES}
  further = (per_signature["detect_keypoints"] + per_signature["normalize_kp"] + per_signature["generate_from_state"])
  first = further + per_signature["encode_source"] + per_signature["detect_keypoints"]
  return {"signatures": per_signature, "first_frame": first, "further_frame": further}
