"""Named points of the MediaPipe face mesh, and landmark normalisation for choosing the best driving frame.

The mesh has 468 points (the canonical face model's vertex order; "right" and
"left" are the subject's). Note for evaluation: the FOMM paper's AKD/MKR on
VoxCeleb use the 68 points of the face-alignment (FAN) detector; AKD computed
with this mesh measures the same thing but its numbers are not the paper's.
"""

import numpy as np

from fomm_tf.errors import FaceError

NOSE_TIP = 1
UPPER_LIP = 13  # Inner edge of the upper lip, at the centre.
LOWER_LIP = 14
RIGHT_EYE_OUTER = 33
RIGHT_EYE_INNER = 133
LEFT_EYE_OUTER = 263
LEFT_EYE_INNER = 362


def convex_hull_area(points):
  """Area of the convex hull of (N, 2) points (0 for fewer than 3 or collinear points); Andrew's monotone chain."""
  ordered = [tuple(p) for p in np.unique(np.asarray(points, np.float64), axis=0)]  # Sorted by x, then y.
  if len(ordered) < 3:
    return 0.0

  def half_hull(chain):
    hull = []
    for x, y in chain:
      # Pop while the last two hull points and this one do not turn counter-clockwise.
      while len(hull) >= 2 and ((hull[-1][0] - hull[-2][0]) * (y - hull[-2][1]) - (hull[-1][1] - hull[-2][1]) *
                                (x - hull[-2][0])) <= 0:
        hull.pop()
      hull.append((x, y))
    return hull[:-1]

  hull = np.array(half_hull(ordered) + half_hull(ordered[::-1]))
  x, y = hull[:, 0], hull[:, 1]
  return 0.5 * abs(float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))))


def normalized_landmarks(landmarks):
  """(N, 2) landmarks centred on their mean and divided by the square root of their convex hull's area.

  This is how the official FOMM demo normalises face landmarks for
  `--find_best_frame`, so poses compare independently of face position and size.
  Degenerate sets (no area) are only centred.
  """
  points = np.asarray(landmarks, np.float64)
  if points.ndim != 2 or points.shape[1] != 2:
    raise ValueError(f"landmarks must have shape (N, 2), got {points.shape}")
  points = points - points.mean(axis=0, keepdims=True)
  area = convex_hull_area(points)
  return points / np.sqrt(area) if area > 0 else points


def best_frame_index(source_landmarks, driving_landmarks):
  """The index of the driving frame whose normalised landmarks are nearest (squared distance) to the source's.

  Args:
    source_landmarks: (N, 2) landmarks of the source face.
    driving_landmarks: one (N, 2) array per driving frame, or None for a frame without a face (skipped).

  Raises:
    FaceError: no driving frame has a face.
  """
  source = normalized_landmarks(source_landmarks)
  best, best_distance = None, np.inf
  for index, landmarks in enumerate(driving_landmarks):
    if landmarks is None:
      continue
    distance = float(np.sum((normalized_landmarks(landmarks) - source)**2))
    if distance < best_distance:
      best, best_distance = index, distance
  if best is None:
    raise FaceError("best frame: no face was found in any driving frame")
  return best
