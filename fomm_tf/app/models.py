"""The models the web app offers: the built-in ones, and every model found in a --models folder.

In that folder (and its direct subfolders) a model is:
* an official `.pth.tar` (or `.pth`) or a fomm-tf `.npz` next to `<stem>.flags`
  (a flagfile, e.g. one line `--flagfile=configs/vox-256.flags`) or `<stem>.config`
  (one line: a config name such as vox-256);
* a fomm-tf training directory (it has a TensorFlow `checkpoint` file) holding a
  `.flags` file or a `.config` file;
* an export directory (it has the `manifest.json` of `python -m fomm_tf.export`),
  offered with its SavedModel and each TFLite and ONNX variant it holds (ONNX with the onnx extra; each ONNX
  variant also on OpenVINO, which needs the openvino extra's onnx). Its files are
  checked like the command line's --export_dir (docs/security.md) when it is first used; --allow_modified_export
  applies here too.
The built-in and checkpoint models are offered on Keras (float32, bfloat16) and on OpenVINO (float32,
converted in memory). A model is loaded the first time it is used and then kept.
"""

import dataclasses
import os
import threading
from typing import Optional, Tuple

from fomm_tf import builtin
from fomm_tf.config import flagfiles
from fomm_tf.errors import ConfigError
from fomm_tf.errors import UsageError

BUILTIN = f"built-in ({builtin.CONFIG})"
BUILTIN_LITE = f"built-in ({builtin.LITE_CONFIG})"
KERAS_PRECISIONS = ("float32", "bfloat16")
CHECKPOINT_SUFFIXES = (".pth.tar", ".pth", ".npz")


@dataclasses.dataclass(frozen=True)
class ModelEntry:
  """One model of the menu: how to build it and which backends and precisions it offers."""
  name: str
  kind: str  # "builtin", "checkpoint" or "export"
  path: Optional[str] = None
  config: Optional[str] = None  # A flagfile path or config name (checkpoints; the model's name for built-ins).
  # A Keras model also runs on OpenVINO, converted in memory (live's default engine; docs/live.md).
  choices: Tuple[Tuple[str, str], ...] = (("keras", "float32"), ("keras", "bfloat16"), ("openvino", "float32"))

  @property
  def crop(self):
    """The crop the model was trained for (the config's `crop`)."""
    if self.kind in ("builtin", "checkpoint"):
      return flagfiles.load_config(self.config).animation.crop
    return "center"


def _config_beside(stem):
  """The flagfile or config name that describes the checkpoint `stem` (without suffix), or None."""
  if os.path.isfile(stem + ".flags"):
    return stem + ".flags"
  if os.path.isfile(stem + ".config"):
    with open(stem + ".config", encoding="utf-8") as f:
      return f.read(200).strip()
  return None


def _export_choices(path):
  choices = []
  if os.path.isfile(os.path.join(path, "saved_model", "saved_model.pb")):
    choices.append(("saved_model", "float32"))
  tflite = os.path.join(path, "tflite")
  if os.path.isdir(tflite):
    choices += [("tflite", q) for q in sorted(os.listdir(tflite)) if os.path.isdir(os.path.join(tflite, q))]
  onnx = os.path.join(path, "onnx")
  if os.path.isdir(onnx):
    variants = [q for q in sorted(os.listdir(onnx)) if os.path.isdir(os.path.join(onnx, q))]
    choices += [("onnx", q) for q in variants]
    from fomm_tf.inference import exported_backends  # pylint: disable=import-outside-toplevel
    if exported_backends.openvino_installed():  # Not offered where it cannot run.
      choices += [("openvino", q) for q in variants]
  return tuple(choices)


def scan(directory):
  """The ModelEntries found in `directory` (see the module doc), sorted by name."""
  if not os.path.isdir(directory):
    raise UsageError(f"--models={directory}: not a directory")
  entries = []
  candidates = [os.path.join(directory, n) for n in sorted(os.listdir(directory)) if not n.startswith(".")]
  for sub in [c for c in candidates if os.path.isdir(c)]:
    candidates += [os.path.join(sub, n) for n in sorted(os.listdir(sub)) if not n.startswith(".")]
  for path in candidates:
    name = os.path.relpath(path, directory)
    if os.path.isdir(path) and os.path.isfile(os.path.join(path, "manifest.json")):
      choices = _export_choices(path)
      if choices:
        entries.append(ModelEntry(name, "export", path, choices=choices))
    elif os.path.isdir(path) and os.path.isfile(os.path.join(path, "checkpoint")):
      inside = [os.path.join(path, n) for n in sorted(os.listdir(path)) if n.endswith((".flags", ".config"))]
      config = _config_beside(os.path.splitext(inside[0])[0]) if inside else None
      if config:
        entries.append(ModelEntry(name, "checkpoint", path, config))
    elif os.path.isfile(path) and path.endswith(CHECKPOINT_SUFFIXES):
      stem = path[:-len(next(s for s in CHECKPOINT_SUFFIXES if path.endswith(s)))]
      config = _config_beside(stem)
      if config:
        entries.append(ModelEntry(name, "checkpoint", path, config))
  return sorted(entries, key=lambda e: e.name)


class ModelRegistry:
  """The menu of models, and the backends built from them (each built once, then kept; thread-safe)."""

  def __init__(self, models_dir=None, allow_modified_export=False):
    self.allow_modified_export = allow_modified_export
    self.entries = {
        label: ModelEntry(label, "builtin", config=name)
        for label, name in ((BUILTIN, builtin.CONFIG), (BUILTIN_LITE, builtin.LITE_CONFIG))
    }
    if models_dir:
      for entry in scan(models_dir):
        try:
          entry.crop  # pylint: disable=pointless-statement
        except ConfigError as error:
          raise UsageError(f"--models: {entry.name}: {error}") from None
        self.entries[entry.name] = entry
    self._backends = {}
    self._lock = threading.Lock()

  def names(self):
    return list(self.entries)

  def choice_labels(self, name):
    """'keras float32', 'tflite int8', ... for one model."""
    return [f"{backend} {precision}" for backend, precision in self.entries[name].choices]

  def backend(self, name, choice=None):
    """The Backend of model `name` for `choice` ('keras bfloat16', 'tflite int8'; None: its first)."""
    if name not in self.entries:
      raise UsageError(f"unknown model {name!r}; available: {', '.join(self.entries)}")
    entry = self.entries[name]
    backend_name, precision = (choice.split(" ", 1) if choice else entry.choices[0])
    if (backend_name, precision) not in entry.choices:
      raise UsageError(f"{name} offers {', '.join(self.choice_labels(name))}, not {choice!r}")
    key = (name, backend_name, precision)
    with self._lock:
      if key not in self._backends:
        self._backends[key] = _build(entry, backend_name, precision, self.allow_modified_export)
      return self._backends[key]


def _build(entry, backend_name, precision, allow_modified_export):
  # pylint: disable=import-outside-toplevel
  from fomm_tf.checkpoint import loading
  from fomm_tf.inference import exported_backends
  from fomm_tf.inference import keras_backend
  from fomm_tf.inference import openvino_model
  dtype = None if precision == "float32" else precision
  if entry.kind in ("builtin", "checkpoint"):
    if entry.kind == "builtin":
      model = builtin.load_builtin_model(entry.config, dtype=dtype)
    else:
      model = loading.load_model(entry.config, checkpoint=entry.path, dtype=dtype)
    if backend_name == "openvino":
      return openvino_model.OpenVinoModelBackend(model)
    return keras_backend.KerasBackend(model)
  return exported_backends.open_exported(backend_name,
                                         entry.path,
                                         quantize=precision,
                                         allow_modified=allow_modified_export)
