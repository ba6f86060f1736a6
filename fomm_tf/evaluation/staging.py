"""All-or-nothing output: files are written into a hidden folder and moved into place only when a run succeeds."""

import csv
import io
import json
import math
import os
import shutil
import tempfile

from fomm_tf.evaluation.errors import EvaluationError

STAGING_PREFIX = ".evaluate-partial-"


def _one_line(error):
  return " ".join(str(error).split()) or type(error).__name__


class StagedOutput:
  """A hidden staging folder inside `output_dir`.

  Write every output under `path(relative)`; `commit()` then renames each file
  to `output_dir/relative` (one atomic rename per file, on the same file
  system), and `discard()` (or leaving the `with` block by an exception)
  deletes everything, including `output_dir` itself when this run created it
  and it is still empty.
  """

  def __init__(self, output_dir):
    if not output_dir:
      raise EvaluationError("--output_dir is required")
    self.output_dir = os.path.abspath(output_dir)
    if os.path.exists(self.output_dir) and not os.path.isdir(self.output_dir):
      raise EvaluationError(f"output directory {output_dir} exists and is not a directory")
    self._created = not os.path.exists(self.output_dir)
    try:
      if self._created:
        os.makedirs(self.output_dir)
      self.staging_dir = tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=self.output_dir)
    except OSError as error:
      self._remove_created_output_dir()
      raise EvaluationError(f"output directory {output_dir} is not writable: {_one_line(error)}") from None
    self._done = False

  def path(self, relative):
    """The staging path for `relative`, with its parent folders created."""
    path = os.path.join(self.staging_dir, relative)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    return path

  def write_text(self, relative, text):
    with open(self.path(relative), "w", encoding="utf-8", newline="") as handle:
      handle.write(text)

  def write_json(self, relative, data):
    self.write_text(relative, json.dumps(json_safe(data), indent=2, allow_nan=False) + "\n")

  def write_csv(self, relative, columns, rows):
    """Rows are dicts; floats are written with 9 significant digits, NaN and None as empty cells."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
      writer.writerow([_csv_cell(row.get(column)) for column in columns])
    self.write_text(relative, buffer.getvalue())

  def commit(self):
    """Moves every staged file into `output_dir`; returns their final paths."""
    final_paths = []
    for directory, _, files in os.walk(self.staging_dir):
      for name in sorted(files):
        staged = os.path.join(directory, name)
        final = os.path.join(self.output_dir, os.path.relpath(staged, self.staging_dir))
        os.makedirs(os.path.dirname(final), exist_ok=True)
        os.replace(staged, final)
        final_paths.append(final)
    shutil.rmtree(self.staging_dir)
    self._done = True
    return sorted(final_paths)

  def discard(self):
    if self._done:
      return
    self._done = True
    shutil.rmtree(self.staging_dir, ignore_errors=True)
    self._remove_created_output_dir()

  def _remove_created_output_dir(self):
    if self._created and os.path.isdir(self.output_dir) and not os.listdir(self.output_dir):
      os.rmdir(self.output_dir)

  def __enter__(self):
    return self

  def __exit__(self, exc_type, exc_value, traceback):
    if exc_type is not None:
      self.discard()
    return False


def json_safe(value):
  """Replaces NaN/inf floats by None (JSON null) and numpy scalars by Python numbers, recursively."""
  if isinstance(value, dict):
    return {str(k): json_safe(v) for k, v in value.items()}
  if isinstance(value, (list, tuple)):
    return [json_safe(v) for v in value]
  if hasattr(value, "item") and callable(value.item):
    value = value.item()
  if isinstance(value, float) and not math.isfinite(value):
    return None
  return value


def _csv_cell(value):
  if value is None:
    return ""
  if hasattr(value, "item") and callable(value.item):
    value = value.item()
  if isinstance(value, float):
    return "" if not math.isfinite(value) else format(value, ".9g")
  return str(value)
