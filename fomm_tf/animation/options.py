"""The options of an animation: each declared once, with `param()`, for the command line, live and the web app.

`MotionOptions` are what animate, live and the web app share (how the driving motion is transferred and how
the result is framed); `AnimationOptions` adds what one job from a photo and a video to a result file needs.
From each declaration come the flag (`config.flagfiles.define_section_flags`), its help, its type and its range
check, which runs when the options are built, before any file is read or model loaded.
"""

import dataclasses
from typing import Optional

import numpy as np

from fomm_tf.animation import framing
from fomm_tf.config import schema
from fomm_tf.config.schema import param
from fomm_tf.errors import UsageError
from fomm_tf.io import files
from fomm_tf.io import video_writer

# The largest result side: a 4096 x 4096 frame is already 200 MB as float32.
MAX_OUTPUT_SIDE = 4096
MAX_SMOOTH = 25


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
    raise UsageError(f"{source} is {fps:g} fps, outside {video_writer.MIN_FPS:g} to {video_writer.MAX_FPS:g}" +
                     ("" if source == "--fps" else "; pass --fps"))
  return fps


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


def _faces(value):
  parse_faces(value)  # Raises its own message.


def _size_text(value):
  if value is not None:
    parse_size(value)  # Raises its own, more precise message.


def _fps(value):
  if value is not None:
    check_fps(value, "--fps")


def _png(value):
  return None if value is None or value.lower().endswith(".png") else "must name a .png file"


@dataclasses.dataclass(frozen=True)
class MotionOptions(schema.Section):
  """How the driving motion moves the source, shared by `animate`, `live` and the web app."""
  ERROR = UsageError
  relative: bool = param(True, "Relative motion transfer (--norelative: absolute keypoints).")
  adapt_scale: bool = param(False, "Scale relative motion by the keypoints' convex-hull areas.")
  smooth: int = param(1, f"Average the driving keypoints over this many frames (1: off, up to {MAX_SMOOTH}); "
                      "removes jitter, adds (N - 1) / 2 frames of lag.",
                      check=schema.in_range(1, MAX_SMOOTH))
  paste_back: bool = param(
      False, "--crop=face: the result is the whole photo with the animated head blended "
      "back in (at most --max_output_size on its long side).")
  max_output_size: int = param(1024,
                               "--paste_back, --faces: the longest side of the result.",
                               check=schema.in_range(16, MAX_OUTPUT_SIDE))


@dataclasses.dataclass(frozen=True)
class AnimationOptions(MotionOptions):
  """What to animate and how: one job from a photo and a driving video to a result file."""
  source_image: Optional[str] = param(None, "The image to animate (PNG, JPEG, ...).")
  driving_video: Optional[str] = param(
      None, "The motion: a video file (mp4, mov, avi, webm, mkv, gif), a folder "
      "of frames or a horizontal frame strip.")
  result_video: str = param("animation.mp4", "Output .mp4/.mov/.mkv (H.264), .webm (VP9) or .gif.")
  find_best_frame: bool = param(
      False, "Start from the driving frame whose pose best matches the source: face "
      "landmarks with --crop=face, else our own keypoints.")
  best_frame: Optional[int] = param(None,
                                    "Use this driving frame (0-based) as the initial frame.",
                                    check=schema.at_least(0))
  audio: bool = param(False, "Copy the driving video's audio into the result.")
  batch_size: int = param(8, "Driving frames animated per step.", check=schema.at_least(1))
  fps: Optional[float] = param(None, f"Result frame rate, {video_writer.MIN_FPS:g} to {video_writer.MAX_FPS:g} "
                               "(default: the driving video's).",
                               check=_fps)
  visualize: bool = param(False, "Write source | driving with keypoints | result side by side.")
  output_size: Optional[str] = param(None, f"Resize the result to N or HxW, at most {MAX_OUTPUT_SIDE} (default: "
                                     "the model's frame size).",
                                     check=_size_text)
  crop: str = param("center", "How photos and videos become the model's square input: center, pad or face (the "
                    "--crop of the config; see there).",
                    check=schema.one_of(*framing.CROPS))
  face_index: int = param(0, "--crop=face: which face of the photo, largest first.", check=schema.at_least(0))
  faces: str = param("", "--crop=face on a group photo: 'all', or face indices such as 0,2 (largest first, as "
                     "--face_index counts): each face is animated by the same driving face and pasted back into the "
                     "photo (faces under 48 px are skipped with a warning).",
                     check=_faces)
  crop_preview: Optional[str] = param(None, "Write PATH.png with the photo and a few driving frames, their crop "
                                      "boxes drawn, and stop (nothing is animated).",
                                      check=_png)
  checkpoint: Optional[str] = param(None, "The model's checkpoint, only checked: the result may not replace it.")

  # Filled by the command from the model's flags (--crop is a config flag), not flags of their own.
  MODEL_FIELDS = ("crop", "checkpoint")

  def __post_init__(self):
    if not isinstance(self.faces, str):  # From Python, face indices may also be an int or a sequence of ints.
      object.__setattr__(self, "faces", ",".join(map(str, parse_faces(self.faces))))
    super().__post_init__()

  def face_selection(self):
    """None (one face, --face_index), "all", or a tuple of face indices."""
    return parse_faces(self.faces)

  @property
  def output_shape(self):
    """--output_size as (height, width), or None."""
    return parse_size(self.output_size) if self.output_size else None

  def check(self):
    """Raises UsageError for a bad combination, or FileSafetyError when an output would replace an input (each
    value was checked when the options were made)."""
    for name in ("source_image", "driving_video"):
      if not getattr(self, name):
        raise UsageError(f"--{name} is required")
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
    outputs = [("crop_preview", self.crop_preview)] if self.crop_preview else [("result_video", self.result_video)]
    files.refuse_overwrite(outputs, [("source_image", self.source_image), ("driving_video", self.driving_video),
                                     ("checkpoint", self.checkpoint)])
