"""How a source photo and driving frames become the square inputs a model was trained on (`--crop`).

* center: the centred square of the short side (never a stretch);
* pad: the whole picture on a black square;
* face: the VoxCeleb-style head square around the chosen face of the photo, and
  one head square for the whole driving video (found in a first streaming pass,
  so the head moves inside the crop as in the training clips); the photo's
  square is where `--paste_back` puts the animation back. With `faces` (a
  group photo, `--faces`) one square per chosen face, all driven by the same
  driving square.
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
  group = False  # Several faces of a group photo (face framing with `faces`).

  def __init__(self, crop="center"):
    if crop not in _FIT:
      raise ValueError(f"crop must be one of {', '.join(_FIT)}, got {crop!r}")
    self.crop = crop

  def source(self, image, size):
    return pipeline.prepare_frame(image, size, _FIT[self.crop])

  def driving(self, frame, size):
    return pipeline.prepare_frame(frame, size, _FIT[self.crop])

  def preview_boxes(self):
    """([source boxes], driving box), each (x0, y0, x1, y1) in its picture's pixels, or None when not a face crop."""
    return None


class FaceFraming(Framing):
  """Head crops of the source photo and of the driving video (see the module doc).

  Args:
    source_image: the full photo, float (H, W, 3) in [0, 1].
    video: the driving video (a media.VideoSource); read once here, frame by frame.
    face_index: which face of the photo, largest first.
    source_name: what to call the photo in messages.
    faces: None for the one face `face_index`; "all" or a sequence of indices (largest first) for several:
      faces smaller than faces.MIN_FACE_SIDE are then skipped with a warning (`face_indices` lists those kept,
      `source_placements` their squares; `source_placement` is the first's).
    find_best_frame: also find the driving frame whose normalised face landmarks are closest to the photo's.
    log: called with one line per thing the user should know (faces found, warnings about the video).
  """

  def __init__(self,
               source_image,
               video,
               face_index=0,
               source_name="the source image",
               find_best_frame=False,
               log=print,
               faces=None):
    super().__init__("center")
    from fomm_tf import faces as faces_lib  # pylint: disable=import-outside-toplevel
    self.crop = "face"
    found = faces_lib.detect_faces(source_image)
    if faces is None:
      chosen = [(face_index, faces_lib.choose_face(found, face_index, source_name))]
      if len(found) > 1:
        log(f"{source_name}: found {len(found)} faces; animating face {face_index} "
            f"({'the largest' if face_index == 0 else 'by size'}; --face_index=N picks another)")
    else:
      chosen, skipped = faces_lib.choose_faces(found, faces, source_name)
      for index, face in skipped:
        box = ", ".join(f"{v:.0f}" for v in face.box)
        log(f"warning: {source_name}: skipping face {index} at ({box}): {max(face.width, face.height):.0f} px, "
            f"under the {faces_lib.MIN_FACE_SIDE} px a face needs to be animated")
      if not chosen:
        raise faces_lib.no_face_error(source_name)
      log(f"{source_name}: found {len(found)} face{'s' if len(found) > 1 else ''}; animating "
          f"{'face' if len(chosen) == 1 else 'faces'} {', '.join(str(i) for i, _ in chosen)}")
    self.group = faces is not None  # Built for --faces: the preview numbers its boxes.
    self.face_indices = [index for index, _ in chosen]
    self.source_placements = [faces_lib.head_box(face.box, source_image.shape[:2]) for _, face in chosen]
    self.source_placement = self.source_placements[0]
    detect = faces_lib.detect_faces
    if find_best_frame:  # The pose of the first (largest) chosen face.
      target = faces_lib.normalized_landmarks(chosen[0][1].landmarks)
      self._best = (None, np.inf)
      counter = iter(range(1 << 62))

      def detect(frame):
        index = next(counter)
        found_here = faces_lib.detect_faces(frame, max_faces=1)
        if found_here:
          distance = float(np.sum((faces_lib.normalized_landmarks(found_here[0].landmarks) - target)**2))
          if distance < self._best[1]:
            self._best = (index, distance)
        return found_here

    self.video_placement, self.report = faces_lib.video_head_box(video,
                                                                 video.frame_size,
                                                                 detect=detect,
                                                                 name=video.path)
    for warning in self.report.warnings:
      log(f"warning: {video.path}: {warning}")
    if find_best_frame:
      self.best_frame = self._best[0]

  def source(self, image, size):
    from fomm_tf import faces  # pylint: disable=import-outside-toplevel
    return faces.crop_square(image, self.source_placement, size)[0]

  def sources(self, image, size):
    """(F, size, size, 3): the crop of every chosen face, in `face_indices` order."""
    from fomm_tf import faces  # pylint: disable=import-outside-toplevel
    return np.stack([faces.crop_square(image, placement, size)[0] for placement in self.source_placements])

  def driving(self, frame, size):
    from fomm_tf import faces  # pylint: disable=import-outside-toplevel
    return faces.crop_square(frame, self.video_placement, size)[0]

  def preview_boxes(self):
    return [p.box for p in self.source_placements], self.video_placement.box


def make_framing(crop,
                 source_image,
                 video,
                 face_index=0,
                 source_name="the source image",
                 find_best_frame=False,
                 log=print,
                 faces=None):
  """The Framing for `--crop` (center, pad or face); `faces` (face crop only): see FaceFraming."""
  if crop not in CROPS:
    raise ValueError(f"crop must be one of {', '.join(CROPS)}, got {crop!r}")
  if crop == "face":
    return FaceFraming(source_image, video, face_index, source_name, find_best_frame, log, faces)
  if faces is not None:
    raise ValueError("faces needs the face crop")
  return Framing(crop)


def preview(framing, source_image, video, path, num_driving=3, height=256):
  """Writes a PNG: the photo and `num_driving` driving frames (evenly spaced), each with its crop box drawn (every
  chosen face's, numbered, on the photo of a group)."""
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
  # For --faces each photo box is labelled with its face index (largest first, as --faces counts).
  labels = framing.face_indices if framing.group else []
  panels = []
  for i, picture in enumerate(pictures):
    h, w = picture.shape[:2]
    drawn = []
    if boxes is not None:
      drawn = boxes[0] if i == 0 else [boxes[1]]
    elif framing.crop == "center":
      side = min(h, w)
      drawn = [((w - side) // 2, (h - side) // 2, (w - side) // 2 + side, (h - side) // 2 + side)]
    scale = height / h
    image = Image.fromarray((np.clip(picture, 0, 1) * 255 + 0.5).astype(np.uint8)).resize(
        (max(1, round(w * scale)), height))
    draw = ImageDraw.Draw(image)
    for box in drawn:
      draw.rectangle([round(c * scale) for c in box], outline=(255, 40, 40), width=3)
    if i == 0:
      for box, label in zip(drawn, labels):
        x, y = max(0, round(box[0] * scale) + 5), max(0, round(box[1] * scale) + 4)
        draw.text((x, y), str(label), fill=(255, 40, 40), stroke_width=2, stroke_fill=(255, 255, 255), font_size=20)
    panels.append(np.asarray(image))
  strip = np.concatenate([np.pad(p, ((0, 0), (0, 8), (0, 0)), constant_values=255) for p in panels], axis=1)
  with files.atomic_file(path, MediaError, suffix=".png") as temp:
    Image.fromarray(strip).save(temp, format="PNG")
  return path
