"""One head box for a whole driving video, from streamed frames, with warnings about where the face misbehaves.

FOMM animates with one fixed crop of the driving video (the official
crop-video.py crops the union of a clip's face boxes): the crop must hold the
head in every frame, so the box is the extent of the per-frame face boxes (the
largest face of each frame), made robust by taking low and high percentiles
instead of the minimum and maximum (one bad detection does not blow up the
crop), then given the margin of `crop.head_box`.
"""

import dataclasses
import math

import numpy as np

from fomm_tf import checks
from fomm_tf.errors import FaceError
from fomm_tf.faces import crop
from fomm_tf.faces import detect as detect_lib
from fomm_tf.faces import sampling

# The face box extent over the clip: these percentiles of the per-frame box edges.
EXTENT_PERCENTILE = 2.0
# A face centre moving more than this fraction of the face size between consecutive detected frames is a jump
# (usually a camera cut, or the detector switching to another person).
JUMP_FRACTION = 0.5
# The union box of a clip more than this many times the typical face: the crop will show a small face.
LOOSE_FACTOR = 2.0
# Warnings list at most this many frame ranges each.
MAX_RANGES = 5


@dataclasses.dataclass(frozen=True)
class TrackReport:
  """What `video_head_box` saw.

  Attributes:
    num_frames: frames read.
    num_sampled: frames detection ran on (every `stride`-th, from the first).
    frames_without_face: sampled frames where no face was found.
    warnings: one-line messages naming frame ranges (0-based, inclusive) where no face was found, where the
      face jumps (a camera cut?), where it leaves the frame, or that the face moves so much the crop is loose.
  """
  num_frames: int
  num_sampled: int
  frames_without_face: int
  warnings: tuple


def _frames(runs):
  """'frame 4' or 'frames 3-7, 12, 20-25' for [(first, last)] runs, the first `MAX_RANGES` of them."""
  shown = ", ".join(f"{a}" if a == b else f"{a}-{b}" for a, b in runs[:MAX_RANGES])
  more = len(runs) - MAX_RANGES
  return ("frame " if len(runs) == 1 and runs[0][0] == runs[0][1] else "frames ") + shown + (f" and {more} more"
                                                                                             if more > 0 else "")


def video_head_box(frames,
                   image_size=None,
                   detect=None,
                   stride=1,
                   max_side=None,
                   name=None,
                   margin=crop.HEAD_MARGIN,
                   lift=crop.HEAD_LIFT):
  """The head box for a whole driving video, reading its frames one at a time.

  Args:
    frames: an iterable of RGB (H, W, 3) frames, uint8 or float in [0, 1] (e.g. `media.open_video(path)`);
      only one frame is held at a time.
    image_size: (height, width) the frames must have; None takes the first frame's.
    detect: a function image -> list of `detect.Face`, largest first; None uses the shared default detector.
    stride: run detection on every stride-th frame only.
    max_side: frames whose longer side exceeds this are shrunk (by an integer factor, area averaging) before
      `detect` sees them, and boxes scaled back. None (the default) passes frames as they are: the built-in
      detector shrinks them the same way itself, reading each pixel once, so shrinking first would only cost
      time; a size helps a `detect` that is slow on big frames.
    name: what to call the video in messages; None uses `frames.path` if it has one.
    margin, lift: as for `crop.head_box`.

  Returns:
    (placement, report): the `crop.Placement` of the head box in the frames' pixels, and a `TrackReport`.

  Raises:
    FaceError: no face in any sampled frame (or no frames).
  """
  if not checks.is_positive_int(stride):
    raise ValueError(f"stride must be a positive integer, got {stride!r}")
  if max_side is not None and not checks.is_positive_int(max_side):
    raise ValueError(f"max_side must be a positive integer or None, got {max_side!r}")
  name = name or getattr(frames, "path", None) or "the driving video"
  detect = detect or detect_lib.default_detector().detect
  boxes, missing, outside, jumps = [], [], [], []
  num_frames = num_sampled = 0
  for index, frame in enumerate(frames):
    num_frames += 1
    frame = sampling.check_rgb(frame, f"{name}: frame {index}")
    if image_size is None:
      image_size = frame.shape[:2]
    elif tuple(frame.shape[:2]) != tuple(image_size):
      raise ValueError(f"{name}: frame {index} is {frame.shape[0]}x{frame.shape[1]}, expected "
                       f"{image_size[0]}x{image_size[1]}")
    if index % stride:
      continue
    num_sampled += 1
    factor = 1 if max_side is None else max(1, math.ceil(max(frame.shape[:2]) / max_side))
    faces = detect(sampling.box_shrink(frame, factor) if factor > 1 else frame)
    if not faces:
      missing.append(index)
      continue
    box = np.asarray(faces[0].box, np.float64) * factor
    if box[0] < 0 or box[1] < 0 or box[2] > image_size[1] or box[3] > image_size[0]:
      outside.append(index)
    if boxes:
      previous_index, previous = boxes[-1]
      size = max(box[2] - box[0], box[3] - box[1], previous[2] - previous[0], previous[3] - previous[1])
      if np.hypot(*((box[:2] + box[2:]) - (previous[:2] + previous[2:])) / 2.0) > JUMP_FRACTION * size:
        jumps.append((previous_index, index))
    boxes.append((index, box))
  if not boxes:
    what = f"any of its {num_frames} frames" if num_frames else "it (it has no frames)"
    raise FaceError(f"{name}: no face found in {what}; use --crop=center to animate without face crops")
  all_boxes = np.array([box for _, box in boxes])
  extent = np.concatenate([
      np.percentile(all_boxes[:, :2], EXTENT_PERCENTILE, axis=0),
      np.percentile(all_boxes[:, 2:], 100.0 - EXTENT_PERCENTILE, axis=0)
  ])
  placement = crop.head_box(extent, image_size, margin, lift)
  warnings = _warnings(missing, outside, jumps, stride, all_boxes, extent)
  return placement, TrackReport(num_frames, num_sampled, len(missing), tuple(warnings))


def _frame_runs(indices, stride):
  """[(first, last)] runs of sampled frame indices that follow each other (`stride` apart)."""
  runs = []
  for index in indices:
    if runs and index - runs[-1][1] == stride:
      runs[-1] = (runs[-1][0], index)
    else:
      runs.append((index, index))
  return runs


def _warnings(missing, outside, jumps, stride, boxes, extent):
  warnings = []
  if missing:
    warnings.append(f"no face found in {_frames(_frame_runs(missing, stride))}")
  if jumps:
    pairs = ", ".join(f"{a}->{b}" for a, b in jumps[:MAX_RANGES])
    more = len(jumps) - MAX_RANGES
    warnings.append(f"the face jumps between frames {pairs}" + (f" and {more} more" if more > 0 else "") +
                    " (a camera cut?): one crop may not fit every shot")
  if outside:
    warnings.append(f"the face leaves the frame in {_frames(_frame_runs(outside, stride))}")
  typical = float(np.median(np.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])))
  spread = max(extent[2] - extent[0], extent[3] - extent[1])
  if spread > LOOSE_FACTOR * typical:
    warnings.append(f"the face moves across {spread:.0f} px while it is {typical:.0f} px wide: "
                    f"the crop holds every position, so the face is small in it")
  return warnings
