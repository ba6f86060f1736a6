"""Evaluate a FOMM model on the test videos of a dataset.

  # Reconstruction L1 (and AKD where <video>.keypoints.npy ground truth exists):
  python -m fomm_tf.evaluate --flagfile=configs/vox-256.flags --checkpoint=vox-cpk.pth.tar \\
      --dataset_root=data/vox --output_dir=eval --mode=reconstruction [--save_videos]
  # Cross-video animation of seeded random pairs, relative motion:
  python -m fomm_tf.evaluate ... --mode=animation [--num_pairs=50 --seed=0]
  # Figures (keypoints over frames, occlusion maps):
  python -m fomm_tf.evaluate ... --mode=visualize [--max_videos=4 --num_frames=4]
  # AKD / MKR of keypoints found by any external detector (no model needed):
  python -m fomm_tf.evaluate --mode=keypoints --external_keypoints_dir=kp --output_dir=eval

Outputs (in --output_dir): reconstruction.csv/.json [+ reconstruction/<video>.mp4];
animation.csv/.json + animation/<source>__<driving>.mp4; visualize/keypoints.png and
visualize/occlusion.png; keypoints.csv/.json. Test videos are DATASET_ROOT/test/*
(see fomm_tf/evaluation/videos.py); the metrics are defined in fomm_tf/evaluation/.
Errors print one line `error: ...` and exit with status 1, writing nothing.
"""


from absl import app
from absl import flags

from fomm_tf import cli_util

FLAGS = flags.FLAGS


def define_flags(flag_values=FLAGS):
  """Defines the config flags and the evaluation flags on `flag_values`."""
  cli_util.define_model_flags(flag_values)
  kw = {"flag_values": flag_values}
  flags.DEFINE_string("dataset_root", None, "Dataset folder; its test/ folder holds the test videos.", **kw)
  flags.DEFINE_string("output_dir", None, "Where results go (created if missing).", **kw)
  flags.DEFINE_enum("mode", "reconstruction", ["reconstruction", "animation", "visualize", "keypoints"],
                    "What to evaluate.", **kw)
  flags.DEFINE_integer("max_videos", None, "Use at most this many test videos (in name order). Default: "
                       "--reconstruction_num_videos for reconstruction, all for animation, 4 for visualize.", **kw)
  flags.DEFINE_integer("batch_size", 8, "Frames per network call.", **kw)
  flags.DEFINE_enum("method", "fomm", ["fomm", "no_motion", "global_affine"],
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
  flags.DEFINE_string("external_keypoints_dir", None, "--mode=keypoints: a folder of NAME_gt.npy and NAME_pred.npy "
                      "keypoint arrays (T, N, 2) in pixels, NaN = not found (see "
                      "fomm_tf/evaluation/keypoint_metrics.py).", **kw)


def main(argv):
  from fomm_tf.evaluation import cli
  cli_util.run_main(argv, lambda: cli.run(FLAGS), cli.USER_ERRORS)


if __name__ == "__main__":
  define_flags()
  app.run(main)
