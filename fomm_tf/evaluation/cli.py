"""The work behind `python -m fomm_tf.evaluate` (flags are defined in fomm_tf/evaluate.py).

Every mode writes into a hidden staging folder of --output_dir and moves the
files into place only when the whole run succeeded (see staging.StagedOutput).
"""

import os

from fomm_tf import cli_util
from fomm_tf.animation import backend as backend_lib
from fomm_tf.animation import cli as animation_cli
from fomm_tf.evaluation import animation_pairs
from fomm_tf.evaluation import baselines
from fomm_tf.evaluation import figures
from fomm_tf.evaluation import keypoint_metrics
from fomm_tf.evaluation import reconstruction
from fomm_tf.evaluation import staging
from fomm_tf.evaluation import videos as videos_lib
from fomm_tf.evaluation.errors import EvaluationError

MODES = ("reconstruction", "animation", "visualize", "keypoints")
USER_ERRORS = animation_cli.USER_ERRORS + (EvaluationError,)
VISUALIZE_DEFAULT_VIDEOS = 4
KEYPOINT_CSV_COLUMNS = ("video", "frames", "num_keypoints", "akd", "mkr", "num_gt_found", "num_matched",
                        "num_missing")


def _check_common_flags(flag_values):
  if flag_values.mode not in MODES:
    raise EvaluationError(f"--mode must be one of {', '.join(MODES)}, got {flag_values.mode!r}")
  if flag_values.external_keypoints_dir and flag_values.mode != "keypoints":
    raise EvaluationError("--external_keypoints_dir is only read by --mode=keypoints")
  if flag_values.batch_size < 1:
    raise EvaluationError(f"--batch_size must be >= 1, got {flag_values.batch_size}")
  if flag_values.max_videos is not None and flag_values.max_videos < 1:
    raise EvaluationError(f"--max_videos must be >= 1, got {flag_values.max_videos}")


def _header(flag_values, cfg):
  return {"mode": flag_values.mode, "method": flag_values.method, "config": cfg.source,
          "checkpoint": flag_values.checkpoint,
          "dataset_root": os.path.abspath(flag_values.dataset_root), "fit": flag_values.fit}


def run_reconstruction(flag_values, cfg, model, videos, out):
  video_dir = None
  if flag_values.save_videos:
    video_dir = os.path.dirname(out.path(os.path.join("reconstruction", "_")))
  backend = baselines.make_backend(flag_values.method, model)
  rows, summary = reconstruction.evaluate_reconstruction(backend, videos, flag_values.batch_size, flag_values.fit,
                                                         video_dir)
  out.write_csv("reconstruction.csv", reconstruction.CSV_COLUMNS, rows)
  result = {**_header(flag_values, cfg), **summary, "videos": rows}
  out.write_json("reconstruction.json", result)
  message = f"reconstruction L1 {summary['l1']:.5f} over {summary['num_frames']} frames of {len(rows)} videos"
  if summary["num_videos_with_keypoints"]:
    message += (f"; AKD {summary['akd']:.3f} px (fit floor {summary['akd_real']:.3f} px) over "
                f"{summary['num_videos_with_keypoints']} videos with ground-truth keypoints")
  return result, message


def run_animation(flag_values, cfg, model, videos, out):
  num_pairs = flag_values.num_pairs if flag_values.num_pairs is not None else cfg.animate_num_pairs
  pairs = animation_pairs.choose_pairs(len(videos), num_pairs, flag_values.seed)
  video_dir = os.path.dirname(out.path(os.path.join("animation", "_")))
  rows = animation_pairs.animate_pairs(backend_lib.KerasBackend(model), videos, pairs, video_dir,
                                       flag_values.batch_size, flag_values.fit, relative=cfg.use_relative_movement,
                                       adapt_scale=cfg.adapt_movement_scale)
  for row in rows:
    row["file"] = os.path.join("animation", row["file"])
  out.write_csv("animation.csv", animation_pairs.CSV_COLUMNS, rows)
  result = {**_header(flag_values, cfg), "seed": flag_values.seed, "relative": cfg.use_relative_movement,
            "adapt_scale": cfg.adapt_movement_scale, "num_pairs": len(rows),
            "layout": "each video: source frame 0 | driving frame | animation", "pairs": rows}
  out.write_json("animation.json", result)
  return result, f"animated {len(rows)} pairs into {os.path.join(out.output_dir, 'animation')}"


def run_visualize(flag_values, cfg, model, videos, out):
  size = model.frame_shape[0]
  count = flag_values.num_frames
  grid_rows, labels = [], []
  for row, video in enumerate(videos):
    picked = figures.select_frames(video.path, count, size, flag_values.fit)
    kp = model.detect_keypoints([frame for _, frame in picked])["value"].numpy()
    grid_rows.append([(frame, kp[i]) for i, (_, frame) in enumerate(picked)])
    labels += [(row, column, f"{video.name} t={index}" if column == 0 else f"t={index}")
               for column, (index, _) in enumerate(picked)]
  grid = figures.keypoint_grid(grid_rows, cfg.kp_size, cfg.colormap, cfg.draw_border)
  figures.save_figure(out.path(os.path.join("visualize", "keypoints.png")), grid, size, labels=labels)

  picked = figures.select_frames(videos[0].path, count, size, flag_values.fit)
  source = picked[0][1]  # frame_indices always starts at frame 0.
  panels = figures.occlusion_rows(model, source, [frame for _, frame in picked], cfg.kp_size, cfg.colormap)
  occlusion_labels = [(row, 1, f"t={index}") for row, (index, _) in enumerate(picked)]
  figures.save_figure(out.path(os.path.join("visualize", "occlusion.png")),
                      figures.panel_grid(panels, cfg.draw_border), size, column_titles=figures.OCCLUSION_COLUMNS,
                      labels=occlusion_labels)
  result = {**_header(flag_values, cfg), "keypoints_figure": {"videos": [v.name for v in videos], "frames": count},
            "occlusion_figure": {"video": videos[0].name, "frames": [index for index, _ in picked]}}
  return result, f"wrote figures to {os.path.join(out.output_dir, 'visualize')}"


def run_external_keypoints(flag_values):
  if not flag_values.external_keypoints_dir:
    raise EvaluationError("--mode=keypoints needs --external_keypoints_dir")
  rows, overall = keypoint_metrics.evaluate_external_keypoints(flag_values.external_keypoints_dir)
  result = {"mode": "keypoints", "external_keypoints_dir": os.path.abspath(flag_values.external_keypoints_dir),
            "averaging": "overall akd and mkr pool every (frame, keypoint) of every video", **overall,
            "videos": rows}
  with staging.StagedOutput(flag_values.output_dir) as out:
    out.write_csv("keypoints.csv", KEYPOINT_CSV_COLUMNS, rows)
    out.write_json("keypoints.json", result)
    out.commit()
  print(f"AKD {overall['akd']:.3f} px, MKR {overall['mkr']:.4f} over {len(rows)} videos")
  return result


_RUNNERS = {"reconstruction": run_reconstruction, "animation": run_animation, "visualize": run_visualize}


def _max_videos(flag_values, cfg):
  if flag_values.max_videos is not None:
    return flag_values.max_videos
  if flag_values.mode == "reconstruction":
    return cfg.reconstruction_num_videos
  if flag_values.mode == "visualize":
    return VISUALIZE_DEFAULT_VIDEOS
  return None


def run(flag_values):
  """Runs the mode chosen by the flags; returns what it wrote to its JSON (visualize: a summary)."""
  _check_common_flags(flag_values)
  if flag_values.mode == "keypoints":
    return run_external_keypoints(flag_values)
  if not flag_values.output_dir:
    raise EvaluationError("--output_dir is required")
  videos = videos_lib.find_test_videos(flag_values.dataset_root)
  with staging.StagedOutput(flag_values.output_dir) as out:
    cfg, model = cli_util.load_model_from_flags(flag_values)
    videos = videos[:_max_videos(flag_values, cfg)]
    result, message = _RUNNERS[flag_values.mode](flag_values, cfg, model, videos, out)
    out.commit()
  print(message)
  return result
