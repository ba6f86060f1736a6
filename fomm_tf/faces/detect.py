"""Face detection (MediaPipe BlazeFace) and the 468-point MediaPipe face mesh, run with LiteRT.

Pre- and post-processing follow MediaPipe's graphs (face_detection_*_common,
face_landmark_front_cpu):

* Detection: the whole image is letterboxed into the model's square input
  (192 px for the full-range model, 128 px short range), RGB in [-1, 1]; each
  SSD anchor predicts a box (centre offset, size) in input pixels and six
  keypoints (the subject's right eye, left eye, nose tip, mouth, right and left
  ear); sigmoid scores >= 0.5 are kept and merged by weighted non-max
  suppression (IoU 0.3).
* Mesh: a square of 1.5 x the longer box side around the box centre, rotated so
  that the eyes are level, is resampled to 192 x 192, RGB in [0, 1]; the model
  gives 468 (x, y, z) points in that square and a face-presence score.

Every detection is checked by the mesh: detections whose presence score is
<= 0.5 are dropped (BlazeFace fires on cats and mugs; the mesh does not). The
face box reported is the extent of the mesh points, not the detector's box: the
detector's box is off by up to ~25 px on a 95 px face at some positions in
wide frames, while the mesh lands on the same pixels wherever the face is.
"""

import dataclasses
import math
import os
import threading

from ai_edge_litert.interpreter import Interpreter
import numpy as np

from fomm_tf import checks
from fomm_tf.errors import FaceError
from fomm_tf.errors import one_line
from fomm_tf.faces import landmarks as landmarks_lib
from fomm_tf.faces import models
from fomm_tf.faces import sampling

NUM_LANDMARKS = 468

MIN_SCORE = 0.5
NMS_IOU = 0.3
MIN_PRESENCE = 0.5
# The mesh's input square, in multiples of the longer side of the detector's box.
MESH_ROI_SCALE = 1.5


@dataclasses.dataclass(frozen=True)
class _DetectorModel:
  file_name: str
  strides: tuple  # of the SSD feature maps
  anchors_per_cell: tuple  # one entry per feature map


# Full range finds faces down to ~1/17 of the image's longer side (74 px wide in a 1280x720 frame; 65 px ones are
# missed); short range (faster) misses faces below ~1/8 of it, such as the astronaut in a 1280x720 frame.
DETECTOR_MODELS = {
    "full": _DetectorModel(models.FULL_RANGE_DETECTOR, (4,), (1,)),
    "short": _DetectorModel(models.SHORT_RANGE_DETECTOR, (8, 16, 16, 16), (2, 2, 2, 2)),
}


@dataclasses.dataclass(frozen=True, eq=False)
class Face:
  """One face in an image, in that image's pixels (continuous coordinates: pixel (i, j) covers [j, j+1) x [i, i+1)).

  Attributes:
    box: (x0, y0, x1, y1) floats, the extent of the landmarks (brow to chin, cheek to cheek; may extend past
      the image when the face does).
    score: the detector's confidence, in (0.5, 1].
    landmarks: float32 (468, 2) (x, y) of the MediaPipe face mesh (see `landmarks.py` for named indices).
  """
  box: tuple
  score: float
  landmarks: np.ndarray

  @property
  def width(self):
    return self.box[2] - self.box[0]

  @property
  def height(self):
    return self.box[3] - self.box[1]

  @property
  def center(self):
    return ((self.box[0] + self.box[2]) / 2.0, (self.box[1] + self.box[3]) / 2.0)

  @property
  def area(self):
    return self.width * self.height


def ssd_anchors(input_size, strides, anchors_per_cell):
  """(A, 2) anchor centres in [0, 1], in MediaPipe's order (feature map, row, column, anchor)."""
  centres = []
  for stride, count in zip(strides, anchors_per_cell):
    cells = int(math.ceil(input_size / stride))
    grid = (np.arange(cells) + 0.5) / cells
    ys, xs = np.meshgrid(grid, grid, indexing="ij")
    centres.append(np.repeat(np.stack([xs.ravel(), ys.ravel()], axis=1), count, axis=0))
  return np.concatenate(centres)


def box_iou(box, boxes):
  """IoU of one (4,) box with each of (N, 4) boxes, all (x0, y0, x1, y1)."""
  x0 = np.maximum(box[0], boxes[:, 0])
  y0 = np.maximum(box[1], boxes[:, 1])
  x1 = np.minimum(box[2], boxes[:, 2])
  y1 = np.minimum(box[3], boxes[:, 3])
  inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
  union = (box[2] - box[0]) * (box[3] - box[1]) + (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]) - inter
  return inter / np.maximum(union, 1e-12)


def weighted_nms(boxes, keypoints, scores, iou_threshold):
  """MediaPipe's weighted non-max suppression: [(box, score, keypoints)], best score first.

  The best remaining detection absorbs every detection overlapping it by more
  than `iou_threshold`; the merged box and keypoints are their score-weighted
  mean, the score is the best one's.
  """
  order = np.argsort(-scores, kind="stable")
  merged = []
  while order.size:
    overlap = box_iou(boxes[order[0]], boxes[order])
    group = order[overlap > iou_threshold]
    if group.size == 0:  # A degenerate box overlaps nothing, not even itself.
      group = order[:1]
    weights = scores[group] / scores[group].sum()
    merged.append((weights @ boxes[group], float(scores[order[0]]), np.tensordot(weights, keypoints[group], axes=1)))
    order = order[(overlap <= iou_threshold) & (order != order[0])]
  return merged


class _Model:
  """One .tflite model in a LiteRT interpreter: its input side and output tensors (found by size, since the
  models' output names differ between versions)."""

  def __init__(self, file_name, num_threads):
    path = os.path.join(models.require(), file_name)
    try:
      self.interpreter = Interpreter(model_path=path, num_threads=num_threads)
      self.interpreter.allocate_tensors()
    except (ValueError, RuntimeError) as error:
      raise FaceError(f"{path}: cannot load the face model: {one_line(error)}") from error
    details = self.interpreter.get_input_details()[0]
    self.input_index = details["index"]
    self.input_size = int(details["shape"][1])
    self._outputs = {int(np.prod(o["shape"])): o["index"] for o in self.interpreter.get_output_details()}

  def output(self, size):
    """The index of the output tensor with `size` elements."""
    return self._outputs[size]

  def run(self, tensor, output_indices):
    """The outputs for one input tensor; the caller serialises calls (an interpreter holds its tensors)."""
    self.interpreter.set_tensor(self.input_index, tensor[None])
    self.interpreter.invoke()
    return [self.interpreter.get_tensor(index) for index in output_indices]


def _sigmoid(logits):
  return 1.0 / (1.0 + np.exp(-np.clip(logits, -80.0, 80.0)))


class FaceDetector:
  """BlazeFace detection plus the face mesh, on LiteRT; safe to share between threads.

  Args:
    model: "full" (full-range BlazeFace, 192 px; the default, finds small faces too) or "short"
      (short-range, 128 px; ~3x faster, for close-ups such as webcam frames).
    num_threads: CPU threads of each LiteRT interpreter.
    min_score: detections scoring below this are dropped.
    min_presence: faces whose mesh presence score is at most this are dropped (false detections).

  Raises:
    FaceError: the face models are not installed, or cannot be loaded.
  """

  def __init__(self, model="full", num_threads=1, min_score=MIN_SCORE, min_presence=MIN_PRESENCE):
    if model not in DETECTOR_MODELS:
      raise ValueError(f"face detector model must be one of {sorted(DETECTOR_MODELS)}, got {model!r}")
    if not checks.is_positive_int(num_threads):
      raise ValueError(f"num_threads must be a positive integer, got {num_threads!r}")
    spec = DETECTOR_MODELS[model]
    self.min_score = float(min_score)
    self.min_presence = float(min_presence)
    self._detector = _Model(spec.file_name, num_threads)
    self._mesh = _Model(models.FACE_MESH, num_threads)
    self._anchors = ssd_anchors(self._detector.input_size, spec.strides, spec.anchors_per_cell)
    self._detector_outputs = (self._detector.output(len(self._anchors) * 16), self._detector.output(len(self._anchors)))
    self._mesh_outputs = (self._mesh.output(NUM_LANDMARKS * 3), self._mesh.output(1))
    # Both interpreters hold their tensors between set_tensor and get_tensor: one caller at a time.
    self._lock = threading.Lock()

  def _run(self, model, tensor, output_indices):
    with self._lock:
      return model.run(tensor, output_indices)

  def detect(self, image, max_faces=None):
    """The faces in an image, largest (box area) first.

    Args:
      image: RGB (H, W, 3), uint8 or float in [0, 1], of any size and aspect ratio.
      max_faces: keep at most this many (the largest); None keeps all.

    Returns:
      A list of `Face`, empty when there is none.
    """
    image = sampling.check_rgb(image)
    if max_faces is not None and not checks.is_positive_int(max_faces):
      raise ValueError(f"max_faces must be a positive integer or None, got {max_faces!r}")
    faces = [self._mesh_face(image, *detection) for detection in self._detections(image)]
    faces = sorted((face for face in faces if face is not None), key=lambda face: -face.area)
    return faces[:max_faces]

  def _detections(self, image):
    """[(box (4,), score, keypoints (6, 2))] in image pixels, after weighted NMS."""
    height, width = image.shape[:2]
    size = self._detector.input_size
    side = float(max(height, width))
    pad_x, pad_y = (side - width) / 2.0, (side - height) / 2.0
    letterbox = np.array([[side / size, 0.0, -pad_x], [0.0, side / size, -pad_y]])
    tensor = sampling.warp(image, letterbox, size) * np.float32(2.0) - np.float32(1.0)
    raw, logits = self._run(self._detector, tensor, self._detector_outputs)
    scores = _sigmoid(logits.reshape(-1).astype(np.float64))
    keep = scores >= self.min_score
    if not keep.any():
      return []
    points = raw.reshape(-1, 8, 2)[keep].astype(np.float64) / size  # [centre offset, size, 6 keypoints]
    anchors = self._anchors[keep][:, None, :]
    centres, half_sizes = points[:, 0] + anchors[:, 0], points[:, 1] / 2.0
    boxes = np.concatenate([centres - half_sizes, centres + half_sizes], axis=1)
    keypoints = points[:, 2:] + anchors
    valid = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
    offset = np.array([pad_x, pad_y])
    merged = weighted_nms(boxes[valid], keypoints[valid], scores[keep][valid], NMS_IOU)
    return [(box * side - np.tile(offset, 2), score, kps * side - offset) for box, score, kps in merged]

  def _mesh_face(self, image, box, score, keypoints):
    """The `Face` of one detection, or None when the mesh sees no face there."""
    landmarks, presence = self._mesh_landmarks(image, self._mesh_roi(box, keypoints[0], keypoints[1]))
    if presence <= self.min_presence:
      return None
    # The mesh's output depends a little on where the face sits in its input square; the detector's box can be
    # off by a quarter of the face, so the square is placed again from the mesh itself (as MediaPipe's tracking
    # does from frame to frame) and the mesh run once more.
    roi = self._mesh_roi(np.concatenate([landmarks.min(axis=0), landmarks.max(axis=0)]),
                         landmarks[landmarks_lib.RIGHT_EYE_OUTER], landmarks[landmarks_lib.LEFT_EYE_OUTER])
    landmarks, _ = self._mesh_landmarks(image, roi)
    extent = (*landmarks.min(axis=0), *landmarks.max(axis=0))
    return Face(box=tuple(float(v) for v in extent), score=score, landmarks=landmarks.astype(np.float32))

  def _mesh_landmarks(self, image, roi):
    """(468, 2) landmarks in image pixels and the face-presence probability of the mesh run on `roi`."""
    tensor = sampling.warp(image, roi, self._mesh.input_size)
    raw, presence_logit = self._run(self._mesh, tensor, self._mesh_outputs)
    local = raw.reshape(-1, 3)[:NUM_LANDMARKS, :2].astype(np.float64)
    return local @ roi[:, :2].T + roi[:, 2], float(_sigmoid(float(presence_logit.reshape(-1)[0])))

  def _mesh_roi(self, box, right_eye, left_eye):
    """(2, 3) map from the mesh input's pixels to the image's: a square around `box`, rotated to level the eyes."""
    centre = (box[:2] + box[2:]) / 2.0
    side = MESH_ROI_SCALE * max(box[2] - box[0], box[3] - box[1])
    (right_x, right_y), (left_x, left_y) = right_eye, left_eye
    angle = math.atan2(left_y - right_y, left_x - right_x)
    cos, sin = math.cos(angle), math.sin(angle)
    step = side / self._mesh.input_size
    rotation = np.array([[cos, -sin], [sin, cos]]) * step
    # Output pixel (u, v) -> the square's point (u, v) * step - side/2, rotated, plus the box centre.
    offset = centre - rotation @ np.full(2, self._mesh.input_size / 2.0)
    return np.concatenate([rotation, offset[:, None]], axis=1)


_default_detector = None
_default_lock = threading.Lock()


def default_detector():
  """The shared full-range `FaceDetector`, built on first use."""
  global _default_detector
  with _default_lock:
    if _default_detector is None:
      _default_detector = FaceDetector()
    return _default_detector


def detect_faces(image, max_faces=None):
  """The faces in an RGB image (uint8 or float in [0, 1]), largest first, with the shared default detector.

  Raises:
    FaceError: the optional face models are not installed.
  """
  return default_detector().detect(image, max_faces)
