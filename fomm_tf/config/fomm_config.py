"""FommConfig: every section of one config, immutable, with flat access by flag name for overrides."""

import dataclasses

from fomm_tf.config import schema
from fomm_tf.errors import ConfigError

# Section attribute -> section type, in flagfile order.
SECTIONS = {
    "model": schema.ModelConfig,
    "kp_detector": schema.KeypointDetectorConfig,
    "generator": schema.GeneratorConfig,
    "dense_motion": schema.DenseMotionConfig,
    "discriminator": schema.DiscriminatorConfig,
    "train": schema.TrainConfig,
    "dataset": schema.DatasetConfig,
    "animation": schema.AnimationConfig,
    "visualizer": schema.VisualizerConfig,
}


@dataclasses.dataclass(frozen=True)
class FlagField:
  """Where one flag lives: its section attribute and field."""
  flag: str
  section: str
  field: dataclasses.Field

  @property
  def help(self):
    return self.field.metadata["help"]

  @property
  def default(self):
    return self.field.default


def flag_fields():
  """{flag name: FlagField} over every section, in declaration order."""
  out = {}
  for section, section_type in SECTIONS.items():
    for field in dataclasses.fields(section_type):
      name = schema.flag_name(section_type, field)
      if name in out:
        raise AssertionError(f"two config fields have the flag --{name}")
      out[name] = FlagField(name, section, field)
  return out


FLAG_FIELDS = flag_fields()

# The sections that decide the inference networks: their variables and what they compute.
NETWORK_SECTIONS = ("model", "kp_detector", "generator", "dense_motion")


@dataclasses.dataclass(frozen=True)
class FommConfig:
  """One FOMM config. Sections are frozen dataclasses; `source` says where it came from."""
  model: schema.ModelConfig = dataclasses.field(default_factory=schema.ModelConfig)
  kp_detector: schema.KeypointDetectorConfig = dataclasses.field(default_factory=schema.KeypointDetectorConfig)
  generator: schema.GeneratorConfig = dataclasses.field(default_factory=schema.GeneratorConfig)
  dense_motion: schema.DenseMotionConfig = dataclasses.field(default_factory=schema.DenseMotionConfig)
  discriminator: schema.DiscriminatorConfig = dataclasses.field(default_factory=schema.DiscriminatorConfig)
  train: schema.TrainConfig = dataclasses.field(default_factory=schema.TrainConfig)
  dataset: schema.DatasetConfig = dataclasses.field(default_factory=schema.DatasetConfig)
  animation: schema.AnimationConfig = dataclasses.field(default_factory=schema.AnimationConfig)
  visualizer: schema.VisualizerConfig = dataclasses.field(default_factory=schema.VisualizerConfig)
  source: str = "<defaults>"

  @classmethod
  def from_flat(cls, values, source="<flags>"):
    """A config from {flag name: value}; missing names keep their defaults, unknown ones are an error."""
    return cls(source=source).replace(**values)

  def replace(self, **changes):
    """A copy with the named flags changed (`replace(num_kp=5, kp_scale_factor=0.5)`)."""
    unknown = sorted(set(changes) - set(FLAG_FIELDS))
    if unknown:
      raise ConfigError(f"unknown config parameter(s): {', '.join(unknown)}")
    by_section = {}
    for name, value in changes.items():
      where = FLAG_FIELDS[name]
      by_section.setdefault(where.section, {})[where.field.name] = value
    try:
      sections = {name: dataclasses.replace(getattr(self, name), **fields) for name, fields in by_section.items()}
    except ConfigError as error:
      raise ConfigError(f"{self.source}: {error}") from None
    return dataclasses.replace(self, **sections)

  def with_source(self, source):
    return dataclasses.replace(self, source=source)

  def same_networks(self, other):
    """Whether `other` builds the same keypoint detector and generator (so the same weights fit and compute the
    same thing), whatever its training, dataset and animation settings."""
    return all(getattr(self, name) == getattr(other, name) for name in NETWORK_SECTIONS)

  def flat(self):
    """{flag name: value} of every field."""
    return {name: getattr(getattr(self, f.section), f.field.name) for name, f in FLAG_FIELDS.items()}

  def to_dict(self):
    """Nested plain data (lists, not tuples), e.g. for a manifest or Keras get_config."""
    return {name: getattr(self, name).kwargs() for name in SECTIONS}

  @classmethod
  def from_dict(cls, data, source="<dict>"):
    unknown = sorted(set(data) - set(SECTIONS))
    if unknown:
      raise ConfigError(f"{source}: unknown config section(s): {', '.join(unknown)}")
    try:
      return cls(source=source, **{name: SECTIONS[name](**fields) for name, fields in data.items()})
    except TypeError as error:
      raise ConfigError(f"{source}: {error}") from None

  @property
  def frame_shape(self):
    return self.model.frame_shape

  @property
  def frame_size(self):
    return tuple(self.model.frame_shape[:2])

  @property
  def num_kp(self):
    return self.model.num_kp

  # The constructor arguments of each network, from its section plus the shared model parameters.

  def kp_detector_kwargs(self):
    m = self.model
    return dict(num_kp=m.num_kp,
                num_channels=m.num_channels,
                estimate_jacobian=m.estimate_jacobian,
                **self.kp_detector.kwargs())

  def dense_motion_kwargs(self):
    return self.dense_motion.kwargs()

  def generator_kwargs(self):
    m = self.model
    return dict(num_channels=m.num_channels,
                num_kp=m.num_kp,
                estimate_jacobian=m.estimate_jacobian,
                align_corners=m.align_corners,
                dense_motion_params=self.dense_motion_kwargs(),
                **self.generator.kwargs())

  def discriminator_kwargs(self):
    m = self.model
    return dict(num_channels=m.num_channels, num_kp=m.num_kp, **self.discriminator.kwargs())
