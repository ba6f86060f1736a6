"""Writes PyTorch checkpoint files (zip and legacy formats) without torch: test data for the reader.

Only tests use it (real `.pth.tar` files for the loader and its hostile-input
cases); the runtime package only reads checkpoints.
"""

import collections
import os
import pickle
import secrets
import struct
import sys
import zipfile
import zlib

import numpy as np

from fomm_tf.checkpoint.torch_pickle import legacy_format
from fomm_tf.checkpoint.torch_pickle import limits
from fomm_tf.errors import CheckpointError

_LEGACY_SYS_INFO = {
    "protocol_version": legacy_format.LEGACY_PROTOCOL_VERSION,
    "little_endian": True,
    "type_sizes": {
        "short": 2,
        "int": 4,
        "long": 4
    },
}
_LEGACY_MAGIC_NUMBER = legacy_format.LEGACY_MAGIC_NUMBER
_LEGACY_PROTOCOL_VERSION = legacy_format.LEGACY_PROTOCOL_VERSION
_PICKLE_PROTOCOL = 2
_STORAGE_ALIGNMENT = 64
# Version of the zip layout torch.load is told to expect (the `version` record).
_ZIP_FILE_FORMAT_VERSION = b"3\n"
_STORAGE_NAME_BY_DTYPE_NAME = {dtype: name for name, dtype in limits.STORAGE_DTYPE_NAMES.items()}


def _join_path(path, key):
  return f"{path}.{key}" if path else str(key)


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


# The standard pickler refuses to name globals it cannot import (all
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
  return bool(obj) and all(
      isinstance(key, str) and isinstance(value, (np.ndarray, np.generic)) for key, value in obj.items())


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
      self._fail(
          path, f"has unsupported type {type(obj).__name__} (supported: dict, list, tuple, str, "
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
      self._fail(
          path, f"has dtype {array.dtype}, which has no PyTorch storage type (supported: "
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


# ---------------------------------------------------------------------------
# Hostile files, for tests of the reader's bounds: pickles written opcode by
# opcode (so they can claim anything) and zip archives whose headers may lie.


def op_global(module, name):
  return pickle.GLOBAL + f"{module}\n{name}\n".encode()


def op_str(text):
  encoded = text.encode("utf-8", "surrogatepass")
  return pickle.BINUNICODE + struct.pack("<I", len(encoded)) + encoded


def op_int(value):
  """The shortest opcode for `value`, as Python's pickler writes it."""
  if -(1 << 31) <= value < 1 << 31:
    return pickle.BININT + struct.pack("<i", value)
  encoded = value.to_bytes((value.bit_length() + 8) // 8, "little", signed=True)
  if len(encoded) < 256:
    return pickle.LONG1 + bytes([len(encoded)]) + encoded
  return pickle.LONG4 + struct.pack("<I", len(encoded)) + encoded


def op_put(index):
  return pickle.LONG_BINPUT + struct.pack("<I", index)


def op_get(index):
  return pickle.LONG_BINGET + struct.pack("<I", index)


def op_tuple(*parts):
  return pickle.MARK + b"".join(parts) + pickle.TUPLE


def op_list(*parts):
  return pickle.MARK + b"".join(parts) + pickle.LIST


def op_dict(items):
  """A plain dict from (str key, opcodes of the value) pairs."""
  return pickle.EMPTY_DICT + pickle.MARK + b"".join(op_str(key) + value for key, value in items) + pickle.SETITEMS


def op_ordered_dict(items):
  """An OrderedDict, the way torch pickles state dicts."""
  return (op_global("collections", "OrderedDict") + pickle.EMPTY_TUPLE + pickle.REDUCE + pickle.MARK +
          b"".join(op_str(key) + value for key, value in items) + pickle.SETITEMS)


def op_tensor(storage_type, key, numel, offset, size, stride, legacy):
  """A `_rebuild_tensor_v2` call on storage `key` (`numel` elements of torch.<storage_type>), claiming any layout."""
  pid = [op_str("storage"), op_global("torch", storage_type), op_str(key), op_str("cpu"), op_int(numel)]
  if legacy:
    pid.append(pickle.NONE)
  args = [
      op_tuple(*pid) + pickle.BINPERSID,
      op_int(offset),
      op_tuple(*map(op_int, size)),
      op_tuple(*map(op_int, stride)), pickle.NEWFALSE,
      op_global("collections", "OrderedDict") + pickle.EMPTY_TUPLE + pickle.REDUCE
  ]
  return op_global("torch._utils", "_rebuild_tensor_v2") + op_tuple(*args) + pickle.REDUCE


def pickle_of(body, protocol=2):
  return pickle.PROTO + bytes([protocol]) + body + pickle.STOP


def legacy_header(magic=None, protocol=None, sys_info=None):
  """The three pickles that open a legacy file; each argument replaces one (already pickled) when given."""
  return ((magic or pickle.dumps(_LEGACY_MAGIC_NUMBER, protocol=2)) +
          (protocol or pickle.dumps(_LEGACY_PROTOCOL_VERSION, protocol=2)) +
          (sys_info or pickle.dumps(_LEGACY_SYS_INFO, protocol=2)))


def write_legacy_file(path, main_pickle, storages=(), header=None, keys_pickle=None):
  """A legacy-format file; storages: (key, element count, raw bytes); `keys_pickle` replaces the key list."""
  with open(path, "wb") as file:
    file.write(legacy_header() if header is None else header)
    file.write(main_pickle)
    file.write(keys_pickle or pickle.dumps([key for key, _, _ in storages], protocol=2))
    for _, count, raw in storages:
      file.write(struct.pack("<q", count) + raw)


class ZipRecord:
  """One record for write_zip_file.

  Args:
      name: its name in the archive.
      data: its uncompressed bytes, stored as they are; or None with `raw`.
      method: the compression method the headers name (zipfile.ZIP_*).
      raw: the bytes to put in the archive as they are (already compressed).
      file_size, compress_size, crc: header values to claim instead of the true ones.
  """

  def __init__(self,
               name,
               data=None,
               method=zipfile.ZIP_STORED,
               raw=None,
               file_size=None,
               compress_size=None,
               crc=None):
    if (data is None) == (raw is None):
      raise ValueError("give exactly one of data and raw")
    if data is not None and method == zipfile.ZIP_DEFLATED:
      compressor = zlib.compressobj(6, zlib.DEFLATED, -15)
      raw = compressor.compress(data) + compressor.flush()
    elif data is not None:
      raw = data
    self.name = name
    self.method = method
    self.raw = raw
    self.file_size = len(data) if file_size is None and data is not None else file_size or 0
    self.compress_size = len(raw) if compress_size is None else compress_size
    self.crc = (zlib.crc32(data) if data is not None else 0) if crc is None else crc


def write_zip_file(path, records):
  """A zip archive of ZipRecords, written field by field so that its headers can claim anything."""
  central = []
  with open(path, "wb") as file:
    for record in records:
      offset = file.tell()
      name = record.name.encode("utf-8")
      sizes = struct.pack("<III", record.crc, record.compress_size, record.file_size)
      # Version 20, no flags, DOS time 0, date 1980-01-01.
      file.write(
          struct.pack("<4sHHHHH", b"PK\x03\x04", 20, 0, record.method, 0, 0x21) + sizes +
          struct.pack("<HH", len(name), 0) + name + record.raw)
      central.append(
          struct.pack("<4sHHHHHH", b"PK\x01\x02", 20, 20, 0, record.method, 0, 0x21) + sizes +
          struct.pack("<HHHHHII", len(name), 0, 0, 0, 0, 0, offset) + name)
    directory_offset = file.tell()
    directory = b"".join(central)
    file.write(directory)
    file.write(
        struct.pack("<4sHHHHIIH", b"PK\x05\x06", 0, 0, len(records), len(records), len(directory), directory_offset, 0))


def zip_checkpoint_records(data_pkl, storages=(), folder="archive", data_pkl_record=None, byteorder=b"little"):
  """The ZipRecords of a zip checkpoint; `data_pkl_record` replaces the data.pkl record; storages: (key, raw)."""
  records = [data_pkl_record or ZipRecord(f"{folder}/data.pkl", data_pkl)]
  if byteorder is not None:
    records.append(byteorder if isinstance(byteorder, ZipRecord) else ZipRecord(f"{folder}/byteorder", byteorder))
  records += [raw if isinstance(raw, ZipRecord) else ZipRecord(f"{folder}/data/{key}", raw) for key, raw in storages]
  records.append(ZipRecord(f"{folder}/version", b"3\n"))
  return records


def deflate_zeros(mebibytes):
  """A raw deflate stream of `mebibytes` MiB of zeros, in about 1 kB per MiB.

  A full flush resets the compressor, so every MiB after it compresses to the
  same bytes: the stream is built by repetition, without compressing gigabytes.
  """
  compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
  chunk = compressor.compress(bytes(1 << 20)) + compressor.flush(zlib.Z_FULL_FLUSH)
  return chunk * mebibytes + compressor.flush()


# Opcodes with a fixed-size little-endian integer argument right after them: name -> argument bytes.
_INT_ARGUMENT_BYTES = {
    "BININT1": 1,
    "BININT2": 2,
    "BININT": 4,
    "BINPUT": 1,
    "LONG_BINPUT": 4,
    "BINGET": 1,
    "LONG_BINGET": 4,
    "BINUNICODE": 4,
    "SHORT_BINUNICODE": 1,
    "LONG1": 1,
    "BINSTRING": 4,
    "SHORT_BINSTRING": 1,
    "BINBYTES": 4,
    "SHORT_BINBYTES": 1
}
_LOCAL_HEADER_FIELDS = [(4, 2), (6, 2), (8, 2), (14, 4), (18, 4), (22, 4), (26, 2), (28, 2)]
_CENTRAL_HEADER_FIELDS = [(6, 2), (8, 2), (10, 2), (16, 4), (20, 4), (24, 4), (28, 2), (30, 2), (32, 2), (34, 2),
                          (42, 4)]
_END_RECORD_FIELDS = [(4, 2), (6, 2), (8, 2), (10, 2), (12, 4), (16, 4), (20, 2)]


class Damager:
  """Random damage to a checkpoint, for fuzz tests of the reader.

  Kinds: byte flips (mostly in headers and pickles, which the first and last
  64 kB hold), truncation, insertion, a corrupt zip header field (local,
  central or end record) and a corrupt pickle opcode argument (sizes, memo
  indices, string lengths, element counts). In a zip, pickle damage gets its
  CRCs fixed, so that the reader meets the damaged pickle rather than a CRC error.
  """

  KINDS = ("flip", "truncate", "insert", "zip_field", "pickle_argument")

  def __init__(self, data):
    self.data = bytes(data)
    self.is_zip = self.data.startswith(b"PK\x03\x04")
    self._fields = []  # (offset, width) of zip header fields.
    self._arguments = []  # (offset, width) of integer arguments in the pickles.
    self._pickle_span = None  # (start, end, local CRC offset, central CRC offset) of a zip's data.pkl.
    self.storage_counts = 0  # Element counts found in a legacy file.
    if self.is_zip:
      self._parse_zip()
    else:
      self._parse_legacy()

  def _parse_zip(self):
    import io  # pylint: disable=import-outside-toplevel
    with zipfile.ZipFile(io.BytesIO(self.data)) as archive:
      end = self.data.rindex(b"PK\x05\x06")
      self._fields += [(end + offset, width) for offset, width in _END_RECORD_FIELDS]
      position = struct.unpack_from("<I", self.data, end + 16)[0]
      for info in archive.infolist():
        local = info.header_offset
        self._fields += [(local + offset, width) for offset, width in _LOCAL_HEADER_FIELDS]
        self._fields += [(position + offset, width) for offset, width in _CENTRAL_HEADER_FIELDS]
        name_length, extra_length = struct.unpack_from("<HH", self.data, local + 26)
        if info.filename.endswith("/data.pkl") and info.compress_type == zipfile.ZIP_STORED:
          start = local + 30 + name_length + extra_length
          self._pickle_span = (start, start + info.file_size, local + 14, position + 16)
          self._add_pickle_arguments(start, start + info.file_size)
        position += 46 + sum(struct.unpack_from("<HHH", self.data, position + 28))

  def _parse_legacy(self):
    import io  # pylint: disable=import-outside-toplevel
    import pickletools  # pylint: disable=import-outside-toplevel
    stream = io.BytesIO(self.data)
    for _ in range(5):  # Magic number, protocol, system info, object, storage keys.
      start = stream.tell()
      for _ in pickletools.genops(stream):
        pass
      self._add_pickle_arguments(start, stream.tell())
    position = stream.tell()
    while position + 8 <= len(self.data):  # Element counts, each before its storage's bytes.
      self.storage_counts += 1
      self._arguments.append((position, 8))
      count = struct.unpack_from("<q", self.data, position)[0]
      # Elements of 4 bytes (float32) unless that lands on no plausible next count (int64 storages).
      for itemsize in (4, 8):
        following = position + 8 + count * itemsize
        if following == len(self.data) or (following + 8 <= len(self.data) and
                                           0 < struct.unpack_from("<q", self.data, following)[0] < 1 << 31):
          break
      position = following

  def _add_pickle_arguments(self, start, end):
    import io  # pylint: disable=import-outside-toplevel
    import pickletools  # pylint: disable=import-outside-toplevel
    for opcode, _, position in pickletools.genops(io.BytesIO(self.data[start:end])):
      width = _INT_ARGUMENT_BYTES.get(opcode.name)
      if width:
        self._arguments.append((start + position + 1, width))

  def damaged(self, rng):
    """(description, damaged bytes) for one random damage; `rng` is a numpy Generator."""
    kind = self.KINDS[int(rng.integers(len(self.KINDS)))]
    if kind == "zip_field" and not self.is_zip:
      kind = "pickle_argument"
    data = bytearray(self.data)
    if kind == "flip":
      positions = [self._hot_position(rng) for _ in range(int(rng.integers(1, 9)))]
      for position in positions:
        data[position] = int(rng.integers(256))
      return f"flip {positions}", bytes(data)
    if kind == "truncate":
      length = int(rng.integers(1, len(data)))
      return f"truncate to {length}", bytes(data[:length])
    if kind == "insert":
      position, count = self._hot_position(rng), int(rng.integers(1, 65))
      return f"insert {count} at {position}", bytes(data[:position]) + rng.bytes(count) + bytes(data[position:])
    offset, width = (self._fields if kind == "zip_field" else self._arguments)[int(
        rng.integers(len(self._fields if kind == "zip_field" else self._arguments)))]
    old = int.from_bytes(data[offset:offset + width], "little")
    top = (1 << (8 * width)) - 1
    choices = [
        0, 1, top, top >> 1, (top >> 1) + 1, old + 1,
        max(old - 1, 0), old * 2, old * 1024,
        int(rng.integers(0, top + 1, dtype=np.uint64)) if width == 8 else int(rng.integers(0, top + 1))
    ]
    value = choices[int(rng.integers(len(choices)))] & top
    data[offset:offset + width] = value.to_bytes(width, "little")
    if kind == "pickle_argument" and self._pickle_span and self._pickle_span[0] <= offset < self._pickle_span[1]:
      start, end, local_crc, central_crc = self._pickle_span
      crc = struct.pack("<I", zlib.crc32(bytes(data[start:end])))
      data[local_crc:local_crc + 4] = crc
      data[central_crc:central_crc + 4] = crc
    return f"{kind} at {offset} ({width} bytes): {old} -> {value}", bytes(data)

  def _hot_position(self, rng):
    size = len(self.data)
    region = int(rng.integers(3))
    if region == 0:
      return int(rng.integers(min(size, 1 << 16)))
    if region == 1:
      return int(rng.integers(max(0, size - (1 << 16)), size))
    return int(rng.integers(size))
