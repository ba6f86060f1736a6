"""Video reconstruction, the paper's main quantitative test.

For each test video, frame 0 is the source and EVERY frame (frame 0 included)
drives it with absolute keypoints (no relative motion transfer), as in the
official `reconstruction.py`. The score of a frame is its L1 error,
mean |prediction - frame| over all pixels and channels on the [0, 1] scale,
against the driving frame as the model sees it (square, the model's size,
cropped or padded by `fit`). A video's L1 is the mean over its frames; the
overall L1 is the mean over all frames of all videos (so longer videos weigh
more), which is how the paper and the official code average
(`np.mean(loss_list)` over every frame).

When a video has ground-truth keypoints (`<name>.keypoints.npy`), AKD is
measured with our own unsupervised detector through a per-video fitted map
(see keypoint_metrics.mapped_akd), in pixels of the video's own frames.
"""

import itertools
import os

import numpy as np
from absl import logging

from fomm_tf import visualization
from fomm_tf.inference import pipeline
from fomm_tf.io import media
from fomm_tf.io import video_writer
from fomm_tf.evaluation import face_metrics
from fomm_tf.evaluation import keypoint_metrics
from fomm_tf.evaluation import videos as videos_lib
from fomm_tf.errors import EvaluationError

CSV_COLUMNS = ("video", "frames", "l1", "akd", "akd_real", "akd_face", "mkr_face")
L1_AVERAGING = ("l1: mean over all frames of all videos (each frame's L1 is mean |prediction - frame| over its "
                "pixels and channels, [0, 1] scale), as in the paper; l1_mean_of_videos: mean of the per-video L1s")
AKD_DEFINITION = ("akd: pixels of the video's own frames; per video, a least-squares map from our detector's keypoints "
                  "on the real frames to the ground-truth keypoints (each ground-truth keypoint an affine combination "
                  "of detector keypoints, same weights for x and y) is applied to the detector's keypoints on the "
                  "generated frames; akd_real: the same map applied to the real frames (the fit's own error, the "
                  "floor of akd); overall values average over all frames and keypoints of the videos that have "
                  "ground truth")


def reconstruct_video(backend, frames, batch_size=8, fit="crop", with_keypoints=False, on_frame=None):
  """Reconstructs one video from its frame 0.

  Args:
    backend: an animation Backend, or a FommModel.
    frames: iterable of (H, W, 3) frames (a media.VideoSource streams them).
    batch_size: driving frames per network call.
    fit: "crop" or "pad", how non-square frames become square.
    with_keypoints: also return the detector's keypoints on the real and on
      the generated frames.
    on_frame: optional callable(source, driving, prediction), each (S, S, 3),
      called for every frame in order (to write videos).

  Returns:
    A dict: "l1" (T,) per-frame L1, "frame_size" (H, W) of the input frames
    and, with `with_keypoints`, "real_kp" and "generated_kp", (T, K, 2) in
    [-1, 1] of the model frame.
  """
  backend = pipeline.as_backend(backend)
  if batch_size < 1:
    raise EvaluationError(f"--batch_size must be >= 1, got {batch_size}")
  height, width = backend.frame_shape[:2]
  if height != width:
    raise EvaluationError(f"evaluation needs a square model frame, got {height}x{width}")
  iterator = iter(frames)
  first = next(iterator, None)
  if first is None:
    raise EvaluationError("reconstruction: the video has no frames")
  source = pipeline.prepare_frame(first, height, fit)[np.newaxis]
  state = backend.prepare_source(source)
  kp_source = backend.detect_keypoints(source)
  l1, real_kp, generated_kp = [], [], []
  for batch in pipeline.batched(itertools.chain([first], iterator), batch_size):
    driving = np.stack([pipeline.prepare_frame(f, height, fit) for f in batch])
    kp_driving = backend.detect_keypoints(driving)
    # Absolute transfer: the driving keypoints go to the generator unchanged.
    prediction = backend.generate(state, kp_source, kp_driving)
    l1.append(np.abs(prediction - driving).mean(axis=(1, 2, 3)))
    if with_keypoints:
      real_kp.append(kp_driving["value"])
      generated_kp.append(backend.detect_keypoints(prediction)["value"])
    if on_frame is not None:
      for i in range(len(driving)):
        on_frame(source[0], driving[i], prediction[i])
  result = {"l1": np.concatenate(l1).astype(np.float64), "frame_size": tuple(first.shape[:2])}
  if with_keypoints:
    result["real_kp"] = np.concatenate(real_kp)
    result["generated_kp"] = np.concatenate(generated_kp)
  return result


def _video_akd(result, gt, model_size):
  model_frame = (model_size, model_size)
  return keypoint_metrics.mapped_akd(keypoint_metrics.normalized_to_pixels(result["real_kp"], model_frame),
                                     keypoint_metrics.normalized_to_pixels(result["generated_kp"], model_frame),
                                     keypoint_metrics.normalized_to_pixels(gt, result["frame_size"]))


def evaluate_video(backend, video, batch_size=8, fit="crop", video_path=None, face_keypoints=False, on_frame=None):
  """Reconstruction scores of one EvalVideo: a row {"video", "frames", "l1", "akd", "akd_real", "num_gt_keypoints",
  "akd_face", "mkr_face", ...}.

  With `video_path`, also writes source | driving | prediction side by side
  there, at the video's frame rate; with `face_keypoints`, measures the face
  metrics of fomm_tf/evaluation/face_metrics.py; `on_frame(source, driving,
  prediction)` sees every frame (e.g. for a measure of one's own).
  """
  backend = pipeline.as_backend(backend)
  source = media.open_video(video.path)
  with_keypoints = video.keypoints_path is not None
  writer = None
  collector = face_metrics.FaceLandmarkCollector() if face_keypoints else None
  if video_path is not None:
    writer = video_writer.VideoWriter(video_path, source.fps)

  def each_frame(s, d, p):
    if writer is not None:
      writer.write(np.clip(visualization.side_by_side([s, d, p]), 0.0, 1.0))
    if collector is not None:
      collector.add(d, p)
    if on_frame is not None:
      on_frame(s, d, p)

  try:
    result = reconstruct_video(backend, source, batch_size, fit, with_keypoints, each_frame)
    if writer is not None:
      writer.close()
  except BaseException:
    if writer is not None:
      writer.abort()
    raise
  row = {
      "video": video.name,
      "frames": int(len(result["l1"])),
      "l1": float(result["l1"].mean()),
      "akd": float("nan"),
      "akd_real": float("nan"),
      "num_gt_keypoints": 0,
      "akd_face": float("nan"),
      "mkr_face": float("nan")
  }
  if collector is not None:
    face = collector.metrics()
    row.update({
        "akd_face": face["akd"],
        "mkr_face": face["mkr"],
        "face_counts": {
            k: face[k] for k in ("num_gt_found", "num_matched", "num_missing")
        }
    })
  if with_keypoints:
    gt = videos_lib.load_ground_truth_keypoints(video, row["frames"])
    row.update(_video_akd(result, gt, backend.frame_shape[0]))
    row["num_gt_keypoints"] = int(gt.shape[1])
  return row


def _weighted_mean(rows, key, weight):
  rows = [r for r in rows if weight(r) > 0]
  total = sum(weight(r) for r in rows)
  return float(sum(r[key] * weight(r) for r in rows) / total) if total else float("nan")


def summarize(rows):
  """Overall scores of per-video rows (see L1_AVERAGING, AKD_DEFINITION and face_metrics.DEFINITION)."""
  with_gt = [r for r in rows if r["num_gt_keypoints"]]
  keypoint_weight = lambda r: r["frames"] * r["num_gt_keypoints"]
  face = {}
  if any("face_counts" in r for r in rows):
    pooled = keypoint_metrics.combine_keypoint_metrics([{
        **r["face_counts"], "akd": r["akd_face"]
    } for r in rows if "face_counts" in r])
    face = {"akd_face": pooled["akd"], "mkr_face": pooled["mkr"], "face_definition": face_metrics.DEFINITION}
  return {
      **face,
      "num_videos": len(rows),
      "num_frames": int(sum(r["frames"] for r in rows)),
      "l1": _weighted_mean(rows, "l1", lambda r: r["frames"]),
      "l1_mean_of_videos": float(np.mean([r["l1"] for r in rows])),
      "l1_averaging": L1_AVERAGING,
      "num_videos_with_keypoints": len(with_gt),
      "akd": _weighted_mean(with_gt, "akd", keypoint_weight),
      "akd_real": _weighted_mean(with_gt, "akd_real", keypoint_weight),
      "akd_definition": AKD_DEFINITION,
  }


def evaluate_reconstruction(backend, videos, batch_size=8, fit="crop", video_dir=None, face_keypoints=False):
  """Reconstruction of every EvalVideo; returns (rows, summary).

  With `video_dir`, writes `video_dir/<name>.mp4` (source | driving | prediction) per video.
  """
  rows = []
  for index, video in enumerate(videos):
    video_path = os.path.join(video_dir, video.name + ".mp4") if video_dir is not None else None
    row = evaluate_video(backend, video, batch_size, fit, video_path, face_keypoints)
    logging.info("reconstruction %d/%d %s: %d frames, L1 %.5f", index + 1, len(videos), video.name, row["frames"],
                 row["l1"])
    rows.append(row)
  return rows, summarize(rows)
