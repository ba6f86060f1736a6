"""Keypoint metrics of the FOMM paper: AKD, MKR and AED, plus a hook for external detectors.

Definitions (all functions here take numpy arrays):

* **AKD**, average keypoint distance: the mean Euclidean distance, in pixels,
  between corresponding keypoints of the generated and the ground-truth frames,
  over every (frame, keypoint) found in both.
* **MKR**, missing keypoint rate: the fraction of the keypoints found in the
  ground-truth frame that are missing in the generated frame.
* **AED**, average Euclidean distance: the mean L2 distance between
  corresponding identity embeddings (of any size D) of generated and
  ground-truth frames.

A keypoint is "not found" when either of its coordinates is NaN, or when an
optional boolean `found` mask says so.

External detectors (`python -m fomm_tf.evaluate --mode=keypoints
--external_keypoints_dir=DIR`), the same split of work as the official
pose-evaluation: run any detector (OpenPose, face-alignment, ...) on the
ground-truth frames and on the generated frames, and save, for every video NAME:

    DIR/NAME_gt.npy     float array (T, N, 2): keypoints on the ground-truth frames
    DIR/NAME_pred.npy   float array (T, N, 2): keypoints on the generated frames

with T frames (the same T in both files), N keypoints per frame in the same
order in both files, and (x, y) in pixels (x along the width); NaN marks a
keypoint that was not found. Other files in DIR are ignored. Per-video AKD and
MKR are computed as above; the overall values pool every (frame, keypoint) of
every video, so longer videos weigh more, as in an average over all frames.

Keypoints of an unsupervised detector (such as FOMM's own) are not the
ground-truth keypoints, so they cannot be compared directly; `mapped_akd`
applies the standard remedy (see `fit_keypoint_map`).
"""

import os

import numpy as np

from fomm_tf.errors import EvaluationError

GT_SUFFIX = "_gt.npy"
PRED_SUFFIX = "_pred.npy"


def _as_keypoints(kp, what):
  try:
    array = np.asarray(kp, dtype=np.float64)
  except (TypeError, ValueError) as error:
    raise EvaluationError(f"{what}: not a numeric keypoint array ({error})") from None
  if array.ndim < 2 or array.shape[-1] != 2:
    raise EvaluationError(f"{what}: expected keypoints of shape (..., N, 2), got {array.shape}")
  if np.isinf(array).any():
    raise EvaluationError(f"{what}: contains infinite coordinates (use NaN for keypoints that were not found)")
  return array


def _found_mask(kp, found, what):
  """Found = not NaN, and the caller's mask if one is given."""
  mask = np.all(np.isfinite(kp), axis=-1)
  if found is None:
    return mask
  found = np.asarray(found)
  if found.dtype != np.bool_:
    raise EvaluationError(f"{what}: must be a boolean array, got dtype {found.dtype}")
  if found.shape != kp.shape[:-1]:
    raise EvaluationError(f"{what}: shape {found.shape} does not match the keypoints' {kp.shape[:-1]}")
  return mask & found


def keypoint_metrics(pred_kp, gt_kp, pred_found=None, gt_found=None):
  """AKD and MKR between keypoints detected on generated and on ground-truth frames.

  Args:
    pred_kp: (..., N, 2) keypoints (x, y) in pixels on the generated frames,
      typically (T, N, 2); NaN where a keypoint was not found.
    gt_kp: keypoints of the same shape on the ground-truth frames.
    pred_found: optional bool (..., N): False marks a keypoint as not found
      in the generated frame (in addition to NaN coordinates).
    gt_found: the same for the ground-truth frames.

  Returns:
    A dict with
      "akd": mean pixel distance over keypoints found in both (NaN if none is),
      "mkr": (found in ground truth, missing in prediction) / (found in
        ground truth), NaN if the ground truth has no keypoint,
      "num_gt_found", "num_matched", "num_missing": the counts behind them
        (use `combine_keypoint_metrics` to pool several videos exactly).
    Keypoints missing in the ground truth count towards neither metric.

  Raises:
    EvaluationError: shapes differ, the last axis is not 2, a coordinate is
      infinite, or a mask is not a boolean array of the keypoints' shape.
  """
  pred = _as_keypoints(pred_kp, "pred_kp")
  gt = _as_keypoints(gt_kp, "gt_kp")
  if pred.shape != gt.shape:
    raise EvaluationError(f"pred_kp has shape {pred.shape} but gt_kp has shape {gt.shape}")
  pred_mask = _found_mask(pred, pred_found, "pred_found")
  gt_mask = _found_mask(gt, gt_found, "gt_found")
  matched = gt_mask & pred_mask
  missing = gt_mask & ~pred_mask
  distances = np.linalg.norm(pred[matched] - gt[matched], axis=-1)
  num_gt_found = int(gt_mask.sum())
  return {
      "akd": float(distances.mean()) if distances.size else float("nan"),
      "mkr": float(missing.sum() / num_gt_found) if num_gt_found else float("nan"),
      "num_gt_found": num_gt_found,
      "num_matched": int(matched.sum()),
      "num_missing": int(missing.sum()),
  }


def combine_keypoint_metrics(results):
  """Pools `keypoint_metrics` results of several videos as if all their keypoints were one set."""
  results = list(results)
  matched = sum(r["num_matched"] for r in results)
  gt_found = sum(r["num_gt_found"] for r in results)
  missing = sum(r["num_missing"] for r in results)
  distance_sum = sum(r["akd"] * r["num_matched"] for r in results if r["num_matched"])
  return {
      "akd": float(distance_sum / matched) if matched else float("nan"),
      "mkr": float(missing / gt_found) if gt_found else float("nan"),
      "num_gt_found": gt_found,
      "num_matched": matched,
      "num_missing": missing,
  }


def aed(pred_embeddings, gt_embeddings):
  """Average Euclidean distance: mean L2 norm of (pred - gt) over (..., D) embeddings of equal shape."""
  try:
    pred = np.asarray(pred_embeddings, dtype=np.float64)
    gt = np.asarray(gt_embeddings, dtype=np.float64)
  except (TypeError, ValueError) as error:
    raise EvaluationError(f"aed: embeddings are not numeric arrays ({error})") from None
  if pred.shape != gt.shape:
    raise EvaluationError(f"aed: pred_embeddings has shape {pred.shape} but gt_embeddings has shape {gt.shape}")
  if pred.ndim < 1 or pred.shape[-1] == 0 or pred.size == 0:
    raise EvaluationError(f"aed: expected non-empty embeddings of shape (..., D), got {pred.shape}")
  if not (np.all(np.isfinite(pred)) and np.all(np.isfinite(gt))):
    raise EvaluationError("aed: embeddings contain NaN or infinite values")
  return float(np.linalg.norm(pred - gt, axis=-1).mean())


def normalized_to_pixels(kp, frame_size):
  """(..., 2) keypoints (x, y) in [-1, 1] -> pixels of a (height, width) frame.

  -1 and +1 are the centres of the corner pixels (the convention of FOMM's
  coordinate grids and of the synthetic dataset): pixel = (c + 1) * (size - 1) / 2.
  """
  kp = np.asarray(kp, dtype=np.float64)
  height, width = frame_size
  scale = np.array([(width - 1) / 2.0, (height - 1) / 2.0])
  return (kp + 1.0) * scale


class KeypointMap:
  """A fitted map from detector keypoints (K per frame) to target keypoints (G per frame); see fit_keypoint_map."""

  def __init__(self, coefficients, num_detected):
    self.coefficients = coefficients  # (K + 2, G)
    self.num_detected = num_detected

  def __call__(self, detected):
    """(T, K, 2) detector keypoints in pixels -> (T, G, 2) estimated target keypoints in pixels."""
    detected = _as_keypoints(detected, "detected keypoints")
    if detected.ndim != 3 or detected.shape[1] != self.num_detected:
      raise EvaluationError(f"detected keypoints: expected shape (T, {self.num_detected}, 2), got {detected.shape}")
    design = _design_matrix(detected)
    mapped = design @ self.coefficients  # (2T, G), rows alternate x, y.
    return mapped.reshape(detected.shape[0], 2, -1).transpose(0, 2, 1)


def _design_matrix(detected):
  """Rows (t, x) and (t, y): [the K detector coordinates of that axis, 1 if x, 1 if y]."""
  frames, num_kp = detected.shape[:2]
  design = np.zeros((frames, 2, num_kp + 2))
  design[:, :, :num_kp] = detected.transpose(0, 2, 1)
  design[:, 0, num_kp] = 1.0
  design[:, 1, num_kp + 1] = 1.0
  return design.reshape(frames * 2, num_kp + 2)


def fit_keypoint_map(detected, target):
  """Least-squares map from unsupervised detector keypoints to ground-truth keypoints, for one video.

  Each target keypoint is modelled as an affine combination of the detector's
  keypoints with a 2-D offset, the same weights for x and y:

      target_j(t) = sum_i A[j, i] * detected_i(t) + b_j

  fitted by least squares over all frames of the video (minimum-norm solution
  when under-determined). This is the usual way to score unsupervised
  keypoints against annotations (a linear regressor from discovered to
  annotated landmarks). Sharing the weights between x and y keeps the map
  rotation-aware (a hand is "the elbow plus 1.2 times the elbow-to-wrist
  vector" at any orientation) and needs only K + 2 unknowns per target
  keypoint against 2 equations per frame, so a few frames determine it; a full
  linear map of the flattened 2K coordinates needs 2K + 1 unknowns per target
  coordinate and merely interpolates videos shorter than that.

  Args:
    detected: (T, K, 2) detector keypoints in pixels (finite).
    target: (T, G, 2) ground-truth keypoints in pixels (finite).

  Returns:
    A KeypointMap; call it on (T', K, 2) detector keypoints.
  """
  detected = _as_keypoints(detected, "detected keypoints")
  target = _as_keypoints(target, "ground-truth keypoints")
  if detected.ndim != 3 or target.ndim != 3 or detected.shape[0] != target.shape[0]:
    raise EvaluationError(f"fit_keypoint_map: expected (T, K, 2) and (T, G, 2) with the same T, "
                          f"got {detected.shape} and {target.shape}")
  if detected.shape[0] == 0:
    raise EvaluationError("fit_keypoint_map: no frames to fit")
  if not (np.all(np.isfinite(detected)) and np.all(np.isfinite(target))):
    raise EvaluationError("fit_keypoint_map: keypoints must be finite (no NaN) to fit the map")
  design = _design_matrix(detected)
  targets = target.transpose(0, 2, 1).reshape(target.shape[0] * 2, target.shape[1])
  coefficients, _, _, _ = np.linalg.lstsq(design, targets, rcond=None)
  return KeypointMap(coefficients, detected.shape[1])


def mapped_akd(real_detected, generated_detected, gt):
  """AKD of generated frames for an unsupervised detector, through a per-video fitted map.

  The map is fitted from the detector's keypoints on the REAL frames to the
  ground truth (`fit_keypoint_map`), then applied to the detector's keypoints
  on the GENERATED frames; AKD is the pixel distance of the result to the
  ground truth. The same map applied to the real frames gives "akd_real", the
  fit's own error: the floor a perfect generator would reach.

  Args:
    real_detected: (T, K, 2) detector keypoints on the real frames, pixels.
    generated_detected: (T, K, 2) detector keypoints on the generated frames.
    gt: (T, G, 2) ground-truth keypoints of the real frames, pixels.

  Returns:
    {"akd": float, "akd_real": float}.
  """
  keypoint_map = fit_keypoint_map(real_detected, gt)
  generated = keypoint_metrics(keypoint_map(generated_detected), gt)
  real = keypoint_metrics(keypoint_map(real_detected), gt)
  return {"akd": generated["akd"], "akd_real": real["akd"]}


def _load_array(path):
  try:
    array = np.array(np.load(path, mmap_mode="r", allow_pickle=False))
  except (OSError, ValueError, EOFError) as error:
    raise EvaluationError(f"{path}: cannot read as a .npy array: {' '.join(str(error).split())}") from None
  if array.ndim != 3 or array.shape[-1] != 2:
    raise EvaluationError(f"{path}: expected keypoints of shape (T, N, 2), got {array.shape}")
  if not np.issubdtype(array.dtype, np.number):
    raise EvaluationError(f"{path}: expected a numeric array, got dtype {array.dtype}")
  return array


def load_external_keypoints(directory):
  """Reads DIR/NAME_gt.npy and DIR/NAME_pred.npy pairs (layout in the module docstring).

  Returns:
    A list of (name, pred (T, N, 2), gt (T, N, 2)), sorted by name.
  """
  if not os.path.isdir(directory):
    raise EvaluationError(f"external keypoints directory {directory} does not exist")
  files = set(os.listdir(directory))
  gt_names = {f[:-len(GT_SUFFIX)] for f in files if f.endswith(GT_SUFFIX)}
  pred_names = {f[:-len(PRED_SUFFIX)] for f in files if f.endswith(PRED_SUFFIX)}
  unpaired_pred = sorted(pred_names - gt_names)
  if unpaired_pred:
    name = unpaired_pred[0]
    raise EvaluationError(f"{os.path.join(directory, name + PRED_SUFFIX)}: no matching {name + GT_SUFFIX}")
  unpaired_gt = sorted(gt_names - pred_names)
  if unpaired_gt:
    name = unpaired_gt[0]
    raise EvaluationError(f"{os.path.join(directory, name + GT_SUFFIX)}: no matching {name + PRED_SUFFIX}")
  if not gt_names:
    raise EvaluationError(f"{directory}: no NAME{GT_SUFFIX} / NAME{PRED_SUFFIX} keypoint files")
  videos = []
  for name in sorted(gt_names):
    gt_path = os.path.join(directory, name + GT_SUFFIX)
    pred_path = os.path.join(directory, name + PRED_SUFFIX)
    gt, pred = _load_array(gt_path), _load_array(pred_path)
    if gt.shape != pred.shape:
      raise EvaluationError(f"{pred_path}: shape {pred.shape} differs from {gt_path}'s {gt.shape}")
    if np.isinf(gt).any() or np.isinf(pred).any():
      raise EvaluationError(f"{name}: infinite coordinates in {gt_path} or {pred_path} (use NaN for not found)")
    videos.append((name, pred, gt))
  return videos


def evaluate_external_keypoints(directory):
  """AKD and MKR of every video in `directory` and pooled over all of them.

  Returns:
    (rows, overall): rows is a list of dicts with "video", "frames",
    "num_keypoints" and the `keypoint_metrics` fields; overall is
    `combine_keypoint_metrics` of all rows.
  """
  rows = []
  for name, pred, gt in load_external_keypoints(directory):
    scores = keypoint_metrics(pred, gt)
    rows.append({"video": name, "frames": int(gt.shape[0]), "num_keypoints": int(gt.shape[1]), **scores})
  return rows, combine_keypoint_metrics(rows)
