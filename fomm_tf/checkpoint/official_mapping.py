"""Maps official FOMM state-dict keys onto the Keras variables of a FommModel.

Each official module corresponds to one Keras leaf layer; a leaf knows which
state-dict entries it owns and how to convert them (PyTorch convolution
weights are (out, in, kh, kw), Keras kernels (kh, kw, in, out)).
"""

import keras
import numpy as np

from fomm_tf.layers import anti_alias
from fomm_tf.layers import spectral_norm_conv


class MappingError(ValueError):
  pass


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
    raise MappingError("anti-alias blur buffer has different kernels per channel")
  return w[0, 0]


def _hourglass(prefix, hourglass):
  entries = {}
  for i, block in enumerate(hourglass.down_blocks):
    entries.update(_leaf_entries(f"{prefix}.encoder.down_blocks.{i}.conv", block.conv))
    entries.update(_leaf_entries(f"{prefix}.encoder.down_blocks.{i}.norm", block.norm))
  for i, block in enumerate(hourglass.up_blocks):
    entries.update(_leaf_entries(f"{prefix}.decoder.up_blocks.{i}.conv", block.conv))
    entries.update(_leaf_entries(f"{prefix}.decoder.up_blocks.{i}.norm", block.norm))
  return entries


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
  entries.update(_leaf_entries("first.conv", gen.first.conv))
  entries.update(_leaf_entries("first.norm", gen.first.norm))
  for i, block in enumerate(gen.down_blocks):
    entries.update(_leaf_entries(f"down_blocks.{i}.conv", block.conv))
    entries.update(_leaf_entries(f"down_blocks.{i}.norm", block.norm))
  for i, block in enumerate(gen.up_blocks):
    entries.update(_leaf_entries(f"up_blocks.{i}.conv", block.conv))
    entries.update(_leaf_entries(f"up_blocks.{i}.norm", block.norm))
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

  Raises MappingError naming the first unmapped, missing or mis-shaped key.
  """
  unmapped = [k for k in state_dict if k not in entries]
  if unmapped:
    k = unmapped[0]
    raise MappingError(f"{source}: {network}.{k} {list(np.shape(state_dict[k]))} has no counterpart in the model "
                       f"for this config ({len(unmapped)} unmapped key(s))")
  missing = [k for k in entries if k not in state_dict]
  if missing:
    k = missing[0]
    raise MappingError(f"{source}: {network}.{k} is missing from the checkpoint (model expects "
                       f"{list(entries[k].torch_shape)}; {len(missing)} missing key(s))")
  converted = []
  for key, entry in entries.items():
    value = np.asarray(state_dict[key])
    if tuple(value.shape) != entry.torch_shape:
      raise MappingError(f"{source}: {network}.{key} has shape {list(value.shape)} in the checkpoint but the "
                         f"model for this config expects {list(entry.torch_shape)}")
    if entry.variable is None:
      continue
    try:
      array = entry.convert(value.astype(np.float32))
    except MappingError as e:
      raise MappingError(f"{source}: {network}.{key}: {e}") from None
    converted.append((entry.variable, array))
  return converted


def assign_state_dict(entries, state_dict, network, source):
  """Assigns every variable of one network, after checking the whole state dict."""
  converted = check_state_dict(entries, state_dict, network, source)
  for variable, array in converted:
    variable.assign(array)
  return len(converted)
