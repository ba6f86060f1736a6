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
