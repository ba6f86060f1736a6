"""tools/train_builtin_model.sh end to end on a tiny dataset, and tools/package_builtin_model.py's sample choice."""

import glob
import os
import re
import subprocess
import sys

import numpy as np
from absl.testing import absltest

from fomm_tf import builtin
from fomm_tf.checkpoint import loading
from fomm_tf.io import media
from tests import testing
from tools import package_builtin_model


class MostMovingVideoTest(testing.TestCase):

  def test_picks_the_video_whose_frames_differ_most_from_its_first_frame(self):
    root = self.create_tempdir().full_path
    still = np.full((6, 32, 32, 3), 0.5, np.float32)
    still[:, 8:20, 2:14] = 0.9
    moving = np.stack([np.roll(still[0], 4 * t, axis=1) for t in range(6)])
    brighter = still + np.linspace(0, 0.02, 6, dtype=np.float32)[:, None, None, None]
    paths = []
    for name, frames in (("still", still), ("moving", moving), ("brighter", brighter)):
      paths.append(os.path.join(root, name + ".mp4"))
      testing.write_video(paths[-1], np.round(frames * 255).astype(np.uint8), fps=25)
    self.assertEqual(package_builtin_model.most_moving_video(paths, media.read_video_frames), paths[1])


class PackageCommandTest(testing.TestCase):

  def test_an_unknown_model_is_refused_before_anything_is_written(self):
    assets = os.path.join(self.tmp_dir(), "assets")
    outcome = testing.run_cli(package_builtin_model, "--model=vox-256", "--model_dir=run", f"--assets_dir={assets}")
    self.assertErrorLine(
        outcome, r"'vox-256' is not a built-in model; the built-in models are synthetic-128, "
        r"synthetic-128-lite")
    self.assertFalse(os.path.exists(assets))


class TrainBuiltinModelScriptTest(testing.TestCase):
  """The script that made the shipped weights, every stage for one step on a dataset of 2 puppets."""

  def test_every_stage_runs_and_packages_loadable_weights(self):
    work = self.tmp_dir()
    assets = os.path.join(work, "assets")
    env = dict(os.environ, NUM_TRAIN="2", NUM_TEST="1", NUM_FRAMES="8", ASSETS_DIR=assets, PYTHON=sys.executable)
    result = subprocess.run([
        "bash",
        os.path.join(testing.REPO_ROOT, "tools", "train_builtin_model.sh"),
        os.path.join(work, "run"), "--max_steps=1", "--batch_size=2"
    ],
                            capture_output=True,
                            text=True,
                            env=env,
                            timeout=900)
    self.assertEqual(result.returncode, 0, result.stderr[-3000:])
    # Stage 3 started from stage 2; the student learnt from the teacher.
    self.assertRegex(result.stderr, r"every variable starts from .*stage-1")
    self.assertTrue(glob.glob(os.path.join(work, "run", "student", "ckpt-1.index")))
    for name in builtin.MODELS:
      weights = os.path.join(assets, f"{name}.weights.npz")
      loading.load_model(name, checkpoint=weights)  # Loads into the shipped config, or raises.
    self.assertTrue(os.path.isfile(os.path.join(assets, "sample_driving.mp4")))
    # The report: four methods reconstruct the test video of each dataset (training seed, unseen seed), then the
    # cost of each model.
    self.assertLen(re.findall(r"^\| (teacher|student|no motion|global affine).*\|$", result.stdout, re.M), 8)
    self.assertLen(re.findall(r"^\| synthetic-128(-lite)? \| [\d.]+ \| -?[\d.]+ \|$", result.stdout, re.M), 2,
                   result.stdout[-2000:])


if __name__ == "__main__":
  absltest.main()
