"""FOMM configuration: typed frozen sections, absl flags derived from them, flagfiles in `configs/`.

  cfg = load_config("vox-256", num_kp=5)      # a name, a .flags path, a FommConfig or None
  cfg.kp_detector.block_expansion             # typed sections; cfg.flat() gives {flag: value}
  cfg.kp_detector_kwargs()                    # constructor arguments of KeypointDetector
"""

from fomm_tf.config.flagfiles import CONFIG_DIR
from fomm_tf.config.flagfiles import config_from_flag_values
from fomm_tf.config.flagfiles import define_flags
from fomm_tf.config.flagfiles import given_config_flags
from fomm_tf.config.flagfiles import known_configs
from fomm_tf.config.flagfiles import load_config
from fomm_tf.config.flagfiles import resolve_config_path
from fomm_tf.config.fomm_config import FLAG_FIELDS
from fomm_tf.config.fomm_config import SECTIONS
from fomm_tf.config.fomm_config import FommConfig
from fomm_tf.config.official import config_from_official
from fomm_tf.errors import ConfigError

__all__ = [
    "CONFIG_DIR", "FLAG_FIELDS", "SECTIONS", "ConfigError", "FommConfig", "config_from_flag_values",
    "config_from_official", "define_flags", "given_config_flags", "known_configs", "load_config", "resolve_config_path"
]
