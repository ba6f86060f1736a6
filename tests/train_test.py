"""Training: every loss, falling losses, resume equality, signals, NaN handling, TensorBoard, distribution."""

import glob
import json
import os
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import tensorflow as tf
from absl.testing import absltest

import fomm_tf
from fomm_tf import config as config_lib
from fomm_tf.data import synthetic
from fomm_tf.training import trainer as trainer_lib
from tests import fixture_util
from tests import tiny_model_util as tiny

_DATASET = None


def dataset_root():
  global _DATASET
  if _DATASET is None:
    root = os.path.join(absltest.get_default_test_tmpdir(), "train_test_dataset")
    if not os.path.exists(os.path.join(root, "dataset.json")):
      synthetic.write_dataset(root, num_train=4, num_test=2, num_frames=8, frame_size=64, seed=0, fmt="mp4",
                              videos_per_identity=2, overwrite=True)
    _DATASET = root
  return _DATASET


def tiny_config(**overrides):
  path = tiny.write_tiny_flagfile(absltest.get_default_test_tmpdir())
  values = dict(train_batch_size=2, num_repeats=2, num_epochs=1, loss_perceptual=[1.0, 1.0, 1.0, 0.0, 0.0],
                perceptual_scales=[1.0, 0.5], id_sampling=False, jitter_brightness=0.0, jitter_contrast=0.0,
                jitter_saturation=0.0, jitter_hue=0.0)
  values.update(overrides)
  return config_lib.load_config(path, **values)


def make_trainer(model_dir, cfg=None, **kwargs):
  kwargs.setdefault("vgg19_weights", "random")
  kwargs.setdefault("checkpoint_every", 1000)
  kwargs.setdefault("image_every", 0)
  return trainer_lib.Trainer(cfg or tiny_config(), dataset_root(), model_dir, **kwargs)


def free_port():
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def train_cmd(model_dir, *extra):
  flagfile = tiny.write_tiny_flagfile(absltest.get_default_test_tmpdir())
  return [sys.executable, "-m", "fomm_tf.train", f"--flagfile={flagfile}", f"--dataset_root={dataset_root()}",
          f"--model_dir={model_dir}", "--vgg19_weights=random", "--loss_perceptual=1,0,0,0,0",
          "--perceptual_scales=1", "--noid_sampling", "--num_repeats=4", "--image_every=0", *extra]


# Synchronised batch norm makes every replica graph pay one all-reduce per
# batch-norm call, which is slow to build on CPU: distributed runs use a
# shallower network and no VGG.
SMALL_NET = ["--loss_perceptual=0,0,0,0,0", "--loss_pixel=1", "--gen_num_bottleneck_blocks=1", "--kp_num_blocks=2",
             "--dm_num_blocks=2"]


def last_losses(stdout):
  line = [l for l in stdout.splitlines() if l.startswith("done at step")][-1]
  return {k: float(v) for k, v in (part.split() for part in line.split(": ", 1)[1].split(", "))}


class TrainTest(tf.test.TestCase):

  def test_every_loss_is_finite(self):
    cfg = tiny_config(loss_generator_gan=1.0, disc_use_kp=True, disc_sn=True, loss_pixel=1.0)
    trainer = make_trainer(self.create_tempdir().full_path, cfg, max_steps=2)
    losses = trainer.train()
    self.assertEqual(set(losses), {"perceptual", "pixel", "gen_gan", "feature_matching", "equivariance_value",
                                   "equivariance_jacobian", "disc_gan"})
    self.assertTrue(all(np.isfinite(v) for v in losses.values()), losses)
    self.assertEqual(int(trainer.step.numpy()), 2)

  def test_losses_fall_on_easy_data(self):
    cfg = tiny_config(loss_perceptual=[0.0] * 5, loss_pixel=10.0, lr_generator=2e-3, lr_kp_detector=2e-3,
                      flip_horizontal=False, flip_time=False, num_repeats=20)
    trainer = make_trainer(self.create_tempdir().full_path, cfg, max_steps=30)
    trainer.train()
    pixel = [losses["pixel"] for _, losses in trainer.history]
    self.assertLess(np.mean(pixel[-5:]), 0.8 * np.mean(pixel[:5]), pixel)

  def test_resume_matches_uninterrupted_run(self):
    straight = make_trainer(self.create_tempdir().full_path, max_steps=4)
    straight.train()
    model_dir = self.create_tempdir().full_path
    first = make_trainer(model_dir, max_steps=2)
    first.train()
    resumed = make_trainer(model_dir, max_steps=4)
    self.assertEqual(int(resumed.step.numpy()), 2)
    self.assertIsNotNone(resumed.restored_from)
    resumed.train()
    self.assertEqual(int(resumed.step.numpy()), 4)
    self.assertEqual(int(resumed.epoch.numpy()), int(straight.epoch.numpy()))
    for (step_a, a), (step_b, b) in zip(straight.history[2:], resumed.history):
      self.assertEqual(step_a, step_b)
      for k in a:
        self.assertAllClose(a[k], b[k], rtol=1e-4, atol=1e-6, msg=f"{k} at step {step_a}")
    for name in straight.optimizers:
      for va, vb in zip(straight.optimizers[name].variables, resumed.optimizers[name].variables):
        self.assertAllClose(va.numpy(), vb.numpy(), rtol=1e-4, atol=1e-6, msg=f"{name} {va.path}")

  def test_checkpoint_loads_for_animation(self):
    model_dir = self.create_tempdir().full_path
    cfg = tiny_config()
    make_trainer(model_dir, cfg, max_steps=1).train()
    model = fomm_tf.load_model(cfg, checkpoint=model_dir)
    frames = [f.astype(np.float32) / 255 for f in tiny.moving_square_frames(3, 64, 64)]
    self.assertLen(list(fomm_tf.animate(model, frames[0], frames)), 3)

  def assert_poisoned_weights_stop_training(self, kernel_of, error_pattern):
    """Sets one kernel to NaN; the run must stop with `error_pattern` and leave no checkpoint."""
    model_dir = self.create_tempdir().full_path
    trainer = make_trainer(model_dir, max_steps=3, checkpoint_every=1)
    kernel = kernel_of(trainer.model)
    kernel.assign(np.full(kernel.shape, np.nan, np.float32))
    with self.assertRaisesRegex(trainer_lib.TrainingError, error_pattern):
      trainer.train()
    self.assertEqual(glob.glob(os.path.join(model_dir, "ckpt-*")), [])

  def test_nan_loss_stops_without_saving(self):
    self.assert_poisoned_weights_stop_training(lambda model: model.kp_detector.kp.kernel,
                                               r"loss \w+ is nan at step 1; stopped without saving")

  def test_non_finite_weights_are_never_saved(self):
    # A NaN generator output can still give finite losses (ReLU maps NaN to 0
    # on this CPU), so the weights themselves are checked before each save.
    self.assert_poisoned_weights_stop_training(lambda model: model.generator.final.kernel,
                                               r"is not finite at step 1; no checkpoint written")

  def test_tensorboard_has_scalars_and_image_grid(self):
    model_dir = self.create_tempdir().full_path
    make_trainer(model_dir, max_steps=2, summary_every=1, image_every=2).train()
    tags, images = set(), []
    for path in glob.glob(os.path.join(model_dir, "train", "events.out.tfevents.*")):
      for event in tf.compat.v1.train.summary_iterator(path):
        for value in event.summary.value:
          tags.add(value.tag)
          if value.tag == "visualization":
            images.append(tf.make_ndarray(value.tensor))
    for tag in ("loss/perceptual", "loss/equivariance_value", "loss/equivariance_jacobian", "loss/total",
                "learning_rate/generator", "learning_rate/kp_detector", "steps_per_second"):
      self.assertIn(tag, tags)
    self.assertLen(images, 1)
    # The stored image summary is [width, height, encoded PNG].
    width, height = int(images[0][0]), int(images[0][1])
    self.assertEqual(height, 64)
    # source, transformed, driving, deformed, prediction, occlusion, 11 masked warps, summed masks.
    self.assertEqual(width, 64 * 18)

  def test_learning_rate_milestones(self):
    trainer = make_trainer(self.create_tempdir().full_path, tiny_config(epoch_milestones=[1, 3]), max_steps=1)
    self.assertAllClose(trainer.learning_rates(0)["generator"], 2e-4)
    self.assertAllClose(trainer.learning_rates(1)["generator"], 2e-5)
    self.assertAllClose(trainer.learning_rates(3)["kp_detector"], 2e-6)

  def test_bfloat16_mixed_precision_step(self):
    import keras
    try:
      trainer = make_trainer(self.create_tempdir().full_path, max_steps=1, mixed_precision="bfloat16")
      losses = trainer.train()
    finally:
      keras.mixed_precision.set_global_policy("float32")
    self.assertTrue(all(np.isfinite(v) for v in losses.values()), losses)


class TrainProcessTest(absltest.TestCase):
  """The entry point in real processes: replicas, workers and signals."""

  def run_ok(self, cmd, env=None):
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=fixture_util.REPO_ROOT, timeout=600, env=env)
    self.assertEqual(proc.returncode, 0, proc.stderr[-3000:])
    return proc.stdout

  def test_two_cpu_replicas_match_one(self):
    one = last_losses(self.run_ok(train_cmd(self.create_tempdir().full_path, "--max_steps=2", "--batch_size=2",
                                            *SMALL_NET)))
    two = last_losses(self.run_ok(train_cmd(self.create_tempdir().full_path, "--max_steps=2", "--batch_size=2",
                                            "--num_cpu_replicas=2", *SMALL_NET)))
    self.assertEqual(set(one), {"pixel", "equivariance_value", "equivariance_jacobian"})
    self.assertEqual(set(one), set(two))
    for k in one:
      self.assertAlmostEqual(one[k], two[k], delta=1e-3 * max(1.0, abs(one[k])), msg=k)

  def test_sigterm_saves_a_checkpoint(self):
    model_dir = self.create_tempdir().full_path
    proc = subprocess.Popen(train_cmd(model_dir, "--max_steps=100000", "--summary_every=1", "--batch_size=2"),
                            cwd=fixture_util.REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 300
    # Wait until training runs (the first scalars are written at step 1).
    while time.time() < deadline and not glob.glob(os.path.join(model_dir, "train", "events.*")):
      time.sleep(0.5)
    time.sleep(2)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=300)
    self.assertEqual(proc.returncode, 128 + signal.SIGTERM, stderr[-3000:])
    self.assertIn("interrupted: stopped by signal 15", stderr)
    latest = tf.train.latest_checkpoint(model_dir)
    self.assertIsNotNone(latest)
    self.assertGreater(int(latest.rsplit("-", 1)[1]), 0)

  def test_two_worker_multiworker_mirrored(self):
    ports = [free_port(), free_port()]
    cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
    model_dir = self.create_tempdir().full_path
    procs = []
    for index in range(2):
      env = dict(os.environ, TF_CONFIG=json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}}))
      procs.append(subprocess.Popen(train_cmd(model_dir, "--max_steps=2", "--batch_size=2", *SMALL_NET),
                                    cwd=fixture_util.REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                    text=True, env=env))
    outputs = [p.communicate(timeout=600) for p in procs]
    for p, (out, err) in zip(procs, outputs):
      self.assertEqual(p.returncode, 0, err[-3000:])
      self.assertIn("done at step 2", out)
    self.assertIsNotNone(tf.train.latest_checkpoint(model_dir))
    self.assertFalse(glob.glob(os.path.join(model_dir, ".worker-*")))


if __name__ == "__main__":
  absltest.main()
