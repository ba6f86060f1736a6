"""Reads and writes PyTorch checkpoint files (`.pth`, `.pth.tar`) without importing torch.

PyTorch has two on-disk formats, both handled here:

* zip (PyTorch >= 1.6): a zip archive whose single top folder (any name) holds
  `data.pkl` (the pickled object; tensors refer to storages by persistent id),
  `data/<key>` (the raw bytes of each storage) and `byteorder`.
* legacy (PyTorch < 1.6, the format of the published FOMM checkpoints): a run
  of pickles -- magic number, protocol version, system info, the object, the
  list of storage keys -- then, for each key, an int64 element count and the
  storage's raw bytes.

Unpickling is restricted: the only globals that resolve are the handful needed
to rebuild tensors and ordered dicts, and they resolve to local stand-ins, so a
malicious checkpoint cannot run code. Tensors come back as numpy arrays and
OrderedDicts as plain dicts (in the same order).
"""

import collections
import io
import math
import mmap
import os
import pickle
import pickletools
import secrets
import struct
import sys
import zipfile
import zlib

import numpy as np


class CheckpointError(ValueError):
  """A checkpoint that cannot be read, or an object that cannot be written as one.

  The message is always one line: names taken from a damaged file may hold
  line breaks, which are escaped.
  """

  def __init__(self, message):
    super().__init__(message.replace("\r", "\\r").replace("\n", "\\n"))


_ZIP_MAGIC = b"PK\x03\x04"
_LEGACY_MAGIC_NUMBER = 0x1950A86A20F9469CFC6C
_LEGACY_PROTOCOL_VERSION = 1001
_LEGACY_SYS_INFO = {
    "protocol_version": _LEGACY_PROTOCOL_VERSION,
    "little_endian": True,
    "type_sizes": {"short": 2, "int": 4, "long": 4},
}
_PICKLE_PROTOCOL = 2
# numpy's limit on array dimensions.
_MAX_TENSOR_DIMS = 64
# A zero-stride (expanded) tensor may hold more elements than its storage; past
# this size such a tensor is taken for corruption rather than copied out.
_MAX_EXPANDED_TENSOR_BYTES = 1 << 30
_STORAGE_ALIGNMENT = 64
# Version of the zip layout torch.load is told to expect (the `version` record).
_ZIP_FILE_FORMAT_VERSION = b"3\n"

# Storage class name (in module `torch`) -> numpy dtype name.
_STORAGE_DTYPE_NAMES = {
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
_STORAGE_NAME_BY_DTYPE_NAME = {dtype: name for name, dtype in _STORAGE_DTYPE_NAMES.items()}


def _numpy_dtype(dtype_name, source):
  """The numpy dtype called `dtype_name`; bfloat16 comes from ml_dtypes."""
  if dtype_name != "bfloat16":
    return np.dtype(dtype_name)
  try:
    import ml_dtypes  # pylint: disable=import-outside-toplevel
  except ImportError as error:
    raise CheckpointError(
        f"{source}: holds bfloat16 tensors, which need the ml_dtypes package (not installed)") from error
  return np.dtype(ml_dtypes.bfloat16)


# ---------------------------------------------------------------------------
# Stand-ins for the torch globals a checkpoint may name.
#
# They are immutable slotted objects, not bare functions or classes, and refuse
# __setstate__, so a pickle's BUILD opcode cannot change them (which would
# tamper with every later load in the process). Frozen slotted dataclasses do
# not qualify: they define a __setstate__ that bypasses the freeze.


class _Immutable:
  """Base for objects whose slots are set once in __init__ and never again."""
  __slots__ = ()

  def __init__(self, **fields):
    for name, value in fields.items():
      object.__setattr__(self, name, value)

  def __setattr__(self, name, value):
    raise AttributeError(f"{type(self).__name__} is read-only")

  def __delattr__(self, name):
    raise AttributeError(f"{type(self).__name__} is read-only")

  def __setstate__(self, state):
    raise TypeError(f"{type(self).__name__} does not accept pickled state")

  def __repr__(self):
    fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.__slots__)
    return f"{type(self).__name__}({fields})"


class _StorageType(_Immutable):
  """Stand-in for a `torch.<Name>Storage` class: only names an element type."""
  __slots__ = ("class_name", "dtype_name")

  def __init__(self, class_name, dtype_name):
    super().__init__(class_name=class_name, dtype_name=dtype_name)


class _AllowedCallable(_Immutable):
  """Stand-in for an allowed torch/collections callable, backed by a local function."""
  __slots__ = ("qualified_name", "function")

  def __init__(self, qualified_name, function):
    super().__init__(qualified_name=qualified_name, function=function)

  def __call__(self, *args):
    return self.function(*args)


class _StorageRef(_Immutable):
  """A storage named by a persistent id: `numel` elements from `element_offset` of root `root_key`."""
  __slots__ = ("root_key", "storage_type", "element_offset", "numel")

  def __init__(self, root_key, storage_type, element_offset, numel):
    super().__init__(root_key=root_key, storage_type=storage_type, element_offset=element_offset, numel=numel)


class _PendingTensor(_Immutable):
  """A tensor whose storage bytes may not be read yet (legacy files put them after the pickle)."""
  __slots__ = ("storage", "storage_offset", "size", "stride")

  def __init__(self, storage, storage_offset, size, stride):
    super().__init__(storage=storage, storage_offset=storage_offset, size=size, stride=stride)


class _LoadedOrderedDict(dict):
  """Stand-in for collections.OrderedDict while unpickling.

  torch pickles a state dict as an OrderedDict whose state carries a
  `_metadata` attribute (per-module versions); BUILD passes that state to
  __setstate__, which drops it.
  """
  __slots__ = ()

  def __setstate__(self, state):
    if not isinstance(state, dict):
      raise TypeError(f"OrderedDict state must be a dict, got {type(state).__name__}")


def _rebuild_tensor(storage, storage_offset, size, stride):
  return _PendingTensor(storage, storage_offset, size, stride)


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad, backward_hooks, metadata=None):
  del requires_grad, backward_hooks, metadata  # Autograd details; a numpy array has none.
  return _PendingTensor(storage, storage_offset, size, stride)


def _rebuild_parameter(data, requires_grad, backward_hooks):
  del requires_grad, backward_hooks
  if not isinstance(data, _PendingTensor):
    raise TypeError(f"_rebuild_parameter expects a tensor, got {type(data).__name__}")
  return data


def _rebuild_parameter_with_state(data, requires_grad, backward_hooks, state):
  del state  # Python attributes set on the Parameter object.
  return _rebuild_parameter(data, requires_grad, backward_hooks)


_ALLOWED_GLOBALS = {
    ("collections", "OrderedDict"): _AllowedCallable("collections.OrderedDict", _LoadedOrderedDict),
    ("torch._utils", "_rebuild_tensor"): _AllowedCallable("torch._utils._rebuild_tensor", _rebuild_tensor),
    ("torch._utils", "_rebuild_tensor_v2"): _AllowedCallable("torch._utils._rebuild_tensor_v2", _rebuild_tensor_v2),
    ("torch._utils", "_rebuild_parameter"): _AllowedCallable("torch._utils._rebuild_parameter", _rebuild_parameter),
    ("torch._utils", "_rebuild_parameter_with_state"): _AllowedCallable(
        "torch._utils._rebuild_parameter_with_state", _rebuild_parameter_with_state),
}
_ALLOWED_GLOBALS.update({("torch", name): _StorageType(name, dtype_name)
                         for name, dtype_name in _STORAGE_DTYPE_NAMES.items()})


# ---------------------------------------------------------------------------
# Reading.


def _as_str(value):
  """Persistent ids from Python 2 era pickles may hold bytes instead of str."""
  if isinstance(value, bytes):
    return value.decode("ascii")
  return value


def _is_count(value):
  return isinstance(value, int) and not isinstance(value, bool) and value >= 0


class _StorageRegistry:
  """Turns storage persistent ids into _StorageRefs and remembers every root storage seen."""

  def __init__(self, source, legacy):
    self._source = source
    self._legacy = legacy
    self.roots = {}  # root key -> (_StorageType, numel), in first-use order.

  def register(self, persistent_id):
    """Validates one persistent id and returns the _StorageRef it names."""
    expected_length = 6 if self._legacy else 5
    if (not isinstance(persistent_id, tuple) or len(persistent_id) != expected_length
            or _as_str(persistent_id[0]) != "storage"):
      raise CheckpointError(f"{self._source}: unsupported persistent id {persistent_id!r:.200}")
    storage_type, root_key, location, numel = persistent_id[1:5]
    root_key, location = _as_str(root_key), _as_str(location)
    if not isinstance(storage_type, _StorageType):
      raise CheckpointError(f"{self._source}: persistent id {persistent_id!r:.200} names no storage type")
    if not isinstance(root_key, str) or not isinstance(location, str) or not _is_count(numel):
      raise CheckpointError(f"{self._source}: malformed storage persistent id {persistent_id!r:.200}")
    known = self.roots.setdefault(root_key, (storage_type, numel))
    if known != (storage_type, numel):
      raise CheckpointError(
          f"{self._source}: storage '{root_key}' is declared both as {known[0].class_name} of {known[1]} "
          f"elements and as {storage_type.class_name} of {numel} elements")
    view_metadata = persistent_id[5] if self._legacy else None
    if view_metadata is None:
      return _StorageRef(root_key, storage_type, 0, numel)
    # Pre-1.0 checkpoints could save views into a larger storage: (view key, offset, size).
    if not (isinstance(view_metadata, tuple) and len(view_metadata) == 3 and _is_count(view_metadata[1])
            and _is_count(view_metadata[2]) and view_metadata[1] + view_metadata[2] <= numel):
      raise CheckpointError(
          f"{self._source}: storage '{root_key}' ({numel} elements) has invalid view {view_metadata!r:.200}")
    return _StorageRef(root_key, storage_type, view_metadata[1], view_metadata[2])


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
          f"{self._source}: refused to load global {module + '.' + name!r}: only tensors and plain "
          "containers are allowed, so nothing in the file was run")
    return allowed

  def persistent_load(self, pid):
    if self._storage_registry is None:
      raise CheckpointError(f"{self._source}: unexpected persistent id {pid!r:.200}")
    return self._storage_registry.register(pid)


# Errors a malformed or truncated pickle makes the unpickler raise (besides our own CheckpointError).
_UNPICKLING_ERRORS = (pickle.UnpicklingError, EOFError, AttributeError, IndexError, KeyError, TypeError,
                      ValueError, OverflowError, struct.error, RecursionError)


_MEMO_OPCODE_NAMES = frozenset(["PUT", "BINPUT", "LONG_BINPUT", "GET", "BINGET", "LONG_BINGET"])


def _check_memo_indices(stream, stream_size, source):
  """Walks the opcodes of the next pickle in `stream` without building anything, then rewinds.

  CPython's unpickler grows (and zeroes) its memo table up to the largest
  index a PUT names, so one corrupt index can claim gigabytes. Writers number
  memo entries from 0 in order, so an index can never exceed the opcode count.
  """
  start = stream.tell()
  try:
    for count, (opcode, argument, _) in enumerate(pickletools.genops(stream)):
      if opcode.name in _MEMO_OPCODE_NAMES and argument > count:
        raise CheckpointError(
            f"{source}: malformed pickle data: memo index {argument} at opcode {count} (corrupt file?)")
  except CheckpointError:
    raise
  except (ValueError, struct.error) as error:
    if stream.tell() >= stream_size:
      raise CheckpointError(f"{source}: truncated: the data ends inside the pickle ({error})") from error
    raise CheckpointError(f"{source}: malformed pickle data ({error})") from error
  stream.seek(start)


def _unpickle(stream, stream_size, source, storage_registry=None):
  """Loads one pickle from `stream` with the restricted unpickler."""
  _check_memo_indices(stream, stream_size, source)
  try:
    return _RestrictedUnpickler(stream, source, storage_registry).load()
  except CheckpointError:
    raise
  except _UNPICKLING_ERRORS as error:
    if stream.tell() >= stream_size:
      raise CheckpointError(f"{source}: truncated: the data ends inside the pickle "
                            f"({type(error).__name__}: {error})") from error
    raise CheckpointError(f"{source}: malformed pickle data ({type(error).__name__}: {error})") from error


def _storage_array(raw, storage_type, numel, big_endian, source, record):
  """A 1-D array of the first `numel` elements stored in `raw`, in native byte order."""
  dtype = _numpy_dtype(storage_type.dtype_name, source)
  needed = numel * dtype.itemsize
  if len(raw) < needed:
    raise CheckpointError(
        f"{source}: storage {record} holds {len(raw)} bytes but is declared as {numel} "
        f"{dtype.name} elements ({needed} bytes)")
  array = np.frombuffer(raw, dtype=dtype, count=numel)
  if big_endian != (sys.byteorder == "big") and dtype.itemsize > 1:
    unsigned = np.dtype(f"u{dtype.itemsize}")
    array = array.view(unsigned).byteswap().view(dtype)
  return array


def _join_path(path, key):
  return f"{path}.{key}" if path else str(key)


class _Resolver:
  """Replaces pending tensors by numpy arrays and stand-in dicts by plain dicts, across the tree."""

  _ATOMS = (bool, int, float, complex, str, bytes, type(None))

  def __init__(self, source, storage_arrays):
    self._source = source
    self._storage_arrays = storage_arrays
    self._done = {}  # id(original) -> converted; keeps shared objects shared.
    self._active = set()

  def resolve(self, obj, path=""):
    """The converted form of `obj`, found at `path` (dotted keys) in the checkpoint."""
    if isinstance(obj, self._ATOMS):
      return obj
    if id(obj) in self._done:
      return self._done[id(obj)]
    if id(obj) in self._active:
      raise CheckpointError(f"{self._source}: '{path or '<root>'}' contains itself (cyclic reference)")
    self._active.add(id(obj))
    if isinstance(obj, _PendingTensor):
      result = self._tensor_array(obj, path)
    elif isinstance(obj, dict):
      result = {}
      for key, value in obj.items():
        if not isinstance(key, self._ATOMS):
          raise CheckpointError(
              f"{self._source}: '{path or '<root>'}' has a key of unsupported type {type(key).__name__}")
        result[key] = self.resolve(value, _join_path(path, key))
    elif type(obj) is list:  # pylint: disable=unidiomatic-typecheck
      result = [self.resolve(item, _join_path(path, index)) for index, item in enumerate(obj)]
    elif type(obj) is tuple:  # pylint: disable=unidiomatic-typecheck
      result = tuple(self.resolve(item, _join_path(path, index)) for index, item in enumerate(obj))
    else:
      raise CheckpointError(
          f"{self._source}: '{path or '<root>'}' holds an unsupported object of type {type(obj).__name__}")
    self._active.remove(id(obj))
    self._done[id(obj)] = result
    return result

  def _tensor_array(self, tensor, path):
    name = path or "<root>"
    storage = tensor.storage
    if not isinstance(storage, _StorageRef):
      raise CheckpointError(
          f"{self._source}: tensor '{name}' is built from a {type(storage).__name__}, not a storage")
    offset, size, stride = tensor.storage_offset, tensor.size, tensor.stride
    if not (_is_count(offset) and isinstance(size, tuple) and isinstance(stride, tuple)
            and len(size) == len(stride) and all(_is_count(value) for value in size + stride)):
      raise CheckpointError(
          f"{self._source}: tensor '{name}' has invalid layout (offset {offset!r:.50}, size {size!r:.100}, "
          f"stride {stride!r:.100})")
    if len(size) > _MAX_TENSOR_DIMS:
      raise CheckpointError(f"{self._source}: tensor '{name}' has {len(size)} dimensions "
                            f"(at most {_MAX_TENSOR_DIMS} are supported)")
    dtype = _numpy_dtype(storage.storage_type.dtype_name, self._source)
    numel = math.prod(size)
    if numel == 0:
      return np.zeros(size, dtype)
    # The stride of a length-1 dimension is never used, and may be anything.
    stride = tuple(step if length > 1 else 0 for length, step in zip(size, stride))
    extent = offset + 1 + sum((length - 1) * step for length, step in zip(size, stride))
    if extent > storage.numel:
      raise CheckpointError(
          f"{self._source}: tensor '{name}' (size {list(size)}, stride {list(stride)}, offset {offset}) needs "
          f"{extent} elements but its storage '{storage.root_key}' holds {storage.numel}")
    if numel > storage.numel and numel * dtype.itemsize > _MAX_EXPANDED_TENSOR_BYTES:
      raise CheckpointError(
          f"{self._source}: tensor '{name}' (size {list(size)}, stride {list(stride)}) expands "
          f"{storage.numel} storage elements to {numel} elements, more than "
          f"{_MAX_EXPANDED_TENSOR_BYTES >> 20} MiB")
    start = storage.element_offset + offset
    base = self._storage_arrays[storage.root_key][start:storage.element_offset + storage.numel]
    view = np.lib.stride_tricks.as_strided(
        base, shape=size, strides=[step * dtype.itemsize for step in stride], writeable=False)
    return view.copy()


def _zip_data_folder(archive, path):
  """The archive's top folder: the one holding `data.pkl`; torch lets it have any name."""
  folders = [name[:-len("/data.pkl")] for name in archive.namelist()
             if name.endswith("/data.pkl") and name.count("/") == 1]
  if len(folders) != 1:
    found = "no" if not folders else f"{len(folders)}"
    raise CheckpointError(
        f"{path}: zip archive has {found} '<folder>/data.pkl' records, so it is not a PyTorch checkpoint")
  return folders[0]


# What zipfile raises on a damaged archive: bad headers or CRCs, undecodable names,
# a mutated compression method or encryption flag, data cut short.
_ZIP_ERRORS = (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError, NotImplementedError, RuntimeError,
               struct.error)


def _read_zip_record(archive, name, path, size_needed=None):
  """The bytes of record `name`; with `size_needed`, only that many, refusing a shorter record before reading."""
  try:
    info = archive.getinfo(name)
  except KeyError as error:
    raise CheckpointError(f"{path}: zip archive has no record '{name}'") from error
  if size_needed is not None and info.file_size < size_needed:
    raise CheckpointError(f"{path}: record '{name}' holds {info.file_size} bytes but its storage is declared "
                          f"as {size_needed} bytes")
  try:
    with archive.open(info) as record:
      return record.read(size_needed if size_needed is not None else -1)
  except _ZIP_ERRORS as error:
    raise CheckpointError(f"{path}: cannot read record '{name}' ({type(error).__name__}: {error})") from error


def _read_zip_checkpoint(path):
  try:
    archive = zipfile.ZipFile(path)
  except _ZIP_ERRORS as error:
    raise CheckpointError(f"{path}: truncated or corrupt zip archive ({type(error).__name__}: {error})") from error
  with archive:
    folder = _zip_data_folder(archive, path)
    big_endian = False
    if f"{folder}/byteorder" in archive.namelist():
      byteorder = _read_zip_record(archive, f"{folder}/byteorder", path)
      if byteorder not in (b"little", b"big"):
        raise CheckpointError(f"{path}: unknown byte order {byteorder[:20]!r} in '{folder}/byteorder'")
      big_endian = byteorder == b"big"
    pickled = _read_zip_record(archive, f"{folder}/data.pkl", path)
    source = f"{path} ({folder}/data.pkl)"
    registry = _StorageRegistry(source, legacy=False)
    obj = _unpickle(io.BytesIO(pickled), len(pickled), source, registry)
    storage_arrays = {}
    for key, (storage_type, numel) in registry.roots.items():
      record = f"{folder}/data/{key}"
      itemsize = _numpy_dtype(storage_type.dtype_name, path).itemsize
      raw = _read_zip_record(archive, record, path, size_needed=numel * itemsize)
      storage_arrays[key] = _storage_array(raw, storage_type, numel, big_endian, path, f"'{record}'")
  return _resolve(path, obj, storage_arrays)


def _resolve(path, obj, storage_arrays):
  try:
    return _Resolver(path, storage_arrays).resolve(obj)
  except RecursionError as error:
    raise CheckpointError(f"{path}: the pickled object is nested too deeply to convert") from error


def _read_legacy_checkpoint(path, file):
  """Reads the legacy format from `file`, an mmap of the whole checkpoint.

  An mmap rather than the open file: its read(n) returns at most what the
  file holds, where a buffered file would first allocate all n bytes that a
  corrupt length asks for.
  """
  file_size = len(file)
  magic = _unpickle(file, file_size, f"{path}: not a PyTorch checkpoint: its first pickle")
  if magic != _LEGACY_MAGIC_NUMBER:
    raise CheckpointError(f"{path}: not a PyTorch checkpoint: it starts with a pickle of {magic!r:.60}, "
                          "not the legacy magic number")
  protocol = _unpickle(file, file_size, f"{path} (protocol version)")
  if protocol != _LEGACY_PROTOCOL_VERSION:
    raise CheckpointError(f"{path}: unsupported legacy protocol version {protocol!r:.60} "
                          f"(expected {_LEGACY_PROTOCOL_VERSION})")
  sys_info = _unpickle(file, file_size, f"{path} (system info)")
  if not isinstance(sys_info, dict):
    raise CheckpointError(f"{path}: system info is a {type(sys_info).__name__}, not a dict")
  big_endian = not sys_info.get("little_endian", True)
  source = f"{path} (pickled object)"
  registry = _StorageRegistry(source, legacy=True)
  obj = _unpickle(file, file_size, source, registry)
  storage_keys = _unpickle(file, file_size, f"{path} (storage key list)")
  if not isinstance(storage_keys, list) or not all(isinstance(key, str) for key in storage_keys):
    raise CheckpointError(f"{path}: storage key list is not a list of strings: {storage_keys!r:.200}")
  count_format = ">q" if big_endian else "<q"
  storage_arrays = {}
  for key in storage_keys:
    if key not in registry.roots or key in storage_arrays:
      raise CheckpointError(f"{path}: storage key list names '{key}', which no tensor uses or which repeats")
    storage_type, numel = registry.roots[key]
    count_bytes = file.read(8)
    if len(count_bytes) < 8:
      raise CheckpointError(f"{path}: truncated: the file ends before the data of storage '{key}'")
    (count,) = struct.unpack(count_format, count_bytes)
    if count != numel:
      raise CheckpointError(f"{path}: storage '{key}' holds {count} elements but the pickle declares {numel}")
    itemsize = _numpy_dtype(storage_type.dtype_name, path).itemsize
    raw = file.read(min(numel * itemsize, file_size - file.tell()))
    if len(raw) < numel * itemsize:
      raise CheckpointError(f"{path}: truncated: the file ends inside the data of storage '{key}' "
                            f"(expected {numel * itemsize} bytes, found {len(raw)})")
    storage_arrays[key] = _storage_array(raw, storage_type, numel, big_endian, path, f"'{key}'")
  missing = [key for key in registry.roots if key not in storage_arrays]
  if missing:
    raise CheckpointError(f"{path}: storages {missing[:5]} are used by tensors but have no data in the file")
  return _resolve(path, obj, storage_arrays)


def read_torch_checkpoint(path):
  """Reads a PyTorch checkpoint (zip or legacy format) without torch.

  Args:
      path: the checkpoint file. Its format is told from its first bytes, not its name.

  Returns:
      The pickled object, with every tensor replaced by a numpy array (same
      dtype, shape and values; 0-dim tensors become 0-d arrays) and every
      OrderedDict by a dict with the same order. State-dict `_metadata` is dropped.

  Raises:
      CheckpointError: the file is missing, unreadable, truncated, not a
          checkpoint, or names any global besides the tensor-rebuilding ones.
  """
  path = os.fspath(path)
  if os.path.isdir(path):
    raise CheckpointError(f"{path}: is a directory, not a checkpoint file")
  try:
    file = open(path, "rb")  # pylint: disable=consider-using-with
  except FileNotFoundError as error:
    raise CheckpointError(f"{path}: no such file") from error
  except OSError as error:
    raise CheckpointError(f"{path}: cannot open: {error.strerror}") from error
  with file:
    head = file.read(512)
    if not head:
      raise CheckpointError(f"{path}: file is empty, not a checkpoint")
    if head.startswith(_ZIP_MAGIC):
      file.close()
      return _read_zip_checkpoint(path)
    if head[257:262] == b"ustar":
      raise CheckpointError(f"{path}: tar-format checkpoints (PyTorch < 0.4) are not supported")
    if head[0] == pickle.PROTO[0]:
      try:
        mapped = mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ)
      except (OSError, ValueError) as error:
        raise CheckpointError(f"{path}: cannot map the file into memory: {error}") from error
      with mapped:
        return _read_legacy_checkpoint(path, mapped)
  raise CheckpointError(f"{path}: not a PyTorch checkpoint: starts with bytes {head[:8].hex(' ')}, "
                        "neither a zip archive nor a pickle")


def flatten_state_dict(obj, prefix=""):
  """Flattens nested dicts into {'dotted.key': array}, keeping only the array-valued entries.

  Args:
      obj: a dict as returned by read_torch_checkpoint, e.g. {'kp_detector': {'a.b': arr}, 'epoch': 3}.
      prefix: prepended (with a dot) to every key.

  Returns:
      A dict such as {'kp_detector.a.b': arr}, in traversal order. Lists and
      non-array leaves (like 'epoch') are left out.

  Raises:
      TypeError: `obj` is not a dict.
      CheckpointError: two entries flatten to the same key.
  """
  if not isinstance(obj, dict):
    raise TypeError(f"flatten_state_dict expects a dict, got {type(obj).__name__}")
  flat = {}
  _flatten_into(obj, prefix, flat)
  return flat


def _flatten_into(obj, prefix, flat):
  for key, value in obj.items():
    name = _join_path(prefix, key)
    if isinstance(value, dict):
      _flatten_into(value, name, flat)
    elif isinstance(value, np.ndarray):
      if name in flat:
        raise CheckpointError(f"two entries flatten to the same key '{name}'")
      flat[name] = value


# ---------------------------------------------------------------------------
# Writing. The standard pickler refuses to name globals it cannot import (all
# of torch), so the main object is emitted opcode by opcode, in protocol 2.


def _storage_name_for(dtype):
  """The torch storage class name for a numpy dtype, or None when torch has none."""
  if dtype.name == "bfloat16":
    return "BFloat16Storage"
  if dtype.kind not in "fiub":
    return None
  return _STORAGE_NAME_BY_DTYPE_NAME.get(dtype.newbyteorder("=").name)


def _contiguous_strides(shape):
  """Row-major element strides, computed the way torch does (a size-0 dim counts as 1)."""
  strides = []
  step = 1
  for length in reversed(shape):
    strides.append(step)
    step *= max(length, 1)
  return tuple(reversed(strides))


def _is_state_dict(obj):
  """A non-empty dict mapping names to arrays: torch would have pickled it as an OrderedDict."""
  return bool(obj) and all(isinstance(key, str) and isinstance(value, (np.ndarray, np.generic))
                           for key, value in obj.items())


class _CheckpointPickler:
  """Emits the pickle of a checkpoint object, collecting the storages its arrays need.

  Supported: dict (written as OrderedDict when it is an OrderedDict or a
  name -> array mapping, like torch state dicts), list, tuple, str, int,
  float, bool, None, and numpy arrays / numpy scalars (written as tensors).
  """

  def __init__(self, destination, legacy):
    self._destination = destination
    self._legacy = legacy
    self._chunks = []
    self._memo = {}  # (module, name) -> memo index of that global.
    self._active = set()
    self.storages = []  # (key, contiguous little-endian array), in pickling order.

  def dump(self, obj):
    """The complete pickle (PROTO ... STOP) of `obj`."""
    self._chunks = [pickle.PROTO + bytes([_PICKLE_PROTOCOL])]
    self._write(obj, "")
    self._chunks.append(pickle.STOP)
    return b"".join(self._chunks)

  def _fail(self, path, problem):
    raise CheckpointError(f"cannot write {self._destination}: '{path or '<root>'}' {problem}")

  def _write(self, obj, path):
    if obj is None:
      self._chunks.append(pickle.NONE)
    elif isinstance(obj, bool):
      self._chunks.append(pickle.NEWTRUE if obj else pickle.NEWFALSE)
    elif isinstance(obj, (np.ndarray, np.generic)):
      self._write_tensor(np.asarray(obj), path)
    elif isinstance(obj, int):
      self._write_int(int(obj))
    elif isinstance(obj, float):
      self._chunks.append(pickle.BINFLOAT + struct.pack(">d", obj))
    elif isinstance(obj, str):
      encoded = obj.encode("utf-8", "surrogatepass")
      self._chunks.append(pickle.BINUNICODE + struct.pack("<I", len(encoded)) + encoded)
    elif isinstance(obj, (dict, list, tuple)):
      if id(obj) in self._active:
        self._fail(path, "contains itself (cyclic reference)")
      self._active.add(id(obj))
      if isinstance(obj, dict):
        self._write_dict(obj, path)
      else:
        self._write_sequence(obj, path)
      self._active.remove(id(obj))
    else:
      self._fail(path, f"has unsupported type {type(obj).__name__} (supported: dict, list, tuple, str, "
                 "int, float, bool, None, numpy arrays)")

  def _write_int(self, value):
    if 0 <= value < 1 << 8:
      self._chunks.append(pickle.BININT1 + bytes([value]))
    elif 0 <= value < 1 << 16:
      self._chunks.append(pickle.BININT2 + struct.pack("<H", value))
    elif -(1 << 31) <= value < 1 << 31:
      self._chunks.append(pickle.BININT + struct.pack("<i", value))
    else:
      encoded = value.to_bytes((value.bit_length() + 8) // 8, "little", signed=True)
      if len(encoded) > 255:
        self._chunks.append(pickle.LONG4 + struct.pack("<I", len(encoded)) + encoded)
      else:
        self._chunks.append(pickle.LONG1 + bytes([len(encoded)]) + encoded)

  def _write_global(self, module, name):
    index = self._memo.get((module, name))
    if index is not None:
      self._chunks.append(pickle.LONG_BINGET + struct.pack("<I", index))
      return
    index = len(self._memo)
    self._memo[(module, name)] = index
    self._chunks.append(pickle.GLOBAL + f"{module}\n{name}\n".encode("ascii"))
    self._chunks.append(pickle.LONG_BINPUT + struct.pack("<I", index))

  def _write_empty_ordered_dict(self):
    self._write_global("collections", "OrderedDict")
    self._chunks.append(pickle.EMPTY_TUPLE + pickle.REDUCE)

  def _write_dict(self, obj, path):
    if isinstance(obj, collections.OrderedDict) or _is_state_dict(obj):
      self._write_empty_ordered_dict()
    else:
      self._chunks.append(pickle.EMPTY_DICT)
    if not obj:
      return
    self._chunks.append(pickle.MARK)
    for key, value in obj.items():
      if not isinstance(key, (str, int)) or isinstance(key, (bool, np.generic)):
        self._fail(path, f"has a key of unsupported type {type(key).__name__} (only str and int)")
      self._write(key, path)
      self._write(value, _join_path(path, key))
    self._chunks.append(pickle.SETITEMS)

  def _write_sequence(self, obj, path):
    if isinstance(obj, list):
      self._chunks.append(pickle.EMPTY_LIST)
      if not obj:
        return
    elif not obj:
      self._chunks.append(pickle.EMPTY_TUPLE)
      return
    self._chunks.append(pickle.MARK)
    for index, item in enumerate(obj):
      self._write(item, _join_path(path, index))
    self._chunks.append(pickle.APPENDS if isinstance(obj, list) else pickle.TUPLE)

  def _write_tuple_of_ints(self, values):
    self._chunks.append(pickle.MARK)
    for value in values:
      self._write_int(value)
    self._chunks.append(pickle.TUPLE)

  def _write_tensor(self, array, path):
    storage_name = _storage_name_for(array.dtype)
    if storage_name is None:
      self._fail(path, f"has dtype {array.dtype}, which has no PyTorch storage type (supported: "
                 f"{', '.join(sorted(_STORAGE_NAME_BY_DTYPE_NAME))})")
    # Not np.ascontiguousarray: it turns 0-d arrays into 1-d ones.
    data = array if array.flags.c_contiguous else array.copy(order="C")
    if data.dtype.byteorder == ">" or (data.dtype.byteorder == "=" and sys.byteorder == "big"):
      if data.dtype.name == "bfloat16":
        data = data.view(np.uint16).byteswap().view(data.dtype)
      else:
        data = data.astype(data.dtype.newbyteorder("<"))
    key = str(len(self.storages))
    self.storages.append((key, data))
    # _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad, backward_hooks)
    self._write_global("torch._utils", "_rebuild_tensor_v2")
    self._chunks.append(pickle.MARK)
    self._chunks.append(pickle.MARK)
    self._write("storage", path)
    self._write_global("torch", storage_name)
    self._write(key, path)
    self._write("cpu", path)
    self._write_int(data.size)
    if self._legacy:
      self._chunks.append(pickle.NONE)  # No view metadata.
    self._chunks.append(pickle.TUPLE + pickle.BINPERSID)
    self._write_int(0)
    self._write_tuple_of_ints(data.shape)
    self._write_tuple_of_ints(_contiguous_strides(data.shape))
    self._chunks.append(pickle.NEWFALSE)
    self._write_empty_ordered_dict()
    self._chunks.append(pickle.TUPLE + pickle.REDUCE)


def _array_bytes(array):
  """The raw bytes of a contiguous array, as a buffer whose len() is its byte count."""
  return memoryview(array.reshape(-1).view(np.uint8))


def _write_aligned_zip_record(archive, file, name, payload):
  """Stores `payload` uncompressed, padding the local header so the data starts 64-byte aligned.

  Aligned storages let torch.load(mmap=True) map them in place. The padding is
  an extra field of an unassigned id, which zip readers skip.
  """
  info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
  info.compress_type = zipfile.ZIP_STORED
  header_size = 30 + len(name.encode("utf-8"))
  size = len(payload)
  if size * 1.05 > zipfile.ZIP64_LIMIT:  # zipfile then appends a 20-byte zip64 extra field.
    header_size += 20
  padding = -(file.tell() + header_size) % _STORAGE_ALIGNMENT
  if padding:
    if padding < 4:
      padding += _STORAGE_ALIGNMENT
    info.extra = struct.pack("<HH", 0x4246, padding - 4) + bytes(padding - 4)
  archive.writestr(info, payload)


def _write_zip_format(file, archive_folder, pickled, storages):
  with zipfile.ZipFile(file, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as archive:
    records = [("data.pkl", pickled), (".format_version", b"1"),
               (".storage_alignment", str(_STORAGE_ALIGNMENT).encode("ascii")), ("byteorder", b"little")]
    records += [(f"data/{key}", _array_bytes(array)) for key, array in storages]
    records.append(("version", _ZIP_FILE_FORMAT_VERSION))
    for name, payload in records:
      _write_aligned_zip_record(archive, file, f"{archive_folder}/{name}", payload)


def _write_legacy_format(file, pickled, storages):
  for header in (_LEGACY_MAGIC_NUMBER, _LEGACY_PROTOCOL_VERSION, _LEGACY_SYS_INFO):
    file.write(pickle.dumps(header, protocol=_PICKLE_PROTOCOL))
  file.write(pickled)
  file.write(pickle.dumps([key for key, _ in storages], protocol=_PICKLE_PROTOCOL))
  for _, array in storages:
    file.write(struct.pack("<q", array.size))
    file.write(_array_bytes(array))


def _archive_folder_name(path):
  """The zip top folder, named after the file like torch.save does ('x.pth.tar' -> 'x.pth')."""
  stem = os.path.splitext(os.path.basename(path))[0]
  if stem and all(char.isascii() and (char.isalnum() or char in "._-") for char in stem):
    return stem
  return "archive"


def write_torch_checkpoint(path, obj, legacy=False):
  """Writes `obj` as a checkpoint torch.load can read, atomically (temp file + rename).

  Args:
      path: destination file; its directory must exist.
      obj: nested dicts / lists / tuples of numpy arrays, numpy scalars, str,
          int, float, bool and None. Arrays become tensors (contiguous, CPU);
          numpy scalars become 0-dim tensors. A dict that is an OrderedDict or
          maps names to arrays (a state dict) is written as an OrderedDict.
      legacy: write the pre-1.6 non-zip format instead of the zip format.

  Raises:
      CheckpointError: `obj` holds something unsupported, or `path` is a
          directory or is in a missing directory. Nothing is written then.
  """
  path = os.fspath(path)
  pickler = _CheckpointPickler(path, legacy)
  pickled = pickler.dump(obj)
  if os.path.isdir(path):
    raise CheckpointError(f"cannot write {path}: it is a directory")
  directory = os.path.dirname(os.path.abspath(path))
  if not os.path.isdir(directory):
    raise CheckpointError(f"cannot write {path}: directory {directory} does not exist")
  temp_path = os.path.join(directory, f".{os.path.basename(path)}.{secrets.token_hex(6)}.tmp")
  # os.open with mode 0o666 lets the umask decide permissions, as for any new file.
  descriptor = os.open(temp_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
  try:
    with os.fdopen(descriptor, "wb") as file:
      if legacy:
        _write_legacy_format(file, pickled, pickler.storages)
      else:
        _write_zip_format(file, _archive_folder_name(path), pickled, pickler.storages)
      file.flush()
      os.fsync(file.fileno())
    os.replace(temp_path, path)
  except BaseException:
    if os.path.exists(temp_path):
      os.remove(temp_path)
    raise
