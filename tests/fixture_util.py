"""Shared helpers for tests that read the official golden fixtures in ../shared/fixtures."""

import json
import os

import numpy as np

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.realpath(__file__)))
FIXTURES_DIR = os.path.join(os.path.dirname(REPO_ROOT), "shared", "fixtures")
REFERENCE_DIR = os.path.join(os.path.dirname(REPO_ROOT), "shared", "reference")
CHECKPOINT = os.path.join(FIXTURES_DIR, "small-official.pth.tar")
LEGACY_CHECKPOINT = os.path.join(FIXTURES_DIR, "small-official-legacy.pth.tar")


def fixture_config(align_corners=True):
  from fomm_tf import config as config_lib
  with open(os.path.join(FIXTURES_DIR, "small-official-config.json")) as f:
    params = json.load(f)
  return config_lib.config_from_official(params).replace(align_corners=align_corners)


_ARRAYS = None


def arrays():
  """The fixture arrays, converted from PyTorch NCHW to NHWC where they are images or maps."""
  global _ARRAYS
  if _ARRAYS is None:
    _ARRAYS = dict(np.load(os.path.join(FIXTURES_DIR, "small-official-io.npz")))
  return _ARRAYS


def nchw_to_nhwc(a):
  return np.moveaxis(a, -3, -1)


def write_fixture_flagfile(directory, align_corners=True):
  """A flagfile for the fixtures' small-channel model (vox-256 structure, fewer channels)."""
  cfg = fixture_config(align_corners)
  names = [n for n in cfg.values if n.startswith(("kp_", "gen_", "dm_", "disc_"))] + ["align_corners"]
  path = os.path.join(directory, "small-official.flags")
  with open(path, "w") as f:
    f.write(f"--flagfile={os.path.join(REPO_ROOT, 'configs', 'vox-256.flags')}\n")
    for name in names:
      value = cfg.values[name]
      if isinstance(value, list):
        value = ",".join(str(v) for v in value)
      elif isinstance(value, bool):
        value = str(value).lower()
      f.write(f"--{name}={value}\n")
  return path
