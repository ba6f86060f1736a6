"""Writing files so that nothing is ever half-written, and never over a file the same command reads.

* `atomic_file(path)`: write to a hidden temporary file beside `path`, renamed
  over it only when the block succeeds; on any failure (an exception, a full
  disk, SIGINT/SIGTERM raised as `errors.Interrupted`) the temporary file goes.
* `staged_directory(path)`: the same for a whole directory.
* `StagedFiles(directory)`: files staged in a hidden folder inside an existing
  (or new) directory and moved into it one by one at the end.
* `refuse_overwrite(outputs, inputs)`: a command's outputs may not be (or contain)
  any of its inputs, whichever way the paths are spelled (`./a/../b`, symlinks,
  hard links).

OS errors become one-line FommErrors (of the class the caller names) with the path.
"""

import contextlib
import errno
import os
import secrets
import shutil
import stat
import tempfile

from fomm_tf import errors


def resolved(path):
  """The absolute path with every symlink resolved (the file a path really names)."""
  return os.path.realpath(os.path.abspath(os.fspath(path)))


def _same(a, b):
  if resolved(a) == resolved(b):
    return True
  try:
    return os.path.samefile(a, b)
  except OSError:
    return False


def _inside(path, directory):
  path, directory = resolved(path), resolved(directory)
  return path == directory or path.startswith(directory.rstrip(os.sep) + os.sep)


def refuse_overwrite(outputs, inputs, directories=()):
  """Raises FileSafetyError when an output file is one of the inputs, or an output directory overlaps one.

  Args:
    outputs: [(flag name, path)] of files the command will create or replace.
    inputs: [(flag name, path)] of files or folders the command reads (None paths are skipped).
    directories: [(flag name, path)] of directories the command will create, fill or replace: none may
      hold an input, nor lie inside an input folder (a dataset, a frame folder).
  """
  inputs = [(name, path) for name, path in inputs if path]
  for out_name, out_path in outputs:
    for in_name, in_path in inputs:
      if _same(out_path, in_path):
        raise errors.FileSafetyError(f"--{out_name}={out_path} is the same file as --{in_name}="
                                     f"{in_path}: refusing to overwrite an input (choose another output path)")
  for dir_name, dir_path in directories:
    for in_name, in_path in inputs:
      if _inside(in_path, dir_path):
        raise errors.FileSafetyError(f"--{dir_name}={dir_path} holds --{in_name}={in_path}: "
                                     "refusing to write where an input lives (choose another output directory)")
  refuse_writing_inside(directories, inputs)


def refuse_writing_inside(directories, inputs):
  """Raises FileSafetyError when an output directory lies inside an input folder (a dataset, a frame folder)."""
  for dir_name, dir_path in directories:
    for in_name, in_path in inputs:
      if in_path and os.path.isdir(in_path) and _inside(dir_path, in_path):
        raise errors.FileSafetyError(f"--{dir_name}={dir_path} is inside --{in_name}={in_path}: "
                                     "refusing to write into an input folder (choose another output directory)")


def check_regular_file(path, error_class, what="file"):
  """`path` must name an existing regular file (not a FIFO, device or directory); raises `error_class`."""
  path = os.fspath(path)
  if not path:
    raise error_class(f"empty {what} path")
  try:
    mode = os.stat(path).st_mode
  except FileNotFoundError:
    raise error_class(f"{path}: no such file") from None
  except OSError as error:
    raise errors.os_error(error_class, path, error) from None
  if stat.S_ISDIR(mode):
    raise error_class(f"{path}: is a directory, not a {what}")
  if not stat.S_ISREG(mode):
    raise error_class(f"{path}: not a regular file (a FIFO, socket or device cannot be a {what})")
  return path


def write_error(error_class, path, error):
  """The one-line error for an OSError while writing `path` (a full disk is named as such)."""
  if isinstance(error, OSError) and error.errno == errno.ENOSPC:
    return error_class(f"{path}: cannot write: no space left on device")
  return errors.os_error(error_class, path, error, "cannot write")


def hidden_sibling(path, tag, suffix=""):
  """A fresh hidden name beside `path`: .<name>.<tag>-<random><suffix>."""
  directory = os.path.dirname(os.path.abspath(path))
  return os.path.join(directory, f".{os.path.basename(path)}.{tag}-{secrets.token_hex(4)}{suffix}")


def create_temp_beside(path, error_class=errors.FommError, suffix=""):
  """Creates (exclusively) and returns an empty hidden temporary file beside `path`, for `replace_with_temp`.

  `suffix` keeps an extension tools look at (FFmpeg picks the container by it).
  """
  path = os.fspath(path)
  directory = os.path.dirname(os.path.abspath(path))
  if not os.path.exists(directory):
    raise error_class(f"{directory}: output directory does not exist")
  if not os.path.isdir(directory):
    raise error_class(f"{directory}: output directory is not a directory")
  if os.path.isdir(path):
    raise error_class(f"{path}: output path is a directory")
  temp = hidden_sibling(path, "partial", suffix)
  try:
    # 0o666: the umask decides the permissions, as for any new file.
    os.close(os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
  except OSError as error:
    raise error_class(f"{directory}: output directory is not writable: "
                      f"{errors.one_line(error)}") from None
  return temp


def replace_with_temp(temp, path, error_class=errors.FommError):
  """Moves the finished `temp` over `path`."""
  try:
    os.replace(temp, path)
  except OSError as error:
    remove_quietly(temp)
    raise write_error(error_class, path, error) from None


@contextlib.contextmanager
def atomic_file(path, error_class=errors.FommError, suffix=""):
  """Yields a temporary path beside `path` to write; it replaces `path` only when the block succeeds."""
  temp = create_temp_beside(path, error_class, suffix)
  try:
    yield temp
  except OSError as error:
    remove_quietly(temp)
    raise write_error(error_class, path, error) from None
  except BaseException:
    remove_quietly(temp)
    raise
  replace_with_temp(temp, path, error_class)


def remove_quietly(path):
  """Removes a file or directory tree that may already be gone."""
  with contextlib.suppress(FileNotFoundError):
    if os.path.isdir(path) and not os.path.islink(path):
      shutil.rmtree(path)
    else:
      os.remove(path)


def write_bytes_atomically(path, data, error_class=errors.FommError):
  with atomic_file(path, error_class) as temp:
    with open(temp, "wb") as handle:
      handle.write(data)
      handle.flush()
      os.fsync(handle.fileno())
  return path


@contextlib.contextmanager
def staged_directory(path, error_class=errors.FommError, replace_if=None):
  """Yields an empty hidden directory beside `path` that becomes `path` when the block succeeds.

  An existing `path` is replaced only when `replace_if(path)` says it may be (else
  `error_class` is raised before anything is written); the old directory is moved
  aside first and deleted only after the new one is in place.
  """
  path = os.path.abspath(os.fspath(path))
  if os.path.exists(path):
    if not os.path.isdir(path):
      raise error_class(f"{path}: exists and is not a directory")
    if os.listdir(path) and (replace_if is None or not replace_if(path)):
      raise error_class(f"{path}: directory exists and is not empty")
  parent = os.path.dirname(path)
  try:
    os.makedirs(parent, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=f".{os.path.basename(path)}.staging-", dir=parent)
  except OSError as error:
    raise write_error(error_class, parent, error) from None
  try:
    yield staging
    _replace_directory(staging, path)
  except OSError as error:
    remove_quietly(staging)
    raise write_error(error_class, path, error) from None
  except BaseException:
    remove_quietly(staging)
    raise


def _replace_directory(new, path):
  if not os.path.exists(path):
    os.rename(new, path)
    return
  old = hidden_sibling(path, "old")
  os.rename(path, old)
  try:
    os.rename(new, path)
  except BaseException:
    os.rename(old, path)
    raise
  shutil.rmtree(old)


class StagedFiles:
  """A hidden staging folder inside `directory`: stage files under `path(relative)`, then `commit()`.

  `commit()` renames each staged file to `directory/relative` (atomic per file,
  on the same file system); `discard()`, or leaving a `with` block by an
  exception, deletes everything staged, and `directory` itself when this run
  created it and it is still empty.
  """

  PREFIX = ".partial-"

  def __init__(self, directory, error_class=errors.FommError, flag="output_dir"):
    if not directory:
      raise error_class(f"--{flag} is required")
    self.error_class = error_class
    self.directory = os.path.abspath(os.fspath(directory))
    if os.path.exists(self.directory) and not os.path.isdir(self.directory):
      raise error_class(f"output directory {directory} exists and is not a directory")
    self._created = not os.path.exists(self.directory)
    try:
      if self._created:
        os.makedirs(self.directory)
      self.staging_dir = tempfile.mkdtemp(prefix=self.PREFIX, dir=self.directory)
    except OSError as error:
      self._remove_created_directory()
      raise error_class(f"output directory {directory} is not writable: "
                        f"{errors.one_line(error)}") from None
    self._done = False

  def path(self, relative):
    """The staging path for `relative`, with its parent folders created."""
    path = os.path.join(self.staging_dir, relative)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    return path

  def write_text(self, relative, text):
    try:
      with open(self.path(relative), "w", encoding="utf-8", newline="") as handle:
        handle.write(text)
    except OSError as error:
      raise write_error(self.error_class, os.path.join(self.directory, relative), error) from None

  def commit(self):
    """Moves every staged file into the directory; returns their final paths."""
    final_paths = []
    try:
      for current, _, names in os.walk(self.staging_dir):
        for name in sorted(names):
          staged = os.path.join(current, name)
          final = os.path.join(self.directory, os.path.relpath(staged, self.staging_dir))
          os.makedirs(os.path.dirname(final), exist_ok=True)
          os.replace(staged, final)
          final_paths.append(final)
      shutil.rmtree(self.staging_dir)
    except OSError as error:
      self.discard()
      raise write_error(self.error_class, self.directory, error) from None
    self._done = True
    return sorted(final_paths)

  def discard(self):
    if self._done:
      return
    self._done = True
    shutil.rmtree(self.staging_dir, ignore_errors=True)
    self._remove_created_directory()

  def _remove_created_directory(self):
    if self._created and os.path.isdir(self.directory) and not os.listdir(self.directory):
      os.rmdir(self.directory)

  def __enter__(self):
    return self

  def __exit__(self, exc_type, exc_value, traceback):
    if exc_type is not None:
      self.discard()
    return False
