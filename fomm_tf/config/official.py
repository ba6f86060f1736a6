"""The official FOMM YAML configs (already parsed into dicts) as FommConfigs.

Each config field names its place in the YAML (`schema.param(official=...)`,
by default `<section OFFICIAL>.<field name>`), so this mapping is derived from
the schema, not written out a second time.
"""

import dataclasses

from fomm_tf.config import fomm_config
from fomm_tf.errors import ConfigError


def official_path(section_type, field):
  """The dotted YAML path of a field, or None for fields the official configs do not have."""
  path = field.metadata.get("official")
  if path == "":
    return None
  return path or f"{section_type.OFFICIAL}.{field.name}"


def _lookup(params, path):
  node = params
  for key in path.split("."):
    if not isinstance(node, dict) or key not in node:
      return False, None
    node = node[key]
  return True, node


def config_from_official(params, base=None, source="<official config>"):
  """A FommConfig from an official YAML config's dict; only the parameters present override `base`.

  `params` may also be just its `model_params` (as the fixtures store it).
  """
  if not isinstance(params, dict):
    raise ConfigError(f"{source}: an official config is a mapping, got {type(params).__name__}")
  if "model_params" not in params and any(
      k in params for k in ("common_params", "kp_detector_params", "generator_params")):
    params = {"model_params": params}
  changes = {}
  for name, where in fomm_config.FLAG_FIELDS.items():
    path = official_path(fomm_config.SECTIONS[where.section], where.field)
    if path is None:
      continue
    found, value = _lookup(params, path)
    if found:
      changes[name] = value
  base = base if base is not None else fomm_config.FommConfig()
  return dataclasses.replace(base, source=source).replace(**changes)
