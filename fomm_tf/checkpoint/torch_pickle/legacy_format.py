"""Reads the legacy checkpoint format of PyTorch < 1.6 (see the package docstring)."""

import struct

from fomm_tf.checkpoint.torch_pickle import limits
from fomm_tf.checkpoint.torch_pickle import tensors
from fomm_tf.checkpoint.torch_pickle import unpickler
from fomm_tf.checkpoint.torch_pickle import values
from fomm_tf.errors import CheckpointError

# The contents of the format's first two pickles.
LEGACY_MAGIC_NUMBER = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL_VERSION = 1001


def read_legacy_checkpoint(path, file, max_total_bytes):
  """Reads the legacy format from `file`, an mmap of the whole checkpoint.

  An mmap rather than the open file: its read(n) returns at most what the
  file holds, where a buffered file would first allocate all n bytes that a
  corrupt length asks for.
  """
  file_size = len(file)
  magic = unpickler.unpickle(file,
                             file_size,
                             f"{path}: not a PyTorch checkpoint: its first pickle",
                             max_opcodes=limits.MAX_HEADER_PICKLE_OPCODES)
  if type(magic) is not int or magic != LEGACY_MAGIC_NUMBER:  # pylint: disable=unidiomatic-typecheck
    raise CheckpointError(f"{path}: not a PyTorch checkpoint: it starts with a pickle of {values.describe(magic)}, "
                          "not the legacy magic number")
  protocol = unpickler.unpickle(file,
                                file_size,
                                f"{path} (protocol version)",
                                max_opcodes=limits.MAX_HEADER_PICKLE_OPCODES)
  if type(protocol) is not int or protocol != LEGACY_PROTOCOL_VERSION:  # pylint: disable=unidiomatic-typecheck
    raise CheckpointError(f"{path}: unsupported legacy protocol version {values.describe(protocol)} "
                          f"(expected {LEGACY_PROTOCOL_VERSION})")
  sys_info = unpickler.unpickle(file, file_size, f"{path} (system info)", max_opcodes=limits.MAX_HEADER_PICKLE_OPCODES)
  if not isinstance(sys_info, dict):
    raise CheckpointError(f"{path}: system info is a {type(sys_info).__name__}, not a dict")
  little_endian = sys_info.get("little_endian", True)
  if not isinstance(little_endian, bool):
    raise CheckpointError(f"{path}: system info has little_endian = {values.describe(little_endian)}, not a bool")
  big_endian = not little_endian
  source = f"{path} (pickled object)"
  registry = unpickler.StorageRegistry(source, legacy=True)
  obj = unpickler.unpickle(file, file_size, source, registry)
  storage_keys = unpickler.unpickle(file,
                                    file_size,
                                    f"{path} (storage key list)",
                                    max_opcodes=limits.MAX_HEADER_PICKLE_OPCODES +
                                    limits.MAX_OPCODES_PER_STORAGE_KEY * len(registry.roots))
  if type(storage_keys) is not list:  # pylint: disable=unidiomatic-typecheck
    raise CheckpointError(f"{path}: storage key list is {values.describe(storage_keys)}, not a list of strings")
  for index, key in enumerate(storage_keys):
    if not isinstance(key, str):
      raise CheckpointError(f"{path}: storage key list ({len(storage_keys)} items) holds {values.describe(key)} "
                            f"at index {index}, not a string")

  def read_storages():
    count_format = ">q" if big_endian else "<q"
    storage_arrays = {}
    for key in storage_keys:
      if key not in registry.roots or key in storage_arrays:
        raise CheckpointError(f"{path}: storage key list names {values.describe(key)}, which no tensor uses or which "
                              "repeats")
      storage_type, numel = registry.roots[key]
      count_bytes = file.read(8)
      if len(count_bytes) < 8:
        raise CheckpointError(f"{path}: truncated: the file ends before the data of storage {values.describe(key)}")
      (count,) = struct.unpack(count_format, count_bytes)
      if count != numel:
        raise CheckpointError(f"{path}: storage {values.describe(key)} holds {count} elements but the pickle declares "
                              f"{numel}")
      itemsize = limits.numpy_dtype(storage_type.dtype_name, path).itemsize
      raw = file.read(min(numel * itemsize, file_size - file.tell()))
      if len(raw) < numel * itemsize:
        raise CheckpointError(f"{path}: truncated: the file ends inside the data of storage {values.describe(key)} "
                              f"(expected {numel * itemsize} bytes, found {len(raw)})")
      storage_arrays[key] = tensors.storage_array(raw, storage_type, numel, big_endian, path, values.describe(key))
    missing = [key for key in registry.roots if key not in storage_arrays]
    if missing:
      raise CheckpointError(f"{path}: storages {values.describe_items(missing[:5])} are used by tensors but have no "
                            "data in the file")
    return storage_arrays

  return tensors.resolve(path, obj, max_total_bytes, read_storages)
