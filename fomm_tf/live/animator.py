"""LiveAnimator: one source photo animated by camera frames as they arrive, one frame at a time.

The source is prepared once (crop, encoder state, keypoints). Each camera frame
is framed like the source (centre square, black padding, or a face crop whose
box stays put while the head moves inside it), its keypoints smoothed over the
last few frames, and its motion transferred relative to a reference frame:

* "first": the first frame animated (re-taken on request: `retake_reference()`);
* "auto": during the first `auto_frames` frames the reference is the frame whose
  normalised keypoints best match the source's pose so far, then it stays.
"""

import threading

import numpy as np

from fomm_tf.animation import best_frame
from fomm_tf.animation import framing as framing_lib
from fomm_tf.inference import pipeline
from fomm_tf.inference import smoothing

REFERENCES = ("first", "auto")
# Face box of a live camera: re-detected every this many frames; moved only when the new head box's centre is
# off by more than DRIFT x its side or its side differs by more than DRIFT, so the crop does not shake.
REDETECT_EVERY = 15
DRIFT = 0.15


class StableFaceBox:
  """A head box for a stream of camera frames that moves only when the head has really moved."""

  def __init__(self, every=REDETECT_EVERY, drift=DRIFT):
    from fomm_tf import faces  # pylint: disable=import-outside-toplevel
    self._faces = faces
    self.every = every
    self.drift = drift
    self.placement = None
    self._count = 0

  def update(self, frame):
    """The placement for `frame` (None until a face has been seen)."""
    due = self.placement is None or self._count % self.every == 0
    self._count += 1
    if not due:
      return self.placement
    found = self._faces.detect_faces(frame, max_faces=1)
    if not found:
      return self.placement
    new = self._faces.head_box(found[0].box, frame.shape[:2])
    old = self.placement
    if old is None or max(abs(new.x0 + new.side / 2 - old.x0 - old.side / 2),
                          abs(new.y0 + new.side / 2 - old.y0 - old.side / 2)) > self.drift * old.side \
        or abs(new.side - old.side) > self.drift * old.side:
      self.placement = new
    return self.placement


class LiveAnimator:
  """Animates `source_image` with frames given one at a time; thread-safe (one frame at a time).

  Args:
    backend: an inference Backend.
    source_image: the photo, float (H, W, 3) in [0, 1].
    crop: "center", "pad" or "face" (the photo's face, and a stable face box in the camera frames).
    relative / adapt_scale: motion transfer as in animate.
    reference: "first" or "auto" (see the module doc); auto_frames: how long "auto" looks.
    smooth: average the camera keypoints over this many frames (1: off).
    paste_back: return the whole photo with the animated head pasted in (crop="face" only).
  """

  def __init__(self,
               backend,
               source_image,
               crop="center",
               relative=True,
               adapt_scale=False,
               reference="first",
               auto_frames=50,
               smooth=1,
               paste_back=False,
               max_output_size=1024):
    if reference not in REFERENCES:
      raise ValueError(f"reference must be one of {REFERENCES}, got {reference!r}")
    if crop not in framing_lib.CROPS:
      raise ValueError(f"crop must be one of {framing_lib.CROPS}, got {crop!r}")
    self.backend = backend
    self.size = backend.frame_shape[0]
    self.relative = relative
    self.adapt_scale = adapt_scale
    self.reference = reference
    self.auto_frames = auto_frames
    self._lock = threading.Lock()
    self._smoother = smoothing.KeypointSmoother(smooth)
    self._paste = None
    if crop == "face":
      from fomm_tf import faces  # pylint: disable=import-outside-toplevel
      face = faces.choose_face(faces.detect_faces(source_image), 0, "the source image")
      placement = faces.head_box(face.box, source_image.shape[:2])
      source = faces.crop_square(source_image, placement, self.size)[0]
      self._camera_box = StableFaceBox()
      if paste_back:
        self._paste = faces.PasteBack(source_image, placement, max_output_size)
    else:
      fit = "pad" if crop == "pad" else "crop"
      source = pipeline.prepare_frame(source_image, self.size, fit)
      self._camera_box = None
      self._fit = fit
    self.source = source
    self._state = backend.prepare_source(source[np.newaxis])
    self._kp_source = backend.detect_keypoints(source[np.newaxis])
    self._source_pose = best_frame.normalized_pose(self._kp_source["value"][0])
    self._kp_reference = None
    self._reference_distance = np.inf
    self.frames_animated = 0
    # The first call of a backend traces or allocates its graphs (seconds with Keras): done before the camera
    # starts, so the first camera frames are not held up.
    self.backend.normalize_kp(self._kp_source,
                              self._kp_source,
                              self._kp_source,
                              adapt_movement_scale=adapt_scale,
                              use_relative_movement=relative,
                              use_relative_jacobian=relative)
    self.backend.generate(self._state, self._kp_source, self._kp_source)

  def retake_reference(self):
    """The next frame becomes the reference (its pose then means "the source as it is")."""
    with self._lock:
      self._kp_reference = None
      self._reference_distance = np.inf
      self.frames_animated = 0

  def frame_input(self, frame):
    """The camera frame as the model sees it: (size, size, 3) float32."""
    frame = np.asarray(frame)
    if frame.dtype == np.uint8:
      frame = frame.astype(np.float32) / 255.0
    if self._camera_box is None:
      return pipeline.prepare_frame(frame, self.size, self._fit)
    placement = self._camera_box.update(frame)
    if placement is None:
      return pipeline.prepare_frame(frame, self.size, "crop")
    from fomm_tf import faces  # pylint: disable=import-outside-toplevel
    return faces.crop_square(frame, placement, self.size)[0]

  def __call__(self, frame):
    """The animated picture for one camera frame: float32 (size, size, 3), or the pasted photo."""
    driving = self.frame_input(frame)[np.newaxis]
    with self._lock:
      kp = self._smoother(self.backend.detect_keypoints(driving))
      if self._kp_reference is None or (self.reference == "auto" and self.frames_animated < self.auto_frames):
        distance = float(np.sum((best_frame.normalized_pose(kp["value"][0]) - self._source_pose)**2))
        if self._kp_reference is None or distance < self._reference_distance:
          self._kp_reference, self._reference_distance = kp, distance
      kp_norm = self.backend.normalize_kp(self._kp_source,
                                          kp,
                                          self._kp_reference,
                                          adapt_movement_scale=self.adapt_scale,
                                          use_relative_movement=self.relative,
                                          use_relative_jacobian=self.relative)
      prediction = np.clip(self.backend.generate(self._state, self._kp_source, kp_norm)[0], 0.0, 1.0)
      self.frames_animated += 1
    return self._paste(prediction) if self._paste is not None else prediction
