"""The built-in models (synthetic-128 and its lite student) and the sample: they load, animate, and beat the
no-motion baseline."""

import os

import numpy as np
from absl.testing import absltest

import fomm_tf
from fomm_tf import builtin
from fomm_tf import errors
from fomm_tf.animation import cli as animate_cli
from fomm_tf.checkpoint import loading
from fomm_tf.export import flops
from fomm_tf.io import media
from tests import testing


def _run_animate(workdir, *args):
  return testing.run_module("fomm_tf.animate", *args, cwd=workdir)


class _BuiltinModelTests:
  """What every built-in model must do, on the shipped sample."""
  NAME = None

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    # The sample's source is an unseen identity's first frame and its driving
    # video is that whole clip, so the driving frames are the ground truth.
    cls.model = builtin.load_builtin_model(cls.NAME)
    cls.driving = np.stack(media.read_video_frames(builtin.SAMPLE_DRIVING))
    cls.source = media.read_image(builtin.SAMPLE_SOURCE)

  def test_weights_are_small(self):
    self.assertLess(os.path.getsize(builtin.weights_path(self.NAME)), 5_000_000)

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


class BuiltinModelTest(_BuiltinModelTests, testing.TestCase):
  NAME = builtin.CONFIG

  def test_weights_for_another_config_are_refused(self):
    model = fomm_tf.load_model(builtin.LITE_CONFIG, build_discriminator=False)
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


class BuiltinLiteModelTest(_BuiltinModelTests, testing.TestCase):
  NAME = builtin.LITE_CONFIG

  def test_a_quarter_of_the_teachers_gflops_per_frame(self):
    student = flops.animation_gflops(self.model)
    teacher = flops.animation_gflops(fomm_tf.load_model(builtin.CONFIG, build_discriminator=False))
    for frame in ("first_frame", "further_frame"):
      self.assertLessEqual(student[frame], teacher[frame] / 4, frame)

  def test_the_command_animates_the_sample_with_the_lite_config_alone(self):
    result = self.tmp_path("lite.mp4")
    code, stdout, stderr = testing.run_cli(animate_cli, "--config=synthetic-128-lite", f"--result_video={result}")
    self.assertEqual(code, 0, stderr[-3000:])
    self.assertIn("using the built-in synthetic-128-lite model's weights", stdout)
    frames = np.stack(media.read_video_frames(result))
    self.assertEqual(frames.shape, (32, 128, 128, 3))
    self.assertLess(np.abs(frames - self.driving).mean(), np.abs(self.source[np.newaxis] - self.driving).mean())


if __name__ == "__main__":
  absltest.main()
