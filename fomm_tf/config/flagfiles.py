"""Configs as absl flags: one flag per config field, read from the flagfiles in `configs/`.

The flagfiles live in the repository's top-level `configs/`; the package reaches
them as `fomm_tf/configs` (a link in the checkout, real files in an installed
wheel), so there is one place to look, wherever fomm-tf runs from.
"""

import dataclasses
import os

from absl import flags

from fomm_tf.config import fomm_config
from fomm_tf.config import schema
from fomm_tf.errors import ConfigError

CONFIG_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "configs")
FLAGFILE_SUFFIX = ".flags"


def define_flags(flag_values=flags.FLAGS, sections=None):
  """Defines one flag per config field on `flag_values` (all sections, or those named)."""
  for name, where in fomm_config.FLAG_FIELDS.items():
    if (sections is not None and where.section not in sections) or name in flag_values:
      continue
    _define_flag(name, where.field.type, where.default, where.help, flag_values)


def _define_flag(name, field_type, default, help_text, flag_values):
  field_type = schema.optional_type(field_type) or field_type
  kw = {"flag_values": flag_values}
  if schema.element_type(field_type) is not None:
    flags.DEFINE_list(name, None if default is None else [str(v) for v in default], help_text, **kw)
  elif field_type is bool:
    flags.DEFINE_boolean(name, default, help_text, **kw)
  elif field_type is int:
    flags.DEFINE_integer(name, default, help_text, **kw)
  elif field_type is float:
    flags.DEFINE_float(name, default, help_text, **kw)
  else:
    flags.DEFINE_string(name, default, help_text, **kw)


def define_section_flags(section_type, flag_values, defaults=None, skip=()):
  """One flag per field of the options section `section_type` (a schema.Section): its name, help and type from
  the field's `param()`. `defaults` {name: value} gives a command its own default (said in the help); fields in
  `skip` get no flag (the command fills them itself)."""
  defaults = defaults or {}
  for field in dataclasses.fields(section_type):
    name = schema.flag_name(section_type, field)
    if field.name in skip or name in flag_values:
      continue
    default = defaults.get(field.name, field.default)
    help_text = field.metadata["help"]
    if field.name in defaults and defaults[field.name] != field.default:
      help_text += f" (default here {default}; elsewhere {field.default})"
    _define_flag(name, field.type, default, help_text, flag_values)


def section_from_flags(section_type, flag_values, **values):
  """A `section_type` from the parsed flags of its fields (checked by its declarations); `values` fill or
  replace fields."""
  for field in dataclasses.fields(section_type):
    name = schema.flag_name(section_type, field)
    if field.name not in values and name in flag_values:
      value = flag_values[name].value
      values[field.name] = tuple(value) if isinstance(value, list) else value
  return section_type(**values)


def _flag_value(where, raw):
  kind = schema.element_type(where.field.type)
  if kind is None:
    return raw
  items = [str(x).strip() for x in raw if str(x).strip() != ""]
  try:
    return [kind(x) for x in items]
  except ValueError:
    raise ConfigError(f"--{where.flag} expects a comma-separated list of "
                      f"{'integers' if kind is int else 'numbers'}, got {','.join(map(str, raw))!r}") from None


def given_config_flags(flag_values):
  """Names of the config flags that were set (on the command line or from a flagfile)."""
  return [name for name in fomm_config.FLAG_FIELDS if name in flag_values and flag_values[name].present]


def config_from_flag_values(flag_values, source="<flags>", only=None):
  """A FommConfig from parsed flag values (every defined config flag, or the names in `only`)."""
  values = {}
  for name, where in fomm_config.FLAG_FIELDS.items():
    if name in flag_values and (only is None or name in only):
      values[name] = _flag_value(where, flag_values[name].value)
  return fomm_config.FommConfig.from_flat(values, source)


def known_configs():
  if not os.path.isdir(CONFIG_DIR):
    return []
  return sorted(n[:-len(FLAGFILE_SUFFIX)] for n in os.listdir(CONFIG_DIR) if n.endswith(FLAGFILE_SUFFIX))


def resolve_config_path(config):
  """Maps a config name like 'vox-256' to its flagfile; returns existing paths unchanged."""
  config = os.fspath(config)
  if not config:
    raise ConfigError("empty config name (pass a name such as vox-256 or a .flags path)")
  if os.sep in config or config.endswith(FLAGFILE_SUFFIX) or os.path.exists(config):
    if not os.path.isfile(config):
      raise ConfigError(f"config file not found: {config}")
    return config
  candidate = os.path.join(CONFIG_DIR, config + FLAGFILE_SUFFIX)
  if os.path.isfile(candidate):
    return candidate
  raise ConfigError(f"unknown config {config!r}; known: {', '.join(known_configs())} "
                    f"(or pass a .flags path)")


def read_flagfile(path):
  """The config a flagfile spells out (its other lines must be config flags too)."""
  path = resolve_config_path(path)
  flag_values = flags.FlagValues()
  define_flags(flag_values)
  try:
    flag_values(["fomm_tf", f"--flagfile={path}"], known_only=False)
  except (flags.Error, ValueError, OSError) as e:
    raise ConfigError(f"{path}: {str(e).splitlines()[0] if str(e) else type(e).__name__}") from None
  return config_from_flag_values(flag_values, source=path)


def load_config(config=None, **overrides):
  """A config from a name ("vox-256"), a flagfile path, a FommConfig or None (defaults), plus overrides by flag name."""
  if isinstance(config, fomm_config.FommConfig):
    cfg = config
  elif config is None:
    cfg = fomm_config.FommConfig()
  else:
    cfg = read_flagfile(config)
  return cfg.replace(**overrides) if overrides else cfg
