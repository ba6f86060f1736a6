"""Compact inference weights: the keypoint detector and generator variables in one .npz, keyed by variable path.

The built-in model ships this way (float16, compressed, a few MB). Reading is
defensive: each array's header is checked against the variable it is meant for
(shape, a plain numeric dtype) before any data is read, so a truncated file, a
header that claims 10^12 elements, an object array or a compression bomb is a
one-line CheckpointError with bounded memory.
"""

import zipfile
import zlib

import numpy as np

from fomm_tf.errors import CheckpointError
from fomm_tf.errors import CheckpointMismatchError
from fomm_tf.errors import one_line
from fomm_tf.io import files

_NPZ_ERRORS = (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error, NotImplementedError)


def save_npz_weights(model, path, dtype=np.float16):
  """Writes the keypoint detector and generator weights (not the discriminator) to `path` atomically."""
  arrays = {name: v.numpy().astype(dtype) for name, v in model.inference_variables().items()}
  with files.atomic_file(path, CheckpointError, suffix=".npz") as temp:
    np.savez_compressed(temp, **arrays)
  return path


def _read_member(archive, member, name, variable, path):
  with archive.open(member) as handle:
    version = np.lib.format.read_magic(handle)
    readers = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
    if version not in readers:
      raise CheckpointError(f"{path}: {name}: unsupported .npy version {version}")
    shape, fortran_order, dtype = readers[version](handle, max_header_size=10_000)
    if dtype.kind not in "fiu" or dtype.hasobject:
      raise CheckpointError(f"{path}: {name} holds {dtype} values, not numbers")
    if tuple(shape) != tuple(variable.shape):
      raise CheckpointMismatchError(f"{path}: {name} has shape {list(shape)}, the model expects "
                                    f"{list(variable.shape)}")
    count = int(np.prod(shape))
    data = handle.read(count * dtype.itemsize)
    if len(data) != count * dtype.itemsize:
      raise CheckpointError(f"{path}: {name} is truncated ({len(data)} of {count * dtype.itemsize} bytes)")
  array = np.frombuffer(data, dtype).reshape(shape, order="F" if fortran_order else "C")
  if not np.all(np.isfinite(array)):
    raise CheckpointError(f"{path}: {name} holds NaN or infinite values")
  return array.astype(np.float32)


def load_npz_weights(model, path):
  """Assigns weights saved by `save_npz_weights`; every variable must be present with its shape."""
  files.check_regular_file(path, CheckpointError, "weights file")
  variables = model.inference_variables()
  try:
    with zipfile.ZipFile(path) as archive:
      members = {m[:-len(".npy")]: m for m in archive.namelist() if m.endswith(".npy")}
      missing = sorted(set(variables) - set(members))
      if missing:
        raise CheckpointMismatchError(f"{path}: no weights for {missing[0]} ({len(missing)} missing); "
                                      f"was it saved for another config?")
      extra = sorted(set(members) - set(variables))
      if extra:
        raise CheckpointMismatchError(f"{path}: {extra[0]} is not a variable of this model ({len(extra)} extra)")
      assignments = [(variable, _read_member(archive, members[name], name, variable, path))
                     for name, variable in variables.items()]
  except _NPZ_ERRORS as error:
    raise CheckpointError(f"{path}: not a readable weights .npz file ({one_line(error)})") from None
  for variable, array in assignments:
    variable.assign(array)
  return path
