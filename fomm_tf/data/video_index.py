"""Finds the videos of a FOMM dataset, splits them and checks they can be read.

Dataset layout (as in the official FOMM `FramesDataset`): a root folder with
`train/` and `test/` subfolders, or, without them, a flat folder whose videos
are split at random 80/20 (seeded). A video is a folder of frame images, a
video file (.mp4, .mov, .avi, .webm, .mkv, .m4v, .gif) or one image holding
the frames side by side (.png, .jpg, .jpeg, .bmp). Anything else, such as the
`*.keypoints.npy` and `dataset.json` side files of a synthetic dataset, and
hidden names (starting with '.'), is not a video.

The identity of a video, used by `id_sampling`, is its name up to the first
'#' (VoxCeleb style `id10001#clip#...`), or its whole name without the video
extension when there is no '#'.

Public API:
  DatasetError, SkipCounter
  find_videos(root, split, seed=0) -> sorted list of paths
  identity_of(path) -> str
  probe_video(path) -> number of frames (raises MediaError)
  VideoIndex, index_videos(root, split, id_sampling, ...) -> VideoIndex
"""

import concurrent.futures
import dataclasses
import math
import os
import threading
import time
from typing import List, Optional, Tuple

from absl import logging
import av
import numpy as np

from fomm_tf import checks
from fomm_tf import errors
from fomm_tf.errors import DatasetError
from fomm_tf.errors import MediaError
from fomm_tf.errors import one_line
from fomm_tf.io import media

SPLITS = ("train", "test")
TEST_FRACTION = 0.2
# Videos are listed by these extensions; frame strips are still images.
_VIDEO_FILE_EXTENSIONS = media.VIDEO_EXTENSIONS | media.IMAGE_EXTENSIONS


class SkipCounter:
  """Thread-safe record of videos skipped because they could not be read.

  Attributes (read them at any time, also while a tf.data pipeline runs):
    count: number of skip events: each video rejected when the dataset was
      built, plus each training sample whose video failed to decode and
      was replaced by a sample of another video.
    names: sorted paths of the distinct videos that failed.
  """

  def __init__(self):
    self._lock = threading.Lock()
    self._count = 0
    self._errors = {}

  def record(self, path: str, error: BaseException) -> bool:
    """Counts one skip of `path`; returns True the first time for it."""
    with self._lock:
      self._count += 1
      first = path not in self._errors
      if first:
        self._errors[path] = one_line(error)
      return first

  @property
  def count(self) -> int:
    with self._lock:
      return self._count

  @property
  def names(self) -> List[str]:
    with self._lock:
      return sorted(self._errors)

  def error(self, path: str) -> Optional[str]:
    """The first error message recorded for `path`, or None."""
    with self._lock:
      return self._errors.get(path)

  def __repr__(self) -> str:
    return f"SkipCounter(count={self.count}, names={self.names})"


def check_seed(seed, name: str = "seed") -> int:
  """Returns `seed` as an int after checking it is a non-negative integer."""
  if not checks.is_non_negative_int(seed):
    raise DatasetError(f"{name} must be a non-negative integer, got {seed!r}")
  return int(seed)


def _is_video_name(folder: str, name: str) -> bool:
  if name.startswith("."):
    return False
  if os.path.isdir(os.path.join(folder, name)):
    return True
  return os.path.splitext(name)[1].lower() in _VIDEO_FILE_EXTENSIONS


def _list_videos(folder: str) -> List[str]:
  try:
    names = sorted(os.listdir(folder))
  except OSError as error:
    raise errors.os_error(DatasetError, folder, error, "cannot list the dataset folder") from None
  return [os.path.join(folder, name) for name in names if _is_video_name(folder, name)]


def split_train_test(videos: List[str], seed: int) -> Tuple[List[str], List[str]]:
  """Seeded random 80/20 split; returns (train, test), each sorted.

  The test set gets ceil(20%) of the videos: the first of a
  `np.random.RandomState(seed).permutation`, the scheme of scikit-learn's
  `train_test_split(test_size=0.2, random_state=seed)` that FOMM uses.
  """
  num_test = math.ceil(TEST_FRACTION * len(videos))
  permutation = np.random.RandomState(seed).permutation(len(videos))
  test = sorted(videos[i] for i in permutation[:num_test])
  train = sorted(videos[i] for i in permutation[num_test:])
  return train, test


def find_videos(root: str, split: str, seed: int = 0) -> List[str]:
  """Lists the videos of one split, sorted by path.

  Args:
    root: dataset folder, with `train/` and `test/` subfolders or flat.
    split: "train" or "test".
    seed: seed of the 80/20 split of a flat folder (unused otherwise).

  Returns:
    Paths (root joined with the names), possibly empty.

  Raises:
    DatasetError: `root` is not a folder, `split` is unknown, or the root
      has one split folder but not the requested one.
  """
  if split not in SPLITS:
    raise DatasetError(f"split must be one of {SPLITS}, got {split!r}")
  seed = check_seed(seed)
  root = os.fspath(root)
  if not os.path.isdir(root):
    raise DatasetError(f"{root}: dataset root is not a folder")
  present = [s for s in SPLITS if os.path.isdir(os.path.join(root, s))]
  if present:
    if split not in present:
      raise DatasetError(f"{root}: has a {present[0]}/ folder but no "
                         f"{split}/ folder")
    return _list_videos(os.path.join(root, split))
  train, test = split_train_test(_list_videos(root), seed)
  return train if split == "train" else test


def identity_of(path: str) -> str:
  """The identity a video belongs to: its name up to the first '#'."""
  name = os.path.basename(os.path.normpath(os.fspath(path)))
  if "#" in name:
    return name.split("#", 1)[0]
  stem, extension = os.path.splitext(name)
  return stem if extension.lower() in _VIDEO_FILE_EXTENSIONS else name


def _count_packets(path: str) -> int:
  """Frames of a container that does not declare them, by demuxing only."""
  try:
    with av.open(path, mode="r") as container:
      stream = container.streams.video[0]
      return sum(1 for packet in container.demux(stream) if packet.size)
  except av.error.FFmpegError as error:
    raise MediaError(f"{path}: cannot count frames: "
                     f"{one_line(error)}") from error


def probe_video(path: str) -> int:
  """Opens a video, decodes its first frame and returns its frame count.

  Raises:
    MediaError: the video cannot be opened or decoded, or has fewer
      than 2 frames (a training sample needs two distinct frames).
  """
  source = media.open_video(path)
  num_frames = source.num_frames
  if num_frames is None:
    num_frames = _count_packets(path)
  if num_frames < 2:
    raise MediaError(f"{path}: has {num_frames} frame(s); a "
                     f"training sample needs at least 2")
  return int(num_frames)


@dataclasses.dataclass(frozen=True)
class VideoIndex:
  """The usable videos of one split and how training samples pick them.

  Attributes:
    root: the dataset root given.
    split: "train" or "test".
    id_sampling: whether entries are identities (True) or videos (False).
    paths: usable video paths, sorted; `video_index` values index this.
    num_frames: frame count of each path.
    entries: one tuple of video indices per sampling unit: one identity
      (all its usable videos) or one video.
    entry_names: identity name or video path of each entry.
    num_rejected: videos of the split that failed probing.
  """
  root: str
  split: str
  id_sampling: bool
  paths: Tuple[str, ...]
  num_frames: Tuple[int, ...]
  entries: Tuple[Tuple[int, ...], ...]
  entry_names: Tuple[str, ...]
  num_rejected: int

  def __len__(self) -> int:
    return len(self.entries)


def index_videos(root: str,
                 split: str = "train",
                 id_sampling: bool = False,
                 split_seed: int = 0,
                 skip_report: Optional[SkipCounter] = None,
                 num_workers: Optional[int] = None) -> VideoIndex:
  """Finds and probes the videos of a split (in parallel threads).

  Every video is opened and its first frame decoded; one that fails, or
  has fewer than 2 frames, is logged with a warning, recorded in
  `skip_report` and left out.

  Raises:
    DatasetError: the split has no videos, or none of them is usable.
  """
  videos = find_videos(root, split, split_seed)
  where = f"{os.fspath(root)} ({split} split)"
  if not videos:
    raise DatasetError(f"{where}: no videos found")
  if num_workers is None:
    num_workers = min(32, 4 * (os.cpu_count() or 1))
  start = time.perf_counter()

  def probe(path):
    try:
      return probe_video(path), None
    except MediaError as error:
      return None, error

  with concurrent.futures.ThreadPoolExecutor(num_workers) as pool:
    results = list(pool.map(probe, videos))
  paths, frame_counts = [], []
  for path, (num_frames, error) in zip(videos, results):
    if error is None:
      paths.append(path)
      frame_counts.append(num_frames)
      continue
    logging.warning("Skipping video %s: %s", path, one_line(error))
    if skip_report is not None:
      skip_report.record(path, error)
  if not paths:
    raise DatasetError(f"{where}: none of the {len(videos)} videos can be "
                       f"used (first: {videos[0]}: "
                       f"{one_line(results[0][1])})")

  if id_sampling:
    groups = {}
    for index, path in enumerate(paths):
      groups.setdefault(identity_of(path), []).append(index)
    entry_names = tuple(sorted(groups))
    entries = tuple(tuple(groups[name]) for name in entry_names)
  else:
    entry_names = tuple(paths)
    entries = tuple((index,) for index in range(len(paths)))
  logging.info("%s: %d usable videos (%d rejected), %d %s; probed in %.1f s", where, len(paths),
               len(videos) - len(paths), len(entries), "identities" if id_sampling else "entries",
               time.perf_counter() - start)
  return VideoIndex(root=os.fspath(root),
                    split=split,
                    id_sampling=bool(id_sampling),
                    paths=tuple(paths),
                    num_frames=tuple(frame_counts),
                    entries=entries,
                    entry_names=entry_names,
                    num_rejected=len(videos) - len(paths))
