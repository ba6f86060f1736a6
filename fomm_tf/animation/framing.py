"""How a source photo and driving frames become the square inputs a model was trained on (`--crop`).

* center: the centred square of the short side (never a stretch);
* pad: the whole picture on a black square;
* face: the VoxCeleb-style head square around the chosen face of the photo, and
  one head square for the whole driving video (found in a first streaming pass,
  so the head moves inside the crop as in the training clips); the photo's
  square is where `--paste_back` puts the animation back.
"""

import numpy as np

from fomm_tf.inference import pipeline

CROPS = ("center", "pad", "face")
# fit_frame's name for each framing that needs no detector.
_FIT = {"center": "crop", "pad": "pad"}


class Framing:
  """Square model inputs from full pictures: `source(image, size)` and `driving(frame, size)`."""

  source_placement = None  # Where the source crop lies in the photo (face framing).
  best_frame = None  # The driving frame whose face pose is closest to the source's (face framing, when asked).

  def __init__(self, crop="center"):
    if crop not in _FIT:
      raise ValueError(f"crop must be one of {', '.join(_FIT)}, got {crop!r}")
    self.crop = crop

  def source(self, image, size):
    return pipeline.prepare_frame(image, size, _FIT[self.crop])

  def driving(self, frame, size):
    return pipeline.prepare_frame(frame, size, _FIT[self.crop])

  def preview_boxes(self):
    """(source box, driving box) as (x0, y0, x1, y1) in each picture's pixels, or None when not a face crop."""
    return None


class FaceFraming(Framing):
  """Head crops of the source photo and of the driving video (see the module doc).

  Args:
    source_image: the full photo, float (H, W, 3) in [0, 1].
    video: the driving video (a media.VideoSource); read once here, frame by frame.
    face_index: which face of the photo, largest first.
    source_name: what to call the photo in messages.
    find_best_frame: also find the driving frame whose normalised face landmarks are closest to the photo's.
    log: called with one line per thing the user should know (faces found, warnings about the video).
  """

  def __init__(self, source_image, video, face_index=0, source_name="the source image", find_best_frame=False,
               log=print):
    super().__init__("center")
    from fomm_tf import faces  # pylint: disable=import-outside-toplevel
    self.crop = "face"
    found = faces.detect_faces(source_image)
    face = faces.choose_face(found, face_index, source_name)
    if len(found) > 1:
      log(f"{source_name}: found {len(found)} faces; animating face {face_index} "
          f"({'the largest' if face_index == 0 else 'by size'}; --face_index=N picks another)")
    self.source_placement = faces.head_box(face.box, source_image.shape[:2])
    detect = faces.detect_faces
    if find_best_frame:
      target = faces.normalized_landmarks(face.landmarks)
      self._best = (None, np.inf)
      counter = iter(range(1 << 62))

      def detect(frame):
        index = next(counter)
        found_here = faces.detect_faces(frame, max_faces=1)
        if found_here:
          distance = float(np.sum((faces.normalized_landmarks(found_here[0].landmarks) - target) ** 2))
          if distance < self._best[1]:
            self._best = (index, distance)
        return found_here

    self.video_placement, self.report = faces.video_head_box(video, video.frame_size, detect=detect,
                                                             name=video.path)
    for warning in self.report.warnings:
      log(f"warning: {video.path}: {warning}")
    if find_best_frame:
      self.best_frame = self._best[0]

  def source(self, image, size):
    from fomm_tf import faces  # pylint: disable=import-outside-toplevel
    return faces.crop_square(image, self.source_placement, size)[0]

  def driving(self, frame, size):
    from fomm_tf import faces  # pylint: disable=import-outside-toplevel
    return faces.crop_square(frame, self.video_placement, size)[0]

  def preview_boxes(self):
    return self.source_placement.box, self.video_placement.box


def make_framing(crop, source_image, video, face_index=0, source_name="the source image", find_best_frame=False,
                 log=print):
  """The Framing for `--crop` (center, pad or face)."""
  if crop not in CROPS:
    raise ValueError(f"crop must be one of {', '.join(CROPS)}, got {crop!r}")
  if crop == "face":
    return FaceFraming(source_image, video, face_index, source_name, find_best_frame, log)
  return Framing(crop)


def preview(framing, source_image, video, path, num_driving=3, height=256):
  """Writes a PNG: the photo and `num_driving` driving frames (evenly spaced), each with its crop box drawn."""
  from PIL import Image  # pylint: disable=import-outside-toplevel
  from PIL import ImageDraw  # pylint: disable=import-outside-toplevel
  from fomm_tf.errors import MediaError  # pylint: disable=import-outside-toplevel
  from fomm_tf.io import files  # pylint: disable=import-outside-toplevel
  total = video.num_frames
  wanted = set(np.linspace(0, total - 1, num_driving).round().astype(int).tolist()) if total else {0}
  pictures = [source_image]
  for index, frame in enumerate(video):
    if index in wanted:
      pictures.append(frame)
    if len(pictures) > len(wanted):
      break
  boxes = framing.preview_boxes()
  panels = []
  for i, picture in enumerate(pictures):
    h, w = picture.shape[:2]
    box = None
    if boxes is not None:
      box = boxes[0] if i == 0 else boxes[1]
    elif framing.crop == "center":
      side = min(h, w)
      box = ((w - side) // 2, (h - side) // 2, (w - side) // 2 + side, (h - side) // 2 + side)
    scale = height / h
    image = Image.fromarray((np.clip(picture, 0, 1) * 255 + 0.5).astype(np.uint8)).resize(
        (max(1, round(w * scale)), height))
    if box is not None:
      ImageDraw.Draw(image).rectangle([round(c * scale) for c in box], outline=(255, 40, 40), width=3)
    panels.append(np.asarray(image))
  strip = np.concatenate([np.pad(p, ((0, 0), (0, 8), (0, 0)), constant_values=255) for p in panels], axis=1)
  with files.atomic_file(path, MediaError, suffix=".png") as temp:
    Image.fromarray(strip).save(temp, format="PNG")
  return path
