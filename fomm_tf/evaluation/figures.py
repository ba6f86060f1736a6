"""PNG figures like the paper's: keypoints over frames of several videos, and occlusion maps.

Both figures are grids of S x S panels, S the model's frame size, saved with
matplotlib's Agg renderer at exactly their pixel size:

* keypoints.png: rows = videos, columns = frames evenly spaced over each video
  (first to last), our detector's keypoints drawn with one colour per keypoint
  (the same colour in every frame). Size (rows * S) x (columns * S).
* occlusion.png: a header of column titles, then one row per driving frame:
  source | driving | deformed source | occlusion map | prediction, the source
  being frame 0 of the same video (the reconstruction setting). Size
  (header_height(S) + rows * S) x (5 * S). The occlusion map is shown in grey
  (white = visible in the source, black = occluded); a model without an
  occlusion map masks nothing, which is shown as all white.
"""

import os

import numpy as np
import tensorflow as tf
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from fomm_tf import visualization
from fomm_tf.inference import pipeline
from fomm_tf.io import media
from fomm_tf.errors import EvaluationError

OCCLUSION_COLUMNS = ("source", "driving", "deformed", "occlusion", "prediction")
_DPI = 100


def header_height(cell_size):
  """Pixel height of the title strip above a grid of `cell_size` panels."""
  return max(16, cell_size // 10)


def _label_font_points(cell_size):
  pixels = max(9, cell_size // 14)
  return pixels * 72.0 / _DPI


def frame_indices(num_frames, count):
  """`count` indices evenly spaced from the first to the last frame (repeats when the video is shorter)."""
  if count < 1:
    raise EvaluationError(f"--num_frames must be >= 1, got {count}")
  return [int(i) for i in np.linspace(0, num_frames - 1, count).round()]


def select_frames(path, count, size, fit="crop"):
  """[(index, (size, size, 3) frame)] for `frame_indices` of the video at `path`.

  The video is decoded twice: once to count its frames exactly (container
  headers can be wrong), once to keep the chosen ones.
  """
  video = media.open_video(path)
  total = sum(1 for _ in video)
  indices = frame_indices(total, count)
  wanted = set(indices)
  kept = {}
  for index, frame in enumerate(video):
    if index in wanted:
      kept[index] = pipeline.prepare_frame(frame, size, fit)
    if index >= indices[-1]:
      break
  return [(i, kept[i]) for i in indices]


def keypoint_grid(rows, radius=5, colormap="gist_rainbow", border=True):
  """rows: lists of (frame (S, S, 3), keypoints (K, 2) in [-1, 1]), all of equal length -> (R*S, C*S, 3)."""
  lengths = {len(row) for row in rows}
  if len(lengths) != 1:
    raise EvaluationError(f"keypoint grid: rows of different lengths {sorted(lengths)}")
  lines = [
      visualization.side_by_side([visualization.draw_keypoints(frame, kp, radius, colormap)
                                  for frame, kp in row], border)
      for row in rows
  ]
  return np.concatenate(lines, axis=0)


def occlusion_rows(model, source, driving_frames, radius=5, colormap="gist_rainbow"):
  """Panels [source, driving, deformed source, occlusion map, prediction] per driving frame.

  Args:
    model: a FommModel (its generator's full output is needed).
    source: (S, S, 3) frame; driving_frames: (N, S, S, 3).

  Returns:
    A list of N lists of five (S, S, 3) float32 panels.
  """
  size = model.frame_shape[0]
  source = np.asarray(source, np.float32)[np.newaxis]
  driving_frames = np.asarray(driving_frames, np.float32)
  kp_source = model.detect_keypoints(source)
  kp_driving = model.detect_keypoints(driving_frames)
  out = model.generate(source, kp_source, kp_driving)
  if "deformed" not in out:
    raise EvaluationError("occlusion figure: the generator has no dense motion network, so no deformed source")
  if "occlusion_map" in out:
    occlusion = tf.image.resize(out["occlusion_map"], [size, size], method="bilinear").numpy()
  else:
    occlusion = np.ones((len(driving_frames), size, size, 1), np.float32)
  occlusion = np.repeat(np.clip(occlusion, 0.0, 1.0), 3, axis=-1)
  deformed = out["deformed"].numpy()
  prediction = out["prediction"].numpy()
  source_panel = visualization.draw_keypoints(source[0], kp_source["value"][0].numpy(), radius, colormap)
  rows = []
  for i in range(len(driving_frames)):
    driving_panel = visualization.draw_keypoints(driving_frames[i], kp_driving["value"][i].numpy(), radius, colormap)
    rows.append([source_panel, driving_panel, deformed[i], occlusion[i], prediction[i]])
  return rows


def panel_grid(rows, border=True):
  """Lists of equal-size panels -> one image, rows stacked vertically."""
  return np.concatenate([visualization.side_by_side(row, border) for row in rows], axis=0)


def save_figure(path, image, cell_size, column_titles=(), labels=()):
  """Saves `image` as a PNG of exactly its pixel size, plus a title strip when `column_titles` is given.

  Args:
    path: output .png (written to a temporary name, then renamed).
    image: (H, W, 3) float in [0, 1].
    cell_size: panel size in pixels (titles are centred on columns of this width).
    column_titles: one title per column, drawn in a strip of header_height(cell_size) pixels above.
    labels: (row, column, text) drawn in the top-left corner of that panel.
  """
  image = np.clip(np.asarray(image, np.float32), 0.0, 1.0)
  height, width = image.shape[:2]
  header = header_height(cell_size) if column_titles else 0
  total = height + header
  figure = Figure(figsize=(width / _DPI, total / _DPI), dpi=_DPI, facecolor="white")
  FigureCanvasAgg(figure)
  axes = figure.add_axes((0.0, 0.0, 1.0, height / total))
  axes.imshow(image, interpolation="nearest", aspect="auto")
  axes.set_axis_off()
  title_points = header * 0.6 * 72.0 / _DPI
  for column, title in enumerate(column_titles):
    figure.text((column + 0.5) * cell_size / width,
                1.0 - header / 2.0 / total,
                title,
                ha="center",
                va="center",
                fontsize=title_points)
  label_points = _label_font_points(cell_size)
  for row, column, text in labels:
    axes.text(column * cell_size + 3,
              row * cell_size + 3,
              text,
              ha="left",
              va="top",
              color="white",
              fontsize=label_points,
              bbox=dict(facecolor="black", alpha=0.6, pad=1.0, edgecolor="none"))
  temp_path = path + ".partial.png"
  try:
    figure.savefig(temp_path, dpi=_DPI, format="png", facecolor="white")
    os.replace(temp_path, path)
  finally:
    if os.path.exists(temp_path):
      os.remove(temp_path)
