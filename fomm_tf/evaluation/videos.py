"""Lists the test videos of a dataset for evaluation.

The listing is the training data's own (`fomm_tf.data.video_index.find_videos`,
split "test"): DATASET_ROOT/test/* when the root has split folders, else the
seeded 80/20 test part of a flat folder. A video is a video file (.mp4 .m4v
.mov .avi .webm .mkv .gif), a folder of frame images or a horizontal frame
strip (.png .jpg .jpeg .bmp); other files (`*.keypoints.npy`, `dataset.json`,
...) are not videos. A video's name is its file name without the extension (a
folder's: its name), and its ground-truth keypoints, when present, are
`<name>.keypoints.npy` next to it: float (T, K, 2), (x, y) in [-1, 1] with
-1/+1 at the centres of the corner pixels of the video's own frames.

`find_test_videos` is the one place that decides what a test video is.
"""

import dataclasses
import os
from typing import Optional

import numpy as np

from fomm_tf.data import video_index
from fomm_tf.errors import EvaluationError

TEST_SPLIT = "test"
KEYPOINTS_SUFFIX = ".keypoints.npy"


@dataclasses.dataclass(frozen=True)
class EvalVideo:
  """One test video: its name, its path and its ground-truth keypoint file (None if it has none)."""
  name: str
  path: str
  keypoints_path: Optional[str] = None


def video_name(path):
  """'a/b/clip.mp4' -> 'clip'; a frame folder keeps its whole name."""
  base = os.path.basename(os.path.normpath(path))
  if os.path.isdir(path):
    return base
  return os.path.splitext(base)[0]


def find_test_videos(dataset_root, max_videos=None):
  """The test videos of `dataset_root`, sorted, at most `max_videos` of them.

  Raises:
    EvaluationError (or dataset.DatasetError): the root is missing, or its
      test split holds no video, or two videos share a name.
  """
  if not dataset_root:
    raise EvaluationError("--dataset_root is required")
  if not os.path.isdir(dataset_root):
    raise EvaluationError(f"dataset root {dataset_root} does not exist or is not a directory")
  if max_videos is not None and max_videos < 1:
    raise EvaluationError(f"--max_videos must be >= 1, got {max_videos}")
  videos = []
  for path in video_index.find_videos(dataset_root, TEST_SPLIT):
    name = video_name(path)
    keypoints_path = os.path.join(os.path.dirname(os.path.normpath(path)), name + KEYPOINTS_SUFFIX)
    videos.append(EvalVideo(name, path, keypoints_path if os.path.isfile(keypoints_path) else None))
  if not videos:
    raise EvaluationError(f"no test videos in {dataset_root} (test split)")
  names = [v.name for v in videos]
  duplicates = sorted({n for n in names if names.count(n) > 1})
  if duplicates:
    raise EvaluationError(f"{dataset_root}: several test videos are named {duplicates[0]!r} (e.g. a.mp4 and a.gif)")
  return videos[:max_videos]


def load_ground_truth_keypoints(video, num_frames):
  """(T, K, 2) float64 ground-truth keypoints of `video` in [-1, 1], checked against its frame count."""
  path = video.keypoints_path
  try:
    keypoints = np.array(np.load(path, mmap_mode="r", allow_pickle=False))
  except (OSError, ValueError, EOFError) as error:
    raise EvaluationError(f"{path}: cannot read as a .npy array: {' '.join(str(error).split())}") from None
  if keypoints.ndim != 3 or keypoints.shape[-1] != 2 or not np.issubdtype(keypoints.dtype, np.number):
    raise EvaluationError(f"{path}: expected numeric keypoints of shape (T, K, 2), got {keypoints.shape} "
                          f"{keypoints.dtype}")
  if keypoints.shape[0] != num_frames:
    raise EvaluationError(f"{path}: has {keypoints.shape[0]} frames of keypoints but {video.path} has "
                          f"{num_frames} frames")
  if not np.all(np.isfinite(keypoints)):
    raise EvaluationError(f"{path}: ground-truth keypoints must be finite (found NaN or infinity)")
  return keypoints.astype(np.float64)
