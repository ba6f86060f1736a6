"""The built-in model and sample media: they load, animate, and beat the no-motion baseline."""

import os
import subprocess
import sys

import numpy as np
from absl.testing import absltest

import fomm_tf
from fomm_tf import builtin
from fomm_tf.checkpoint import loading
from fomm_tf.data import media
from tests import fixture_util


class BuiltinModelTest(absltest.TestCase):

  def test_weights_are_small(self):
    self.assertLess(os.path.getsize(builtin.WEIGHTS), 5_000_000)

  def test_animates_the_sample_closer_than_no_motion(self):
    model = builtin.load_builtin_model()
    driving = media.read_video_frames(builtin.SAMPLE_DRIVING, max_frames=12)
    source = media.read_image(builtin.SAMPLE_SOURCE)
    result = np.stack(list(fomm_tf.animate(model, source, driving, batch_size=4)))
    self.assertEqual(result.shape, (12, 128, 128, 3))
    truth = np.stack(driving)
    fomm_l1 = np.abs(result - truth).mean()
    no_motion_l1 = np.abs(source[np.newaxis] - truth).mean()
    self.assertLess(fomm_l1, no_motion_l1, f"FOMM L1 {fomm_l1:.4f} vs no motion {no_motion_l1:.4f}")

  def test_weights_for_another_config_are_refused(self):
    model = fomm_tf.load_model("vox-256", build_discriminator=False)
    with self.assertRaisesRegex(loading.CheckpointLoadError, r"synthetic-128\.weights\.npz: .*another config|shape"):
      loading.load_weights(model, builtin.WEIGHTS)

  def test_default_command_writes_animation_mp4(self):
    workdir = self.create_tempdir().full_path
    proc = subprocess.run([sys.executable, "-m", "fomm_tf.animate"], capture_output=True, text=True, cwd=workdir,
                          timeout=600, env=dict(os.environ, PYTHONPATH=fixture_util.REPO_ROOT))
    self.assertEqual(proc.returncode, 0, proc.stderr[-3000:])
    result = os.path.join(workdir, "animation.mp4")
    self.assertIn(f"wrote 32 frames to {result}", proc.stdout)
    self.assertLen(media.read_video_frames(result), 32)


if __name__ == "__main__":
  absltest.main()
