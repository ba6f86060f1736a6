"""Writes a deterministic synthetic FOMM dataset (articulated puppets with keypoints).

  python tools/make_synthetic_dataset.py --output_dir=data/synthetic \
      --num_train=64 --num_test=8 --num_frames=32 --frame_size=128 --seed=0 --format=mp4

or ``python -m tools.make_synthetic_dataset ...`` from the repository root.
Layout and file formats are described in fomm_tf/data/synthetic.py; the
dataset's parameters are recorded in ``<output_dir>/dataset.json``.
"""

import json
import os
import sys

# Running the file directly puts tools/ (not the repository root) on sys.path.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import flags  # pylint: disable=g-import-not-at-top

from fomm_tf import cli
from fomm_tf.data import synthetic
from fomm_tf.errors import UsageError


def define_flags(flag_values):
  kw = {"flag_values": flag_values}
  flags.DEFINE_string("output_dir", None, "Dataset folder to create (must be absent or empty unless --overwrite).",
                      **kw)
  flags.DEFINE_integer("num_train", 64, "Number of training videos.", **kw)
  flags.DEFINE_integer("num_test", 8, "Number of test videos (identities disjoint from train).", **kw)
  flags.DEFINE_integer("num_frames", 32, "Frames per video (>= 2).", **kw)
  flags.DEFINE_integer("frame_size", 128, f"Frame height and width in pixels (>= {synthetic.MIN_FRAME_SIZE}).", **kw)
  flags.DEFINE_integer("seed", 0, "Random seed; the same seed gives the same frames and keypoints.", **kw)
  flags.DEFINE_string("format", "mp4", f"Video format: one of {', '.join(synthetic.FORMATS)}.", **kw)
  flags.DEFINE_integer("videos_per_identity", 4, "Videos sharing one puppet identity (id{N}#{M} naming).", **kw)
  flags.DEFINE_boolean("overwrite", False, "Replace an existing dataset folder.", **kw)


def run(flag_values):
  if not flag_values.output_dir:
    raise UsageError("--output_dir is required")
  summary = synthetic.write_dataset(
      output_dir=flag_values.output_dir,
      num_train=flag_values.num_train,
      num_test=flag_values.num_test,
      num_frames=flag_values.num_frames,
      frame_size=flag_values.frame_size,
      seed=flag_values.seed,
      fmt=flag_values.format,
      videos_per_identity=flag_values.videos_per_identity,
      overwrite=flag_values.overwrite,
  )
  print(
      json.dumps({
          "output_dir": summary["output_dir"],
          "format": summary["format"],
          "train_videos": len(summary["splits"]["train"]),
          "test_videos": len(summary["splits"]["test"]),
          "frames_per_second": round(summary["frames_per_second"], 1),
      }))


main = cli.main_function(define_flags, run)

if __name__ == "__main__":
  main()
