"""Animation of test pairs: frame 0 of one video animated by the motion of another (relative motion).

The pairs are ordered (source video, driving video) pairs of different videos,
chosen by a shuffle seeded with `seed`, so a run is reproducible. Each result
is written as `<source>__<driving>.mp4`: source | driving | animation side by
side, at the driving video's frame rate.
"""

import os

import numpy as np
from absl import logging

from fomm_tf import visualization
from fomm_tf.inference import pipeline
from fomm_tf.io import media
from fomm_tf.io import video_writer
from fomm_tf.errors import EvaluationError

CSV_COLUMNS = ("source", "driving", "frames", "file")


def choose_pairs(num_videos, num_pairs, seed=0):
  """Up to `num_pairs` distinct (source_index, driving_index) pairs with source != driving, seeded shuffle."""
  if num_pairs < 1:
    raise EvaluationError(f"--num_pairs must be >= 1, got {num_pairs}")
  if num_videos < 2:
    raise EvaluationError(f"animation needs at least 2 test videos (source and driving differ), got {num_videos}")
  pairs = [(s, d) for s in range(num_videos) for d in range(num_videos) if s != d]
  order = np.random.default_rng(seed).permutation(len(pairs))
  return [pairs[i] for i in order[:num_pairs]]


def first_frame(path):
  return next(iter(media.open_video(path)))


def pair_file_name(source_name, driving_name):
  return f"{source_name}__{driving_name}.mp4"


def animate_pair(backend,
                 source_video,
                 driving_video,
                 output_path,
                 batch_size=8,
                 fit="crop",
                 relative=True,
                 adapt_scale=False):
  """Writes source | driving | animation for one pair; returns the number of frames written."""
  backend = pipeline.as_backend(backend)
  size = backend.frame_shape[0]
  source_image = first_frame(source_video.path)
  source_panel = pipeline.prepare_frame(source_image, size, fit)
  driving = media.open_video(driving_video.path)
  with video_writer.VideoWriter(output_path, driving.fps) as writer:
    for result, driving_frame, _ in pipeline.animate_with_keypoints(backend,
                                                                    source_image,
                                                                    driving,
                                                                    relative=relative,
                                                                    adapt_scale=adapt_scale,
                                                                    batch_size=batch_size,
                                                                    fit=fit):
      panels = visualization.side_by_side([source_panel, driving_frame, result])
      writer.write(np.clip(panels, 0.0, 1.0))
  return writer.frames_written


def animate_pairs(backend, videos, pairs, output_dir, batch_size=8, fit="crop", relative=True, adapt_scale=False):
  """Animates every (source_index, driving_index) pair into `output_dir`; returns one row per pair."""
  rows = []
  for index, (s, d) in enumerate(pairs):
    name = pair_file_name(videos[s].name, videos[d].name)
    frames = animate_pair(backend, videos[s], videos[d], os.path.join(output_dir, name), batch_size, fit, relative,
                          adapt_scale)
    logging.info("animation %d/%d: %s (%d frames)", index + 1, len(pairs), name, frames)
    rows.append({"source": videos[s].name, "driving": videos[d].name, "frames": frames, "file": name})
  return rows
