"""All-or-nothing evaluation output (io.files.StagedFiles) with the JSON and CSV writers the modes use."""

import csv
import io
import json
import math

from fomm_tf.errors import EvaluationError
from fomm_tf.io import files


class StagedOutput(files.StagedFiles):
  """Evaluation results staged inside --output_dir and moved into place only when the whole run succeeds."""

  def __init__(self, output_dir):
    super().__init__(output_dir, EvaluationError)

  @property
  def output_dir(self):
    return self.directory

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
