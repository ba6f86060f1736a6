"""The error every evaluation step raises for bad input."""


class EvaluationError(ValueError):
  """A dataset, keypoint file, flag value or output directory that evaluation cannot use."""
