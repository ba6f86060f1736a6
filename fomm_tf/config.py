"""FOMM configuration: one flat set of absl flags, read from flagfiles in `configs/`.

The same flag names serve the command-line entry points (`--flagfile=...`) and
the Python API (`load_config("vox-256")`), so a config is written once.
"""

import dataclasses
import os
from typing import Any

from absl import flags

CONFIG_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "configs")
_PACKAGED_CONFIG_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "configs")


@dataclasses.dataclass(frozen=True)
class Flag:
  name: str
  kind: str  # bool, int, float, string, int_list, float_list
  default: Any
  help: str
  section: str


_M, _T, _D, _A, _V = "model", "train", "dataset", "animate", "visualizer"

FLAG_SPECS = (
    # Model, common.
    Flag("num_kp", "int", 10, "Number of keypoints K.", _M),
    Flag("num_channels", "int", 3, "Image channels.", _M),
    Flag("estimate_jacobian", "bool", True, "Predict a 2x2 Jacobian per keypoint.", _M),
    Flag("frame_shape", "int_list", [256, 256, 3], "Frame height, width, channels.", _M),
    Flag("align_corners", "bool", True,
         "Grid-sampling convention: True = the official checkpoints' training semantics (PyTorch 1.0); "
         "False = the official code as it runs on PyTorch >= 1.3.", _M),
    # Keypoint detector.
    Flag("kp_temperature", "float", 0.1, "Softmax temperature of the keypoint heatmaps.", _M),
    Flag("kp_block_expansion", "int", 32, "Keypoint hourglass base width.", _M),
    Flag("kp_max_features", "int", 1024, "Keypoint hourglass max width.", _M),
    Flag("kp_scale_factor", "float", 0.25, "Keypoint detector input downscale.", _M),
    Flag("kp_num_blocks", "int", 5, "Keypoint hourglass depth.", _M),
    Flag("kp_single_jacobian_map", "bool", False, "One Jacobian map shared by all keypoints.", _M),
    Flag("kp_pad", "int", 0, "Padding of the 7x7 keypoint/Jacobian heads (0 or 3).", _M),
    # Generator.
    Flag("gen_block_expansion", "int", 64, "Generator base width.", _M),
    Flag("gen_max_features", "int", 512, "Generator max width.", _M),
    Flag("gen_num_down_blocks", "int", 2, "Generator down/up blocks.", _M),
    Flag("gen_num_bottleneck_blocks", "int", 6, "Generator residual blocks.", _M),
    Flag("gen_estimate_occlusion_map", "bool", True, "Predict an occlusion map.", _M),
    # Dense motion network.
    Flag("dm_block_expansion", "int", 64, "Dense motion hourglass base width.", _M),
    Flag("dm_max_features", "int", 1024, "Dense motion hourglass max width.", _M),
    Flag("dm_num_blocks", "int", 5, "Dense motion hourglass depth.", _M),
    Flag("dm_scale_factor", "float", 0.25, "Dense motion input downscale.", _M),
    Flag("dm_kp_variance", "float", 0.01, "Variance of the keypoint Gaussians.", _M),
    # Discriminator.
    Flag("disc_scales", "float_list", [1.0], "Discriminator pyramid scales.", _M),
    Flag("disc_block_expansion", "int", 32, "Discriminator base width.", _M),
    Flag("disc_max_features", "int", 512, "Discriminator max width.", _M),
    Flag("disc_num_blocks", "int", 4, "Discriminator depth.", _M),
    Flag("disc_sn", "bool", True, "Spectral normalisation in the discriminator.", _M),
    Flag("disc_use_kp", "bool", False, "Feed keypoint heatmaps to the discriminator.", _M),
    Flag("disc_kp_variance", "float", 0.01, "Variance of the discriminator's keypoint Gaussians.", _M),
    # Training.
    Flag("num_epochs", "int", 100, "Training epochs.", _T),
    Flag("num_repeats", "int", 75, "Repeats of the video list per epoch.", _T),
    Flag("epoch_milestones", "int_list", [60, 90], "Epochs at which learning rates drop 10x.", _T),
    Flag("lr_generator", "float", 2e-4, "Generator learning rate.", _T),
    Flag("lr_discriminator", "float", 2e-4, "Discriminator learning rate.", _T),
    Flag("lr_kp_detector", "float", 2e-4, "Keypoint detector learning rate.", _T),
    Flag("train_batch_size", "int", 40, "Global training batch size.", _T),
    Flag("perceptual_scales", "float_list", [1.0, 0.5, 0.25, 0.125], "Perceptual-loss pyramid scales.", _T),
    Flag("checkpoint_freq", "int", 50, "Epochs between checkpoints of the official trainer.", _T),
    Flag("sigma_affine", "float", 0.05, "Equivariance transform: affine noise.", _T),
    Flag("sigma_tps", "float", 0.005, "Equivariance transform: TPS noise.", _T),
    Flag("points_tps", "int", 5, "Equivariance transform: TPS control grid size.", _T),
    Flag("loss_generator_gan", "float", 0.0, "Weight of the generator GAN loss.", _T),
    Flag("loss_discriminator_gan", "float", 1.0, "Weight of the discriminator GAN loss.", _T),
    Flag("loss_feature_matching", "float_list", [10.0, 10.0, 10.0, 10.0], "Feature matching weights.", _T),
    Flag("loss_perceptual", "float_list", [10.0] * 5, "VGG19 relu1_1..relu5_1 weights.", _T),
    Flag("loss_pixel", "float", 0.0,
         "Weight of a plain L1 loss on each pyramid level (not in the paper; 0 in the official configs; used "
         "where no ImageNet VGG19 weights are available, e.g. the built-in synthetic model).", _T),
    Flag("loss_equivariance_value", "float", 10.0, "Equivariance (keypoint value) weight.", _T),
    Flag("loss_equivariance_jacobian", "float", 10.0, "Equivariance (Jacobian) weight.", _T),
    # Dataset.
    Flag("id_sampling", "bool", False, "Sample an identity (name before '#') first.", _D),
    Flag("flip_horizontal", "bool", True, "Random horizontal flips.", _D),
    Flag("flip_time", "bool", True, "Random time flips.", _D),
    Flag("jitter_brightness", "float", 0.0, "Colour jitter: brightness.", _D),
    Flag("jitter_contrast", "float", 0.0, "Colour jitter: contrast.", _D),
    Flag("jitter_saturation", "float", 0.0, "Colour jitter: saturation.", _D),
    Flag("jitter_hue", "float", 0.0, "Colour jitter: hue.", _D),
    Flag("resize_ratio", "float_list", [], "Random resize ratio range before cropping (empty: off).", _D),
    Flag("crop_size", "int_list", [], "Random crop size after resizing (empty: off).", _D),
    # Animation and evaluation.
    Flag("animate_num_pairs", "int", 50, "Pairs animated by evaluate --mode=animation.", _A),
    Flag("reconstruction_num_videos", "int", 1000, "Videos used by evaluate --mode=reconstruction.", _A),
    Flag("adapt_movement_scale", "bool", False, "Relative motion: scale by convex-hull area.", _A),
    Flag("use_relative_movement", "bool", True, "Relative motion transfer of keypoint values.", _A),
    Flag("use_relative_jacobian", "bool", True, "Relative motion transfer of Jacobians.", _A),
    # Visualisation.
    Flag("kp_size", "int", 5, "Keypoint radius in visualisations.", _V),
    Flag("draw_border", "bool", True, "White border around visualised images.", _V),
    Flag("colormap", "string", "gist_rainbow", "Keypoint colormap.", _V),
)

_SPECS_BY_NAME = {f.name: f for f in FLAG_SPECS}


class ConfigError(ValueError):
  pass


@dataclasses.dataclass
class FommConfig:
  """All parameters of one config, flat, with grouped accessors for the model parts."""
  values: dict
  source: str = "<defaults>"

  def __getattr__(self, name):
    values = self.__dict__.get("values", {})
    if name in values:
      return values[name]
    raise AttributeError(f"FommConfig has no parameter {name!r}")

  def replace(self, **changes):
    unknown = sorted(set(changes) - set(_SPECS_BY_NAME))
    if unknown:
      raise ConfigError(f"unknown config parameter(s): {', '.join(unknown)}")
    return FommConfig({**self.values, **changes}, self.source)

  @property
  def frame_size(self):
    return tuple(self.values["frame_shape"][:2])

  def kp_detector_params(self):
    v = self.values
    return dict(block_expansion=v["kp_block_expansion"], num_kp=v["num_kp"], num_channels=v["num_channels"],
                max_features=v["kp_max_features"], num_blocks=v["kp_num_blocks"],
                temperature=v["kp_temperature"], estimate_jacobian=v["estimate_jacobian"],
                scale_factor=v["kp_scale_factor"], single_jacobian_map=v["kp_single_jacobian_map"],
                pad=v["kp_pad"])

  def generator_params(self):
    v = self.values
    return dict(num_channels=v["num_channels"], num_kp=v["num_kp"], block_expansion=v["gen_block_expansion"],
                max_features=v["gen_max_features"], num_down_blocks=v["gen_num_down_blocks"],
                num_bottleneck_blocks=v["gen_num_bottleneck_blocks"],
                estimate_occlusion_map=v["gen_estimate_occlusion_map"],
                estimate_jacobian=v["estimate_jacobian"], align_corners=v["align_corners"],
                dense_motion_params=dict(block_expansion=v["dm_block_expansion"],
                                         max_features=v["dm_max_features"], num_blocks=v["dm_num_blocks"],
                                         scale_factor=v["dm_scale_factor"], kp_variance=v["dm_kp_variance"]))

  def discriminator_params(self):
    v = self.values
    return dict(scales=v["disc_scales"], num_channels=v["num_channels"], block_expansion=v["disc_block_expansion"],
                num_blocks=v["disc_num_blocks"], max_features=v["disc_max_features"], sn=v["disc_sn"],
                use_kp=v["disc_use_kp"], num_kp=v["num_kp"], kp_variance=v["disc_kp_variance"])


def define_flags(flag_values=flags.FLAGS, sections=None):
  """Defines the config flags on `flag_values` (all sections by default)."""
  for spec in FLAG_SPECS:
    if sections is not None and spec.section not in sections:
      continue
    if spec.name in flag_values:
      continue
    definer = {
        "bool": flags.DEFINE_boolean, "int": flags.DEFINE_integer, "float": flags.DEFINE_float,
        "string": flags.DEFINE_string,
    }.get(spec.kind)
    if definer is not None:
      definer(spec.name, spec.default, spec.help, flag_values=flag_values)
    else:
      flags.DEFINE_list(spec.name, [str(x) for x in spec.default], spec.help, flag_values=flag_values)


def _convert(spec, raw, source):
  if spec.kind not in ("int_list", "float_list"):
    return raw
  cast = int if spec.kind == "int_list" else float
  try:
    return [cast(x) for x in raw if str(x).strip() != ""]
  except ValueError:
    raise ConfigError(f"{source}: --{spec.name} expects a comma-separated list of "
                      f"{'integers' if cast is int else 'numbers'}, got {','.join(map(str, raw))!r}") from None


def config_from_flag_values(flag_values, source="<flags>"):
  """Builds a FommConfig from parsed flag values (entry points use this)."""
  values = {spec.name: _convert(spec, flag_values[spec.name].value, source) for spec in FLAG_SPECS
            if spec.name in flag_values}
  for spec in FLAG_SPECS:
    values.setdefault(spec.name, spec.default)
  return validate(FommConfig(values, source))


def resolve_config_path(config):
  """Maps a config name like 'vox-256' to its flagfile; returns paths unchanged."""
  if os.path.sep in config or config.endswith(".flags") or os.path.exists(config):
    if not os.path.isfile(config):
      raise ConfigError(f"config file not found: {config}")
    return config
  for directory in (CONFIG_DIR, _PACKAGED_CONFIG_DIR):
    candidate = os.path.join(directory, config + ".flags")
    if os.path.isfile(candidate):
      return candidate
  known = sorted(n[:-6] for d in (CONFIG_DIR, _PACKAGED_CONFIG_DIR) if os.path.isdir(d)
                 for n in os.listdir(d) if n.endswith(".flags"))
  raise ConfigError(f"unknown config {config!r}; known: {', '.join(known)} (or pass a .flags path)")


def load_config(config=None, **overrides):
  """Reads a config (name, flagfile path or FommConfig) and applies keyword overrides."""
  if isinstance(config, FommConfig):
    cfg = config
  elif config is None:
    cfg = FommConfig({s.name: s.default for s in FLAG_SPECS})
  else:
    path = resolve_config_path(str(config))
    flag_values = flags.FlagValues()
    define_flags(flag_values)
    try:
      flag_values(["fomm_tf", f"--flagfile={path}"], known_only=False)
    except (flags.Error, ValueError) as e:
      raise ConfigError(f"{path}: {str(e).splitlines()[0]}") from None
    cfg = config_from_flag_values(flag_values, source=path)
  if overrides:
    cfg = cfg.replace(**overrides)
  return validate(cfg)


def validate(cfg):
  v = cfg.values
  if len(v["frame_shape"]) != 3 or min(v["frame_shape"]) <= 0:
    raise ConfigError(f"{cfg.source}: frame_shape must be height,width,channels, got {v['frame_shape']}")
  if v["frame_shape"][2] != v["num_channels"]:
    raise ConfigError(f"{cfg.source}: frame_shape channels {v['frame_shape'][2]} != num_channels {v['num_channels']}")
  for name in ("kp_scale_factor", "dm_scale_factor"):
    s = v[name]
    if not (0 < s <= 1) or (s < 1 and abs(1 / s - round(1 / s)) > 1e-6):
      raise ConfigError(f"{cfg.source}: {name} must be 1 or 1/n, got {s}")
  if v["num_kp"] < 1:
    raise ConfigError(f"{cfg.source}: num_kp must be >= 1, got {v['num_kp']}")
  return cfg


def config_from_official(params, base=None):
  """Builds a FommConfig from an official YAML config's dict (or its `model_params`).

  Only the parameters present are overridden on `base` (default: the vox-256
  defaults), so the official `model_params` of any config can be used.
  """
  model = params.get("model_params", params)
  common = model.get("common_params", {})
  kp = model.get("kp_detector_params", {})
  gen = dict(model.get("generator_params", {}))
  dm = gen.pop("dense_motion_params", {}) or {}
  disc = model.get("discriminator_params", {})
  table = [
      (common, {"num_kp": "num_kp", "num_channels": "num_channels", "estimate_jacobian": "estimate_jacobian"}),
      (kp, {"temperature": "kp_temperature", "block_expansion": "kp_block_expansion",
            "max_features": "kp_max_features", "scale_factor": "kp_scale_factor", "num_blocks": "kp_num_blocks",
            "single_jacobian_map": "kp_single_jacobian_map", "pad": "kp_pad"}),
      (gen, {"block_expansion": "gen_block_expansion", "max_features": "gen_max_features",
             "num_down_blocks": "gen_num_down_blocks", "num_bottleneck_blocks": "gen_num_bottleneck_blocks",
             "estimate_occlusion_map": "gen_estimate_occlusion_map"}),
      (dm, {"block_expansion": "dm_block_expansion", "max_features": "dm_max_features",
            "num_blocks": "dm_num_blocks", "scale_factor": "dm_scale_factor", "kp_variance": "dm_kp_variance"}),
      (disc, {"scales": "disc_scales", "block_expansion": "disc_block_expansion",
              "max_features": "disc_max_features", "num_blocks": "disc_num_blocks", "sn": "disc_sn",
              "use_kp": "disc_use_kp", "kp_variance": "disc_kp_variance"}),
  ]
  changes = {}
  for section, names in table:
    for official, ours in names.items():
      if official in section:
        value = section[official]
        changes[ours] = [float(s) for s in value] if ours == "disc_scales" else value
  dataset = params.get("dataset_params", {})
  if "frame_shape" in dataset:
    changes["frame_shape"] = list(dataset["frame_shape"])
  base = base if base is not None else load_config(None)
  return validate(base.replace(**changes))
