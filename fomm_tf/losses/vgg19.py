"""VGG19 features relu1_1..relu5_1 for the perceptual loss, from any of the weights people have.

Weights sources and the input convention each was trained with (each is fed
its own; feeding one set the other's preprocessing would shift every feature):

| `weights`                               | from                                     | input convention |
|-----------------------------------------|------------------------------------------|------------------|
| "imagenet"                              | Keras' download (the original Caffe model) | caffe           |
| a Keras `.h5` (e.g. vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5) | the same, local | caffe |
| a torchvision `.pth` (e.g. vgg19-dcbb9e9d.pth), read without torch | what the official trainer uses | torch |
| "random"                                | He-normal (fan_in) init, seeded          | torch            |

caffe: BGR, 0..255, ImageNet mean pixel (103.939, 116.779, 123.68) subtracted,
no std. torch: RGB in [0, 1], minus mean (0.485, 0.456, 0.406), divided by std
(0.229, 0.224, 0.225) — the official trainer's normalisation. "random" draws
every conv kernel from N(0, 2 / fan_in), fan_in = 9 x input channels (He
initialisation: kaiming_normal_ with mode="fan_in" and the ReLU gain), zero
biases, seeded: the spread that keeps ReLU features at the same magnitude
through all 13 layers (torchvision's own fan_out variant lets them shrink about
tenfold by relu5_1), so smoke runs see perceptual features of realistic size at
every layer. It is for tests and smoke runs only.
"""

import os

import keras
import numpy as np
import tensorflow as tf

from fomm_tf.checkpoint import torch_pickle
from fomm_tf.errors import CheckpointError
from fomm_tf.errors import one_line
from fomm_tf.io import files
from fomm_tf.layers import base

# (Keras layer name, torchvision `features` index) of the convolutions up to relu5_1.
CONVS = (("block1_conv1", 0), ("block1_conv2", 2), ("block2_conv1", 5), ("block2_conv2", 7), ("block3_conv1", 10),
         ("block3_conv2", 12), ("block3_conv3", 14), ("block3_conv4", 16), ("block4_conv1", 19), ("block4_conv2", 21),
         ("block4_conv3", 23), ("block4_conv4", 25), ("block5_conv1", 28))
FILTERS = {1: 64, 2: 128, 3: 256, 4: 512, 5: 512}
OUTPUT_LAYERS = ("block1_conv1", "block2_conv1", "block3_conv1", "block4_conv1", "block5_conv1")
CAFFE_BGR_MEAN = (103.939, 116.779, 123.68)
TORCH_MEAN = (0.485, 0.456, 0.406)
TORCH_STD = (0.229, 0.224, 0.225)
CONVENTIONS = ("caffe", "torch")
RANDOM_SEED = 0


@base.register
class VGG19Features(base.Layer):
  """[0, 1] RGB images -> the five relu1_1..relu5_1 feature maps (float32), frozen.

  Build with `make_vgg19_features(weights)`, which also sets `convention`.
  """

  def __init__(self, convention="torch", **kwargs):
    kwargs.setdefault("trainable", False)
    super().__init__(**kwargs)
    self._record(locals())
    if convention not in CONVENTIONS:
      raise ValueError(f"convention must be one of {CONVENTIONS}, got {convention!r}")
    self.convention = convention
    self.convs = {}
    for name, _ in CONVS:
      block = int(name[5])
      self.convs[name] = self.sublayer(keras.layers.Conv2D,
                                       FILTERS[block],
                                       3,
                                       padding="same",
                                       activation="relu",
                                       name=name)

  def preprocess(self, images):
    x = tf.cast(images, tf.float32)
    if self.convention == "caffe":
      return x[..., ::-1] * 255.0 - tf.constant(CAFFE_BGR_MEAN, tf.float32)
    return (x - tf.constant(TORCH_MEAN, tf.float32)) / tf.constant(TORCH_STD, tf.float32)

  def call(self, images, depth=len(OUTPUT_LAYERS)):
    """The first `depth` feature maps (the layers past them are not run)."""
    x = tf.cast(self.preprocess(images), self.compute_dtype)
    outputs = []
    previous_block = 1
    for name, _ in CONVS:
      block = int(name[5])
      if block != previous_block:
        x = tf.nn.max_pool2d(x, 2, 2, "VALID")
        previous_block = block
      x = self.convs[name](x)
      if name in OUTPUT_LAYERS:
        outputs.append(tf.cast(x, tf.float32))
        if len(outputs) == depth:
          break
    return outputs

  def conv_weights(self):
    return {name: self.convs[name].get_weights() for name, _ in CONVS}

  def set_conv_weights(self, weights):
    for name, (kernel, bias) in weights.items():
      self.convs[name].set_weights([kernel, bias])


def _keras_weights(weights):
  """{layer name: [kernel, bias]} from Keras' ImageNet VGG19 (download or local .h5)."""
  model = keras.applications.VGG19(include_top=False, weights=None, input_shape=(None, None, 3))
  try:
    if weights == "imagenet":
      pretrained = keras.applications.VGG19(include_top=False, weights="imagenet", input_shape=(None, None, 3))
      model.set_weights(pretrained.get_weights())
    else:
      model.load_weights(weights)
  except (OSError, ValueError) as error:
    if weights == "imagenet":
      raise CheckpointError(
          f"could not get the ImageNet VGG19 weights through Keras ({one_line(error)[:200]}); download "
          "vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5 (Keras) or vgg19-dcbb9e9d.pth (torchvision) "
          "elsewhere and pass --vgg19_weights=PATH") from None
    raise CheckpointError(f"{weights}: not Keras VGG19 (no top) weights: {one_line(error)[:200]}") from None
  return {name: model.get_layer(name).get_weights() for name, _ in CONVS}


def _torchvision_weights(path):
  """{layer name: [kernel, bias]} from a torchvision VGG19 state dict (.pth), transposed to Keras' layout."""
  state = torch_pickle.read_torch_checkpoint(path)
  if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
    state = state["state_dict"]
  if not isinstance(state, dict):
    raise CheckpointError(f"{path}: not a VGG19 state dict (top level is {type(state).__name__})")
  out = {}
  in_channels = 3
  for name, index in CONVS:
    filters = FILTERS[int(name[5])]
    weight, bias = state.get(f"features.{index}.weight"), state.get(f"features.{index}.bias")
    for key, value, shape in ((f"features.{index}.weight", weight, (filters, in_channels, 3, 3)),
                              (f"features.{index}.bias", bias, (filters,))):
      if not isinstance(value, np.ndarray):
        raise CheckpointError(f"{path}: no tensor {key}; is it a torchvision VGG19 state dict?")
      if value.shape != shape:
        raise CheckpointError(f"{path}: {key} has shape {list(value.shape)}, VGG19 has {list(shape)}")
    out[name] = [np.transpose(weight, (2, 3, 1, 0)).astype(np.float32), bias.astype(np.float32)]
    in_channels = filters
  return out


def random_weights(seed=RANDOM_SEED):
  """He initialisation: kernels N(0, 2 / fan_in) with fan_in = in_channels * 3 * 3, zero biases."""
  rng = np.random.default_rng(seed)
  out = {}
  in_channels = 3
  for name, _ in CONVS:
    filters = FILTERS[int(name[5])]
    std = np.sqrt(2.0 / (in_channels * 9))
    out[name] = [rng.normal(0.0, std, (3, 3, in_channels, filters)).astype(np.float32), np.zeros(filters, np.float32)]
    in_channels = filters
  return out


def make_vgg19_features(weights="imagenet", dtype=None):
  """A frozen VGG19Features with `weights` ("imagenet", "random", a .h5 or a torchvision .pth path)."""
  if weights == "random":
    convention, conv_weights = "torch", random_weights()
  elif weights == "imagenet":
    convention, conv_weights = "caffe", _keras_weights(weights)
  else:
    files.check_regular_file(weights, CheckpointError, "VGG19 weights file")
    if os.path.splitext(weights)[1].lower() in (".h5", ".hdf5", ".keras"):
      convention, conv_weights = "caffe", _keras_weights(weights)
    else:
      convention, conv_weights = "torch", _torchvision_weights(weights)
  features = VGG19Features(convention=convention, dtype=dtype, name="vgg19_features")
  features(tf.zeros((1, 32, 32, 3)))
  features.set_conv_weights(conv_weights)
  features.trainable = False
  return features
