"""Loading weights into a FommModel: official `.pth.tar` files, this project's TF checkpoints, compact .npz.

`load_model` builds the networks of a config and loads a checkpoint into them.
Every file is checked completely before any variable is assigned, so a file
that does not fit changes nothing.
"""

import os

import tensorflow as tf
from absl import logging

from fomm_tf import errors
from fomm_tf.checkpoint import npz_weights
from fomm_tf.checkpoint import official_mapping
from fomm_tf.checkpoint import torch_pickle
from fomm_tf.config import flagfiles
from fomm_tf.errors import CheckpointError
from fomm_tf.errors import CheckpointMismatchError
from fomm_tf.io import files
from fomm_tf.models import fomm_model

NETWORKS = ("kp_detector", "generator", "discriminator")
_TORCH_HEADS = (b"PK", b"\x80\x02", b"\x80\x03", b"\x80\x04", b"\x80\x05")


def load_model(config, checkpoint=None, align_corners=None, dtype=None, build_discriminator=False):
  """Builds a FommModel for `config` and loads `checkpoint` into it.

  Args:
    config: a config name ("vox-256"), a flagfile path, or a FommConfig.
    checkpoint: None (random weights), an official `.pth.tar` (legacy or zip
      format), a checkpoint of this project (a tf.train.Checkpoint prefix or a
      directory holding one) or a compact `.npz` of inference weights.
    align_corners: the grid-sampling convention (see README); None keeps the config's.
    dtype: None / "float32", "bfloat16" or "float16" (mixed precision for inference).
    build_discriminator: also build the discriminator (training needs it; animation does not).
  """
  overrides = {} if align_corners is None else {"align_corners": bool(align_corners)}
  cfg = flagfiles.load_config(config, **overrides)
  model = fomm_model.FommModel(cfg, build_discriminator=build_discriminator, dtype=dtype)
  if checkpoint is not None:
    load_weights(model, checkpoint)
  return model


def is_torch_checkpoint(path):
  """True for files in either PyTorch format (zip or legacy pickle), judged by their first bytes."""
  if not os.path.isfile(path):
    return False
  try:
    with open(path, "rb") as f:
      head = f.read(2)
  except OSError as error:
    raise errors.os_error(CheckpointError, path, error) from None
  return head in _TORCH_HEADS


def load_official_state_dicts(model, state, source):
  """Assigns official state dicts ({'kp_detector': {...}, ...}) to `model`."""
  if not isinstance(state, dict):
    raise CheckpointMismatchError(f"{source}: not a FOMM checkpoint (top level is {type(state).__name__}, "
                                  "not a dict)")
  entries = official_mapping.model_entries(model)
  absent = [n for n in ("kp_detector", "generator") if n not in state]
  if absent:
    keys = ", ".join(repr(errors.printable(k, limit=40)) for k in list(state)[:8])
    raise CheckpointMismatchError(f"{source}: not a FOMM checkpoint: no {absent[0]!r} entry (has {keys})")
  # Check every network before assigning any, so a bad file changes nothing.
  assignments = []
  for network in NETWORKS:
    if network not in entries:
      continue
    if network not in state:
      logging.warning("%s: no %r entry; the %s keeps its initial weights", source, network, network)
      continue
    state_dict = state[network]
    if not isinstance(state_dict, dict):
      raise CheckpointMismatchError(f"{source}: {network!r} is a {type(state_dict).__name__}, not a state dict")
    assignments += official_mapping.check_state_dict(entries[network], state_dict, network, source)
  for variable, array in assignments:
    variable.assign(array)
  return state


class VariableBag(tf.__internal__.tracking.AutoTrackable):
  """Tracks a layer's variables by their Keras paths.

  tf.train.Checkpoint does not follow Keras 3's tracked lists of sublayers,
  so checkpointing the layers themselves would silently skip every block held
  in a list. Naming each variable by its path keeps the checkpoint complete
  and readable.
  """

  def __init__(self, layer=None):
    if layer is not None:
      self._add(layer.weights, layer.name)

  @classmethod
  def from_optimizer(cls, optimizer):
    """An optimizer's variables; the first path component (an instance-numbered scope like 'adam_3') is dropped."""
    bag = cls()
    bag._add(optimizer.variables, None)
    return bag

  def _add(self, variables, owner):
    for name, variable in self.named(variables, owner):
      if hasattr(self, name):
        raise ValueError(f"two variables of {owner or 'the optimizer'} share the name {name}")
      setattr(self, name, variable)

  @staticmethod
  def named(variables, owner):
    """[(the name a bag gives it, variable)]: its Keras path without the owner's prefix."""
    named = []
    for variable in variables:
      path = getattr(variable, "path", None) or variable.name
      if owner is None:
        name = path.split("/", 1)[-1]
      else:
        prefix = owner + "/"
        name = path[len(prefix):] if path.startswith(prefix) else path
      named.append((name, variable))
    return named


def make_tf_checkpoint(model, **extra):
  """A tf.train.Checkpoint of every network's variables (plus `extra` trackables, e.g. optimizers)."""
  return tf.train.Checkpoint(**{name: VariableBag(net) for name, net in model.networks().items()}, **extra)


def resolve_tf_checkpoint(path):
  """A checkpoint prefix for `path` (a prefix, or a directory with a `checkpoint` file)."""
  if os.path.isdir(path):
    latest = tf.train.latest_checkpoint(path)
    if latest is None:
      raise CheckpointError(f"{path}: directory holds no checkpoint")
    return latest
  if os.path.exists(path + ".index"):
    return path
  if path.endswith(".index") and os.path.exists(path):
    return path[:-len(".index")]
  raise CheckpointError(f"checkpoint not found: {path}")


def read_tf_checkpoint(checkpoint, prefix, expect_partial):
  """Restores a tf.train.Checkpoint from `prefix`; a damaged or unfitting checkpoint is a CheckpointError."""
  try:
    status = checkpoint.read(prefix)
    status.assert_existing_objects_matched()
    if expect_partial:
      status.expect_partial()
  except (ValueError, AssertionError, tf.errors.OpError, IndexError) as e:
    # TF's checkpoint reader raises IndexError ("Read less bytes than requested") on a truncated .data file.
    raise CheckpointMismatchError(f"{prefix}: does not fit this config or is damaged: {errors.one_line(e)}") \
        from None
  return status


def load_weights(model, checkpoint):
  """Loads `checkpoint` into `model`: an official .pth.tar, a TF checkpoint of this project (prefix or
  directory), or a compact .npz of inference weights (as the built-in model ships)."""
  path = os.fspath(checkpoint)
  if not path:
    raise CheckpointError("empty checkpoint path (an unset variable?); leave --checkpoint out for random weights")
  if os.path.exists(path) and not os.path.isdir(path):
    files.check_regular_file(path, CheckpointError, "checkpoint")
  if path.endswith(".npz") and os.path.isfile(path):
    return npz_weights.load_npz_weights(model, path)
  if is_torch_checkpoint(path):
    # The file may claim no more tensor bytes than a checkpoint of this model can need (see model_byte_budget).
    budget = torch_pickle.model_byte_budget(v.shape for net in model.networks().values() for v in net.weights)
    state = torch_pickle.read_torch_checkpoint(path, max_total_bytes=budget)
    return load_official_state_dicts(model, state, path)
  if os.path.isfile(path) and not os.path.exists(path + ".index") and not path.endswith(".index"):
    raise CheckpointError(f"{path}: neither a PyTorch .pth.tar nor a TensorFlow checkpoint")
  prefix = resolve_tf_checkpoint(path)
  check_tf_checkpoint_fits(model, prefix)
  # Optimizer slots and networks this model does not build (e.g. the discriminator) stay unread.
  read_tf_checkpoint(make_tf_checkpoint(model), prefix, expect_partial=True)
  return prefix


def _checkpoint_key(network, name):
  # tf.train.Checkpoint's key of a bag attribute: "." escaped as "..", "/" as ".S".
  return f"{network}/{name.replace('.', '..').replace('/', '.S')}/.ATTRIBUTES/VARIABLE_VALUE"


def check_tf_checkpoint_fits(model, prefix):
  """Every variable of `model`'s networks is in the checkpoint at `prefix`, with its shape: checked before anything is
  read, because tf.train.Checkpoint.read assigns the variables that fit before it fails on one that does not."""
  try:
    shapes = tf.train.load_checkpoint(prefix).get_variable_to_shape_map()
  except (ValueError, tf.errors.OpError) as e:
    raise CheckpointMismatchError(f"{prefix}: not a readable checkpoint: {errors.one_line(e)}") from None
  for network, net in model.networks().items():
    for name, variable in VariableBag.named(net.weights, net.name):
      key = _checkpoint_key(network, name)
      if key not in shapes:
        raise CheckpointMismatchError(f"{prefix}: does not fit this config: {network}/{name} is missing from the "
                                      f"checkpoint (model expects {list(variable.shape)})")
      if tuple(shapes[key]) != tuple(variable.shape):
        raise CheckpointMismatchError(f"{prefix}: does not fit this config: {network}/{name} has shape "
                                      f"{list(shapes[key])} in the checkpoint but the model for this config "
                                      f"expects {list(variable.shape)}")


def copy_matching_weights(source, target):
  """Copies each variable of the `source` model into the `target` variable of the same path and shape (a
  teacher into its student, a model into a wider one); returns how many were copied."""
  variables = source.inference_variables()
  copied = 0
  for path, variable in target.inference_variables().items():
    match = variables.get(path)
    if match is not None and tuple(match.shape) == tuple(variable.shape):
      variable.assign(match)
      copied += 1
  return copied


def save_weights(model, prefix, **extra):
  """Writes the model (and any extra trackables) as a TF checkpoint; returns the path prefix."""
  return make_tf_checkpoint(model, **extra).write(prefix)
