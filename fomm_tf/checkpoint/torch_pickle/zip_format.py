"""Reads the zip checkpoint format of PyTorch >= 1.6 (see the package docstring)."""

import io
import struct
import zipfile
import zlib

from fomm_tf.checkpoint.torch_pickle import limits
from fomm_tf.checkpoint.torch_pickle import tensors
from fomm_tf.checkpoint.torch_pickle import unpickler
from fomm_tf.checkpoint.torch_pickle import values
from fomm_tf.errors import CheckpointError

# The first bytes of a zip archive, by which read_torch_checkpoint tells this format.
ZIP_MAGIC = b"PK\x03\x04"


def _zip_data_folder(archive, path):
  """The archive's top folder: the one holding `data.pkl`; torch lets it have any name."""
  folders = [
      name[:-len("/data.pkl")] for name in archive.namelist() if name.endswith("/data.pkl") and name.count("/") == 1
  ]
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
_ZIP_METHOD_NAMES = {
    zipfile.ZIP_STORED: "stored",
    zipfile.ZIP_DEFLATED: "deflate",
    zipfile.ZIP_BZIP2: "bzip2",
    zipfile.ZIP_LZMA: "lzma"
}


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
  if method not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED) or (exact_size is not None and
                                                                  method != zipfile.ZIP_STORED):
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


def read_zip_checkpoint(path, file, file_size, max_total_bytes):
  try:
    archive = zipfile.ZipFile(file)
  except _ZIP_ERRORS as error:
    raise CheckpointError(f"{path}: truncated or corrupt zip archive ({type(error).__name__}: {error})") from error
  with archive:
    folder = _zip_data_folder(archive, path)
    big_endian = False
    if f"{folder}/byteorder" in archive.namelist():
      byteorder = _read_zip_record(archive, f"{folder}/byteorder", path, file_size, limit=limits.MAX_BYTEORDER_BYTES)
      if byteorder not in (b"little", b"big"):
        raise CheckpointError(f"{path}: unknown byte order {values.describe(byteorder)} in '{folder}/byteorder'")
      big_endian = byteorder == b"big"
    pickled = _read_zip_record(archive, f"{folder}/data.pkl", path, file_size, limit=limits.MAX_DATA_PKL_BYTES)
    source = f"{path} ({folder}/data.pkl)"
    registry = unpickler.StorageRegistry(source, legacy=False)
    obj = unpickler.unpickle(io.BytesIO(pickled), len(pickled), source, registry)
    del pickled

    def read_storages():
      sizes = {
          key: numel * limits.numpy_dtype(storage_type.dtype_name, path).itemsize
          for key, (storage_type, numel) in registry.roots.items()
      }
      # Records may not overlap, so together they fit in the file; checked up
      # front, as zipfile only notices overlaps it happens to read.
      if sum(sizes.values()) > file_size:
        raise CheckpointError(f"{path}: its storages are declared as {sum(sizes.values())} bytes in all, more "
                              f"than the whole {file_size}-byte file holds")
      storage_arrays = {}
      for key, (storage_type, numel) in registry.roots.items():
        record = f"{folder}/data/{key}"
        raw = _read_zip_record(archive, record, path, file_size, exact_size=sizes[key])
        storage_arrays[key] = tensors.storage_array(raw, storage_type, numel, big_endian, path, f"'{record}'")
      return storage_arrays

    return tensors.resolve(path, obj, max_total_bytes, read_storages)
