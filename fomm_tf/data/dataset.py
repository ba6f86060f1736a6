"""The FOMM training and evaluation data pipelines (tf.data over PyAV decoding).

A training sample is two distinct frames of one video, drawn at random and
returned in time order as "source" and "driving" (a time flip may swap them),
augmented identically (see `augmentation.py`), as float32 (H, W, 3) in [0, 1].
Frames whose stored size differs from the config's `frame_shape` are resized
to it first (area averaging when shrinking).

One epoch visits every entry (video, or identity with `id_sampling`)
`num_repeats` times in a seeded random order, as the official
`DatasetRepeater` + shuffling `DataLoader` do. With `id_sampling`, each visit
picks one of the identity's videos at random.

Videos are probed when the dataset is built; one that cannot be opened is
left out with a warning. A video that fails later, while decoding a sample,
is logged (once per video) and the sample is replaced by one of another
video (any video, also with `id_sampling`; tried in a random order drawn
from the same sample seed, so the result stays deterministic). Both are
counted in a `SkipCounter`.

Determinism: sample `i` of epoch `e` uses `np.random.default_rng([seed, e,
1, i])` for every random choice and the epoch order uses
`default_rng([seed, e, 0])`, so the same (seed, epoch) always gives the same
batches, whatever the parallelism. `dataset.repeat()` would replay the same
epoch; build one dataset per epoch with `epoch=` instead.

Public API:
  DatasetError, SkipCounter, find_videos, index_videos, VideoIndex
  make_train_dataset(cfg, root, batch_size, seed=0, ..., epoch=0)
  read_frames_at(path, indices) -> list of frames
  iterate_test_videos(cfg, root, max_videos=None) -> (name, VideoSource)
  ResizedVideoSource
"""

import numbers
import os
from typing import Iterator, List, Optional, Sequence, Tuple, Union

from absl import logging
import numpy as np
import tensorflow as tf

from fomm_tf.data import augmentation
from fomm_tf.data import media
from fomm_tf.data.video_index import DatasetError
from fomm_tf.data.video_index import SkipCounter
from fomm_tf.data.video_index import VideoIndex
from fomm_tf.data.video_index import check_seed
from fomm_tf.data.video_index import find_videos
from fomm_tf.data.video_index import index_videos
from fomm_tf.data.video_index import one_line

__all__ = [
    "DatasetError", "SkipCounter", "VideoIndex", "find_videos",
    "index_videos", "make_train_dataset", "read_frames_at",
    "iterate_test_videos", "ResizedVideoSource", "train_frame_size",
]

# Stream tags of the seed sequences, keeping the epoch order and the samples
# on independent random streams.
_ORDER_STREAM = 0
_SAMPLE_STREAM = 1


def _is_positive_int(value) -> bool:
  return (isinstance(value, numbers.Integral)
          and not isinstance(value, (bool, np.bool_)) and value > 0)


def _frame_size(cfg) -> Tuple[int, int]:
  height, width, channels = cfg.frame_shape
  if channels != 3:
    raise DatasetError(f"frame_shape must have 3 channels (RGB), got "
                       f"{list(cfg.frame_shape)}")
  return int(height), int(width)


def _augmentation_params(cfg) -> augmentation.AugmentationParams:
  try:
    return augmentation.AugmentationParams.from_config(cfg)
  except augmentation.AugmentationError as error:
    raise DatasetError(f"{cfg.source}: {error}") from None


def train_frame_size(cfg) -> Tuple[int, int]:
  """(height, width) of the frames `make_train_dataset` yields."""
  return _augmentation_params(cfg).output_size(_frame_size(cfg))


# ----------------------------------------------------------------------------
# Reading frames.
# ----------------------------------------------------------------------------


def read_frames_at(path: str, indices: Sequence[int]) -> List[np.ndarray]:
  """Decodes the frames at `indices` (any order, repeats allowed).

  Frame folders read only the requested images; video files and strips are
  streamed from the start up to the last requested frame.

  Raises:
    media.MediaError: the video cannot be decoded up to the last index
      (including a video shorter than it), or a frame size differs.
  """
  if not indices or min(indices) < 0:
    raise media.MediaError(
        f"{path}: frame indices must be non-negative, got {list(indices)}")
  wanted = set(int(i) for i in indices)
  last = max(wanted)
  source = media.open_video(path)
  frames = {}
  if isinstance(source, media.FrameFolderSource):
    if last >= len(source.frame_paths):
      raise media.MediaError(f"{path}: has {len(source.frame_paths)} "
                             f"frames, frame {last} was requested")
    for index in sorted(wanted):
      frame = media.read_image(source.frame_paths[index])
      if frame.shape[:2] != source.frame_size:
        raise media.MediaError(
            f"{path}: frame {index} is {frame.shape[0]}x"
            f"{frame.shape[1]}, but frame 0 is {source.frame_size[0]}"
            f"x{source.frame_size[1]}")
      frames[index] = frame
  else:
    stream = iter(source)
    decoded = 0
    try:
      for index, frame in enumerate(stream):
        decoded = index + 1
        if index in wanted:
          frames[index] = frame
        if index >= last:
          break
    finally:
      # Closes the container now instead of at garbage collection.
      stream.close()
    if last not in frames:
      raise media.MediaError(f"{path}: ended after {decoded} frames, "
                             f"frame {last} was requested")
  return [frames[int(i)] for i in indices]


class _PairSampler:
  """Makes one training sample (source, driving, video index) per call.

  Called from tf.data worker threads through `tf.numpy_function`; it keeps
  no state besides the thread-safe skip counter, so calls are independent
  and each result depends only on (seed, epoch, position).
  """

  def __init__(self, index: VideoIndex,
               params: augmentation.AugmentationParams,
               frame_size: Tuple[int, int], seed: int, epoch: int,
               skip_report: SkipCounter):
    self._index = index
    self._params = params
    self._frame_size = tuple(frame_size)
    self._seed = seed
    self._epoch = epoch
    self._skip_report = skip_report

  def _candidates(self, entry: int, rng: np.random.Generator):
    """The entry's (random) video first, then every other video."""
    videos = self._index.entries[entry]
    first = videos[int(rng.integers(len(videos)))]
    yield first
    for other in rng.permutation(len(self._index.paths)):
      if other != first:
        yield int(other)

  def _load(self, video: int, rng: np.random.Generator) -> np.ndarray:
    path = self._index.paths[video]
    indices = np.sort(rng.choice(self._index.num_frames[video], size=2,
                                 replace=False))
    frames = read_frames_at(path, [int(i) for i in indices])
    frames = [frame if frame.shape[:2] == self._frame_size
              else media.resize_frame(frame, self._frame_size)
              for frame in frames]
    return np.stack(frames)

  def __call__(self, entry, position):
    rng = np.random.default_rng(
        [self._seed, self._epoch, _SAMPLE_STREAM, int(position)])
    for video in self._candidates(int(entry), rng):
      try:
        clip = self._load(video, rng)
      except (media.MediaError, OSError) as error:
        path = self._index.paths[video]
        if self._skip_report.record(path, error):
          logging.warning("Skipping video %s: %s", path,
                          one_line(error))
        continue
      clip = augmentation.augment_clip(clip, self._params, rng)
      return clip[0], clip[1], np.int32(video)
    raise DatasetError(
        f"{self._index.root} ({self._index.split} split): none of the "
        f"{len(self._index.paths)} videos could be decoded for sample "
        f"{int(position)}")


def make_train_dataset(cfg, root: Union[str, VideoIndex], batch_size: int,
                       seed: int = 0,
                       num_parallel_calls: int = tf.data.AUTOTUNE,
                       drop_remainder: bool = True,
                       skip_report: Optional[SkipCounter] = None,
                       epoch: int = 0, split_seed: int = 0) -> tf.data.Dataset:
  """One epoch of training batches.

  Args:
    cfg: FommConfig; uses frame_shape, num_repeats, id_sampling and the
      augmentation flags.
    root: dataset folder, or a `VideoIndex` of its train split from
      `index_videos` (reuse it across epochs to probe only once).
    batch_size: samples per batch.
    seed: non-negative seed of the sampling and augmentations.
    num_parallel_calls: parallel decoding calls (tf.data.AUTOTUNE).
    drop_remainder: drop the last incomplete batch.
    skip_report: SkipCounter receiving the skipped videos (one is made if
      None; the warnings are logged either way).
    epoch: epoch number; together with `seed` it fixes the batches.
    split_seed: seed of the 80/20 split when the root has no train/ folder.

  Returns:
    A finite tf.data.Dataset of len(index) * num_repeats // batch_size
    batches (rounded up without drop_remainder), each a dict with "source"
    and "driving" float32 (B, H, W, 3) in [0, 1] and "video_index" int32
    (B,) indexing `index.paths`. (H, W) is `train_frame_size(cfg)`.

  Raises:
    DatasetError: bad arguments, no usable video, or fewer samples than
      one batch; all before any training step.
  """
  if not _is_positive_int(batch_size):
    raise DatasetError(
        f"batch_size must be a positive integer, got {batch_size!r}")
  seed = check_seed(seed)
  epoch = check_seed(epoch, "epoch")
  num_repeats = cfg.num_repeats
  if not _is_positive_int(num_repeats):
    raise DatasetError(f"{cfg.source}: num_repeats must be a positive "
                       f"integer, got {num_repeats!r}")
  frame_size = _frame_size(cfg)
  params = _augmentation_params(cfg)
  output_size = params.output_size(frame_size)
  skip_report = skip_report if skip_report is not None else SkipCounter()

  if isinstance(root, VideoIndex):
    index = root
    if index.split != "train" or index.id_sampling != bool(cfg.id_sampling):
      raise DatasetError(
          f"{index.root}: the VideoIndex is of the {index.split} split "
          f"with id_sampling={index.id_sampling}; training needs the "
          f"train split with id_sampling={bool(cfg.id_sampling)}")
  else:
    index = index_videos(root, "train", bool(cfg.id_sampling), split_seed,
                         skip_report)

  num_samples = len(index) * num_repeats
  if drop_remainder and num_samples < batch_size:
    raise DatasetError(
        f"{index.root} (train split): {len(index)} "
        f"{'identities' if index.id_sampling else 'videos'} x "
        f"{num_repeats} repeats = {num_samples} samples, fewer than one "
        f"batch of {batch_size}")

  order_rng = np.random.default_rng([seed, epoch, _ORDER_STREAM])
  entries = order_rng.permutation(
      np.tile(np.arange(len(index), dtype=np.int32), num_repeats))
  positions = np.arange(num_samples, dtype=np.int64)
  sampler = _PairSampler(index, params, frame_size, seed, epoch, skip_report)
  frame_shape = tuple(output_size) + (3,)

  def load(entry, position):
    source, driving, video = tf.numpy_function(
        sampler, [entry, position], (tf.float32, tf.float32, tf.int32),
        name="decode_training_pair")
    source.set_shape(frame_shape)
    driving.set_shape(frame_shape)
    video.set_shape(())
    return {"source": source, "driving": driving, "video_index": video}

  dataset = tf.data.Dataset.from_tensor_slices((entries, positions))
  dataset = dataset.map(load, num_parallel_calls=num_parallel_calls,
                        deterministic=True)
  dataset = dataset.batch(batch_size, drop_remainder=drop_remainder)
  return dataset.prefetch(tf.data.AUTOTUNE)


# ----------------------------------------------------------------------------
# Evaluation.
# ----------------------------------------------------------------------------


class ResizedVideoSource(media.VideoSource):
  """Streams another VideoSource's frames resized to `frame_size`."""

  def __init__(self, source: media.VideoSource, frame_size: Tuple[int, int]):
    super().__init__(source.path, source.fps, source.num_frames,
                     tuple(frame_size), source.has_audio)
    self.original_frame_size = source.frame_size
    self._source = source

  def __iter__(self) -> Iterator[np.ndarray]:
    for frame in self._source:
      yield media.resize_frame(frame, self.frame_size)


def iterate_test_videos(cfg, root: str, max_videos: Optional[int] = None,
                        split_seed: int = 0,
                        skip_report: Optional[SkipCounter] = None
                        ) -> Iterator[Tuple[str, media.VideoSource]]:
  """Opens the test videos one at a time, in sorted order.

  Yields (name, source): `name` is the video's file or folder name, and
  `source` streams its frames at the config's frame size. A video that
  cannot be opened is skipped with a warning (and recorded in
  `skip_report`); at most `max_videos` videos are yielded.

  Raises:
    DatasetError: bad `max_videos`, or the test split has no videos (at
      the call); no video could be opened (when the iteration ends).
  """
  if max_videos is not None and not _is_positive_int(max_videos):
    raise DatasetError(f"max_videos must be a positive integer or None, "
                       f"got {max_videos!r}")
  frame_size = _frame_size(cfg)
  videos = find_videos(root, "test", split_seed)
  if not videos:
    raise DatasetError(f"{os.fspath(root)} (test split): no videos found")

  def generate():
    yielded = 0
    for path in videos:
      try:
        source = media.open_video(path)
      except (media.MediaError, OSError) as error:
        logging.warning("Skipping video %s: %s", path, one_line(error))
        if skip_report is not None:
          skip_report.record(path, error)
        continue
      if source.frame_size != frame_size:
        source = ResizedVideoSource(source, frame_size)
      yield os.path.basename(os.path.normpath(path)), source
      yielded += 1
      if max_videos is not None and yielded >= max_videos:
        return
    if not yielded:
      raise DatasetError(f"{os.fspath(root)} (test split): none of the "
                         f"{len(videos)} videos can be opened")

  return generate()
