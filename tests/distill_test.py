"""Distillation (`python -m fomm_tf.train --teacher_checkpoint=...`): a tiny lite student learns a tiny teacher.

The teacher is the tiny vox-256-structured model with seeded random weights,
saved as a fomm-tf checkpoint and read back from it; the student is the same
config with the lite layers. One uninterrupted run per class is shared.
"""

import glob
import os
import shutil

import numpy as np
import tensorflow as tf
from absl.testing import absltest

import fomm_tf
from fomm_tf.checkpoint import loading as checkpoint_loading
from fomm_tf.models import fomm_model
from fomm_tf.training import cli as train_cli
from fomm_tf.training import distill
from fomm_tf.training import checkpoints
from fomm_tf.training import loop as trainer_lib
from tests import testing

# The student's training schedule: tiny batches, one VGG layer at one scale (random VGG: a smoke test of the term);
# its hourglasses one level deep (a training step traces faster).
STUDENT = dict(testing.TINY_TRAINING,
               num_repeats=4,
               kp_num_blocks=1,
               dm_num_blocks=1,
               gen_num_bottleneck_blocks=1,
               loss_perceptual=[1.0, 0.0, 0.0, 0.0, 0.0],
               lr_generator=2e-3,
               lr_kp_detector=2e-3)
STEPS = 6


def student_config():
  return testing.tiny_lite_config().replace(**STUDENT)


class DistillTest(tf.test.TestCase):

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls.root = testing.make_class_dir("distill_test_")
    cls.dataset = testing.tiny_dataset()[1]
    cls.teacher_flags = testing.write_tiny_flagfile(cls.root)
    cls.teacher_checkpoint = os.path.join(cls.root, "teacher", "weights")
    checkpoint_loading.save_weights(testing.tiny_model(), cls.teacher_checkpoint)
    cls.teacher = distill.Teacher(fomm_tf.load_config(cls.teacher_flags), cls.teacher_checkpoint)
    cls.model_dir = os.path.join(cls.root, "straight")
    cls.straight = cls.make(cls.model_dir, max_steps=STEPS, image_every=3, checkpoint_every=3, keep_checkpoints=0)
    cls.straight.train()

  @classmethod
  def tearDownClass(cls):
    shutil.rmtree(cls.root)
    super().tearDownClass()

  @classmethod
  def make(cls, model_dir, **kwargs):
    kwargs.setdefault("summary_every", 1)
    kwargs.setdefault("checkpoint_every", 1000)
    return trainer_lib.Trainer(student_config(),
                               cls.dataset,
                               model_dir,
                               vgg19_weights="random",
                               teacher=cls.teacher,
                               **kwargs)

  def test_losses_fall_and_the_student_keypoints_move_toward_the_teachers(self):
    history = dict(self.straight.history)
    self.assertEqual(sorted(history), list(range(1, STEPS + 1)))
    self.assertEqual(set(history[1]), {"keypoints", "jacobians", "deformation", "occlusion", "pixel", "perceptual"})
    for losses in history.values():
      self.assertTrue(all(np.isfinite(v) for v in losses.values()), losses)
    first = np.mean([sum(history[s].values()) for s in (1, 2)])
    last = np.mean([sum(history[s].values()) for s in (STEPS - 1, STEPS)])
    self.assertLess(last, first, history)
    # The student's keypoints (in training mode, as the loss sees them) move toward the teacher's.
    keypoints = [history[s]["keypoints"] for s in sorted(history)]
    self.assertLess(np.mean(keypoints[-2:]), np.mean(keypoints[:2]), keypoints)

  def test_resume_gives_the_weights_of_an_uninterrupted_run(self):
    # A run killed after step 3 left the uninterrupted run's step-3 checkpoint: resume from a copy of it.
    model_dir = self.create_tempdir().full_path
    testing.copy_checkpoint(self.model_dir, 3, model_dir)
    resumed = self.make(model_dir, max_steps=STEPS, image_every=3)
    self.assertEqual(int(resumed.state.step.numpy()), 3)
    resumed.train()
    for name in ("kp_detector", "generator"):
      for a, b in zip(getattr(self.straight.state.model, name).weights, getattr(resumed.state.model, name).weights):
        self.assertAllClose(a.numpy(), b.numpy(), rtol=1e-4, atol=1e-6, msg=a.path)
    self.assertEqual([step for step, _ in resumed.history], [4, 5, 6])
    self.assertIsNone(resumed.state.model.discriminator)

  def test_keep_checkpoints(self):
    # keep_checkpoints=0 keeps every one: the step-3 checkpoint and the last.
    steps = sorted(
        int(p.rsplit("-", 1)[1].split(".")[0])
        for p in glob.glob(os.path.join(self.model_dir, f"{checkpoints.PREFIX}-*.index")))
    self.assertEqual(steps, [3, 6])

  def test_tensorboard_scalars_and_teacher_student_real_grid(self):
    written = testing.tensorboard_events(self.model_dir)
    tags = {tag for tag, _, _ in written}
    for tag in ("loss/keypoints", "loss/deformation", "loss/occlusion", "loss/pixel", "loss/total"):
      self.assertIn(tag, tags)
    images = [(step, value) for tag, step, value in written if tag == "visualization"]
    self.assertEqual([step for step, _ in images], [1, 3, 6])
    width, height = int(images[0][1][0]), int(images[0][1][1])
    png = tf.io.decode_png(images[0][1][2]).numpy()
    self.assertEqual(png.shape, (height, width, 3))
    # 2 samples, each one row of 4 panels (source | teacher | student | real) of 64 px under 12 px labels.
    self.assertEqual((width, height), (4 * 64 + 3 * 4, 2 * (64 + 12) + 2 * 4))

  def test_the_student_checkpoint_animates_as_a_lite_model(self):
    model = fomm_tf.load_model(student_config(), checkpoint=self.model_dir)
    for a, b in zip(self.straight.state.model.generator.weights, model.generator.weights):
      np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=a.path)
    frames = testing.as_float(testing.textured_square_frames(3, 64, 64))
    self.assertLen(list(fomm_tf.animate(model, frames[0], frames)), 3)

  def test_student_starts_from_the_teacher_where_shapes_allow(self):
    student = fomm_model.FommModel(student_config())
    teacher = testing.tiny_model()
    copied = checkpoint_loading.copy_matching_weights(teacher, student)
    self.assertGreater(copied, 0)
    path = "kp_detector/predictor/down_block_0/norm/gamma"
    teacher_vars, student_vars = teacher.inference_variables(), student.inference_variables()
    self.assertIn(path, student_vars)
    np.testing.assert_array_equal(student_vars[path].numpy(), teacher_vars[path].numpy())


class DistillCliTest(absltest.TestCase, testing.TestMixin):
  """Mismatched or incomplete distillations fail with one line before any network is built."""

  def run_train(self, *args):
    root = self.tmp_dir()
    return testing.run_cli(train_cli, f"--flagfile={testing.write_tiny_flagfile(root)}",
                           f"--dataset_root={os.path.join(root, 'no-data')}", f"--model_dir={root}/out", *args)

  def test_mismatched_teacher_and_student(self):
    teacher = os.path.join(testing.REPO_ROOT, "configs", "vox-256.flags")
    self.assertErrorLine(
        self.run_train("--kp_separable", "--num_kp=5", f"--teacher_config={teacher}",
                       "--teacher_checkpoint=/nope.pth.tar"),
        r"teacher and student differ in --num_kp: teacher 10 .*, student 5 ")
    self.assertErrorLine(self.run_train(f"--teacher_config={teacher}", "--teacher_checkpoint=/nope.pth.tar"),
                         r"teacher and student differ in --frame_shape: teacher 256,256,3 .*, student 64,64,3 ")

  def test_distillation_flags_need_a_teacher(self):
    self.assertErrorLine(self.run_train("--distill_pixel=3"), r"--distill_pixel needs --teacher_checkpoint")
    self.assertErrorLine(self.run_train("--teacher_checkpoint=/x"), r"--teacher_checkpoint needs --teacher_config")
    self.assertErrorLine(
        self.run_train("--teacher_config=vox-256", "--frame_shape=256,256,3", "--teacher_checkpoint=/x",
                       "--distill_real=-1"), r"--distill_real must be a finite number >= 0, got -1")


if __name__ == "__main__":
  absltest.main()
