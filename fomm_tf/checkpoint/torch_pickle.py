"""Reads PyTorch checkpoint files (`.pth`, `.pth.tar`) without importing torch.

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

Resources are bounded for any input, so that a damaged or hostile file costs an
error message, not the machine: every claim a file makes (record sizes, element
counts, tensor shapes, memo indices, integer lengths, nesting) is checked
before anything is allocated for it. Reading a file allocates at most its own
size (the storage bytes) plus `max_total_bytes` (the tensors handed back) plus
the objects of its pickles, which hold at most _MAX_PICKLE_OPCODES opcodes
each (the legacy header pickles far fewer; a zip's `data.pkl` at most
_MAX_DATA_PKL_BYTES bytes). Messages never hold a repr of an untrusted object,
only type names, lengths and short cuts.
"""

import io
import math
import mmap
import os
import pickle
import pickletools
import stat
import struct
import sys
import zipfile
import zlib

import numpy as np

from fomm_tf.errors import CheckpointError


_ZIP_MAGIC = b"PK\x03\x04"
_LEGACY_MAGIC_NUMBER = 0x1950A86A20F9469CFC6C
_LEGACY_PROTOCOL_VERSION = 1001
# numpy's limit on array dimensions.
_MAX_TENSOR_DIMS = 64
_MAX_INT64 = (1 << 63) - 1
# A zero-stride (expanded) tensor may hold more elements than its storage; past
# this size such a tensor is taken for corruption rather than copied out.
_MAX_EXPANDED_TENSOR_BYTES = 1 << 30

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
_MAX_DATA_PKL_BYTES = 64 << 20
# The `byteorder` record holds "little" or "big".
_MAX_BYTEORDER_BYTES = 16
# Each opcode makes at most one object (~100 bytes), so this bounds the Python
# objects of one pickle to ~25 MB (and its scan to ~0.5 s). vox-256 with its
# optimizers needs ~35k: ~37 per tensor, ~80 per Adam state entry.
_MAX_PICKLE_OPCODES = 1 << 18
# The legacy format's magic number, protocol version and system info take ~30
# opcodes together, and its storage key list ~2 per storage.
_MAX_HEADER_PICKLE_OPCODES = 256
_MAX_OPCODES_PER_STORAGE_KEY = 4
# Checkpoints nest ~6 levels (optimizer -> state -> param -> exp_avg -> tensor args).
# Past this, nesting is taken for an attack on the C stack (see _scan_pickle_opcodes).
_MAX_NESTING = 100
# torch's integers are int64; Python's longer ones print in quadratic time and
# past ~14,000 bits not at all (sys.get_int_max_str_digits).
_MAX_INT_BITS = 4096
# Dict keys are str or int64 (optimizer parameter ids); longer integers can be
# made to share a hash, making each insertion linear in the dict size.
_MAX_KEY_INT_BITS = 64

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


def model_byte_budget(variable_shapes):
  """A `max_total_bytes` for loading a checkpoint into a model whose variables have `variable_shapes`.

  _MODEL_BUDGET_FACTOR times their float32 size (whatever their dtype) plus
  _MODEL_BUDGET_SLACK_BYTES: room for an official checkpoint's weights of all
  three networks and their optimizer state, but not for a file that claims
  gigabytes for a model of megabytes.
  """
  elements = sum(math.prod(int(length) for length in shape) for shape in variable_shapes)
  return _MODEL_BUDGET_FACTOR * 4 * elements + _MODEL_BUDGET_SLACK_BYTES


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
# Short descriptions of untrusted values, for messages. A repr could be
# gigabytes (a list of many references to one long string), recurse past the
# stack limit, or fail (an integer too long to print).

_SHOWN_CHARS = 40


def _describe(value):
  if value is None or isinstance(value, (bool, float)):
    return repr(value)
  if isinstance(value, int):
    return str(value) if value.bit_length() <= 64 else f"an integer of {value.bit_length()} bits"
  if isinstance(value, (str, bytes)):
    if len(value) <= _SHOWN_CHARS:
      return repr(value)
    unit = "characters" if isinstance(value, str) else "bytes"
    return f"{value[:_SHOWN_CHARS]!r}... ({len(value)} {unit})"
  if isinstance(value, (list, tuple, dict)):
    return f"a {type(value).__name__} of {len(value)} item{'' if len(value) == 1 else 's'}"
  if isinstance(value, _StorageType):
    return f"torch.{value.class_name}"
  return f"a {type(value).__name__}"


def _describe_items(value, limit=6):
  """A tuple or list shown one level deep, each item described shortly."""
  if not isinstance(value, (tuple, list)):
    return _describe(value)
  shown = ", ".join(_describe(item) for item in value[:limit])
  more = f", ... ({len(value)} items)" if len(value) > limit else ""
  return f"({shown}{more})" if isinstance(value, tuple) else f"[{shown}{more}]"


# Paths into the unpickled object are (parent path, key) chains, None at the
# root, and become text only for a message: joining them eagerly would cost
# depth x key length per node, quadratic for long keys.
_SHOWN_KEY_CHARS = 100
_SHOWN_PATH_CHARS = 300


def _key_text(key):
  if isinstance(key, str):
    return key if len(key) <= _SHOWN_KEY_CHARS else f"{key[:_SHOWN_KEY_CHARS]}...({len(key)} characters)"
  return _describe(key)


def _path_text(path):
  keys = []
  while path is not None:
    path, key = path
    keys.append(_key_text(key))
  if not keys:
    return "<root>"
  text = ".".join(reversed(keys))
  return text if len(text) <= _SHOWN_PATH_CHARS else "..." + text[-_SHOWN_PATH_CHARS:]


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
    fields = ", ".join(f"{name}={_describe(getattr(self, name))}" for name in self.__slots__)
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


def _is_safe_key(key):
  """Whether hashing `key` is cheap and cannot be steered into collisions (see _MAX_KEY_INT_BITS)."""
  if isinstance(key, int):
    return key.bit_length() <= _MAX_KEY_INT_BITS
  return key is None or isinstance(key, (str, bytes, float))


def _new_ordered_dict(*args):
  # Python 3 pickles an OrderedDict empty, its items following as SETITEMS
  # (which _scan_pickle_opcodes checks); Python 2 passed them as a list of [key, value]
  # pairs, whose keys are checked here before dict() hashes them.
  if not args:
    return _LoadedOrderedDict()
  if len(args) != 1 or type(args[0]) is not list:  # pylint: disable=unidiomatic-typecheck
    raise TypeError(f"OrderedDict takes one list of items, got {len(args)} argument(s)")
  for item in args[0]:
    if not isinstance(item, (list, tuple)) or len(item) != 2 or not _is_safe_key(item[0]):
      raise TypeError(f"OrderedDict item {_describe_items(item, limit=2)} is not a (str or int64 key, value) pair")
  return _LoadedOrderedDict(args[0])


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
    ("collections", "OrderedDict"): _AllowedCallable("collections.OrderedDict", _new_ordered_dict),
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
  """A non-negative int64 (torch's sizes, strides, offsets and element counts are int64)."""
  return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= _MAX_INT64


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
      raise CheckpointError(f"{self._source}: unsupported persistent id {_describe_items(persistent_id)}")
    storage_type, root_key, location, numel = persistent_id[1:5]
    root_key, location = _as_str(root_key), _as_str(location)
    if not isinstance(storage_type, _StorageType):
      raise CheckpointError(f"{self._source}: persistent id {_describe_items(persistent_id)} names no storage type")
    if not isinstance(root_key, str) or not isinstance(location, str) or not _is_count(numel):
      raise CheckpointError(f"{self._source}: malformed storage persistent id {_describe_items(persistent_id)}")
    known = self.roots.setdefault(root_key, (storage_type, numel))
    if known != (storage_type, numel):
      raise CheckpointError(
          f"{self._source}: storage {_describe(root_key)} is declared both as {known[0].class_name} of {known[1]} "
          f"elements and as {storage_type.class_name} of {numel} elements")
    view_metadata = persistent_id[5] if self._legacy else None
    if view_metadata is None:
      return _StorageRef(root_key, storage_type, 0, numel)
    # Pre-1.0 checkpoints could save views into a larger storage: (view key, offset, size).
    if not (isinstance(view_metadata, tuple) and len(view_metadata) == 3 and _is_count(view_metadata[1])
            and _is_count(view_metadata[2]) and view_metadata[1] + view_metadata[2] <= numel):
      raise CheckpointError(f"{self._source}: storage {_describe(root_key)} ({numel} elements) has invalid view "
                            f"{_describe_items(view_metadata)}")
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
          f"{self._source}: refused to load global {_describe(module + '.' + name)}: only tensors and plain "
          "containers are allowed, so nothing in the file was run")
    return allowed

  def persistent_load(self, pid):
    if self._storage_registry is None:
      raise CheckpointError(f"{self._source}: unexpected persistent id {_describe_items(pid)}")
    return self._storage_registry.register(pid)


# Errors a malformed or truncated pickle makes the unpickler raise (besides our own CheckpointError).
_UNPICKLING_ERRORS = (pickle.UnpicklingError, EOFError, AttributeError, IndexError, KeyError, TypeError,
                      ValueError, OverflowError, struct.error, RecursionError)


# What _scan_pickle_opcodes does with each opcode (see _scan_actions).
_PUT, _GET, _MEMOIZE, _MARK, _POP, _DUP, _INT, _SET, _TUPLE, _KEYED, _IN_PLACE, _OTHER = range(12)
# Stack entries of _scan_pickle_opcodes: the tuple nesting depth (0: not a tuple), or this for a long integer.
_LONG_INT = -1


def _scan_actions():
  """{pickletools opcode: (action, whether it pops to a mark, items it pops (below the mark), items it pushes)}."""
  named = {"PUT": _PUT, "BINPUT": _PUT, "LONG_BINPUT": _PUT, "GET": _GET, "BINGET": _GET, "LONG_BINGET": _GET,
           "MEMOIZE": _MEMOIZE, "MARK": _MARK, "POP": _POP, "DUP": _DUP, "EMPTY_SET": _SET, "ADDITEMS": _SET,
           "FROZENSET": _SET, "EMPTY_TUPLE": _TUPLE, "TUPLE": _TUPLE, "TUPLE1": _TUPLE, "TUPLE2": _TUPLE,
           "TUPLE3": _TUPLE, "SETITEM": _KEYED, "SETITEMS": _KEYED, "DICT": _KEYED, "APPEND": _IN_PLACE,
           "APPENDS": _IN_PLACE, "BUILD": _IN_PLACE}
  named.update(dict.fromkeys(["INT", "BININT", "BININT1", "BININT2", "LONG", "LONG1", "LONG4"], _INT))
  actions = {}
  for opcode in pickletools.opcodes:
    before = opcode.stack_before
    if pickletools.markobject in before:
      popped = (True, before.index(pickletools.markobject))
    else:
      popped = (False, len(before))
    actions[opcode] = (named.get(opcode.name, _OTHER), *popped, len(opcode.stack_after))
  return actions


_SCAN_ACTIONS = _scan_actions()


def _scan_pickle_opcodes(stream, source, max_opcodes):  # pylint: disable=too-many-branches,too-many-statements
  """Walks the opcodes of one pickle without building anything, refusing what would exhaust memory, time or stack.

  CPython's unpickler trusts the stream in ways a hostile file can exploit
  before any of our code sees an object:
  * it grows (and zeroes) its memo table up to the largest index a PUT names.
    Writers number memo entries from 0 in order, so an index never exceeds
    the opcode count;
  * it hashes dict keys, and hashing a tuple recurses in C without a depth
    check: a key nested a million deep (a 1 MB pickle) overflows the C stack
    and kills the process. Tuples are immutable, so the scan knows each one's
    depth exactly. Keys must be atoms anyway (str, int64, ...): tuple and long
    integer keys can be chosen to share a hash, each insertion then costing
    time linear in the dict size;
  * an integer pickled as a long decimal string, or printed, takes quadratic time;
  * each opcode may make an object, so their count bounds the memory.
  Sets never occur in checkpoints (they pickle as protocol-4 opcodes or a
  refused global) and are refused outright, as their items are hashed too.

  The stack is simulated with one int per entry (see _LONG_INT), the marks as
  stack heights, and the memo as a bytearray indexed like the real one (a dict
  of as many entries would take ~70 bytes each): entry + 2, 0 where unset.
  """
  stack, marks = [], []
  memo, memo_count = bytearray(), 0

  def fail(problem):
    raise CheckpointError(f"{source}: malformed pickle data: {problem} at opcode {index} (corrupt or hostile file)")

  def pop(count):
    if count > len(stack):
      fail("stack underflow")
    if not count:
      return []
    items = stack[-count:]
    del stack[-count:]
    return items

  index = 0
  for index, (opcode, argument, _) in enumerate(pickletools.genops(stream)):
    if index >= max_opcodes:
      fail(f"more than {max_opcodes} opcodes")
    action, marked, below, pushed = _SCAN_ACTIONS[opcode]
    if action == _PUT or action == _GET:  # pylint: disable=consider-using-in
      if argument > index:
        fail(f"memo index {argument}")
      if action == _GET:
        stack.append(memo[argument] - 2 if argument < len(memo) and memo[argument] else 0)
        continue
      if argument >= len(memo):
        memo.extend(bytes(argument + 1 - len(memo)))
      memo_count += not memo[argument]
      memo[argument] = (stack[-1] if stack else 0) + 2
      continue
    if action == _INT:
      bits = abs(argument).bit_length()
      if bits > _MAX_INT_BITS:
        fail(f"an integer of {bits} bits")
      stack.append(_LONG_INT if bits > _MAX_KEY_INT_BITS else 0)
      continue
    if action == _MARK:
      marks.append(len(stack))
      if len(marks) > _MAX_NESTING:
        fail(f"marks nested more than {_MAX_NESTING} deep")
      continue
    if action == _MEMOIZE:  # CPython puts at the count of entries set so far.
      slot = memo_count
      if slot >= len(memo):
        memo.extend(bytes(slot + 1 - len(memo)))
      memo_count += not memo[slot]
      memo[slot] = (stack[-1] if stack else 0) + 2
      continue
    if action == _DUP:
      stack.append(stack[-1] if stack else 0)
      continue
    if action == _POP:
      # Like CPython, POP right after a MARK discards the mark.
      if marks and marks[-1] == len(stack):
        marks.pop()
      else:
        pop(1)
      continue
    if action == _SET:
      fail("a set (checkpoints hold none)")
    if marked:
      if not marks:
        fail("no mark on the stack")
      height = marks.pop()
      items = stack[height:]
      del stack[height:]
      base = pop(below)
    else:
      items = pop(below)
      base = items[:1]
    if action == _KEYED:
      keys = items[1:2] if opcode.name == "SETITEM" else items[0::2]
      for key in keys:
        if key > 0:
          fail("a dict key is a tuple")
        if key == _LONG_INT:
          fail(f"a dict key is an integer of more than {_MAX_KEY_INT_BITS} bits")
      stack.append(base[0] if base else 0)
    elif action == _TUPLE:
      depth = 1 + max([item for item in items if item > 0], default=0)
      if depth > _MAX_NESTING:
        fail(f"tuples nested more than {_MAX_NESTING} deep")
      stack.append(depth)
    elif action == _IN_PLACE:
      stack.append(base[0] if base else 0)
    elif pushed:
      stack.extend([0] * pushed)


def _scan_pickle(stream, stream_size, source, max_opcodes):
  """Checks the next pickle in `stream` with _scan_pickle_opcodes, then rewinds."""
  start = stream.tell()
  try:
    _scan_pickle_opcodes(stream, source, max_opcodes)
  except CheckpointError:
    raise
  except (ValueError, struct.error) as error:
    if stream.tell() >= stream_size:
      raise CheckpointError(f"{source}: truncated: the data ends inside the pickle ({error})") from error
    raise CheckpointError(f"{source}: malformed pickle data ({error})") from error
  stream.seek(start)


def _unpickle(stream, stream_size, source, storage_registry=None, max_opcodes=_MAX_PICKLE_OPCODES):
  """Loads one pickle of at most `max_opcodes` opcodes from `stream` with the restricted unpickler."""
  _scan_pickle(stream, stream_size, source, max_opcodes)
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


class _TensorLayout(_Immutable):
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
    if depth > _MAX_NESTING:
      raise CheckpointError(f"{self._source}: '{_path_text(path)}' is nested more than {_MAX_NESTING} levels deep")
    if isinstance(obj, _PendingTensor):
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
    if not isinstance(storage, _StorageRef):
      raise CheckpointError(
          f"{self._source}: tensor '{name}' is built from a {type(storage).__name__}, not a storage")
    offset, size, stride = tensor.storage_offset, tensor.size, tensor.stride
    if not (_is_count(offset) and type(size) is tuple and type(stride) is tuple  # pylint: disable=unidiomatic-typecheck
            and len(size) == len(stride) and all(_is_count(value) for value in size + stride)):
      raise CheckpointError(
          f"{self._source}: tensor '{name}' has invalid layout (offset {_describe(offset)}, size "
          f"{_describe_items(size, limit=8)}, stride {_describe_items(stride, limit=8)}; each must be int64 >= 0)")
    if len(size) > _MAX_TENSOR_DIMS:
      raise CheckpointError(f"{self._source}: tensor '{name}' has {len(size)} dimensions "
                            f"(at most {_MAX_TENSOR_DIMS} are supported)")
    dtype = _numpy_dtype(storage.storage_type.dtype_name, self._source)
    # numpy refuses a shape whose product, zero lengths counted as 1, overflows
    # (even with no elements); torch cannot make one either.
    if math.prod(max(length, 1) for length in size) * dtype.itemsize > _MAX_INT64:
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
          f"{extent} elements but its storage {_describe(storage.root_key)} holds {storage.numel}")
    if numel > storage.numel and numel * dtype.itemsize > _MAX_EXPANDED_TENSOR_BYTES:
      raise CheckpointError(
          f"{self._source}: tensor '{name}' (size {list(size)}, stride {list(stride)}) expands "
          f"{storage.numel} storage elements to {numel} elements, more than "
          f"{_MAX_EXPANDED_TENSOR_BYTES >> 20} MiB")
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
    if isinstance(obj, _PendingTensor):
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
    view = np.lib.stride_tricks.as_strided(
        base, shape=layout.size, strides=[step * layout.dtype.itemsize for step in layout.stride], writeable=False)
    return view.copy()


def _resolve(source, obj, max_total_bytes, read_storages):
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
# a mutated compression method or encryption flag, data cut short, offsets out of range.
_ZIP_ERRORS = (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError, NotImplementedError, RuntimeError,
               struct.error, OverflowError, IndexError, KeyError)
# Names of the compression methods zipfile knows; torch.load (miniz) reads only the first two.
_ZIP_METHOD_NAMES = {zipfile.ZIP_STORED: "stored", zipfile.ZIP_DEFLATED: "deflate", zipfile.ZIP_BZIP2: "bzip2",
                     zipfile.ZIP_LZMA: "lzma"}


def _read_zip_record(archive, name, path, file_size, limit=None, exact_size=None):
  """The bytes of record `name`, reading no more than its header declares (checked first).

  Args:
      archive, name, path: the open archive, the record's name and the checkpoint's path (for messages).
      file_size: of the checkpoint: a stored record must lie inside it.
      limit: the most bytes the record may declare.
      exact_size: the size a storage record must declare; such a record must be stored (uncompressed).
  """
  try:
    info = archive.getinfo(name)
  except KeyError as error:
    raise CheckpointError(f"{path}: zip archive has no record '{name}'") from error
  method = info.compress_type
  # zipfile decompresses bzip2 and lzma a whole input chunk at a time, so a few
  # kB of a bomb become gigabytes before any size check; deflate it bounds.
  # torch writes every record stored and reads only stored or deflated ones.
  if method not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED) or (exact_size is not None
                                                                   and method != zipfile.ZIP_STORED):
    what = "storage records must be stored uncompressed" if exact_size is not None else \
        "torch.load reads only stored or deflate records"
    raise CheckpointError(f"{path}: record '{name}' is compressed with "
                          f"{_ZIP_METHOD_NAMES.get(method, f'method {method}')}; {what}")
  if exact_size is not None and info.file_size != exact_size:
    raise CheckpointError(f"{path}: record '{name}' holds {info.file_size} bytes but its storage is declared "
                          f"as {exact_size} bytes")
  if limit is not None and info.file_size > limit:
    raise CheckpointError(f"{path}: record '{name}' declares {info.file_size} bytes, more than the {limit} "
                          "it may hold (corrupt or hostile file)")
  if method == zipfile.ZIP_STORED and info.compress_size != info.file_size:
    raise CheckpointError(f"{path}: record '{name}' is stored but its header declares {info.compress_size} "
                          f"stored and {info.file_size} uncompressed bytes (corrupt or hostile file)")
  if info.header_offset + info.compress_size > file_size:
    raise CheckpointError(f"{path}: record '{name}' declares {info.compress_size} bytes at offset "
                          f"{info.header_offset}, past the end of the {file_size}-byte file (truncated or corrupt)")
  try:
    with archive.open(info) as record:
      # One byte more than declared tells a header that lies; the CRC is checked
      # once the record's end is reached.
      data = record.read(info.file_size + 1)
  except _ZIP_ERRORS as error:
    raise CheckpointError(f"{path}: cannot read record '{name}' ({type(error).__name__}: {error})") from error
  if len(data) != info.file_size:
    relation = "more" if len(data) > info.file_size else "fewer"
    raise CheckpointError(f"{path}: record '{name}' holds {relation} bytes than the {info.file_size} its header "
                          "declares (corrupt or hostile file)")
  return data


def _read_zip_checkpoint(path, file, file_size, max_total_bytes):
  try:
    archive = zipfile.ZipFile(file)
  except _ZIP_ERRORS as error:
    raise CheckpointError(f"{path}: truncated or corrupt zip archive ({type(error).__name__}: {error})") from error
  with archive:
    folder = _zip_data_folder(archive, path)
    big_endian = False
    if f"{folder}/byteorder" in archive.namelist():
      byteorder = _read_zip_record(archive, f"{folder}/byteorder", path, file_size, limit=_MAX_BYTEORDER_BYTES)
      if byteorder not in (b"little", b"big"):
        raise CheckpointError(f"{path}: unknown byte order {_describe(byteorder)} in '{folder}/byteorder'")
      big_endian = byteorder == b"big"
    pickled = _read_zip_record(archive, f"{folder}/data.pkl", path, file_size, limit=_MAX_DATA_PKL_BYTES)
    source = f"{path} ({folder}/data.pkl)"
    registry = _StorageRegistry(source, legacy=False)
    obj = _unpickle(io.BytesIO(pickled), len(pickled), source, registry)
    del pickled

    def read_storages():
      sizes = {key: numel * _numpy_dtype(storage_type.dtype_name, path).itemsize
               for key, (storage_type, numel) in registry.roots.items()}
      # Records may not overlap, so together they fit in the file; checked up
      # front, as zipfile only notices overlaps it happens to read.
      if sum(sizes.values()) > file_size:
        raise CheckpointError(f"{path}: its storages are declared as {sum(sizes.values())} bytes in all, more "
                              f"than the whole {file_size}-byte file holds")
      storage_arrays = {}
      for key, (storage_type, numel) in registry.roots.items():
        record = f"{folder}/data/{key}"
        raw = _read_zip_record(archive, record, path, file_size, exact_size=sizes[key])
        storage_arrays[key] = _storage_array(raw, storage_type, numel, big_endian, path, f"'{record}'")
      return storage_arrays

    return _resolve(path, obj, max_total_bytes, read_storages)


def _read_legacy_checkpoint(path, file, max_total_bytes):
  """Reads the legacy format from `file`, an mmap of the whole checkpoint.

  An mmap rather than the open file: its read(n) returns at most what the
  file holds, where a buffered file would first allocate all n bytes that a
  corrupt length asks for.
  """
  file_size = len(file)
  magic = _unpickle(file, file_size, f"{path}: not a PyTorch checkpoint: its first pickle",
                    max_opcodes=_MAX_HEADER_PICKLE_OPCODES)
  if type(magic) is not int or magic != _LEGACY_MAGIC_NUMBER:  # pylint: disable=unidiomatic-typecheck
    raise CheckpointError(f"{path}: not a PyTorch checkpoint: it starts with a pickle of {_describe(magic)}, "
                          "not the legacy magic number")
  protocol = _unpickle(file, file_size, f"{path} (protocol version)", max_opcodes=_MAX_HEADER_PICKLE_OPCODES)
  if type(protocol) is not int or protocol != _LEGACY_PROTOCOL_VERSION:  # pylint: disable=unidiomatic-typecheck
    raise CheckpointError(f"{path}: unsupported legacy protocol version {_describe(protocol)} "
                          f"(expected {_LEGACY_PROTOCOL_VERSION})")
  sys_info = _unpickle(file, file_size, f"{path} (system info)", max_opcodes=_MAX_HEADER_PICKLE_OPCODES)
  if not isinstance(sys_info, dict):
    raise CheckpointError(f"{path}: system info is a {type(sys_info).__name__}, not a dict")
  little_endian = sys_info.get("little_endian", True)
  if not isinstance(little_endian, bool):
    raise CheckpointError(f"{path}: system info has little_endian = {_describe(little_endian)}, not a bool")
  big_endian = not little_endian
  source = f"{path} (pickled object)"
  registry = _StorageRegistry(source, legacy=True)
  obj = _unpickle(file, file_size, source, registry)
  storage_keys = _unpickle(file, file_size, f"{path} (storage key list)", max_opcodes=_MAX_HEADER_PICKLE_OPCODES
                           + _MAX_OPCODES_PER_STORAGE_KEY * len(registry.roots))
  if type(storage_keys) is not list:  # pylint: disable=unidiomatic-typecheck
    raise CheckpointError(f"{path}: storage key list is {_describe(storage_keys)}, not a list of strings")
  for index, key in enumerate(storage_keys):
    if not isinstance(key, str):
      raise CheckpointError(f"{path}: storage key list ({len(storage_keys)} items) holds {_describe(key)} "
                            f"at index {index}, not a string")

  def read_storages():
    count_format = ">q" if big_endian else "<q"
    storage_arrays = {}
    for key in storage_keys:
      if key not in registry.roots or key in storage_arrays:
        raise CheckpointError(f"{path}: storage key list names {_describe(key)}, which no tensor uses or which "
                              "repeats")
      storage_type, numel = registry.roots[key]
      count_bytes = file.read(8)
      if len(count_bytes) < 8:
        raise CheckpointError(f"{path}: truncated: the file ends before the data of storage {_describe(key)}")
      (count,) = struct.unpack(count_format, count_bytes)
      if count != numel:
        raise CheckpointError(f"{path}: storage {_describe(key)} holds {count} elements but the pickle declares "
                              f"{numel}")
      itemsize = _numpy_dtype(storage_type.dtype_name, path).itemsize
      raw = file.read(min(numel * itemsize, file_size - file.tell()))
      if len(raw) < numel * itemsize:
        raise CheckpointError(f"{path}: truncated: the file ends inside the data of storage {_describe(key)} "
                              f"(expected {numel * itemsize} bytes, found {len(raw)})")
      storage_arrays[key] = _storage_array(raw, storage_type, numel, big_endian, path, _describe(key))
    missing = [key for key in registry.roots if key not in storage_arrays]
    if missing:
      raise CheckpointError(f"{path}: storages {_describe_items(missing[:5])} are used by tensors but have no "
                            "data in the file")
    return storage_arrays

  return _resolve(path, obj, max_total_bytes, read_storages)


def _open_regular_file(path):
  """`path` opened for binary reading, and its size; anything but a regular file is refused at once.

  O_NONBLOCK makes opening a FIFO return at once (without it, open() waits for
  a writer, forever); the file's type is then told from the open descriptor,
  so nothing can swap the file between the check and the read.
  """
  try:
    descriptor = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
  except FileNotFoundError as error:
    raise CheckpointError(f"{path}: no such file") from error
  except IsADirectoryError as error:
    raise CheckpointError(f"{path}: is a directory, not a checkpoint file") from error
  except OSError as error:
    raise CheckpointError(f"{path}: cannot open: {error.strerror}") from error
  except ValueError as error:  # A NUL in the path.
    raise CheckpointError(f"{path}: cannot open: {error}") from error
  try:
    mode = os.fstat(descriptor).st_mode
    if stat.S_ISDIR(mode):
      raise CheckpointError(f"{path}: is a directory, not a checkpoint file")
    if not stat.S_ISREG(mode):
      kind = "a FIFO" if stat.S_ISFIFO(mode) else "a device, socket or other special file"
      raise CheckpointError(f"{path}: is {kind}, not a regular file, so not a checkpoint")
    if hasattr(os, "set_blocking"):
      os.set_blocking(descriptor, True)
    file = os.fdopen(descriptor, "rb")
  except BaseException:
    os.close(descriptor)
    raise
  return file, os.fstat(file.fileno()).st_size


def read_torch_checkpoint(path, max_total_bytes=None):
  """Reads a PyTorch checkpoint (zip or legacy format) without torch.

  Args:
      path: the checkpoint file. Its format is told from its first bytes, not its name.
      max_total_bytes: the most bytes the returned tensors may take together
          (each counted once, however often it is referenced), checked before any
          is allocated: stride-0 tensors can claim gigabytes each from a few
          bytes of storage. None: DEFAULT_MAX_TOTAL_BYTES. To load into a model,
          pass model_byte_budget() of its variables.

  Returns:
      The pickled object, with every tensor replaced by a numpy array (same
      dtype, shape and values; 0-dim tensors become 0-d arrays) and every
      OrderedDict by a dict with the same order. State-dict `_metadata` is dropped.
      Other values (lists, strings, numbers) come back as they are, shared
      references still shared.

  Raises:
      CheckpointError: the file is missing, unreadable, not a regular file,
          truncated, not a checkpoint, names any global besides the
          tensor-rebuilding ones, or claims more memory than allowed.
  """
  path = os.fspath(path)
  if max_total_bytes is None:
    max_total_bytes = DEFAULT_MAX_TOTAL_BYTES
  if isinstance(max_total_bytes, bool) or not isinstance(max_total_bytes, int) or max_total_bytes < 0:
    raise ValueError(f"max_total_bytes must be an int >= 0 or None, got {max_total_bytes!r}")
  file, file_size = _open_regular_file(path)
  with file:
    try:
      head = file.read(512)
    except OSError as error:
      raise CheckpointError(f"{path}: cannot read: {error.strerror}") from error
    if not head:
      raise CheckpointError(f"{path}: file is empty, not a checkpoint")
    if head.startswith(_ZIP_MAGIC):
      file.seek(0)
      return _read_zip_checkpoint(path, file, file_size, max_total_bytes)
    if head[257:262] == b"ustar":
      raise CheckpointError(f"{path}: tar-format checkpoints (PyTorch < 0.4) are not supported")
    if head[0] == pickle.PROTO[0]:
      try:
        mapped = mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ)
      except (OSError, ValueError) as error:
        raise CheckpointError(f"{path}: cannot map the file into memory: {error}") from error
      with mapped:
        return _read_legacy_checkpoint(path, mapped, max_total_bytes)
  raise CheckpointError(f"{path}: not a PyTorch checkpoint: starts with bytes {head[:8].hex(' ')}, "
                        "neither a zip archive nor a pickle")
