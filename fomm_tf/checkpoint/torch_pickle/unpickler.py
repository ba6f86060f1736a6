"""The restricted unpickler: only the allowed globals resolve, to the stand-ins of values.py.

Each pickle's opcodes are scanned first (opcodes.py); storages, named by
persistent ids, are validated and remembered by a StorageRegistry.
"""

import pickle
import struct

from fomm_tf.checkpoint.torch_pickle import limits
from fomm_tf.checkpoint.torch_pickle import opcodes
from fomm_tf.checkpoint.torch_pickle import values
from fomm_tf.errors import CheckpointError


def _is_safe_key(key):
  """Whether hashing `key` is cheap and cannot be steered into collisions (see limits.MAX_KEY_INT_BITS)."""
  if isinstance(key, int):
    return key.bit_length() <= limits.MAX_KEY_INT_BITS
  return key is None or isinstance(key, (str, bytes, float))


def _new_ordered_dict(*args):
  # Python 3 pickles an OrderedDict empty, its items following as SETITEMS
  # (which the scan of opcodes.py checks); Python 2 passed them as a list of [key, value]
  # pairs, whose keys are checked here before dict() hashes them.
  if not args:
    return values.LoadedOrderedDict()
  if len(args) != 1 or type(args[0]) is not list:  # pylint: disable=unidiomatic-typecheck
    raise TypeError(f"OrderedDict takes one list of items, got {len(args)} argument(s)")
  for item in args[0]:
    if not isinstance(item, (list, tuple)) or len(item) != 2 or not _is_safe_key(item[0]):
      raise TypeError(
          f"OrderedDict item {values.describe_items(item, limit=2)} is not a (str or int64 key, value) pair")
  return values.LoadedOrderedDict(args[0])


def _rebuild_tensor(storage, storage_offset, size, stride):
  return values.PendingTensor(storage, storage_offset, size, stride)


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad, backward_hooks, metadata=None):
  del requires_grad, backward_hooks, metadata  # Autograd details; a numpy array has none.
  return values.PendingTensor(storage, storage_offset, size, stride)


def _rebuild_parameter(data, requires_grad, backward_hooks):
  del requires_grad, backward_hooks
  if not isinstance(data, values.PendingTensor):
    raise TypeError(f"_rebuild_parameter expects a tensor, got {type(data).__name__}")
  return data


def _rebuild_parameter_with_state(data, requires_grad, backward_hooks, state):
  del state  # Python attributes set on the Parameter object.
  return _rebuild_parameter(data, requires_grad, backward_hooks)


_ALLOWED_GLOBALS = {
    ("collections", "OrderedDict"):
        values.AllowedCallable("collections.OrderedDict", _new_ordered_dict),
    ("torch._utils", "_rebuild_tensor"):
        values.AllowedCallable("torch._utils._rebuild_tensor", _rebuild_tensor),
    ("torch._utils", "_rebuild_tensor_v2"):
        values.AllowedCallable("torch._utils._rebuild_tensor_v2", _rebuild_tensor_v2),
    ("torch._utils", "_rebuild_parameter"):
        values.AllowedCallable("torch._utils._rebuild_parameter", _rebuild_parameter),
    ("torch._utils", "_rebuild_parameter_with_state"):
        values.AllowedCallable("torch._utils._rebuild_parameter_with_state", _rebuild_parameter_with_state),
}
_ALLOWED_GLOBALS.update({
    ("torch", name): values.StorageType(name, dtype_name) for name, dtype_name in limits.STORAGE_DTYPE_NAMES.items()
})


def _as_str(value):
  """Persistent ids from Python 2 era pickles may hold bytes instead of str."""
  if isinstance(value, bytes):
    return value.decode("ascii")
  return value


class StorageRegistry:
  """Turns storage persistent ids into StorageRefs and remembers every root storage seen."""

  def __init__(self, source, legacy):
    self._source = source
    self._legacy = legacy
    self.roots = {}  # root key -> (values.StorageType, numel), in first-use order.

  def register(self, persistent_id):
    """Validates one persistent id and returns the values.StorageRef it names."""
    expected_length = 6 if self._legacy else 5
    if (not isinstance(persistent_id, tuple) or len(persistent_id) != expected_length or
        _as_str(persistent_id[0]) != "storage"):
      raise CheckpointError(f"{self._source}: unsupported persistent id {values.describe_items(persistent_id)}")
    storage_type, root_key, location, numel = persistent_id[1:5]
    root_key, location = _as_str(root_key), _as_str(location)
    if not isinstance(storage_type, values.StorageType):
      raise CheckpointError(
          f"{self._source}: persistent id {values.describe_items(persistent_id)} names no storage type")
    if not isinstance(root_key, str) or not isinstance(location, str) or not limits.is_count(numel):
      raise CheckpointError(f"{self._source}: malformed storage persistent id {values.describe_items(persistent_id)}")
    known = self.roots.setdefault(root_key, (storage_type, numel))
    if known != (storage_type, numel):
      raise CheckpointError(
          f"{self._source}: storage {values.describe(root_key)} is declared both as {known[0].class_name} of "
          f"{known[1]} elements and as {storage_type.class_name} of {numel} elements")
    view_metadata = persistent_id[5] if self._legacy else None
    if view_metadata is None:
      return values.StorageRef(root_key, storage_type, 0, numel)
    # Pre-1.0 checkpoints could save views into a larger storage: (view key, offset, size).
    if not (isinstance(view_metadata, tuple) and len(view_metadata) == 3 and limits.is_count(view_metadata[1]) and
            limits.is_count(view_metadata[2]) and view_metadata[1] + view_metadata[2] <= numel):
      raise CheckpointError(f"{self._source}: storage {values.describe(root_key)} ({numel} elements) has invalid view "
                            f"{values.describe_items(view_metadata)}")
    return values.StorageRef(root_key, storage_type, view_metadata[1], view_metadata[2])


class _RestrictedUnpickler(pickle.Unpickler):
  """An unpickler that resolves only the allowed globals, to local stand-ins."""

  def __init__(self, file, source, storage_registry):
    super().__init__(file, encoding="utf-8")
    self._source = source
    self._storage_registry = storage_registry

  def find_class(self, module, name):
    allowed = _ALLOWED_GLOBALS.get((module, name))
    if allowed is None:
      raise CheckpointError(
          f"{self._source}: refused to load global {values.describe(module + '.' + name)}: only tensors and plain "
          "containers are allowed, so nothing in the file was run")
    return allowed

  def persistent_load(self, pid):
    if self._storage_registry is None:
      raise CheckpointError(f"{self._source}: unexpected persistent id {values.describe_items(pid)}")
    return self._storage_registry.register(pid)


# Errors a malformed or truncated pickle makes the unpickler raise (besides our own CheckpointError).
_UNPICKLING_ERRORS = (pickle.UnpicklingError, EOFError, AttributeError, IndexError, KeyError, TypeError, ValueError,
                      OverflowError, struct.error, RecursionError)


def unpickle(stream, stream_size, source, storage_registry=None, max_opcodes=limits.MAX_PICKLE_OPCODES):
  """Loads one pickle of at most `max_opcodes` opcodes from `stream` with the restricted unpickler."""
  opcodes.scan_pickle(stream, stream_size, source, max_opcodes)
  try:
    return _RestrictedUnpickler(stream, source, storage_registry).load()
  except CheckpointError:
    raise
  except _UNPICKLING_ERRORS as error:
    if stream.tell() >= stream_size:
      raise CheckpointError(f"{source}: truncated: the data ends inside the pickle "
                            f"({type(error).__name__}: {error})") from error
    raise CheckpointError(f"{source}: malformed pickle data ({type(error).__name__}: {error})") from error
