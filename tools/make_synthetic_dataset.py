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

from absl import app  # pylint: disable=g-import-not-at-top
from absl import flags

from fomm_tf.data import synthetic

FLAGS = flags.FLAGS

flags.DEFINE_string("output_dir", None, "Dataset folder to create (must be absent or empty unless --overwrite).")
flags.DEFINE_integer("num_train", 64, "Number of training videos.")
flags.DEFINE_integer("num_test", 8, "Number of test videos (identities disjoint from train).")
flags.DEFINE_integer("num_frames", 32, "Frames per video (>= 2).")
flags.DEFINE_integer("frame_size", 128, f"Frame height and width in pixels (>= {synthetic.MIN_FRAME_SIZE}).")
flags.DEFINE_integer("seed", 0, "Random seed; the same seed gives the same frames and keypoints.")
flags.DEFINE_string("format", "mp4", f"Video format: one of {', '.join(synthetic.FORMATS)}.")
flags.DEFINE_integer("videos_per_identity", 4, "Videos sharing one puppet identity (id{N}#{M} naming).")
flags.DEFINE_boolean("overwrite", False, "Replace an existing dataset folder.")


def main(argv):
  if len(argv) > 1:
    sys.exit(f"make_synthetic_dataset: error: unexpected arguments {' '.join(argv[1:])}")
  if not FLAGS.output_dir:
    sys.exit("make_synthetic_dataset: error: --output_dir is required")
  try:
    summary = synthetic.write_dataset(
        output_dir=FLAGS.output_dir,
        num_train=FLAGS.num_train,
        num_test=FLAGS.num_test,
        num_frames=FLAGS.num_frames,
        frame_size=FLAGS.frame_size,
        seed=FLAGS.seed,
        fmt=FLAGS.format,
        videos_per_identity=FLAGS.videos_per_identity,
        overwrite=FLAGS.overwrite,
    )
  except (ValueError, FileExistsError) as error:
    # These are argument problems; a one-line message beats a traceback.
    sys.exit(f"make_synthetic_dataset: error: {error}")
  print(json.dumps({
      "output_dir": summary["output_dir"],
      "format": summary["format"],
      "train_videos": len(summary["splits"]["train"]),
      "test_videos": len(summary["splits"]["test"]),
      "frames_per_second": round(summary["frames_per_second"], 1),
  }))


if __name__ == "__main__":
  app.run(main)
