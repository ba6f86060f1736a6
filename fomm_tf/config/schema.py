"""The typed FOMM config: frozen sections whose fields are the constructor arguments of what they configure.

Each field is declared once, with `param(...)`; from that one declaration come
its flag (`--<prefix><name>` unless `flag=` says otherwise), its help text, its
type, its place in the official YAML configs (`official=`) and its validation.
A field added here therefore reaches the flags, the flagfiles, the official-YAML
import (`config.official`) and every network's get_config without a second list.
"""

import dataclasses
import math
import typing
from typing import Tuple

from fomm_tf.errors import ConfigError


def param(default, help, flag=None, official=None, check=None):  # pylint: disable=redefined-builtin
  """A config field: `flag` overrides the derived flag name, `official` is its YAML path (dotted),
  `check(value) -> problem or None` validates it."""
  metadata = {"help": help, "flag": flag, "official": official, "check": check}
  if isinstance(default, (list, tuple)):
    return dataclasses.field(default=tuple(default), metadata=metadata)
  return dataclasses.field(default=default, metadata=metadata)


def at_least(minimum):
  """A check: the value (an int or float, or None where the field is optional) is >= `minimum`."""
  return lambda value: None if value is None or value >= minimum else f"must be >= {minimum:g}"


def in_range(low, high):
  """A check: low <= value <= high (None passes where the field is optional)."""
  return lambda value: None if value is None or low <= value <= high else f"must be from {low:g} to {high:g}"


def one_of(*choices):
  """A check: the value is one of `choices`."""
  return lambda value: None if value in choices else f"must be one of {', '.join(map(str, choices))}"


def _positive(value):
  return None if value > 0 else "must be > 0"


def _non_negative(value):
  return None if value >= 0 else "must be >= 0"


def _one_over_n(value):
  if 0 < value <= 1 and (value == 1 or abs(1 / value - round(1 / value)) <= 1e-6):
    return None
  return "must be 1 or 1/n"


# Widths and depths beyond these are refused before any network is built: the official configs stay far below
# (widths <= 1024, hourglass depth 5, 6 residual blocks), and a hostile flagfile's 10**6 channels would ask for
# terabytes of weights. A width of MAX_WIDTH already gives 3x3 convs of 150 MB each.
MAX_WIDTH = 4096
MAX_HOURGLASS_BLOCKS = 8
MAX_DOWN_BLOCKS = 6
MAX_BOTTLENECK_BLOCKS = 64
MAX_KEYPOINTS = 256


def _at_most(limit):

  def check(value):
    return None if 0 < value <= limit else f"must be in [1, {limit}]"

  return check


def _from_zero_to(limit):

  def check(value):
    return None if 0 <= value <= limit else f"must be in [0, {limit}]"

  return check


def _width(value):
  return _at_most(MAX_WIDTH)(value)


def _head_kernel(value):
  return None if value in (1, 3, 5, 7) else "must be 1, 3, 5 or 7"


def _all_positive(values):
  return None if all(v > 0 for v in values) else "must all be > 0"


def _all_non_negative(values):
  return None if all(v >= 0 for v in values) else "must all be >= 0"


class Section:
  """Shared behaviour of the config sections (mixed into frozen dataclasses)."""

  PREFIX = ""
  OFFICIAL = ""
  ERROR = ConfigError  # What a bad value raises: the model config's sections are configs, command options usage.

  def __post_init__(self):
    for field in dataclasses.fields(self):
      value = getattr(self, field.name)
      value = _coerce(field, value, self)
      object.__setattr__(self, field.name, value)
      check = field.metadata.get("check")
      problem = check(value) if check is not None else None
      if problem:
        raise self.ERROR(f"--{flag_name(type(self), field)} {problem}, got {_show(value)}")
      # After the field's check, which may say more (e.g. --fps=nan: the range of frame rates).
      if isinstance(value, float) and not math.isfinite(value):
        raise self.ERROR(f"--{flag_name(type(self), field)} expects a finite number, got {_show(value)}")

  @classmethod
  def default(cls, name):
    """The declared default of field `name`."""
    return {f.name: f.default for f in dataclasses.fields(cls)}[name]

  def kwargs(self):
    """The fields as a dict of constructor arguments (lists as lists)."""
    return {
        f.name: list(v) if isinstance(v, tuple) else v
        for f, v in ((f, getattr(self, f.name)) for f in dataclasses.fields(self))
    }


def _show(value):
  if isinstance(value, tuple):
    return ",".join(str(v) for v in value) or "(empty)"
  return repr(value)


def optional_type(field_type):
  """X for Optional[X], else None."""
  args = typing.get_args(field_type)
  if typing.get_origin(field_type) is typing.Union and len(args) == 2 and type(None) in args:
    return args[0] if args[1] is type(None) else args[1]
  return None


def element_type(field_type):
  """int/float for Tuple[int, ...] / Tuple[float, ...], else None."""
  if typing.get_origin(field_type) in (tuple, Tuple):
    return typing.get_args(field_type)[0]
  return None


def _coerce(field, value, section):
  """Values from flags, YAML or keyword overrides, brought to the field's type (or the section's ERROR)."""
  name = flag_name(type(section), field)
  field_type = field.type
  if optional_type(field_type) is not None:
    if value is None:
      return None
    field_type = optional_type(field_type)
  kind = element_type(field_type)
  try:
    if kind is not None:
      if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
        raise TypeError
      out = []
      for item in value:
        if isinstance(item, bool) or (kind is int and isinstance(item, float) and not item.is_integer()):
          raise TypeError
        out.append(kind(item))
      if kind is float and not all(math.isfinite(v) for v in out):
        raise TypeError
      return tuple(out)
    if field_type is bool:
      if not isinstance(value, bool):
        raise TypeError
      return value
    if field_type is int:
      if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
        raise TypeError
      return int(value)
    if field_type is float:
      if isinstance(value, bool):
        raise TypeError
      return float(value)  # Finiteness is checked after the field's own check (Section.__post_init__).
    if field_type is str:
      if not isinstance(value, str):
        raise TypeError
      return value
  except (TypeError, ValueError):
    what = {int: "an integer", float: "a finite number", bool: "true or false", str: "a string"}
    expected = (f"a comma-separated list of {'integers' if kind is int else 'numbers'}"
                if kind is not None else what[field_type])
    raise section.ERROR(f"--{name} expects {expected}, got {_show(value) if not isinstance(value, str) else value!r}") \
        from None
  raise TypeError(f"config field {name} has unsupported type {field_type}")


def flag_name(section_type, field):
  return field.metadata.get("flag") or section_type.PREFIX + field.name


@dataclasses.dataclass(frozen=True)
class ModelConfig(Section):
  """Parameters shared by the networks (the official `common_params`, plus the frame size)."""
  OFFICIAL = "model_params.common_params"
  num_kp: int = param(10, "Number of keypoints K.", check=_at_most(MAX_KEYPOINTS))
  num_channels: int = param(3, "Image channels.", check=_at_most(4))
  estimate_jacobian: bool = param(True, "Predict a 2x2 Jacobian per keypoint.")
  frame_shape: Tuple[int, ...] = param((256, 256, 3),
                                       "Frame height, width, channels.",
                                       official="dataset_params.frame_shape")
  align_corners: bool = param(
      True, "Grid-sampling convention: True = the official checkpoints' training semantics (PyTorch 1.0); "
      "False = the official code as it runs on PyTorch >= 1.3.",
      official="")

  def __post_init__(self):
    super().__post_init__()
    if len(self.frame_shape) != 3 or min(self.frame_shape) <= 0:
      raise ConfigError(f"frame_shape must be height,width,channels, got {_show(self.frame_shape)}")
    if self.frame_shape[2] != self.num_channels:
      raise ConfigError(f"frame_shape channels {self.frame_shape[2]} != num_channels {self.num_channels}")


@dataclasses.dataclass(frozen=True)
class KeypointDetectorConfig(Section):
  """The keypoint detector's own arguments (KeypointDetector adds num_kp, num_channels, estimate_jacobian)."""
  PREFIX = "kp_"
  OFFICIAL = "model_params.kp_detector_params"
  temperature: float = param(0.1, "Softmax temperature of the keypoint heatmaps.", check=_positive)
  block_expansion: int = param(32, "Keypoint hourglass base width.", check=_width)
  max_features: int = param(1024, "Keypoint hourglass max width.", check=_width)
  scale_factor: float = param(0.25, "Keypoint detector input downscale.", check=_one_over_n)
  num_blocks: int = param(5, "Keypoint hourglass depth.", check=_at_most(MAX_HOURGLASS_BLOCKS))
  single_jacobian_map: bool = param(False, "One Jacobian map shared by all keypoints.")
  pad: int = param(0,
                   "Padding of the keypoint/Jacobian heads: 0 or head_kernel_size // 2 (3 for 7x7).",
                   check=_non_negative)
  separable: bool = param(False, "Lite: depthwise-separable 3x3 convs in the keypoint hourglass.", official="")
  head_kernel_size: int = param(7,
                                "Kernel size of the keypoint/Jacobian heads (7 in the paper; lite: 3).",
                                official="",
                                check=_head_kernel)

  def __post_init__(self):
    super().__post_init__()
    if self.pad not in (0, self.head_kernel_size // 2):
      raise ConfigError(f"kp_pad must be 0 or {self.head_kernel_size // 2} (kp_head_kernel_size "
                        f"{self.head_kernel_size}), got {self.pad}")


@dataclasses.dataclass(frozen=True)
class DenseMotionConfig(Section):
  """The dense motion network's own arguments (the official `dense_motion_params`)."""
  PREFIX = "dm_"
  OFFICIAL = "model_params.generator_params.dense_motion_params"
  block_expansion: int = param(64, "Dense motion hourglass base width.", check=_width)
  max_features: int = param(1024, "Dense motion hourglass max width.", check=_width)
  num_blocks: int = param(5, "Dense motion hourglass depth.", check=_at_most(MAX_HOURGLASS_BLOCKS))
  scale_factor: float = param(0.25, "Dense motion input downscale.", check=_one_over_n)
  kp_variance: float = param(0.01, "Variance of the keypoint Gaussians.", check=_positive)
  separable: bool = param(False, "Lite: depthwise-separable 3x3 convs in the dense motion hourglass.", official="")
  head_kernel_size: int = param(7,
                                "Kernel size of the mask and occlusion heads (7 in the paper; lite: 3).",
                                official="",
                                check=_head_kernel)


@dataclasses.dataclass(frozen=True)
class GeneratorConfig(Section):
  """The occlusion-aware generator's own arguments."""
  PREFIX = "gen_"
  OFFICIAL = "model_params.generator_params"
  block_expansion: int = param(64, "Generator base width.", check=_width)
  max_features: int = param(512, "Generator max width.", check=_width)
  num_down_blocks: int = param(2, "Generator down/up blocks.", check=_from_zero_to(MAX_DOWN_BLOCKS))
  num_bottleneck_blocks: int = param(6, "Generator residual blocks.", check=_from_zero_to(MAX_BOTTLENECK_BLOCKS))
  estimate_occlusion_map: bool = param(True, "Predict an occlusion map.")
  separable: bool = param(False, "Lite: depthwise-separable 3x3 convs in the generator's down, residual and up "
                          "blocks.",
                          official="")
  head_kernel_size: int = param(7,
                                "Kernel size of the generator's first and final convs (7 in the paper; lite: 3).",
                                official="",
                                check=_head_kernel)
  blend_deformed: bool = param(False, "Not in the paper: where the occlusion map says the warped source is visible, "
                               "output it: prediction = o * deformed + (1 - o) * decoded, with o the occlusion map "
                               "at frame size (the decoder then paints the occluded parts; the built-in models use "
                               "it, docs/builtin-model.md).",
                               official="")

  def __post_init__(self):
    super().__post_init__()
    if self.blend_deformed and not self.estimate_occlusion_map:
      raise ConfigError("gen_blend_deformed needs gen_estimate_occlusion_map (it blends by the occlusion map)")


@dataclasses.dataclass(frozen=True)
class DiscriminatorConfig(Section):
  """The multi-scale discriminator's own arguments."""
  PREFIX = "disc_"
  OFFICIAL = "model_params.discriminator_params"
  scales: Tuple[float, ...] = param((1.0,), "Discriminator pyramid scales.", check=_all_positive)
  block_expansion: int = param(32, "Discriminator base width.", check=_width)
  max_features: int = param(512, "Discriminator max width.", check=_width)
  num_blocks: int = param(4, "Discriminator depth.", check=_at_most(MAX_HOURGLASS_BLOCKS))
  sn: bool = param(True, "Spectral normalisation in the discriminator.")
  use_kp: bool = param(False, "Feed keypoint heatmaps to the discriminator.")
  kp_variance: float = param(0.01, "Variance of the discriminator's keypoint Gaussians.", check=_positive)


@dataclasses.dataclass(frozen=True)
class TrainConfig(Section):
  """The training schedule, optimiser and loss weights (the official `train_params`)."""
  OFFICIAL = "train_params"
  num_epochs: int = param(100, "Training epochs.", check=_positive)
  num_repeats: int = param(75, "Repeats of the video list per epoch.", check=_positive)
  epoch_milestones: Tuple[int, ...] = param((60, 90),
                                            "Epochs at which learning rates drop 10x.",
                                            check=_all_non_negative)
  lr_generator: float = param(2e-4, "Generator learning rate.", check=_non_negative)
  lr_discriminator: float = param(2e-4, "Discriminator learning rate.", check=_non_negative)
  lr_kp_detector: float = param(2e-4, "Keypoint detector learning rate.", check=_non_negative)
  batch_size: int = param(40,
                          "Global training batch size.",
                          flag="train_batch_size",
                          official="train_params.batch_size",
                          check=_positive)
  perceptual_scales: Tuple[float, ...] = param((1.0, 0.5, 0.25, 0.125),
                                               "Perceptual-loss pyramid scales.",
                                               official="train_params.scales",
                                               check=_all_positive)
  checkpoint_freq: int = param(50, "Epochs between checkpoints of the official trainer.", check=_positive)
  sigma_affine: float = param(0.05,
                              "Equivariance transform: affine noise.",
                              official="train_params.transform_params.sigma_affine",
                              check=_non_negative)
  sigma_tps: float = param(0.005,
                           "Equivariance transform: TPS noise.",
                           official="train_params.transform_params.sigma_tps",
                           check=_non_negative)
  points_tps: int = param(5,
                          "Equivariance transform: TPS control grid size.",
                          official="train_params.transform_params.points_tps",
                          check=_positive)
  loss_generator_gan: float = param(0.0,
                                    "Weight of the generator GAN loss.",
                                    official="train_params.loss_weights.generator_gan",
                                    check=_non_negative)
  loss_discriminator_gan: float = param(1.0,
                                        "Weight of the discriminator GAN loss.",
                                        official="train_params.loss_weights.discriminator_gan",
                                        check=_non_negative)
  loss_feature_matching: Tuple[float, ...] = param((10.0,) * 4,
                                                   "Feature matching weights.",
                                                   official="train_params.loss_weights.feature_matching",
                                                   check=_all_non_negative)
  loss_perceptual: Tuple[float, ...] = param((10.0,) * 5,
                                             "VGG19 relu1_1..relu5_1 weights.",
                                             official="train_params.loss_weights.perceptual",
                                             check=_all_non_negative)
  loss_pixel: float = param(
      0.0, "Weight of a plain L1 loss on each pyramid level (not in the paper; 0 in the official configs; used "
      "where no ImageNet VGG19 weights are available, e.g. the built-in synthetic model).",
      official="",
      check=_non_negative)
  loss_equivariance_value: float = param(10.0,
                                         "Equivariance (keypoint value) weight.",
                                         official="train_params.loss_weights.equivariance_value",
                                         check=_non_negative)
  loss_equivariance_jacobian: float = param(10.0,
                                            "Equivariance (Jacobian) weight.",
                                            official="train_params.loss_weights.equivariance_jacobian",
                                            check=_non_negative)


@dataclasses.dataclass(frozen=True)
class DatasetConfig(Section):
  """Training sample selection and augmentation (the official `dataset_params`)."""
  OFFICIAL = "dataset_params"
  id_sampling: bool = param(False, "Sample an identity (name before '#') first.")
  flip_horizontal: bool = param(True,
                                "Random horizontal flips.",
                                official="dataset_params.augmentation_params.flip_param.horizontal_flip")
  flip_time: bool = param(True,
                          "Random time flips.",
                          official="dataset_params.augmentation_params.flip_param.time_flip")
  flip_mode: str = param("official", "official: a time flip (p=0.5) excludes the horizontal flip, as the official "
                         "RandomFlip (50% time, 25% horizontal, never both); independent: two independent coins.",
                         official="",
                         check=lambda v: None
                         if v in ("official", "independent") else "must be official or independent")
  jitter_brightness: float = param(0.0,
                                   "Colour jitter: brightness.",
                                   official="dataset_params.augmentation_params.jitter_param.brightness",
                                   check=_non_negative)
  jitter_contrast: float = param(0.0,
                                 "Colour jitter: contrast.",
                                 official="dataset_params.augmentation_params.jitter_param.contrast",
                                 check=_non_negative)
  jitter_saturation: float = param(0.0,
                                   "Colour jitter: saturation.",
                                   official="dataset_params.augmentation_params.jitter_param.saturation",
                                   check=_non_negative)
  jitter_hue: float = param(0.0,
                            "Colour jitter: hue.",
                            official="dataset_params.augmentation_params.jitter_param.hue",
                            check=lambda v: None if 0 <= v <= 0.5 else "must be in [0, 0.5]")
  resize_ratio: Tuple[float, ...] = param((),
                                          "Random resize ratio range before cropping (empty: off).",
                                          official="dataset_params.augmentation_params.resize_param.ratio",
                                          check=_all_positive)
  crop_size: Tuple[int, ...] = param((),
                                     "Random crop size after resizing (empty: off).",
                                     official="dataset_params.augmentation_params.crop_param.size",
                                     check=_all_positive)


@dataclasses.dataclass(frozen=True)
class AnimationConfig(Section):
  """Animation and evaluation defaults (the official `animate_params` and `reconstruction_params`)."""
  OFFICIAL = "animate_params.normalization_params"
  animate_num_pairs: int = param(50,
                                 "Pairs animated by evaluate --mode=animation.",
                                 official="animate_params.num_pairs",
                                 check=_positive)
  reconstruction_num_videos: int = param(1000,
                                         "Videos used by evaluate --mode=reconstruction.",
                                         official="reconstruction_params.num_videos",
                                         check=_positive)
  adapt_movement_scale: bool = param(False, "Relative motion: scale by convex-hull area.")
  use_relative_movement: bool = param(True, "Relative motion transfer of keypoint values.")
  use_relative_jacobian: bool = param(True, "Relative motion transfer of Jacobians.")
  crop: str = param("center", "How animate makes photos and videos square: center (the centred square), pad (the "
                    "whole picture, black borders) or face (VoxCeleb-style head crops; the default of configs "
                    "trained on faces).",
                    official="",
                    check=lambda v: None if v in ("center", "pad", "face") else "must be center, pad or face")


@dataclasses.dataclass(frozen=True)
class VisualizerConfig(Section):
  """Drawing keypoints (the official `visualizer_params`)."""
  OFFICIAL = "visualizer_params"
  kp_size: int = param(5, "Keypoint radius in visualisations.", check=_positive)
  draw_border: bool = param(True, "White border around visualised images.")
  colormap: str = param("gist_rainbow", "Keypoint colormap.")
