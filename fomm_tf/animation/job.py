"""One animation job: a source photo, a driving video and the options, to a result video.

The command line (`python -m fomm_tf.animate`) and the web app both build an
`options.AnimationOptions` (each value is checked as it is made), `check` it (the
combinations; the result may never be one of the inputs), both before any file
is read or model loaded, and `run` it with a Backend.
"""

import os

import numpy as np

from fomm_tf import visualization
from fomm_tf.animation import best_frame as best_frame_lib
from fomm_tf.animation import framing as framing_lib
from fomm_tf.animation import options as options_lib
from fomm_tf.errors import Cancelled
from fomm_tf.errors import UsageError
from fomm_tf.inference import pipeline
from fomm_tf.inference import smoothing
from fomm_tf.io import media
from fomm_tf.io import video_writer


def driving_keypoints(backend, video, batch_size, prepare):
  """Keypoints of every driving frame in one streaming pass: {'value': (N, K, 2), 'jacobian': (N, K, 2, 2)}."""
  size = backend.frame_shape[0]
  parts = []
  for batch in pipeline.batched(video, batch_size):
    parts.append(backend.detect_keypoints(np.stack([prepare(f, size) for f in batch])))
  return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


class Progress:
  """Told when animation starts, then (frames done, total or None) after every frame; `stop()` True ends the job
  (errors.Cancelled)."""

  def start(self, total, batch_size):
    """Animation begins: `total` frames (None: unknown) will arrive in batches of `batch_size`."""
    del total, batch_size

  def update(self, done, total):
    del done, total

  def stop(self):
    return False


def run(backend, options, log=print, progress=None, radius=5, colormap="gist_rainbow"):
  """Animates as `options` say (already `check`ed) with `backend`; returns the number of frames written.

  With `crop_preview` only the preview PNG is written. The result is written through a hidden temporary file,
  so an error, a signal or a stop leaves nothing behind.
  """
  source_image, video = _open_inputs(options)
  audio_source, fps = _audio_and_fps(options, video)
  framing = _framing(options, source_image, video, log)
  if options.crop_preview:
    framing_lib.preview(framing, source_image, video, options.crop_preview)
    log(f"wrote the crop preview {os.path.abspath(options.crop_preview)}")
    return 0
  kp_initial = _initial_keypoints(backend, options, framing, source_image, video, log)
  frames = _result_frames(backend, options, framing, source_image, video, kp_initial, radius, colormap)
  return _write(frames, options, video, fps, audio_source, progress or Progress())


def _open_inputs(options):
  """The source photo and the driving video (opened for streaming), with --best_frame checked against it."""
  source_image = media.read_image(options.source_image)
  video = media.open_video(options.driving_video)
  if options.best_frame is not None and video.num_frames is not None and options.best_frame >= video.num_frames:
    raise UsageError(f"--best_frame={options.best_frame} is out of range: {video.path} has "
                     f"{video.num_frames} frames")
  return source_image, video


def _audio_and_fps(options, video):
  """(the file whose audio the result copies, or None; the result's frame rate)."""
  if options.audio and not video.has_audio:
    raise UsageError(f"--audio: {video.path} has no audio stream")
  fps = options.fps if options.fps else options_lib.check_fps(video.fps, f"the frame rate of {video.path}")
  return (video.path if options.audio else None), fps


def _framing(options, source_image, video, log):
  """How the photo and the video become the model's square input (and, with faces, where results go back)."""
  return framing_lib.make_framing(options.crop,
                                  source_image,
                                  video,
                                  options.face_index,
                                  options.source_image,
                                  find_best_frame=options.find_best_frame and options.crop == "face",
                                  log=log,
                                  faces=options.face_selection())


def _initial_keypoints(backend, options, framing, source_image, video, log):
  """The keypoints of the initial driving frame (--best_frame, --find_best_frame), or None for the first frame."""
  if not options.find_best_frame and options.best_frame is None:
    return None
  wanted = options.best_frame
  if wanted is None and options.crop == "face":
    wanted = framing.best_frame
    log(f"best matching driving frame (face landmarks): {wanted}")
  kp_all = driving_keypoints(backend, video, options.batch_size, framing.driving)
  count = len(kp_all["value"])
  if wanted is None:
    source_kp = backend.detect_keypoints(framing.source(source_image, backend.frame_shape[0])[np.newaxis])
    wanted = best_frame_lib.best_frame_index(source_kp["value"][0], kp_all["value"])
    log(f"best matching driving frame (keypoints): {wanted} of {count}")
  if wanted >= count:
    raise UsageError(f"--best_frame={wanted} is out of range: {video.path} has {count} frames")
  log(f"initial driving frame: {wanted}")
  return {k: v[wanted:wanted + 1] for k, v in kp_all.items()}


def _result_frames(backend, options, framing, source_image, video, kp_initial, radius, colormap):
  """The result frames, lazily: one face (or the whole picture), or every chosen face of a group photo."""
  smoother = smoothing.KeypointSmoother(options.smooth) if options.smooth > 1 else None
  if options.face_selection() is not None:
    return _group_frames(backend, options, framing, source_image, video, kp_initial, smoother)
  return _frames(backend, options, framing, source_image, video, kp_initial, smoother, radius, colormap)


def _write(frames, options, video, fps, audio_source, progress):
  """Encodes `frames` into the result as they come; a stop from `progress` removes what was written."""
  progress.start(video.num_frames, options.batch_size)
  with video_writer.VideoWriter(options.result_video, fps, audio_source=audio_source) as writer:
    for frame in frames:
      writer.write(np.clip(frame, 0.0, 1.0))
      progress.update(writer.frames_written, video.num_frames)
      if progress.stop():
        writer.abort()
        raise Cancelled(f"stopped after {writer.frames_written} frames; nothing was written")
  return writer.frames_written


def _frames(backend, options, framing, source_image, video, kp_initial, smoother, radius, colormap):
  """The result frames of one face (or the whole picture), lazily."""
  size = backend.frame_shape[0]
  paste = None
  if options.paste_back:
    from fomm_tf import faces  # pylint: disable=import-outside-toplevel
    paste = faces.PasteBack(source_image, framing.source_placement, options.max_output_size)
  source_panel = framing.source(source_image, size)
  for result, driving, kp in pipeline.animate_with_keypoints(backend,
                                                             source_image,
                                                             video,
                                                             relative=options.relative,
                                                             adapt_scale=options.adapt_scale,
                                                             batch_size=options.batch_size,
                                                             kp_driving_initial=kp_initial,
                                                             prepare_source=framing.source,
                                                             prepare_driving=framing.driving,
                                                             kp_filter=smoother):
    frame = result
    if options.visualize:
      frame = visualization.side_by_side(
          [source_panel, visualization.draw_keypoints(driving, kp, radius, colormap), result])
    if paste is not None:
      frame = paste(np.clip(result, 0.0, 1.0))
    if options.output_shape is not None:
      target = options.output_shape if not options.visualize else (options.output_shape[0], options.output_shape[1] * 3)
      frame = media.resize_frame(frame, target)
    yield frame


def _group_frames(backend, options, framing, source_image, video, kp_initial, smoother):
  """The photo with every chosen face animated by the same driving face and pasted back, lazily (--faces)."""
  from fomm_tf import faces  # pylint: disable=import-outside-toplevel
  paste = faces.GroupPasteBack(source_image, framing.source_placements, options.max_output_size)
  for crops in pipeline.animate_faces(backend,
                                      framing.sources(source_image, backend.frame_shape[0]),
                                      video,
                                      relative=options.relative,
                                      adapt_scale=options.adapt_scale,
                                      batch_size=options.batch_size,
                                      kp_driving_initial=kp_initial,
                                      prepare_driving=framing.driving,
                                      kp_filter=smoother):
    yield paste(np.clip(crops, 0.0, 1.0))
