"""Choosing the driving frame whose pose best matches the source (`--find_best_frame`).

The official demo uses an external face-landmark model; here the project's own
keypoint detector supplies the points, so it works offline for any domain.
"""

import numpy as np

from fomm_tf.ops import linalg


def normalized_pose(kp_value):
  """(K, 2) keypoints centred on their mean and divided by sqrt(hull area), as the official demo does."""
  kp = np.asarray(kp_value, np.float64)
  kp = kp - kp.mean(axis=0, keepdims=True)
  area = float(linalg.convex_hull_area(kp))
  if area <= 0:
    return kp
  return kp / np.sqrt(area)


def best_frame_index(kp_source_value, kp_driving_values):
  """Index of the driving keypoint set (N, K, 2) closest to the source's (K, 2) after normalisation."""
  source = normalized_pose(kp_source_value)
  distances = [float(np.sum((normalized_pose(kp) - source) ** 2)) for kp in kp_driving_values]
  if not distances:
    raise ValueError("best frame: the driving video has no frames")
  return int(np.argmin(distances))
