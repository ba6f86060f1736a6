"""The FOMM training data pipeline (tf.data over PyAV decoding).

A training sample is two frames of one video, drawn uniformly *with*
replacement and put in time order as "source" and "driving" (so they may be
the same frame, as in the official `FramesDataset`; a time flip may swap them),
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
batches, whatever the parallelism, and a run resumed mid-epoch (`start_batch`)
gets exactly the batches it would have had, without decoding the ones skipped.
`dataset.repeat()` would replay the same epoch; build one dataset per epoch
with `epoch=` instead.
"""

from typing import List, Optional, Sequence, Tuple, Union

from absl import logging
import numpy as np
import tensorflow as tf

from fomm_tf import checks
from fomm_tf.data import augmentation
from fomm_tf.data.video_index import SkipCounter
from fomm_tf.data.video_index import VideoIndex
from fomm_tf.data.video_index import check_seed
from fomm_tf.data.video_index import index_videos
from fomm_tf.errors import AugmentationError
from fomm_tf.errors import DatasetError
from fomm_tf.errors import MediaError
from fomm_tf.errors import one_line
from fomm_tf.io import media

__all__ = ["make_train_dataset", "read_frames_at", "sample_frame_pair", "train_frame_size"]

# Stream tags of the seed sequences, keeping the epoch order and the samples
# on independent random streams.
_ORDER_STREAM = 0
_SAMPLE_STREAM = 1


def _frame_size(cfg) -> Tuple[int, int]:
  height, width, channels = cfg.model.frame_shape
  if channels != 3:
    raise DatasetError(f"frame_shape must have 3 channels (RGB), got "
                       f"{list(cfg.model.frame_shape)}")
  return int(height), int(width)


def _augmentation_params(cfg) -> augmentation.AugmentationParams:
  try:
    return augmentation.AugmentationParams.from_config(cfg.dataset)
  except AugmentationError as error:
    raise DatasetError(f"{cfg.source}: {error}") from None


def train_frame_size(cfg) -> Tuple[int, int]:
  """(height, width) of the frames `make_train_dataset` yields."""
  return _augmentation_params(cfg).output_size(_frame_size(cfg))


# ----------------------------------------------------------------------------
# Reading frames.
# ----------------------------------------------------------------------------


def sample_frame_pair(rng: np.random.Generator, num_frames: int) -> np.ndarray:
  """Two frame indices drawn uniformly with replacement, sorted (the official training sampler)."""
  return np.sort(rng.choice(num_frames, size=2, replace=True))


def read_frames_at(path: str, indices: Sequence[int]) -> List[np.ndarray]:
  """Decodes the frames at `indices` (any order, repeats allowed).

  Frame folders read only the requested images; video files and strips are
  streamed from the start up to the last requested frame.

  Raises:
    MediaError: the video cannot be decoded up to the last index
      (including a video shorter than it), or a frame size differs.
  """
  if not indices or min(indices) < 0:
    raise MediaError(f"{path}: frame indices must be non-negative, got {list(indices)}")
  wanted = set(int(i) for i in indices)
  last = max(wanted)
  source = media.open_video(path)
  frames = {}
  if isinstance(source, media.FrameFolderSource):
    if last >= len(source.frame_paths):
      raise MediaError(f"{path}: has {len(source.frame_paths)} "
                       f"frames, frame {last} was requested")
    for index in sorted(wanted):
      frame = media.read_image(source.frame_paths[index])
      if frame.shape[:2] != source.frame_size:
        raise MediaError(f"{path}: frame {index} is {frame.shape[0]}x"
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
      raise MediaError(f"{path}: ended after {decoded} frames, "
                       f"frame {last} was requested")
  return [frames[int(i)] for i in indices]


class _PairSampler:
  """Makes one training sample (source, driving, video index) per call.

  Called from tf.data worker threads through `tf.numpy_function`; it keeps
  no state besides the thread-safe skip counter, so calls are independent
  and each result depends only on (seed, epoch, position).
  """

  def __init__(self, index: VideoIndex, params: augmentation.AugmentationParams, frame_size: Tuple[int, int], seed: int,
               epoch: int, skip_report: SkipCounter):
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
    indices = sample_frame_pair(rng, self._index.num_frames[video])
    frames = read_frames_at(path, [int(i) for i in indices])
    frames = [
        frame if frame.shape[:2] == self._frame_size else media.resize_frame(frame, self._frame_size)
        for frame in frames
    ]
    return np.stack(frames)

  def __call__(self, entry, position):
    rng = np.random.default_rng([self._seed, self._epoch, _SAMPLE_STREAM, int(position)])
    for video in self._candidates(int(entry), rng):
      try:
        clip = self._load(video, rng)
      except MediaError as error:
        path = self._index.paths[video]
        if self._skip_report.record(path, error):
          logging.warning("Skipping video %s: %s", path, one_line(error))
        continue
      clip = augmentation.augment_clip(clip, self._params, rng)
      return clip[0], clip[1], np.int32(video)
    raise DatasetError(f"{self._index.root} ({self._index.split} split): none of the "
                       f"{len(self._index.paths)} videos could be decoded for sample "
                       f"{int(position)}")


def batches_per_epoch(index: VideoIndex, num_repeats: int, batch_size: int) -> int:
  """Full batches in one epoch of `index`."""
  return len(index) * num_repeats // batch_size


def make_train_dataset(cfg,
                       root: Union[str, VideoIndex],
                       batch_size: int,
                       seed: int = 0,
                       num_parallel_calls: int = tf.data.AUTOTUNE,
                       drop_remainder: bool = True,
                       skip_report: Optional[SkipCounter] = None,
                       epoch: int = 0,
                       split_seed: int = 0,
                       start_batch: int = 0) -> tf.data.Dataset:
  """One epoch of training batches (from batch `start_batch` on).

  Args:
    cfg: FommConfig; uses the frame shape, num_repeats and the dataset section.
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
    start_batch: batches of the epoch to leave out (a resumed run); their
      samples are never decoded.

  Returns:
    A finite tf.data.Dataset of the epoch's len(index) * num_repeats //
    batch_size batches (rounded up without drop_remainder) from `start_batch`
    on, each a dict with "source" and "driving" float32 (B, H, W, 3) in [0, 1]
    and "video_index" int32 (B,) indexing `index.paths`. (H, W) is
    `train_frame_size(cfg)`.

  Raises:
    DatasetError: bad arguments, no usable video, or fewer samples than
      one batch; all before any training step.
  """
  if not checks.is_positive_int(batch_size):
    raise DatasetError(f"batch_size must be a positive integer, got {batch_size!r}")
  seed = check_seed(seed)
  epoch = check_seed(epoch, "epoch")
  start_batch = check_seed(start_batch, "start_batch")
  num_repeats = cfg.train.num_repeats
  id_sampling = cfg.dataset.id_sampling
  frame_size = _frame_size(cfg)
  params = _augmentation_params(cfg)
  output_size = params.output_size(frame_size)
  skip_report = skip_report if skip_report is not None else SkipCounter()

  if isinstance(root, VideoIndex):
    index = root
    if index.split != "train" or index.id_sampling != id_sampling:
      raise DatasetError(f"{index.root}: the VideoIndex is of the {index.split} split "
                         f"with id_sampling={index.id_sampling}; training needs the "
                         f"train split with id_sampling={id_sampling}")
  else:
    index = index_videos(root, "train", id_sampling, split_seed, skip_report)

  num_samples = len(index) * num_repeats
  if drop_remainder and num_samples < batch_size:
    raise DatasetError(f"{index.root} (train split): {len(index)} "
                       f"{'identities' if index.id_sampling else 'videos'} x "
                       f"{num_repeats} repeats = {num_samples} samples, fewer than one "
                       f"batch of {batch_size}")

  order_rng = np.random.default_rng([seed, epoch, _ORDER_STREAM])
  entries = order_rng.permutation(np.tile(np.arange(len(index), dtype=np.int32), num_repeats))
  positions = np.arange(num_samples, dtype=np.int64)
  first = min(start_batch * batch_size, num_samples)
  sampler = _PairSampler(index, params, frame_size, seed, epoch, skip_report)
  frame_shape = tuple(output_size) + (3,)

  def load(entry, position):
    source, driving, video = tf.numpy_function(sampler, [entry, position], (tf.float32, tf.float32, tf.int32),
                                               name="decode_training_pair")
    source.set_shape(frame_shape)
    driving.set_shape(frame_shape)
    video.set_shape(())
    return {"source": source, "driving": driving, "video_index": video}

  dataset = tf.data.Dataset.from_tensor_slices((entries[first:], positions[first:]))
  dataset = dataset.map(load, num_parallel_calls=num_parallel_calls, deterministic=True)
  dataset = dataset.batch(batch_size, drop_remainder=drop_remainder)
  return dataset.prefetch(tf.data.AUTOTUNE)
