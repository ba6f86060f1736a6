"""VoxCeleb-style head crops: the square around a face box, cut out at the model's size, and which face to use.

VoxCeleb frames (as FOMM's vox-256 was trained on) show the whole head and a
little neck and shoulders, the face (brow to chin, cheek to cheek) filling about
half the crop's width. `head_box` reproduces that from the landmark box of
`detect.Face`: a square of `HEAD_MARGIN` x the longer side of the face box,
centred `HEAD_LIFT` x the face height above the face box's centre, so the hair
fits above and the chin is well inside.
"""

import dataclasses

import numpy as np

from fomm_tf import checks
from fomm_tf.errors import FaceError
from fomm_tf.errors import UsageError
from fomm_tf.faces import sampling
from fomm_tf.io import media

# On the astronaut (landmark box 95 x 108 px): a 205 px square, the face 46% of its width, the top of the hair
# 4% of the side below the top edge, the chin at 81% of the height, the suit's collar along the bottom, as in
# VoxCeleb crops. 1.7 cuts the hair; 2.1 makes the face 42% wide, smaller than VoxCeleb's.
HEAD_MARGIN = 1.9
HEAD_LIFT = 0.1
BORDERS = ("pad", "clip")
# Faces whose landmark box is smaller than this (its longer side, in photo pixels) are skipped by `choose_faces`:
# their head square (1.9 x the face) would be under ~90 px, enlarged to the model's 256 px it is mostly blur and
# JPEG blocks, and FOMM's keypoints were never trained on anything like it.
MIN_FACE_SIDE = 48
# At most this many faces animated at once: each holds its encoded source (a few MB at 256 px) and its blend
# weights for the whole video, so a crowd photo must not grow memory without bound.
MAX_FACES = 32


@dataclasses.dataclass(frozen=True)
class Placement:
  """A square of a source image, in its integer pixels: where a crop came from and where its animation goes back.

  Attributes:
    x0, y0: the top-left pixel (may be negative: the square may extend past the image).
    side: the square's side in pixels.
    image_size: (height, width) of the source image.
  """
  x0: int
  y0: int
  side: int
  image_size: tuple

  @property
  def box(self):
    """(x0, y0, x1, y1), x1 and y1 exclusive."""
    return (self.x0, self.y0, self.x0 + self.side, self.y0 + self.side)

  @property
  def inside(self):
    """Whether the square lies within the image."""
    height, width = self.image_size
    return self.x0 >= 0 and self.y0 >= 0 and self.x0 + self.side <= width and self.y0 + self.side <= height

  def to_image(self, points, crop_size):
    """Points (..., 2) in the pixels of a crop_size crop, mapped to the source image's pixels."""
    return np.asarray(points, np.float64) * (self.side / crop_size) + (self.x0, self.y0)

  def to_crop(self, points, crop_size):
    """Points (..., 2) in the source image's pixels, mapped to the pixels of a crop_size crop."""
    return (np.asarray(points, np.float64) - (self.x0, self.y0)) * (crop_size / self.side)


def _check_image_size(image_size):
  if len(image_size) != 2 or not all(checks.is_positive_int(s) for s in image_size):
    raise ValueError(f"image_size must be (height, width) of positive integers, got {image_size!r}")
  return (int(image_size[0]), int(image_size[1]))


def head_box(face_box, image_size, margin=HEAD_MARGIN, lift=HEAD_LIFT):
  """The VoxCeleb-style square around a face.

  Args:
    face_box: (x0, y0, x1, y1) of the face in image pixels (`Face.box`, or an aggregate over video frames).
    image_size: (height, width) of the image.
    margin: the square's side in multiples of the face box's longer side.
    lift: how far the square's centre lies above the face box's centre, in multiples of the face box's height.

  Returns:
    A `Placement` rounded to whole pixels; it may extend past the image (see `crop_square`).
  """
  image_size = _check_image_size(image_size)
  x0, y0, x1, y1 = (float(v) for v in face_box)
  if not (x1 > x0 and y1 > y0 and checks.is_number(margin) and margin > 0 and checks.is_number(lift)):
    raise ValueError(f"head box: needs a face box of positive size and margin > 0, got {face_box}, {margin}")
  side = max(1, int(round(margin * max(x1 - x0, y1 - y0))))
  centre_x, centre_y = (x0 + x1) / 2.0, (y0 + y1) / 2.0 - lift * (y1 - y0)
  return Placement(int(round(centre_x - side / 2.0)), int(round(centre_y - side / 2.0)), side, image_size)


def clip_placement(placement):
  """The placement moved inside its image, shrunk about its centre to the image's shorter side if larger."""
  height, width = placement.image_size
  side = min(placement.side, height, width)
  shrink = (placement.side - side) // 2
  x0 = min(max(placement.x0 + shrink, 0), width - side)
  y0 = min(max(placement.y0 + shrink, 0), height - side)
  return Placement(x0, y0, side, placement.image_size)


def crop_square(image, box, size, border="pad"):
  """Cuts a square out of an image and resizes it to size x size (area averaging down, bilinear up).

  Args:
    image: RGB (H, W, 3), float in [0, 1] (as `media.read_image` returns) or uint8.
    box: a `Placement`, or (x0, y0, side) in the image's pixels.
    size: the side of the result (the model's input size).
    border: where the square extends past the image: "pad" keeps the square and fills the missing part by
      repeating the image's edge pixels, so the face keeps its place and scale in the crop (black would add
      hard edges that VoxCeleb crops never have, and the keypoint detector and generator react to); "clip"
      moves the square inside the image, shrinking it to the image's shorter side if needed, so every crop
      pixel is real (the face is then off centre, or tighter).

  Returns:
    (crop, placement): float32 (size, size, 3), and the `Placement` the crop shows (for `paste.PasteBack`).
  """
  image = sampling.check_rgb(image)
  if border not in BORDERS:
    raise ValueError(f"border must be one of {BORDERS}, got {border!r}")
  if not checks.is_positive_int(size):
    raise ValueError(f"size must be a positive integer, got {size!r}")
  if not isinstance(box, Placement):
    x0, y0, side = box
    box = Placement(int(x0), int(y0), int(side), image.shape[:2])
  elif box.image_size != image.shape[:2]:
    raise ValueError(f"the placement is for a {box.image_size} image, got {image.shape[:2]}")
  if box.side < 1:
    raise ValueError(f"the square's side must be positive, got {box.side}")
  placement = clip_placement(box) if border == "clip" else box
  x0, y0, x1, y1 = placement.box
  if placement.inside:
    square = image[y0:y1, x0:x1]
  else:  # Clipped indices repeat the edge pixels where the square leaves the image.
    height, width = image.shape[:2]
    square = image[np.clip(np.arange(y0, y1), 0, height - 1)[:, None], np.clip(np.arange(x0, x1), 0, width - 1)]
  return media.resize_frame(sampling.to_unit_float(square), (size, size)), placement


def choose_face(faces, index=0, what="the image"):
  """faces[index] of a list of faces (largest first), or a FaceError naming how many there are.

  Raises:
    FaceError: no face, or `index` out of range.
  """
  if not checks.is_non_negative_int(index):
    raise ValueError(f"face index must be a non-negative integer, got {index!r}")
  if not faces:
    raise no_face_error(what)
  if index >= len(faces):
    count = f"{len(faces)} face" + ("s" if len(faces) > 1 else "")
    raise FaceError(f"face index {index} is out of range: {what} has {count} (indices 0 to {len(faces) - 1}, "
                    f"largest first)")
  return faces[index]


def no_face_error(what):
  """The FaceError of a photo with no face (to animate)."""
  return FaceError(f"no face found in {what}; use --crop=center to animate the whole picture")


def choose_faces(faces, indices="all", what="the image", min_side=MIN_FACE_SIDE, max_faces=MAX_FACES):
  """The faces to animate of a group photo: those asked for, less those too small for the model.

  Args:
    faces: the photo's faces, largest first (`detect.detect_faces`).
    indices: "all", or a sequence of indices into `faces` (largest first, as --face_index counts); a repeated
      index counts once.
    what: what to call the photo in messages.
    min_side: faces whose box's longer side is under this many pixels are skipped.
    max_faces: more faces than this to animate is a UsageError.

  Returns:
    (chosen, skipped): lists of (index, Face) in the order asked; `chosen` may be empty (every face asked for
    too small: the caller warns about `skipped`, then raises `no_face_error`).

  Raises:
    UsageError: an index out of range (the message names it and the count), or more than `max_faces` faces.
    FaceError: the photo has no face (the same line as `choose_face`).
  """
  if not faces:
    raise no_face_error(what)
  if indices == "all":
    indices = range(len(faces))
  wanted = []
  for index in indices:
    if not checks.is_non_negative_int(index):
      raise ValueError(f"face indices must be non-negative integers, got {index!r}")
    if index >= len(faces):
      count = f"{len(faces)} face" + ("s" if len(faces) > 1 else "")
      raise UsageError(f"--faces: face index {index} is out of range: {what} has {count} (indices 0 to "
                       f"{len(faces) - 1}, largest first)")
    if index not in wanted:
      wanted.append(index)
  chosen = [(i, faces[i]) for i in wanted if max(faces[i].width, faces[i].height) >= min_side]
  skipped = [(i, faces[i]) for i in wanted if max(faces[i].width, faces[i].height) < min_side]
  if len(chosen) > max_faces:
    raise UsageError(f"--faces: {len(chosen)} faces of {what} to animate, more than the {max_faces} animated at "
                     f"once; name at most {max_faces} indices (largest first)")
  return chosen, skipped
