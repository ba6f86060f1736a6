"""Loading weights into a FommModel from official `.pth.tar` files or this project's checkpoints."""

import os

import tensorflow as tf
from absl import logging

from fomm_tf.checkpoint import official_mapping
from fomm_tf.checkpoint import torch_pickle

NETWORKS = ("kp_detector", "generator", "discriminator")


class CheckpointLoadError(ValueError):
  pass


def is_torch_checkpoint(path):
  """True for files in either PyTorch format (zip or legacy pickle), judged by their first bytes."""
  if not os.path.isfile(path):
    return False
  with open(path, "rb") as f:
    head = f.read(2)
  return head in (b"PK", b"\x80\x02", b"\x80\x03", b"\x80\x04", b"\x80\x05")


def load_official_state_dicts(model, state, source):
  """Assigns official state dicts ({'kp_detector': {...}, ...}) to `model`."""
  if not isinstance(state, dict):
    raise CheckpointLoadError(f"{source}: not a FOMM checkpoint (top level is {type(state).__name__}, not a dict)")
  entries = official_mapping.model_entries(model)
  present = [n for n in ("kp_detector", "generator") if n not in state]
  if present:
    raise CheckpointLoadError(f"{source}: not a FOMM checkpoint: no {present[0]!r} entry "
                              f"(has {', '.join(map(repr, list(state)[:8]))})")
  # Check every network before assigning any, so a bad file changes nothing.
  plans = []
  for network in NETWORKS:
    if network not in entries:
      continue
    if network not in state:
      logging.warning("%s: no %r entry; the %s keeps its initial weights", source, network, network)
      continue
    state_dict = state[network]
    if not isinstance(state_dict, dict):
      raise CheckpointLoadError(f"{source}: {network!r} is a {type(state_dict).__name__}, not a state dict")
    plans.append((network, state_dict))
  assignments = []
  for network, state_dict in plans:
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
    for variable in variables:
      path = getattr(variable, "path", None) or variable.name
      if owner is None:
        name = path.split("/", 1)[-1]
      else:
        prefix = owner + "/"
        name = path[len(prefix):] if path.startswith(prefix) else path
      if hasattr(self, name):
        raise ValueError(f"two variables of {owner or 'the optimizer'} share the path {path}")
      setattr(self, name, variable)


def make_tf_checkpoint(model, **extra):
  """A tf.train.Checkpoint of every network's variables (plus `extra` trackables, e.g. optimizers)."""
  return tf.train.Checkpoint(**{name: VariableBag(net) for name, net in model.networks().items()}, **extra)


def resolve_tf_checkpoint(path):
  """A checkpoint prefix for `path` (a prefix, or a directory with a `checkpoint` file)."""
  if os.path.isdir(path):
    latest = tf.train.latest_checkpoint(path)
    if latest is None:
      raise CheckpointLoadError(f"{path}: directory holds no checkpoint")
    return latest
  if os.path.exists(path + ".index"):
    return path
  if path.endswith(".index") and os.path.exists(path):
    return path[:-len(".index")]
  raise CheckpointLoadError(f"checkpoint not found: {path}")


def load_weights(model, checkpoint):
  """Loads `checkpoint` into `model`: an official .pth.tar, a TF checkpoint of this project (prefix or
  directory), or a compact .npz of inference weights (as the built-in model ships)."""
  path = os.fspath(checkpoint)
  if path.endswith(".npz") and os.path.isfile(path):
    from fomm_tf import builtin
    try:
      return builtin.load_npz_weights(model, path)
    except builtin.WeightsFileError as e:
      raise CheckpointLoadError(str(e)) from None
  if is_torch_checkpoint(path):
    state = torch_pickle.read_torch_checkpoint(path)
    return load_official_state_dicts(model, state, path)
  if os.path.isfile(path) and not os.path.exists(path + ".index") and not path.endswith(".index"):
    raise CheckpointLoadError(f"{path}: neither a PyTorch .pth.tar nor a TensorFlow checkpoint")
  prefix = resolve_tf_checkpoint(path)
  ckpt = make_tf_checkpoint(model)
  try:
    status = ckpt.read(prefix)
    status.assert_existing_objects_matched()
    # Optimizer slots and networks this model does not build (e.g. the discriminator) stay unread.
    status.expect_partial()
  except (ValueError, AssertionError, tf.errors.OpError) as e:
    first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    raise CheckpointLoadError(f"{prefix}: does not fit this config: {first}") from None
  return prefix


def save_weights(model, prefix, **extra):
  """Writes the model (and any extra trackables) as a TF checkpoint; returns the path prefix."""
  return make_tf_checkpoint(model, **extra).write(prefix)
