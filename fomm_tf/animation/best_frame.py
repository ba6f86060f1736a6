"""Choosing the driving frame whose pose best matches the source (`--find_best_frame`).

The official demo normalises face landmarks (centred, divided by the square root
of their convex hull's area) and takes the nearest frame; with `--crop=face` the
face mesh supplies the points (animation/framing.py), otherwise the model's own
keypoints, so it works offline for any domain. One normalisation serves both
(fomm_tf/faces/landmarks.py, plain numpy).
"""

from fomm_tf.errors import AnimationError
from fomm_tf.faces import landmarks

normalized_pose = landmarks.normalized_landmarks


def best_frame_index(kp_source_value, kp_driving_values):
  """Index of the driving keypoint set (N, K, 2) closest to the source's (K, 2) after normalisation."""
  if len(kp_driving_values) == 0:
    raise AnimationError("best frame: the driving video has no frames")
  return landmarks.best_frame_index(kp_source_value, list(kp_driving_values))
