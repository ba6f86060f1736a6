"""One animation job: a source photo, a driving video and the options, to a result video.

The command line (`python -m fomm_tf.animate`) and the web app both build an
`AnimationOptions`, `check` it (every value, before any file is read or model
loaded; the result may never be one of the inputs) and `run` it with a Backend.
"""

import dataclasses
import os
from typing import Optional, Sequence, Tuple, Union

import numpy as np

from fomm_tf import visualization
from fomm_tf.animation import best_frame as best_frame_lib
from fomm_tf.animation import framing as framing_lib
from fomm_tf.errors import Cancelled
from fomm_tf.errors import UsageError
from fomm_tf.inference import pipeline
from fomm_tf.inference import smoothing
from fomm_tf.io import files
from fomm_tf.io import media
from fomm_tf.io import video_writer

# The largest result side: a 4096 x 4096 frame is already 200 MB as float32.
MAX_OUTPUT_SIDE = 4096
MAX_SMOOTH = 25


@dataclasses.dataclass
class AnimationOptions:
  """What to animate and how; the command line's flags of the same names."""
  source_image: str
  driving_video: str
  result_video: str = "animation.mp4"
  relative: bool = True
  adapt_scale: bool = False
  find_best_frame: bool = False
  best_frame: Optional[int] = None
  audio: bool = False
  batch_size: int = 8
  fps: Optional[float] = None
  visualize: bool = False
  output_size: Optional[Tuple[int, int]] = None
  crop: str = "center"
  face_index: int = 0
  paste_back: bool = False
  max_output_size: int = 1024
  smooth: int = 1
  crop_preview: Optional[str] = None
  checkpoint: Optional[str] = None  # Only checked: the result may not replace it.
  # A group photo (--faces): "" animates the one face --face_index; "all", "0,2" (indices largest first, as
  # --face_index counts) or a sequence of ints animate each of those faces, pasted back into the one photo.
  faces: Union[str, Sequence[int]] = ""

  def face_selection(self):
    """None (one face, --face_index), "all", or a tuple of face indices; UsageError for a malformed --faces."""
    return parse_faces(self.faces)

  def check(self):
    """Raises UsageError for a bad value or combination, or FileSafetyError when an output would replace an input."""
    for name in ("source_image", "driving_video"):
      if not getattr(self, name):
        raise UsageError(f"--{name} is required")
    if self.batch_size < 1:
      raise UsageError(f"--batch_size must be >= 1, got {self.batch_size}")
    if self.best_frame is not None and self.best_frame < 0:
      raise UsageError(f"--best_frame must be >= 0, got {self.best_frame}")
    if self.fps is not None:
      check_fps(self.fps, "--fps")
    if self.crop not in framing_lib.CROPS:
      raise UsageError(f"--crop must be one of {', '.join(framing_lib.CROPS)}, got {self.crop!r}")
    if self.face_index < 0:
      raise UsageError(f"--face_index must be >= 0, got {self.face_index}")
    if self.face_index and self.crop != "face":
      raise UsageError("--face_index picks a face for --crop=face")
    if self.paste_back and self.crop != "face":
      raise UsageError("--paste_back puts an animated face crop back into the photo: it needs --crop=face")
    if self.face_selection() is not None:
      if self.crop != "face":
        raise UsageError("--faces picks the faces of a group photo for --crop=face")
      if self.face_index:
        raise UsageError("--faces and --face_index both choose faces: pass one of them")
      if self.visualize or self.output_size:
        raise UsageError("--faces pastes every face back into the photo (its own size, at most --max_output_size):"
                         " it cannot be combined with --visualize or --output_size")
    if self.paste_back and (self.visualize or self.output_size):
      raise UsageError("--paste_back writes the photo's own size (at most --max_output_size): it cannot be "
                       "combined with --visualize or --output_size")
    if not 16 <= self.max_output_size <= MAX_OUTPUT_SIDE:
      raise UsageError(f"--max_output_size must be from 16 to {MAX_OUTPUT_SIDE}, got {self.max_output_size}")
    if not 1 <= self.smooth <= MAX_SMOOTH:
      raise UsageError(f"--smooth must be from 1 (off) to {MAX_SMOOTH} frames, got {self.smooth}")
    outputs = [("crop_preview", self.crop_preview)] if self.crop_preview else [("result_video", self.result_video)]
    if self.crop_preview and not self.crop_preview.lower().endswith(".png"):
      raise UsageError(f"--crop_preview must name a .png file, got {self.crop_preview!r}")
    files.refuse_overwrite(outputs, [("source_image", self.source_image), ("driving_video", self.driving_video),
                                     ("checkpoint", self.checkpoint)])


def parse_faces(faces):
  """--faces: "" (or None) -> None; "all" -> "all"; "0,2", an int or a sequence of ints -> (0, 2); else UsageError."""
  if faces is None or (isinstance(faces, str) and not faces.strip()):
    return None
  if isinstance(faces, str):
    text = faces.strip().lower()
    if text == "all":
      return "all"
    try:
      indices = tuple(int(part) for part in text.split(","))
    except ValueError:
      raise UsageError(f"--faces must be 'all' or face indices such as 0,2, got {faces!r}") from None
  else:
    indices = (faces,) if isinstance(faces, (int, np.integer)) else tuple(faces)
    if not all(isinstance(i, (int, np.integer)) and not isinstance(i, bool) for i in indices):
      raise UsageError(f"--faces must be 'all' or face indices such as 0,2, got {faces!r}")
    indices = tuple(int(i) for i in indices)
  if not indices:
    raise UsageError("--faces: no face index given")
  negative = [i for i in indices if i < 0]
  if negative:
    raise UsageError(f"--faces: face indices must be >= 0, got {negative[0]}")
  return indices


def parse_size(text):
  """'512' -> (512, 512); '480x640' -> (480, 640); each side 1..MAX_OUTPUT_SIDE."""
  parts = text.lower().split("x")
  try:
    size = tuple(int(p) for p in parts)
  except ValueError:
    raise UsageError(f"--output_size must be N or HxW, got {text!r}") from None
  if len(size) == 1:
    size = size * 2
  if len(size) != 2 or min(size) < 1:
    raise UsageError(f"--output_size must be N or HxW, got {text!r}")
  if max(size) > MAX_OUTPUT_SIDE:
    raise UsageError(f"--output_size={text}: each side must be at most {MAX_OUTPUT_SIDE}")
  return size


def check_fps(fps, source):
  """The result frame rate, within the writer's limits (`source` says where it came from)."""
  if not video_writer.MIN_FPS <= fps <= video_writer.MAX_FPS:
    raise UsageError(f"{source} is {fps:g} fps, outside {video_writer.MIN_FPS:g} to {video_writer.MAX_FPS:g}"
                     + ("" if source == "--fps" else "; pass --fps"))
  return fps


def driving_keypoints(backend, video, batch_size, prepare):
  """Keypoints of every driving frame in one streaming pass: {'value': (N, K, 2), 'jacobian': (N, K, 2, 2)}."""
  size = backend.frame_shape[0]
  parts = []
  for batch in pipeline.batched(video, batch_size):
    parts.append(backend.detect_keypoints(np.stack([prepare(f, size) for f in batch])))
  return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


class Progress:
  """Receives (frames done, total or None) after every frame; `stop()` True ends the job (errors.Cancelled)."""

  def update(self, done, total):
    del done, total

  def stop(self):
    return False


def run(backend, options, log=print, progress=None, radius=5, colormap="gist_rainbow"):
  """Animates as `options` say (already `check`ed) with `backend`; returns the number of frames written.

  With `crop_preview` only the preview PNG is written. The result is written through a hidden temporary file,
  so an error, a signal or a stop leaves nothing behind.
  """
  progress = progress or Progress()
  source_image = media.read_image(options.source_image)
  video = media.open_video(options.driving_video)
  if options.best_frame is not None and video.num_frames is not None and options.best_frame >= video.num_frames:
    raise UsageError(f"--best_frame={options.best_frame} is out of range: {video.path} has "
                     f"{video.num_frames} frames")
  audio_source = None
  if options.audio:
    if not video.has_audio:
      raise UsageError(f"--audio: {video.path} has no audio stream")
    audio_source = video.path
  fps = options.fps if options.fps else check_fps(video.fps, f"the frame rate of {video.path}")
  face_best_frame = options.find_best_frame and options.crop == "face"
  selection = options.face_selection()
  framing = framing_lib.make_framing(options.crop, source_image, video, options.face_index, options.source_image,
                                     find_best_frame=face_best_frame, log=log, faces=selection)
  if options.crop_preview:
    framing_lib.preview(framing, source_image, video, options.crop_preview)
    log(f"wrote the crop preview {os.path.abspath(options.crop_preview)}")
    return 0
  size = backend.frame_shape[0]

  kp_initial = None
  if options.find_best_frame or options.best_frame is not None:
    wanted = options.best_frame
    if wanted is None and face_best_frame:
      wanted = framing.best_frame
      log(f"best matching driving frame (face landmarks): {wanted}")
    kp_all = driving_keypoints(backend, video, options.batch_size, framing.driving)
    count = len(kp_all["value"])
    if wanted is None:
      source_kp = backend.detect_keypoints(framing.source(source_image, size)[np.newaxis])
      wanted = best_frame_lib.best_frame_index(source_kp["value"][0], kp_all["value"])
      log(f"best matching driving frame (keypoints): {wanted} of {count}")
    if wanted >= count:
      raise UsageError(f"--best_frame={wanted} is out of range: {video.path} has {count} frames")
    kp_initial = {k: v[wanted:wanted + 1] for k, v in kp_all.items()}
    log(f"initial driving frame: {wanted}")

  smoother = smoothing.KeypointSmoother(options.smooth) if options.smooth > 1 else None
  if selection is not None:
    frames = _group_frames(backend, options, framing, source_image, video, kp_initial, smoother)
  else:
    frames = _frames(backend, options, framing, source_image, video, kp_initial, smoother, radius, colormap)
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
  for result, driving, kp in pipeline.animate_with_keypoints(
      backend, source_image, video, relative=options.relative, adapt_scale=options.adapt_scale,
      batch_size=options.batch_size, kp_driving_initial=kp_initial, prepare_source=framing.source,
      prepare_driving=framing.driving, kp_filter=smoother):
    frame = result
    if options.visualize:
      frame = visualization.side_by_side([source_panel, visualization.draw_keypoints(driving, kp, radius, colormap),
                                          result])
    if paste is not None:
      frame = paste(np.clip(result, 0.0, 1.0))
    if options.output_size is not None:
      target = options.output_size if not options.visualize else (options.output_size[0],
                                                                    options.output_size[1] * 3)
      frame = media.resize_frame(frame, target)
    yield frame


def _group_frames(backend, options, framing, source_image, video, kp_initial, smoother):
  """The photo with every chosen face animated by the same driving face and pasted back, lazily (--faces)."""
  from fomm_tf import faces  # pylint: disable=import-outside-toplevel
  paste = faces.GroupPasteBack(source_image, framing.source_placements, options.max_output_size)
  for crops in pipeline.animate_faces(
      backend, framing.sources(source_image, backend.frame_shape[0]), video, relative=options.relative,
      adapt_scale=options.adapt_scale, batch_size=options.batch_size, kp_driving_initial=kp_initial,
      prepare_driving=framing.driving, kp_filter=smoother):
    yield paste(np.clip(crops, 0.0, 1.0))
