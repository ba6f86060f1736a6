"""The work behind `python -m fomm_tf.animate` (flags are defined in fomm_tf/animate.py)."""

import os

import numpy as np
from absl import logging

from fomm_tf import cli_util
from fomm_tf import config as config_lib
from fomm_tf import visualization
from fomm_tf.animation import best_frame as best_frame_lib
from fomm_tf.animation import pipeline
from fomm_tf.animation import progress as progress_lib
from fomm_tf.checkpoint import loading as checkpoint_loading
from fomm_tf.checkpoint import official_mapping
from fomm_tf.checkpoint import torch_pickle
from fomm_tf.data import media
from fomm_tf.data import video_writer

USER_ERRORS = (media.MediaError, config_lib.ConfigError, checkpoint_loading.CheckpointLoadError,
               official_mapping.MappingError, torch_pickle.CheckpointError, ValueError, OSError)


def make_backend(flag_values, cfg):
  if flag_values.mixed_precision and flag_values.backend != "keras":
    raise ValueError(f"--mixed_precision is for --backend=keras; --backend={flag_values.backend} runs the "
                     f"precision it was exported in (--quantize)")
  if flag_values.backend == "keras":
    if flag_values.mixed_precision:
      # Layers built from here on compute in this precision; variables stay float32.
      import keras
      keras.mixed_precision.set_global_policy(f"mixed_{flag_values.mixed_precision}")
    from fomm_tf.animation import backend
    if cfg is None:
      if flag_values.checkpoint:
        raise ValueError("--checkpoint needs its config: pass --flagfile=configs/NAME.flags (or --config=NAME)")
      from fomm_tf import builtin
      print(f"using the built-in {builtin.CONFIG} model (trained on synthetic puppets)")
      return backend.KerasBackend(builtin.load_builtin_model())
    return backend.KerasBackend(cli_util.load_model(cfg, flag_values.checkpoint))
  if not flag_values.model_dir:
    raise ValueError(f"--backend={flag_values.backend} needs --model_dir (a directory written by fomm_tf.export)")
  from fomm_tf.export import backends
  if flag_values.backend == "saved_model":
    return backends.SavedModelBackend(flag_values.model_dir)
  return backends.TFLiteBackend(flag_values.model_dir, quantize=flag_values.quantize)


def driving_keypoints(backend, video, batch_size, fit):
  """Keypoints of every driving frame in one streaming pass: {'value': (N, K, 2), 'jacobian': (N, K, 2, 2)}."""
  size = backend.frame_shape[0]
  parts = []
  for batch in pipeline.batched(video, batch_size):
    parts.append(backend.detect_keypoints(np.stack([pipeline.prepare_frame(f, size, fit) for f in batch])))
  return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def use_samples(flag_values):
  """With no media, model or checkpoint flags, animate the built-in sample with the built-in model."""
  if flag_values.source_image or flag_values.driving_video:
    return False
  if flag_values.checkpoint or cli_util.config_flags_given(flag_values) or flag_values.backend != "keras":
    return False
  from fomm_tf import builtin
  flag_values.source_image = builtin.SAMPLE_SOURCE
  flag_values.driving_video = builtin.SAMPLE_DRIVING
  print(f"no --source_image/--driving_video: animating the built-in sample {builtin.SAMPLE_SOURCE} "
        f"with {builtin.SAMPLE_DRIVING}")
  return True


def run(flag_values):
  use_samples(flag_values)
  for name in ("source_image", "driving_video"):
    if not flag_values[name].value:
      raise ValueError(f"--{name} is required")
  source_image = media.read_image(flag_values.source_image)
  video = media.open_video(flag_values.driving_video)
  if flag_values.batch_size < 1:
    raise ValueError(f"--batch_size must be >= 1, got {flag_values.batch_size}")
  if flag_values.best_frame is not None and flag_values.best_frame < 0:
    raise ValueError(f"--best_frame must be >= 0, got {flag_values.best_frame}")
  if flag_values.best_frame is not None and video.num_frames is not None and flag_values.best_frame >= video.num_frames:
    raise ValueError(f"--best_frame={flag_values.best_frame} is out of range: {video.path} has "
                     f"{video.num_frames} frames")
  audio_source = None
  if flag_values.audio:
    if not video.has_audio:
      raise ValueError(f"--audio: {video.path} has no audio stream")
    audio_source = video.path
  output_size = parse_output_size(flag_values.output_size)
  fps = flag_values.fps if flag_values.fps else video.fps
  if fps <= 0:
    raise ValueError(f"--fps must be > 0, got {fps}")

  cfg = cli_util.resolve_config(flag_values)
  backend = make_backend(flag_values, cfg)
  size = backend.frame_shape[0]
  radius = cfg.kp_size if cfg is not None else 5
  colormap = cfg.colormap if cfg is not None else "gist_rainbow"

  kp_initial = None
  if flag_values.find_best_frame or flag_values.best_frame is not None:
    kp_all = driving_keypoints(backend, video, flag_values.batch_size, flag_values.fit)
    count = len(kp_all["value"])
    wanted = flag_values.best_frame
    if wanted is None:
      source_kp = backend.detect_keypoints(pipeline.prepare_frame(source_image, size, flag_values.fit)[np.newaxis])
      wanted = best_frame_lib.best_frame_index(source_kp["value"][0], kp_all["value"])
      logging.info("best matching driving frame: %d of %d", wanted, count)
    if wanted >= count:
      raise ValueError(f"--best_frame={wanted} is out of range: {video.path} has {count} frames")
    kp_initial = {k: v[wanted:wanted + 1] for k, v in kp_all.items()}
    print(f"initial driving frame: {wanted}")

  bar = progress_lib.ProgressBar(total=video.num_frames)
  with video_writer.VideoWriter(flag_values.result_video, fps, audio_source=audio_source) as writer:
    for result, driving, kp in pipeline.animate_with_keypoints(
        backend, source_image, video, relative=flag_values.relative, adapt_scale=flag_values.adapt_scale,
        batch_size=flag_values.batch_size, kp_driving_initial=kp_initial, fit=flag_values.fit):
      frame = result
      if flag_values.visualize:
        source_panel = pipeline.prepare_frame(source_image, size, flag_values.fit)
        driving_panel = visualization.draw_keypoints(driving, kp, radius, colormap)
        frame = visualization.side_by_side([source_panel, driving_panel, result])
      if output_size is not None:
        target = output_size if not flag_values.visualize else (output_size[0], output_size[1] * 3)
        frame = media.resize_frame(frame, target)
      writer.write(np.clip(frame, 0.0, 1.0))
      bar.update()
  bar.close()
  print(f"wrote {writer.frames_written} frames to {os.path.abspath(flag_values.result_video)}")


def parse_output_size(text):
  if not text:
    return None
  from fomm_tf import animate as animate_main
  return animate_main.parse_size(text)
