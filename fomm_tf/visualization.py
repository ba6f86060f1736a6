"""Drawing keypoints and side-by-side panels like the official visualiser (numpy + matplotlib colormaps)."""

import matplotlib
import numpy as np


def keypoint_colors(num_kp, colormap="gist_rainbow"):
  """(K, 3) RGB colours in [0, 1], one per keypoint, the same in every frame."""
  cmap = matplotlib.colormaps[colormap]
  return np.array([cmap(i / num_kp)[:3] for i in range(num_kp)], np.float32)


def draw_keypoints(image, kp_value, radius=5, colormap="gist_rainbow"):
  """Returns a copy of (H, W, 3) float `image` with filled discs at the (K, 2) [-1, 1] keypoints."""
  image = np.array(image, np.float32, copy=True)
  height, width = image.shape[:2]
  kp = np.asarray(kp_value, np.float32)
  colors = keypoint_colors(len(kp), colormap)
  yy, xx = np.mgrid[0:height, 0:width]
  for (x, y), color in zip(kp, colors):
    # The official visualiser maps [-1, 1] to [0, size] this way.
    cx, cy = width * (x + 1) / 2, height * (y + 1) / 2
    disc = (xx - cx)**2 + (yy - cy)**2 <= radius**2
    image[disc] = color
  return image


def add_border(image, width=1):
  """White border, as the official visualiser draws around each panel."""
  image = np.array(image, np.float32, copy=True)
  image[:width], image[-width:], image[:, :width], image[:, -width:] = 1, 1, 1, 1
  return image


def side_by_side(panels, border=True):
  """Concatenates (H, W, 3) panels horizontally."""
  if border:
    panels = [add_border(p) for p in panels]
  return np.concatenate(panels, axis=1)
