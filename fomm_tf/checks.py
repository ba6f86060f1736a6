"""Argument checks shared across the package."""

import numbers

import numpy as np


def is_positive_int(value):
  """True for integers > 0 (numpy integers too), False for bools and everything else."""
  return isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_)) and value > 0


def is_number(value):
  """True for real numbers (numpy too), False for bools."""
  return isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))


def is_non_negative_int(value):
  """True for integers >= 0 (numpy integers too), False for bools and everything else."""
  return isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_)) and value >= 0
