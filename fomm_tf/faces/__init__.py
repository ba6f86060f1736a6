"""Faces: detection with 468-point landmarks, VoxCeleb-style head crops, driving-video boxes and paste-back.

Needs the optional face models (`pip install fomm-tf[faces]`); see `models.py`.
Nothing here imports TensorFlow. Public API (modules are imported on first use):

  available() -> bool;  require() -> model folder, or FaceError with the install hint
  Face(box, score, landmarks): box (x0, y0, x1, y1) px, landmarks float32 (468, 2) px
  detect_faces(image, max_faces=None) -> [Face], largest first (shared FaceDetector)
  FaceDetector(model="full", num_threads=1).detect(image, max_faces=None) -> [Face]
  Placement(x0, y0, side, image_size): a square of the source image
  head_box(face_box, image_size, margin=1.9, lift=0.1) -> Placement
  crop_square(image, box, size, border="pad") -> (float32 (size, size, 3), Placement)
  choose_face(faces, index=0, what="the image") -> Face, or FaceError naming the count
  choose_faces(faces, indices="all", what="the image", min_side=48, max_faces=32) -> (chosen, skipped) [(i, Face)]
  no_face_error(what) -> the FaceError of a photo with no face
  video_head_box(frames, image_size=None, detect=None, stride=1, max_side=None, name=None)
      -> (Placement, TrackReport(num_frames, num_sampled, frames_without_face, warnings))
  PasteBack(source_image, placement, max_output_size=1024, feather=0.1)(animated_crop) -> float32 image
  paste_back(source_image, placement, animated_crop, max_output_size=1024, feather=0.1) -> float32 image
  GroupPasteBack(source_image, placements, max_output_size=1024, feather=0.1)(animated_crops) -> float32 image
  normalized_landmarks(landmarks) -> (N, 2);  best_frame_index(source_landmarks, driving_landmarks) -> int
"""

import importlib

_LAZY = {
    "available": "models",
    "require": "models",
    "MISSING_MESSAGE": "models",
    "Face": "detect",
    "FaceDetector": "detect",
    "detect_faces": "detect",
    "Placement": "crop",
    "head_box": "crop",
    "crop_square": "crop",
    "choose_face": "crop",
    "choose_faces": "crop",
    "no_face_error": "crop",
    "MIN_FACE_SIDE": "crop",
    "MAX_FACES": "crop",
    "TrackReport": "track",
    "video_head_box": "track",
    "PasteBack": "paste",
    "GroupPasteBack": "paste",
    "paste_back": "paste",
    "normalized_landmarks": "landmarks",
    "best_frame_index": "landmarks",
}
__all__ = sorted(_LAZY)


def __getattr__(name):
  if name in _LAZY:
    return getattr(importlib.import_module(f"fomm_tf.faces.{_LAZY[name]}"), name)
  raise AttributeError(f"module 'fomm_tf.faces' has no attribute {name!r}")
