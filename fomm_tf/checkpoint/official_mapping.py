"""Maps official FOMM state-dict keys onto the Keras variables of a FommModel.

Each official module corresponds to one Keras leaf layer; a leaf knows which
state-dict entries it owns and how to convert them (PyTorch convolution
weights are (out, in, kh, kw), Keras kernels (kh, kw, in, out)).
"""

import keras
import numpy as np

from fomm_tf.errors import CheckpointMismatchError
from fomm_tf.errors import printable
from fomm_tf.layers import anti_alias
from fomm_tf.layers import spectral_norm_conv


def _conv_kernel_to_torch(shape):
  kh, kw, cin, cout = shape
  return (cout, cin, kh, kw)


def _conv_from_torch(w):
  return np.transpose(w, (2, 3, 1, 0))


class Entry:
  """One state-dict key: its Keras variable (or None for ignored buffers) and converters."""

  def __init__(self, variable, torch_shape, convert=None, check=None):
    self.variable = variable
    self.torch_shape = tuple(torch_shape)
    self.convert = convert or (lambda a: a)
    self.check = check


def _leaf_entries(prefix, layer):
  if isinstance(layer, spectral_norm_conv.SpectralNormConv2D):
    return {
        prefix + ".weight_orig": Entry(layer.kernel, _conv_kernel_to_torch(layer.kernel.shape), _conv_from_torch),
        prefix + ".weight_u": Entry(layer.u, layer.u.shape),
        prefix + ".weight_v": Entry(layer.v, layer.v.shape),
        prefix + ".bias": Entry(layer.bias, layer.bias.shape),
    }
  if isinstance(layer, keras.layers.Conv2D):
    return {
        prefix + ".weight": Entry(layer.kernel, _conv_kernel_to_torch(layer.kernel.shape), _conv_from_torch),
        prefix + ".bias": Entry(layer.bias, layer.bias.shape),
    }
  if isinstance(layer, keras.layers.BatchNormalization):
    return {
        prefix + ".weight": Entry(layer.gamma, layer.gamma.shape),
        prefix + ".bias": Entry(layer.beta, layer.beta.shape),
        prefix + ".running_mean": Entry(layer.moving_mean, layer.moving_mean.shape),
        prefix + ".running_var": Entry(layer.moving_variance, layer.moving_variance.shape),
        prefix + ".num_batches_tracked": Entry(None, ()),
    }
  if isinstance(layer, keras.layers.GroupNormalization):
    return {
        prefix + ".weight": Entry(layer.gamma, layer.gamma.shape),
        prefix + ".bias": Entry(layer.beta, layer.beta.shape),
    }
  if isinstance(layer, anti_alias.AntiAliasDownsample):
    size = layer.kernel.shape[0]
    return {prefix + ".weight": Entry(layer.kernel, (3, 1, size, size), _blur_from_torch)}
  raise TypeError(f"no state-dict mapping for layer {layer.name} of type {type(layer).__name__}")


def _blur_from_torch(w):
  # The buffer repeats one kernel per channel; a file whose channels differ
  # was not written by the official module.
  if not np.allclose(w, w[:1], atol=0, rtol=0):
    raise CheckpointMismatchError("anti-alias blur buffer has different kernels per channel")
  return w[0, 0]


def _conv_norm(prefix, block):
  """A block's `conv` and `norm` (DownBlock2d, UpBlock2d, SameBlock2d)."""
  return {**_leaf_entries(f"{prefix}.conv", block.conv), **_leaf_entries(f"{prefix}.norm", block.norm)}


def _blocks(prefix, blocks):
  entries = {}
  for i, block in enumerate(blocks):
    entries.update(_conv_norm(f"{prefix}.{i}", block))
  return entries


def _hourglass(prefix, hourglass):
  return {
      **_blocks(f"{prefix}.encoder.down_blocks", hourglass.down_blocks),
      **_blocks(f"{prefix}.decoder.up_blocks", hourglass.up_blocks)
  }


def kp_detector_entries(kp):
  entries = _hourglass("predictor", kp.predictor)
  entries.update(_leaf_entries("kp", kp.kp))
  if kp.jacobian is not None:
    entries.update(_leaf_entries("jacobian", kp.jacobian))
  if kp.down is not None:
    entries.update(_leaf_entries("down", kp.down))
  return entries


def generator_entries(gen):
  entries = {}
  dm = gen.dense_motion_network
  if dm is not None:
    entries.update(_hourglass("dense_motion_network.hourglass", dm.hourglass))
    entries.update(_leaf_entries("dense_motion_network.mask", dm.mask))
    if dm.occlusion is not None:
      entries.update(_leaf_entries("dense_motion_network.occlusion", dm.occlusion))
    if dm.down is not None:
      entries.update(_leaf_entries("dense_motion_network.down", dm.down))
  entries.update(_conv_norm("first", gen.first))
  entries.update(_blocks("down_blocks", gen.down_blocks))
  entries.update(_blocks("up_blocks", gen.up_blocks))
  for i, block in enumerate(gen.bottleneck):
    for part in ("conv1", "conv2", "norm1", "norm2"):
      entries.update(_leaf_entries(f"bottleneck.r{i}.{part}", getattr(block, part)))
  entries.update(_leaf_entries("final", gen.final))
  return entries


def discriminator_entries(multi):
  entries = {}
  for name, disc in multi.discs.items():
    prefix = "discs." + name.replace(".", "-")
    for i, block in enumerate(disc.down_blocks):
      entries.update(_leaf_entries(f"{prefix}.down_blocks.{i}.conv", block.conv))
      if block.norm is not None:
        entries.update(_leaf_entries(f"{prefix}.down_blocks.{i}.norm", block.norm))
    entries.update(_leaf_entries(f"{prefix}.conv", disc.conv))
  return entries


def model_entries(model):
  """{'kp_detector': {key: Entry}, 'generator': {...}, 'discriminator': {...}} for a FommModel."""
  out = {"kp_detector": kp_detector_entries(model.kp_detector), "generator": generator_entries(model.generator)}
  if model.discriminator is not None:
    out["discriminator"] = discriminator_entries(model.discriminator)
  return out


def check_state_dict(entries, state_dict, network, source):
  """Checks `state_dict` against `entries` completely and returns [(variable, array)] to assign.

  Raises CheckpointMismatchError naming the first unmapped, missing or mis-shaped key, or a value that is
  not a tensor (checked before numpy sees it: a hostile file can nest lists a billion elements deep).
  """
  name = lambda key: printable(key, limit=200)  # A hostile file's key names can be megabytes long.
  for key, value in state_dict.items():
    if not isinstance(value, np.ndarray):
      raise CheckpointMismatchError(f"{source}: {network}.{name(key)} is not a tensor (a {type(value).__name__})")
  unmapped = [k for k in state_dict if k not in entries]
  if unmapped:
    k = unmapped[0]
    raise CheckpointMismatchError(f"{source}: {network}.{name(k)} {list(state_dict[k].shape)} has no counterpart in "
                                  f"the model for this config ({len(unmapped)} unmapped key(s))")
  missing = [k for k in entries if k not in state_dict]
  if missing:
    k = missing[0]
    raise CheckpointMismatchError(f"{source}: {network}.{k} is missing from the checkpoint (model expects "
                                  f"{list(entries[k].torch_shape)}; {len(missing)} missing key(s))")
  converted = []
  for key, entry in entries.items():
    value = state_dict[key]
    if tuple(value.shape) != entry.torch_shape:
      raise CheckpointMismatchError(
          f"{source}: {network}.{key} has shape {list(value.shape)} in the checkpoint but the "
          f"model for this config expects {list(entry.torch_shape)}")
    if entry.variable is None:
      continue
    try:
      array = entry.convert(value.astype(np.float32))
    except CheckpointMismatchError as e:
      raise CheckpointMismatchError(f"{source}: {network}.{key}: {e}") from None
    converted.append((entry.variable, array))
  return converted
