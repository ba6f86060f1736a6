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
the objects of its pickles, which hold at most limits.MAX_PICKLE_OPCODES
opcodes each (the legacy header pickles far fewer; a zip's `data.pkl` at most
limits.MAX_DATA_PKL_BYTES bytes). Messages never hold a repr of an untrusted
object, only type names, lengths and short cuts.

Modules, each depending only on those above it:

* limits: the bounds above, the storage dtypes, model_byte_budget.
* values: the stand-ins unpickling makes, and short descriptions of untrusted
  values for messages.
* opcodes: the scan of a pickle's opcodes that comes before unpickling it.
* unpickler: the restricted unpickler, its allowed globals, the storage registry.
* tensors: storage bytes to arrays; the checks of tensor layouts and sizes, and
  the conversion of the unpickled object.
* zip_format, legacy_format: the two formats.
* this one: read_torch_checkpoint, which opens the file and tells its format.
"""

import mmap
import os
import pickle
import stat

from fomm_tf.checkpoint.torch_pickle import legacy_format
from fomm_tf.checkpoint.torch_pickle import zip_format
from fomm_tf.checkpoint.torch_pickle.limits import DEFAULT_MAX_TOTAL_BYTES
from fomm_tf.checkpoint.torch_pickle.limits import model_byte_budget
from fomm_tf.errors import CheckpointError

__all__ = ["DEFAULT_MAX_TOTAL_BYTES", "model_byte_budget", "read_torch_checkpoint"]


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
    if head.startswith(zip_format.ZIP_MAGIC):
      file.seek(0)
      return zip_format.read_zip_checkpoint(path, file, file_size, max_total_bytes)
    if head[257:262] == b"ustar":
      raise CheckpointError(f"{path}: tar-format checkpoints (PyTorch < 0.4) are not supported")
    if head[0] == pickle.PROTO[0]:
      try:
        mapped = mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ)
      except (OSError, ValueError) as error:
        raise CheckpointError(f"{path}: cannot map the file into memory: {error}") from error
      with mapped:
        return legacy_format.read_legacy_checkpoint(path, mapped, max_total_bytes)
  raise CheckpointError(f"{path}: not a PyTorch checkpoint: starts with bytes {head[:8].hex(' ')}, "
                        "neither a zip archive nor a pickle")
