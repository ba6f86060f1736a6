"""Packages a trained run as a built-in model: its weights (and for synthetic-128 the sample media) in fomm_tf/assets.

  python tools/package_builtin_model.py --model_dir=runs/synthetic-128 --dataset_root=data/synthetic-128
  python tools/package_builtin_model.py --model=synthetic-128-lite --model_dir=runs/synthetic-128-lite
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import flags  # pylint: disable=g-import-not-at-top
import numpy as np


def define_flags(flag_values):
  kw = {"flag_values": flag_values}
  flags.DEFINE_string("model", "synthetic-128", "The built-in model: synthetic-128 or synthetic-128-lite.", **kw)
  flags.DEFINE_string("model_dir", None, "Training run (a TF checkpoint directory) of configs/MODEL.flags.", **kw)
  flags.DEFINE_string(
      "dataset_root", None,
      "The synthetic dataset it was trained on; the sample media come from test/ (synthetic-128 only: "
      "the lite student animates the same sample).", **kw)
  flags.DEFINE_string("sample_video", None,
                      "Test video used as the sample (default: the one with the most motion, see most_moving_video).",
                      **kw)
  flags.DEFINE_string("assets_dir", None, "Output folder (default: fomm_tf/assets).", **kw)


def most_moving_video(videos, read_frames):
  """The video whose frames differ most from its first frame (mean absolute difference).

  A demo should show motion, and this choice looks only at the data, never at the model.
  """

  def motion(video):
    frames = np.stack(read_frames(video))
    return float(np.abs(frames - frames[:1]).mean())

  return max(videos, key=motion)


def run(flag_values):
  from PIL import Image
  from fomm_tf import builtin
  from fomm_tf.checkpoint import loading
  from fomm_tf.checkpoint import npz_weights
  from fomm_tf.data import video_index
  from fomm_tf.errors import MediaError
  from fomm_tf.errors import UsageError
  from fomm_tf.io import files
  from fomm_tf.io import media
  from fomm_tf.io import video_writer
  # An unknown --model is refused here, before any model is built or folder made.
  weights_name = os.path.basename(builtin.weights_path(flag_values.model))
  sample = flag_values.model == builtin.CONFIG
  if not flag_values.model_dir or (sample and not flag_values.dataset_root):
    raise UsageError("--model_dir is required, and for synthetic-128 --dataset_root too")
  assets = flag_values.assets_dir or builtin.ASSETS_DIR
  os.makedirs(assets, exist_ok=True)
  model = loading.load_model(flag_values.model)
  prefix = loading.load_weights(model, flag_values.model_dir)
  weights = npz_weights.save_npz_weights(model, os.path.join(assets, weights_name))
  sample_note = ""
  if sample:
    videos = video_index.find_videos(flag_values.dataset_root, "test")
    video = flag_values.sample_video or most_moving_video(videos, media.read_video_frames)
    frames = media.read_video_frames(video)
    source = os.path.join(assets, os.path.basename(builtin.SAMPLE_SOURCE))
    with files.atomic_file(source, MediaError, suffix=".png") as temp:
      Image.fromarray(np.round(frames[0] * 255).astype(np.uint8)).save(temp)
    with video_writer.VideoWriter(os.path.join(assets, os.path.basename(builtin.SAMPLE_DRIVING)), 25, crf=12) as w:
      for frame in frames:
        w.write(frame)
    sample_note = f"; sample {video}"
  print(f"packaged {prefix} -> {weights} ({os.path.getsize(weights) / 1e6:.2f} MB){sample_note}")


if __name__ == "__main__":
  from fomm_tf import cli
  cli.main_function(define_flags, run)()
