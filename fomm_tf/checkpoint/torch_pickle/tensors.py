"""From the unpickled object to the result: pending tensors become numpy arrays, stand-in dicts dicts.

`resolve` checks every tensor's layout, and their total size against the
read's budget, before any storage is read; then it converts.
"""

import math
import sys

import numpy as np

from fomm_tf.checkpoint.torch_pickle import limits
from fomm_tf.checkpoint.torch_pickle import values
from fomm_tf.errors import CheckpointError


def storage_array(raw, storage_type, numel, big_endian, source, record):
  """A 1-D array of the first `numel` elements stored in `raw`, in native byte order."""
  dtype = limits.numpy_dtype(storage_type.dtype_name, source)
  needed = numel * dtype.itemsize
  if len(raw) < needed:
    raise CheckpointError(f"{source}: storage {record} holds {len(raw)} bytes but is declared as {numel} "
                          f"{dtype.name} elements ({needed} bytes)")
  array = np.frombuffer(raw, dtype=dtype, count=numel)
  if big_endian != (sys.byteorder == "big") and dtype.itemsize > 1:
    unsigned = np.dtype(f"u{dtype.itemsize}")
    array = array.view(unsigned).byteswap().view(dtype)
  return array


# Paths into the unpickled object are (parent path, key) chains, None at the
# root, and become text only for a message: joining them eagerly would cost
# depth x key length per node, quadratic for long keys.
_SHOWN_KEY_CHARS = 100
_SHOWN_PATH_CHARS = 300


def _key_text(key):
  if isinstance(key, str):
    return key if len(key) <= _SHOWN_KEY_CHARS else f"{key[:_SHOWN_KEY_CHARS]}...({len(key)} characters)"
  return values.describe(key)


def _path_text(path):
  keys = []
  while path is not None:
    path, key = path
    keys.append(_key_text(key))
  if not keys:
    return "<root>"
  text = ".".join(reversed(keys))
  return text if len(text) <= _SHOWN_PATH_CHARS else "..." + text[-_SHOWN_PATH_CHARS:]


class _TensorLayout(values.Immutable):
  """A checked tensor: `size` elements of `dtype`, `stride` apart, from `start` of root storage `root_key`."""
  __slots__ = ("root_key", "dtype", "start", "end", "size", "stride", "nbytes")

  def __init__(self, root_key, dtype, start, end, size, stride, nbytes):
    super().__init__(root_key=root_key, dtype=dtype, start=start, end=end, size=size, stride=stride, nbytes=nbytes)


class _Resolver:
  """Replaces pending tensors by numpy arrays and stand-in dicts by plain dicts, across the tree.

  In two passes: `check` walks the whole tree, validating every container and
  tensor layout and adding up the tensors' bytes, allocating nothing; `convert`
  then builds the result. Each object is visited once however often it is
  referenced, so shared objects stay shared and a list of a thousand
  references to a list of a thousand references ... costs a thousand per level.
  """

  _ATOMS = (bool, int, float, complex, str, bytes, type(None))

  def __init__(self, source):
    self._source = source
    self.layouts = {}  # id(pending tensor) -> _TensorLayout, in first-seen order.
    self._checked = set()  # ids of the containers checked (all alive: the tree holds them).
    self._active = set()

  def total_bytes(self):
    return sum(layout.nbytes for layout in self.layouts.values())

  def check(self, obj, path=None, depth=0):
    """Validates `obj`, found at `path` (see _path_text), and everything in it."""
    if isinstance(obj, self._ATOMS) or id(obj) in self._checked or id(obj) in self.layouts:
      return
    if id(obj) in self._active:
      raise CheckpointError(f"{self._source}: '{_path_text(path)}' contains itself (cyclic reference)")
    if depth > limits.MAX_NESTING:
      raise CheckpointError(
          f"{self._source}: '{_path_text(path)}' is nested more than {limits.MAX_NESTING} levels deep")
    if isinstance(obj, values.PendingTensor):
      self.layouts[id(obj)] = self._tensor_layout(obj, path)
      return
    self._active.add(id(obj))
    if isinstance(obj, dict):
      for key, value in obj.items():
        if not isinstance(key, self._ATOMS):
          raise CheckpointError(
              f"{self._source}: '{_path_text(path)}' has a key of unsupported type {type(key).__name__}")
        self.check(value, (path, key), depth + 1)
    elif type(obj) in (list, tuple):  # pylint: disable=unidiomatic-typecheck
      for index, item in enumerate(obj):
        self.check(item, (path, index), depth + 1)
    else:
      raise CheckpointError(
          f"{self._source}: '{_path_text(path)}' holds an unsupported object of type {type(obj).__name__}")
    self._active.remove(id(obj))
    self._checked.add(id(obj))

  def _tensor_layout(self, tensor, path):
    name = _path_text(path)
    storage = tensor.storage
    if not isinstance(storage, values.StorageRef):
      raise CheckpointError(f"{self._source}: tensor '{name}' is built from a {type(storage).__name__}, not a storage")
    offset, size, stride = tensor.storage_offset, tensor.size, tensor.stride
    if not (limits.is_count(offset) and type(size) is tuple and type(stride) is tuple  # pylint: disable=unidiomatic-typecheck
            and len(size) == len(stride) and all(limits.is_count(value) for value in size + stride)):
      raise CheckpointError(
          f"{self._source}: tensor '{name}' has invalid layout (offset {values.describe(offset)}, size "
          f"{values.describe_items(size, limit=8)}, stride {values.describe_items(stride, limit=8)}; "
          "each must be int64 >= 0)")
    if len(size) > limits.MAX_TENSOR_DIMS:
      raise CheckpointError(f"{self._source}: tensor '{name}' has {len(size)} dimensions "
                            f"(at most {limits.MAX_TENSOR_DIMS} are supported)")
    dtype = limits.numpy_dtype(storage.storage_type.dtype_name, self._source)
    # numpy refuses a shape whose product, zero lengths counted as 1, overflows
    # (even with no elements); torch cannot make one either.
    if math.prod(max(length, 1) for length in size) * dtype.itemsize > limits.MAX_INT64:
      raise CheckpointError(f"{self._source}: tensor '{name}' has size {list(size)}, whose product overflows int64")
    numel = math.prod(size)
    if numel == 0:  # Any storage will do, even none.
      return _TensorLayout(storage.root_key, dtype, 0, 0, size, (0,) * len(size), 0)
    # The stride of a length-1 dimension is never used, and may be anything.
    stride = tuple(step if length > 1 else 0 for length, step in zip(size, stride))
    extent = offset + 1 + sum((length - 1) * step for length, step in zip(size, stride))
    if extent > storage.numel:
      raise CheckpointError(
          f"{self._source}: tensor '{name}' (size {list(size)}, stride {list(stride)}, offset {offset}) needs "
          f"{extent} elements but its storage {values.describe(storage.root_key)} holds {storage.numel}")
    if numel > storage.numel and numel * dtype.itemsize > limits.MAX_EXPANDED_TENSOR_BYTES:
      raise CheckpointError(f"{self._source}: tensor '{name}' (size {list(size)}, stride {list(stride)}) expands "
                            f"{storage.numel} storage elements to {numel} elements, more than "
                            f"{limits.MAX_EXPANDED_TENSOR_BYTES >> 20} MiB")
    start = storage.element_offset + offset
    return _TensorLayout(storage.root_key, dtype, start, storage.element_offset + storage.numel, size, stride,
                         numel * dtype.itemsize)

  def convert(self, obj, storage_arrays, done=None):
    """The converted form of checked `obj`; `done` maps id(original) -> converted, keeping shared objects shared."""
    if isinstance(obj, self._ATOMS):
      return obj
    done = {} if done is None else done
    converted = done.get(id(obj))
    if converted is not None:
      return converted
    if isinstance(obj, values.PendingTensor):
      result = self._tensor_array(self.layouts[id(obj)], storage_arrays)
    elif isinstance(obj, dict):
      result = {key: self.convert(value, storage_arrays, done) for key, value in obj.items()}
    elif type(obj) is list:  # pylint: disable=unidiomatic-typecheck
      result = [self.convert(item, storage_arrays, done) for item in obj]
    else:
      result = tuple(self.convert(item, storage_arrays, done) for item in obj)
    done[id(obj)] = result
    return result

  @staticmethod
  def _tensor_array(layout, storage_arrays):
    if layout.nbytes == 0:
      return np.zeros(layout.size, layout.dtype)
    base = storage_arrays[layout.root_key][layout.start:layout.end]
    view = np.lib.stride_tricks.as_strided(base,
                                           shape=layout.size,
                                           strides=[step * layout.dtype.itemsize for step in layout.stride],
                                           writeable=False)
    return view.copy()


def resolve(source, obj, max_total_bytes, read_storages):
  """Checks `obj` and its tensors against `max_total_bytes`, then reads the storages and converts it.

  `read_storages()` returns {root key: storage array}; it runs only once the tensors are known to fit.
  """
  resolver = _Resolver(source)
  try:
    resolver.check(obj)
  except RecursionError as error:
    raise CheckpointError(f"{source}: the pickled object is nested too deeply to convert") from error
  total = resolver.total_bytes()
  if total > max_total_bytes:
    raise CheckpointError(
        f"{source}: its {len(resolver.layouts)} tensors take {total} bytes ({total / 2**20:.0f} MiB), more than "
        f"the {max_total_bytes} bytes ({max_total_bytes / 2**20:.0f} MiB) this read allows (corrupt or hostile "
        "file, or a checkpoint far larger than the model it is loaded into)")
  storage_arrays = read_storages()
  try:
    return resolver.convert(obj, storage_arrays)
  except RecursionError as error:
    raise CheckpointError(f"{source}: the pickled object is nested too deeply to convert") from error
