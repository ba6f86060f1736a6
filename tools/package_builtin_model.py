"""Packages a trained synthetic-128 run as the built-in model: weights + sample media in fomm_tf/assets.

  python tools/package_builtin_model.py --model_dir=runs/synthetic-128 --dataset_root=data/synthetic-128
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app  # pylint: disable=g-import-not-at-top
from absl import flags
import numpy as np

FLAGS = flags.FLAGS
flags.DEFINE_string("model_dir", None, "Training run (a TF checkpoint directory) of configs/synthetic-128.flags.")
flags.DEFINE_string("dataset_root", None, "The synthetic dataset it was trained on; the sample comes from test/.")
flags.DEFINE_string("sample_video", None,
                    "Test video used as the sample (default: the one with the most motion, see most_moving_video).")
flags.DEFINE_string("assets_dir", None, "Output folder (default: fomm_tf/assets).")


def most_moving_video(videos, read_frames):
  """The video whose frames differ most from its first frame (mean absolute difference).

  A demo should show motion, and this choice looks only at the data, never at the model.
  """
  def motion(video):
    frames = np.stack(read_frames(video))
    return float(np.abs(frames - frames[:1]).mean())
  return max(videos, key=motion)


def main(argv):
  del argv
  from PIL import Image
  from fomm_tf import builtin
  from fomm_tf import config as config_lib
  from fomm_tf.checkpoint import loading
  from fomm_tf.data import dataset
  from fomm_tf.data import media
  from fomm_tf.data import video_writer
  from fomm_tf.models import fomm_model
  try:
    if not FLAGS.model_dir or not FLAGS.dataset_root:
      raise ValueError("--model_dir and --dataset_root are required")
    assets = FLAGS.assets_dir or builtin.ASSETS_DIR
    os.makedirs(assets, exist_ok=True)
    model = fomm_model.FommModel(config_lib.load_config(builtin.CONFIG), build_discriminator=False)
    prefix = loading.load_weights(model, FLAGS.model_dir)
    weights = builtin.save_npz_weights(model, os.path.join(assets, os.path.basename(builtin.WEIGHTS)))
    videos = dataset.find_videos(FLAGS.dataset_root, "test")
    video = FLAGS.sample_video or most_moving_video(videos, media.read_video_frames)
    frames = media.read_video_frames(video)
    source = os.path.join(assets, os.path.basename(builtin.SAMPLE_SOURCE))
    tmp = source + ".partial.png"
    Image.fromarray(np.round(frames[0] * 255).astype(np.uint8)).save(tmp)
    os.replace(tmp, source)
    with video_writer.VideoWriter(os.path.join(assets, os.path.basename(builtin.SAMPLE_DRIVING)), 25, crf=12) as w:
      for frame in frames:
        w.write(frame)
    print(f"packaged {prefix} -> {weights} ({os.path.getsize(weights) / 1e6:.2f} MB); sample {video}")
  except (ValueError, OSError) as e:
    print(f"error: {str(e).splitlines()[0]}", file=sys.stderr)
    sys.exit(1)


if __name__ == "__main__":
  app.run(main)
