"""The built-in model and sample media: they load, animate, and beat the no-motion baseline."""

import os

import numpy as np
from absl.testing import absltest

import fomm_tf
from fomm_tf import builtin
from fomm_tf import errors
from fomm_tf.animation import cli as animate_cli
from fomm_tf.checkpoint import loading
from fomm_tf.io import media
from tests import testing


def _run_animate(workdir, *args):
  return testing.run_module("fomm_tf.animate", *args, cwd=workdir)


class BuiltinModelTest(testing.TestCase):

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    # The sample's source is an unseen identity's first frame and its driving
    # video is that whole clip, so the driving frames are the ground truth.
    cls.model = builtin.load_builtin_model()
    cls.driving = np.stack(media.read_video_frames(builtin.SAMPLE_DRIVING))
    cls.source = media.read_image(builtin.SAMPLE_SOURCE)

  def test_weights_are_small(self):
    self.assertLess(os.path.getsize(builtin.WEIGHTS), 5_000_000)

  def test_animation_of_the_sample_is_closer_to_the_driving_frames_than_the_source(self):
    driving, source = self.driving, self.source
    result = np.stack(list(fomm_tf.animate(self.model, source, driving, batch_size=8)))
    self.assertEqual(result.shape, (32, 128, 128, 3))
    animation_l1 = np.abs(result - driving).mean()
    no_motion_l1 = np.abs(source[np.newaxis] - driving).mean()
    self.assertLess(animation_l1, 0.9 * no_motion_l1,
                    f"animation L1 {animation_l1:.4f} vs no motion {no_motion_l1:.4f}")

  def test_the_dense_motion_alone_warps_the_source_towards_the_driving_frames(self):
    model, driving = self.model, self.driving
    sources = np.repeat(self.source[np.newaxis], len(driving), 0)
    deformed = model.generate(sources, model.detect_keypoints(sources), model.detect_keypoints(driving))["deformed"]
    warped_l1 = np.abs(deformed.numpy() - driving).mean()
    no_motion_l1 = np.abs(sources - driving).mean()
    self.assertLess(warped_l1, 0.9 * no_motion_l1, f"warped source L1 {warped_l1:.4f} vs no motion {no_motion_l1:.4f}")

  def test_weights_for_another_config_are_refused(self):
    model = fomm_tf.load_model("vox-256", build_discriminator=False)
    with self.assertRaisesRegex(errors.CheckpointMismatchError, r"synthetic-128\.weights\.npz: .*another config|shape"):
      loading.load_weights(model, builtin.WEIGHTS)

  def test_default_command_writes_animation_mp4(self):
    workdir = self.create_tempdir().full_path
    proc = _run_animate(workdir)
    self.assertEqual(proc.returncode, 0, proc.stderr[-3000:])
    result = os.path.join(workdir, "animation.mp4")
    self.assertIn(f"wrote 32 frames to {result}", proc.stdout)
    frames = np.stack(media.read_video_frames(result))
    self.assertLen(frames, 32)

    # bfloat16 in this process (the entry point ran above): same sample, same frames within rounding.
    bfloat16_path = os.path.join(workdir, "bfloat16.mp4")
    code, _, stderr = testing.run_cli(animate_cli, "--mixed_precision=bfloat16", f"--result_video={bfloat16_path}")
    self.assertEqual(code, 0, stderr[-3000:])
    bfloat16 = np.stack(media.read_video_frames(bfloat16_path))
    self.assertEqual(bfloat16.shape, frames.shape)
    self.assertLess(np.abs(bfloat16 - frames).mean(), 0.02)


if __name__ == "__main__":
  absltest.main()
