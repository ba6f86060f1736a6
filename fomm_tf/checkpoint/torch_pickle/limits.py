"""The bounds a checkpoint read holds to, and the storage types it knows.

Every claim a file makes is checked against these before anything is allocated
for it (see the package docstring); `model_byte_budget` sizes the tensors a
read may hand back for the model they are loaded into.
"""

import math

import numpy as np

from fomm_tf.errors import CheckpointError

# numpy's limit on array dimensions.
MAX_TENSOR_DIMS = 64
MAX_INT64 = (1 << 63) - 1
# A zero-stride (expanded) tensor may hold more elements than its storage; past
# this size such a tensor is taken for corruption rather than copied out.
MAX_EXPANDED_TENSOR_BYTES = 1 << 30

# The total size of the tensors one read may hand back, when the caller names no
# budget: above the ~750 MB of the largest official FOMM checkpoint (vox-256 with
# its three Adam optimizers) and of the VGG-19 weights the perceptual loss reads.
DEFAULT_MAX_TOTAL_BYTES = 2 << 30
# A model's budget (see model_byte_budget): an official checkpoint holds the
# weights of all three networks plus each one's Adam state (exp_avg and
# exp_avg_sq, twice the parameters). For vox-256 that is 187.7M float32
# elements against the 59.8M of the keypoint detector and generator that
# animation builds: 3.14 times as many (3.0 with the discriminator built).
_MODEL_BUDGET_FACTOR = 4
# For optimizer step counters, and for tiny test models.
_MODEL_BUDGET_SLACK_BYTES = 16 << 20
# torch writes ~150 bytes of `data.pkl` per tensor (45 kB for the 297 of the fixtures).
# Past this cap, the size a record declares is taken for a decompression bomb.
MAX_DATA_PKL_BYTES = 64 << 20
# The `byteorder` record holds "little" or "big".
MAX_BYTEORDER_BYTES = 16
# Each opcode makes at most one object (~100 bytes), so this bounds the Python
# objects of one pickle to ~25 MB (and its scan to ~0.5 s). vox-256 with its
# optimizers needs ~35k: ~37 per tensor, ~80 per Adam state entry.
MAX_PICKLE_OPCODES = 1 << 18
# The legacy format's magic number, protocol version and system info take ~30
# opcodes together, and its storage key list ~2 per storage.
MAX_HEADER_PICKLE_OPCODES = 256
MAX_OPCODES_PER_STORAGE_KEY = 4
# Checkpoints nest ~6 levels (optimizer -> state -> param -> exp_avg -> tensor args).
# Past this, nesting is taken for an attack on the C stack (see opcodes.py).
MAX_NESTING = 100
# torch's integers are int64; Python's longer ones print in quadratic time and
# past ~14,000 bits not at all (sys.get_int_max_str_digits).
MAX_INT_BITS = 4096
# Dict keys are str or int64 (optimizer parameter ids); longer integers can be
# made to share a hash, making each insertion linear in the dict size.
MAX_KEY_INT_BITS = 64

# Storage class name (in module `torch`) -> numpy dtype name.
STORAGE_DTYPE_NAMES = {
    "FloatStorage": "float32",
    "DoubleStorage": "float64",
    "HalfStorage": "float16",
    "BFloat16Storage": "bfloat16",
    "LongStorage": "int64",
    "IntStorage": "int32",
    "ShortStorage": "int16",
    "CharStorage": "int8",
    "ByteStorage": "uint8",
    "BoolStorage": "bool",
}


def model_byte_budget(variable_shapes):
  """A `max_total_bytes` for loading a checkpoint into a model whose variables have `variable_shapes`.

  _MODEL_BUDGET_FACTOR times their float32 size (whatever their dtype) plus
  _MODEL_BUDGET_SLACK_BYTES: room for an official checkpoint's weights of all
  three networks and their optimizer state, but not for a file that claims
  gigabytes for a model of megabytes.
  """
  elements = sum(math.prod(int(length) for length in shape) for shape in variable_shapes)
  return _MODEL_BUDGET_FACTOR * 4 * elements + _MODEL_BUDGET_SLACK_BYTES


def numpy_dtype(dtype_name, source):
  """The numpy dtype called `dtype_name`; bfloat16 comes from ml_dtypes."""
  if dtype_name != "bfloat16":
    return np.dtype(dtype_name)
  try:
    import ml_dtypes  # pylint: disable=import-outside-toplevel
  except ImportError as error:
    raise CheckpointError(
        f"{source}: holds bfloat16 tensors, which need the ml_dtypes package (not installed)") from error
  return np.dtype(ml_dtypes.bfloat16)


def is_count(value):
  """A non-negative int64 (torch's sizes, strides, offsets and element counts are int64)."""
  return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_INT64
