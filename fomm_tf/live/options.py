"""The options of a live session, declared once with `param()` (flags, help, types and range checks).

The motion options are animate's (`animation.options.MotionOptions`), with live's own default for smoothing:
unsupervised keypoints shimmer on a still head, and a camera is mostly a still head.
"""

import dataclasses
from typing import Optional

from fomm_tf.animation import options as animation_options
from fomm_tf.config import schema
from fomm_tf.config.schema import param
from fomm_tf.live import animator

# Where live (and the web app's Live tab) differ from animate's defaults.
DEFAULTS = {"smooth": 2}


@dataclasses.dataclass(frozen=True)
class LiveOptions(animation_options.MotionOptions):
  """A live session: the photo, the camera, where results go and when to stop."""
  source_image: Optional[str] = param(None, "The photo to animate (default: the built-in sample).")
  camera: str = param(
      "0", "A camera index (0 is /dev/video0) or device path (v4l2), a video file (played at its "
      "own rate), or a stream URL FFmpeg opens.")
  record: Optional[str] = param(None, "Write the result to this video (each frame at its capture time).")
  stats_json: Optional[str] = param(None, "Write the session's statistics here at the end (JSON).")
  reference: str = param("first", "Reference frame: the first frame (re-taken with r + Enter), or auto (the best "
                         "pose match with the source over the first --auto_frames frames).",
                         check=schema.one_of(*animator.REFERENCES))
  auto_frames: int = param(50, "--reference=auto: how many frames to look at.", check=schema.at_least(1))
  duration: Optional[float] = param(None,
                                    "Stop after this many seconds of camera time.",
                                    check=lambda v: None if v is None or v > 0 else "must be > 0")
  max_frames: Optional[int] = param(None, "Stop after this many camera frames.", check=schema.at_least(1))
  preview: bool = param(False, "Show the result in a window (needs OpenCV and a display).")
  virtual_camera: bool = param(False, "Send the result to a virtual camera (needs pyvirtualcam).")
