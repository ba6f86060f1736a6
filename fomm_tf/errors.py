"""The errors fomm-tf raises for problems of the user's making: bad files, flags, data and models.

Every one subclasses `FommError`; the command-line entry points turn exactly
these into one `error: ...` line and exit status 1. Any other exception is a
bug and keeps its traceback. Messages are always one printable line: text taken
from files (key names, paths, decoder messages) may hold line breaks or
terminal escape sequences, which are shown escaped, never sent to the terminal.
"""

import os


def printable(text, limit=None):
  """`text` with every control or non-printable character escaped (\\n, \\x1b, ...), optionally cut."""
  text = str(text)
  if limit is not None and len(text) > limit:
    text = text[:limit] + "..."
  if text.isprintable():
    return text
  return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)


def one_line(error):
  """The message of an exception on one printable line (its type name when it has none)."""
  text = " ".join(str(error).split())
  return printable(text) or type(error).__name__


# Longer messages are cut: a hostile file can make any name it carries huge.
MAX_MESSAGE_CHARS = 1000


class FommError(Exception):
  """Base of every user-facing error: the message is one printable line of bounded length."""

  def __init__(self, message):
    super().__init__(printable(message, limit=MAX_MESSAGE_CHARS))


class UsageError(FommError):
  """A flag or argument value (or combination) that cannot be used."""


class ConfigError(FommError):
  """A config name, flagfile or config value that cannot be used."""


class MediaError(FommError):
  """An image or video that is missing, unreadable, corrupt or unsuitable, or cannot be written."""


class CheckpointError(FommError):
  """A checkpoint or weights file that cannot be read (missing, truncated, corrupt or hostile)."""


class CheckpointMismatchError(CheckpointError):
  """A readable checkpoint whose contents do not fit the model (unmapped, missing or mis-shaped keys)."""


class DatasetError(FommError):
  """A dataset folder, split, video or sampling parameter that training or evaluation cannot use."""


class AugmentationError(DatasetError):
  """Augmentation parameters or an input clip that are invalid."""


class TrainingError(FommError):
  """Training cannot go on: a non-finite loss or weight, a model directory that cannot be used, ..."""


class ExportError(FommError):
  """A model that cannot be exported as asked, or an export directory that cannot be used or read."""


class EvaluationError(FommError):
  """A dataset, keypoint file, flag value or output directory that evaluation cannot use."""


class AnimationError(FommError):
  """Inputs that cannot be animated (e.g. driving keypoints that span no area with adapt scale)."""


class Cancelled(FommError):
  """The user stopped a job before it finished (nothing was written)."""


class FaceError(FommError):
  """No face where one is needed, or the optional face detector is not installed."""


class FileSafetyError(FommError):
  """A command would overwrite or delete a file that it reads, or a directory it does not own."""


class Interrupted(BaseException):
  """SIGINT or SIGTERM arrived; raised in the main thread so that staged output is removed on the way out.

  A BaseException, like KeyboardInterrupt, so that `except Exception` blocks do not swallow it.
  """

  def __init__(self, signum, detail=""):
    self.signum = signum
    name = {2: " (SIGINT)", 15: " (SIGTERM)"}.get(signum, "")
    super().__init__(f"stopped by signal {signum}{name}" + (f"; {detail}" if detail else ""))


def os_error(cls, path, error, action="cannot read"):
  """A `cls` (a FommError subclass) for an OSError met while reading or writing `path`, naming both."""
  reason = error.strerror or one_line(error)
  return cls(f"{os.fspath(path)}: {action}: {reason}")
