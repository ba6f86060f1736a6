"""`python -m fomm_tf.evaluate` (also `fomm-evaluate`): evaluate a FOMM model on the test videos of a dataset.

  # Reconstruction L1 (and AKD where <video>.keypoints.npy ground truth exists):
  python -m fomm_tf.evaluate --flagfile=configs/vox-256.flags --checkpoint=vox-cpk.pth.tar \\
      --dataset_root=data/vox --output_dir=eval --mode=reconstruction [--save_videos]
  # Cross-video animation of seeded random pairs, relative motion:
  python -m fomm_tf.evaluate ... --mode=animation [--num_pairs=50 --seed=0]
  # The same through an exported model (reconstruction and animation; --backend=onnx needs the onnx extra):
  python -m fomm_tf.evaluate --flagfile=configs/vox-256.flags --backend=onnx --export_dir=export/vox-256 ...
  # The Keras model converted to OpenVINO in memory (no export; the CPU's fastest engine here):
  python -m fomm_tf.evaluate --flagfile=configs/vox-256.flags --checkpoint=vox-cpk.pth.tar --backend=openvino ...
  # Figures (keypoints over frames, occlusion maps):
  python -m fomm_tf.evaluate ... --mode=visualize [--max_videos=4 --num_frames=4]
  # AKD / MKR of keypoints found by any external detector (no model needed):
  python -m fomm_tf.evaluate --mode=keypoints --external_keypoints_dir=kp --output_dir=eval

Outputs (in --output_dir): reconstruction.csv/.json [+ reconstruction/<video>.mp4];
animation.csv/.json + animation/<source>__<driving>.mp4; visualize/keypoints.png and
visualize/occlusion.png; keypoints.csv/.json. Test videos are DATASET_ROOT/test/*
(see fomm_tf/evaluation/videos.py); the metrics are defined in fomm_tf/evaluation/.
Every mode writes into a hidden staging folder of --output_dir and moves the
files into place only when the whole run succeeded; --output_dir may not hold,
or lie inside, the dataset or the keypoint folder it reads.

What needs TensorFlow (the Keras model, its baselines and figures) is imported where it is used: a refusal, the
keypoint mode and an exported backend's evaluation run without loading it (an error in under a second, not after
TensorFlow's five).
"""

import os

from absl import flags

from fomm_tf import cli
from fomm_tf.errors import EvaluationError
from fomm_tf.evaluation import animation_pairs
from fomm_tf.evaluation import keypoint_metrics
from fomm_tf.evaluation import reconstruction
from fomm_tf.evaluation import staging
from fomm_tf.evaluation import videos as videos_lib
from fomm_tf.inference import exported_backends
from fomm_tf.io import files

MODES = ("reconstruction", "animation", "visualize", "keypoints")
VISUALIZE_DEFAULT_VIDEOS = 4
KEYPOINT_CSV_COLUMNS = ("video", "frames", "num_keypoints", "akd", "mkr", "num_gt_found", "num_matched", "num_missing")


def define_flags(flag_values):
  """Defines the config flags and the evaluation flags on `flag_values`."""
  cli.define_model_flags(flag_values)
  kw = {"flag_values": flag_values}
  flags.DEFINE_string("dataset_root", None, "Dataset folder; its test/ folder holds the test videos.", **kw)
  flags.DEFINE_string("output_dir", None, "Where results go (created if missing).", **kw)
  flags.DEFINE_enum("mode", "reconstruction", ["reconstruction", "animation", "visualize", "keypoints"],
                    "What to evaluate.", **kw)
  flags.DEFINE_integer(
      "max_videos", None, "Use at most this many test videos (in name order). Default: "
      "--reconstruction_num_videos for reconstruction, all for animation, 4 for visualize.", **kw)
  flags.DEFINE_integer("batch_size", 8, "Frames per network call.", **kw)
  flags.DEFINE_enum(
      "backend", "keras", ["keras", *exported_backends.EXPORTED_BACKENDS],
      "What runs FOMM for reconstruction and animation: the Keras model (--checkpoint), or an export "
      "directory (--export_dir) through its SavedModel, TFLite or ONNX files (onnx: ONNX Runtime, "
      "needs pip install fomm-tf[onnx]; openvino: the ONNX files on OpenVINO, needs fomm-tf[openvino]). "
      "--backend=openvino without --export_dir converts the Keras model (--checkpoint) in memory.", **kw)
  flags.DEFINE_string("export_dir", None, "--backend=saved_model|tflite|onnx|openvino: a directory written by "
                      "python -m fomm_tf.export.", **kw)
  flags.DEFINE_string("quantize", "float32", "--backend=tflite|onnx|openvino: the variant to run.", **kw)
  flags.DEFINE_enum(
      "method", "fomm", ["fomm", "no_motion", "global_affine"],
      "Reconstruction: FOMM, or a baseline through the same evaluator (the source copied, or one "
      "global affine warp fitted to the model's keypoints).", **kw)
  flags.DEFINE_boolean("save_videos", False, "Reconstruction: also write source | driving | prediction videos.", **kw)
  flags.DEFINE_enum("fit", "crop", ["crop", "pad"],
                    "How non-square videos become square: centre crop or black padding (never stretched).", **kw)
  flags.DEFINE_integer("num_pairs", None, "Animation: number of (source, driving) pairs "
                       "(default: --animate_num_pairs).", **kw)
  flags.DEFINE_integer("seed", 0, "Animation: seed of the pair shuffle.", **kw)
  flags.DEFINE_integer("num_frames", 4, "Visualize: frames per video in the keypoint grid, and rows of the "
                       "occlusion figure.", **kw)
  flags.DEFINE_enum(
      "keypoints", "ground_truth", ["ground_truth", "face"],
      "Reconstruction keypoint metrics: ground_truth (AKD against <video>.keypoints.npy where present) "
      "or face (AKD and MKR of the MediaPipe face mesh on real and generated frames; needs the faces "
      "extra; see fomm_tf/evaluation/face_metrics.py).", **kw)
  flags.DEFINE_string(
      "external_keypoints_dir", None, "--mode=keypoints: a folder of NAME_gt.npy and NAME_pred.npy "
      "keypoint arrays (T, N, 2) in pixels, NaN = not found (see "
      "fomm_tf/evaluation/keypoint_metrics.py).", **kw)


def _check_common_flags(flag_values):
  if flag_values.mode not in MODES:
    raise EvaluationError(f"--mode must be one of {', '.join(MODES)}, got {flag_values.mode!r}")
  if flag_values.keypoints == "face":
    if flag_values.mode != "reconstruction":
      raise EvaluationError("--keypoints=face is a reconstruction metric (--mode=reconstruction)")
    from fomm_tf import faces  # pylint: disable=import-outside-toplevel
    faces.require()
  if flag_values.external_keypoints_dir and flag_values.mode != "keypoints":
    raise EvaluationError("--external_keypoints_dir is only read by --mode=keypoints")
  cli.require_positive(flag_values, "batch_size", "max_videos", "num_pairs", "num_frames")
  if flag_values.backend != "keras":
    if flag_values.mode not in ("reconstruction", "animation") or flag_values.method != "fomm":
      raise EvaluationError(f"--backend={flag_values.backend} runs FOMM for --mode=reconstruction or animation "
                            "(--method=fomm); the baselines and figures use the Keras model (--backend=keras)")
    if not flag_values.export_dir and not cli.converts_keras_model(flag_values):
      raise EvaluationError(f"--backend={flag_values.backend} needs --export_dir (a directory written by "
                            "python -m fomm_tf.export)")
    if flag_values.checkpoint is not None and flag_values.export_dir:
      raise EvaluationError(f"--checkpoint is for --backend=keras; --backend={flag_values.backend} runs the "
                            "weights of --export_dir")
  elif flag_values.export_dir:
    raise EvaluationError("--export_dir is for --backend=saved_model|tflite|onnx|openvino")
  files.refuse_overwrite([], [("dataset_root", flag_values.dataset_root),
                              ("external_keypoints_dir", flag_values.external_keypoints_dir),
                              ("checkpoint", flag_values.checkpoint), ("export_dir", flag_values.export_dir)],
                         directories=[("output_dir", flag_values.output_dir)] if flag_values.output_dir else [])


def _header(flag_values, cfg):
  exported = ({
      "export_dir": os.path.abspath(flag_values.export_dir),
      "quantize": flag_values.quantize
  } if flag_values.export_dir else {})
  runs_keras_model = not flag_values.export_dir
  return {
      "mode": flag_values.mode,
      "method": flag_values.method,
      "config": cfg.source,
      "checkpoint": flag_values.checkpoint or (cli.builtin_weights(cfg) if runs_keras_model else None),
      "backend": flag_values.backend,
      **exported, "dataset_root": os.path.abspath(flag_values.dataset_root),
      "fit": flag_values.fit
  }


def run_reconstruction(flag_values, cfg, model, videos, out):
  video_dir = None
  if flag_values.save_videos:
    video_dir = os.path.dirname(out.path(os.path.join("reconstruction", "_")))
  if flag_values.backend == "keras":
    from fomm_tf.evaluation import baselines  # pylint: disable=import-outside-toplevel
    backend = baselines.make_backend(flag_values.method, model)
  else:
    backend = model
  rows, summary = reconstruction.evaluate_reconstruction(backend,
                                                         videos,
                                                         flag_values.batch_size,
                                                         flag_values.fit,
                                                         video_dir,
                                                         face_keypoints=flag_values.keypoints == "face")
  out.write_csv("reconstruction.csv", reconstruction.CSV_COLUMNS, rows)
  result = {**_header(flag_values, cfg), **summary, "videos": rows}
  out.write_json("reconstruction.json", result)
  message = f"reconstruction L1 {summary['l1']:.5f} over {summary['num_frames']} frames of {len(rows)} videos"
  if summary["num_videos_with_keypoints"]:
    message += (f"; AKD {summary['akd']:.3f} px (fit floor {summary['akd_real']:.3f} px) over "
                f"{summary['num_videos_with_keypoints']} videos with ground-truth keypoints")
  if "akd_face" in summary:
    message += f"; face mesh AKD {summary['akd_face']:.3f} px, MKR {summary['mkr_face']:.4f}"
  return result, message


def run_animation(flag_values, cfg, model, videos, out):
  num_pairs = flag_values.num_pairs if flag_values.num_pairs is not None else cfg.animation.animate_num_pairs
  pairs = animation_pairs.choose_pairs(len(videos), num_pairs, flag_values.seed)
  video_dir = os.path.dirname(out.path(os.path.join("animation", "_")))
  if flag_values.backend == "keras":
    from fomm_tf.inference import keras_backend  # pylint: disable=import-outside-toplevel
    backend = keras_backend.for_model(model)
  else:
    backend = model
  rows = animation_pairs.animate_pairs(backend,
                                       videos,
                                       pairs,
                                       video_dir,
                                       flag_values.batch_size,
                                       flag_values.fit,
                                       relative=cfg.animation.use_relative_movement,
                                       adapt_scale=cfg.animation.adapt_movement_scale)
  for row in rows:
    row["file"] = os.path.join("animation", row["file"])
  out.write_csv("animation.csv", animation_pairs.CSV_COLUMNS, rows)
  result = {
      **_header(flag_values, cfg), "seed": flag_values.seed,
      "relative": cfg.animation.use_relative_movement,
      "adapt_scale": cfg.animation.adapt_movement_scale,
      "num_pairs": len(rows),
      "layout": "each video: source frame 0 | driving frame | animation",
      "pairs": rows
  }
  out.write_json("animation.json", result)
  return result, f"animated {len(rows)} pairs into {os.path.join(out.output_dir, 'animation')}"


def run_visualize(flag_values, cfg, model, videos, out):
  from fomm_tf.evaluation import figures  # pylint: disable=import-outside-toplevel
  size = model.frame_shape[0]
  count = flag_values.num_frames
  grid_rows, labels = [], []
  for row, video in enumerate(videos):
    picked = figures.select_frames(video.path, count, size, flag_values.fit)
    kp = model.detect_keypoints([frame for _, frame in picked])["value"].numpy()
    grid_rows.append([(frame, kp[i]) for i, (_, frame) in enumerate(picked)])
    labels += [(row, column, f"{video.name} t={index}" if column == 0 else f"t={index}")
               for column, (index, _) in enumerate(picked)]
  grid = figures.keypoint_grid(grid_rows, cfg.visualizer.kp_size, cfg.visualizer.colormap, cfg.visualizer.draw_border)
  figures.save_figure(out.path(os.path.join("visualize", "keypoints.png")), grid, size, labels=labels)

  picked = figures.select_frames(videos[0].path, count, size, flag_values.fit)
  source = picked[0][1]  # frame_indices always starts at frame 0.
  panels = figures.occlusion_rows(model, source, [frame for _, frame in picked], cfg.visualizer.kp_size,
                                  cfg.visualizer.colormap)
  occlusion_labels = [(row, 1, f"t={index}") for row, (index, _) in enumerate(picked)]
  figures.save_figure(out.path(os.path.join("visualize", "occlusion.png")),
                      figures.panel_grid(panels, cfg.visualizer.draw_border),
                      size,
                      column_titles=figures.OCCLUSION_COLUMNS,
                      labels=occlusion_labels)
  result = {
      **_header(flag_values, cfg), "keypoints_figure": {
          "videos": [v.name for v in videos],
          "frames": count
      },
      "occlusion_figure": {
          "video": videos[0].name,
          "frames": [index for index, _ in picked]
      }
  }
  return result, f"wrote figures to {os.path.join(out.output_dir, 'visualize')}"


def run_external_keypoints(flag_values):
  if not flag_values.external_keypoints_dir:
    raise EvaluationError("--mode=keypoints needs --external_keypoints_dir")
  rows, overall = keypoint_metrics.evaluate_external_keypoints(flag_values.external_keypoints_dir)
  result = {
      "mode": "keypoints",
      "external_keypoints_dir": os.path.abspath(flag_values.external_keypoints_dir),
      "averaging": "overall akd and mkr pool every (frame, keypoint) of every video",
      **overall, "videos": rows
  }
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
    return cfg.animation.reconstruction_num_videos
  if flag_values.mode == "visualize":
    return VISUALIZE_DEFAULT_VIDEOS
  return None


def _load_model(flag_values):
  """(config, FommModel) with --backend=keras; (config, Backend) with another backend: the Keras model converted
  to OpenVINO (--backend=openvino, no --export_dir), or an export.

  The config still sets the evaluation's own defaults (number of videos and pairs, relative motion).
  """
  if flag_values.backend == "keras":
    return cli.load_model_from_flags(flag_values)
  if cli.converts_keras_model(flag_values):
    exported_backends.check_openvino_conversion(flag_values.quantize)  # Before openvino_model loads TensorFlow.
    from fomm_tf.inference import openvino_model  # pylint: disable=import-outside-toplevel
    loaded = {}

    def load():
      loaded["config"], model = cli.load_model_from_flags(flag_values)
      return model

    backend = openvino_model.from_keras_model(load, flag_values.quantize)
    return loaded["config"], backend
  cfg = cli.resolve_config(flag_values)
  if cfg is None:
    raise EvaluationError("no model config: pass --flagfile=configs/NAME.flags or --config=NAME (it sets the "
                          "evaluation's defaults)")
  backend = exported_backends.open_exported(flag_values.backend, flag_values.export_dir, flag_values.quantize)
  expected = tuple(cfg.model.frame_shape)
  if tuple(backend.frame_shape) != expected:
    raise EvaluationError(f"--export_dir holds a {backend.frame_shape} model, the config is for {expected}")
  return cfg, backend


def run(flag_values):
  """Runs the mode chosen by the flags; returns what it wrote to its JSON (visualize: a summary)."""
  _check_common_flags(flag_values)
  if flag_values.mode == "keypoints":
    return run_external_keypoints(flag_values)
  if not flag_values.output_dir:
    raise EvaluationError("--output_dir is required")
  videos = videos_lib.find_test_videos(flag_values.dataset_root)
  with staging.StagedOutput(flag_values.output_dir) as out:
    cfg, model = _load_model(flag_values)
    videos = videos[:_max_videos(flag_values, cfg)]
    result, message = _RUNNERS[flag_values.mode](flag_values, cfg, model, videos, out)
    out.commit()
  print(message)
  return result


main = cli.main_function(define_flags, run)
