"""What unpickling makes in place of torch's objects, and short descriptions of untrusted values.

The stand-ins are what the allowed globals of unpickler.py resolve to and
build. The descriptions live here too because they name storage types, and the
stand-ins' repr is made of them.
"""

# ---------------------------------------------------------------------------
# Short descriptions of untrusted values, for messages. A repr could be
# gigabytes (a list of many references to one long string), recurse past the
# stack limit, or fail (an integer too long to print).

_SHOWN_CHARS = 40


def describe(value):
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
  if isinstance(value, StorageType):
    return f"torch.{value.class_name}"
  return f"a {type(value).__name__}"


def describe_items(value, limit=6):
  """A tuple or list shown one level deep, each item described shortly."""
  if not isinstance(value, (tuple, list)):
    return describe(value)
  shown = ", ".join(describe(item) for item in value[:limit])
  more = f", ... ({len(value)} items)" if len(value) > limit else ""
  return f"({shown}{more})" if isinstance(value, tuple) else f"[{shown}{more}]"


# ---------------------------------------------------------------------------
# Stand-ins for the torch globals a checkpoint may name.
#
# They are immutable slotted objects, not bare functions or classes, and refuse
# __setstate__, so a pickle's BUILD opcode cannot change them (which would
# tamper with every later load in the process). Frozen slotted dataclasses do
# not qualify: they define a __setstate__ that bypasses the freeze.


class Immutable:
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
    fields = ", ".join(f"{name}={describe(getattr(self, name))}" for name in self.__slots__)
    return f"{type(self).__name__}({fields})"


class StorageType(Immutable):
  """Stand-in for a `torch.<Name>Storage` class: only names an element type."""
  __slots__ = ("class_name", "dtype_name")

  def __init__(self, class_name, dtype_name):
    super().__init__(class_name=class_name, dtype_name=dtype_name)


class AllowedCallable(Immutable):
  """Stand-in for an allowed torch/collections callable, backed by a local function."""
  __slots__ = ("qualified_name", "function")

  def __init__(self, qualified_name, function):
    super().__init__(qualified_name=qualified_name, function=function)

  def __call__(self, *args):
    return self.function(*args)


class StorageRef(Immutable):
  """A storage named by a persistent id: `numel` elements from `element_offset` of root `root_key`."""
  __slots__ = ("root_key", "storage_type", "element_offset", "numel")

  def __init__(self, root_key, storage_type, element_offset, numel):
    super().__init__(root_key=root_key, storage_type=storage_type, element_offset=element_offset, numel=numel)


class PendingTensor(Immutable):
  """A tensor whose storage bytes may not be read yet (legacy files put them after the pickle)."""
  __slots__ = ("storage", "storage_offset", "size", "stride")

  def __init__(self, storage, storage_offset, size, stride):
    super().__init__(storage=storage, storage_offset=storage_offset, size=size, stride=stride)


class LoadedOrderedDict(dict):
  """Stand-in for collections.OrderedDict while unpickling.

  torch pickles a state dict as an OrderedDict whose state carries a
  `_metadata` attribute (per-module versions); BUILD passes that state to
  __setstate__, which drops it.
  """
  __slots__ = ()

  def __setstate__(self, state):
    if not isinstance(state, dict):
      raise TypeError(f"OrderedDict state must be a dict, got {type(state).__name__}")
