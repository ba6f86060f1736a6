"""Training: every loss, falling losses, resume equality, signals, NaN handling, TensorBoard, distribution."""

import glob
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

import keras
import numpy as np
import tensorflow as tf
from absl.testing import absltest

import fomm_tf
from fomm_tf import config as config_lib
from fomm_tf import errors
from fomm_tf.checkpoint import npz_weights
from fomm_tf.models import fomm_model
from fomm_tf.training import loop as trainer_lib
from fomm_tf.training import state as state_lib
from tests import testing


def dataset_root():
  return testing.tiny_dataset()[1]


def tiny_config(**overrides):
  """The tiny model, shallower still (each run here builds and traces a training step: the suite's cost), with
  a two-layer, one-scale VGG loss; every loss term and every network is still there."""
  values = dict(testing.TINY_TRAINING,
                num_repeats=2,
                loss_perceptual=[1.0, 1.0, 0.0, 0.0, 0.0],
                kp_num_blocks=1,
                dm_num_blocks=1,
                gen_num_bottleneck_blocks=1)
  values.update(overrides)
  return testing.tiny_config().replace(**values)


def make_trainer(model_dir, cfg=None, **kwargs):
  kwargs.setdefault("vgg19_weights", "random")
  kwargs.setdefault("checkpoint_every", 1000)
  kwargs.setdefault("image_every", 0)
  kwargs.setdefault("summary_every", 1)
  return trainer_lib.Trainer(cfg or tiny_config(), dataset_root(), model_dir, **kwargs)


def free_port():
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def train_cmd(model_dir, *extra):
  return [sys.executable, "-m", "fomm_tf.train", *testing.train_args(model_dir, *extra)]


def last_losses(stdout):
  line = [l for l in stdout.splitlines() if l.startswith("done at step")][-1]
  return {k: float(v) for k, v in (part.split() for part in line.split(": ", 1)[1].split(", "))}


class TrainTest(tf.test.TestCase):

  def test_every_loss_is_finite(self):
    cfg = tiny_config(loss_generator_gan=1.0, disc_use_kp=True, disc_sn=True, loss_pixel=1.0)
    trainer = make_trainer(self.create_tempdir().full_path, cfg, max_steps=2)
    losses = trainer.train()
    self.assertEqual(set(losses), {
        "perceptual", "pixel", "gen_gan", "feature_matching", "equivariance_value", "equivariance_jacobian", "disc_gan"
    })
    self.assertTrue(all(np.isfinite(v) for v in losses.values()), losses)
    self.assertEqual(int(trainer.state.step.numpy()), 2)

  def test_losses_fall_on_easy_data(self):
    cfg = tiny_config(loss_perceptual=[0.0] * 5,
                      loss_pixel=10.0,
                      lr_generator=2e-3,
                      lr_kp_detector=2e-3,
                      flip_horizontal=False,
                      flip_time=False,
                      num_repeats=20)
    trainer = make_trainer(self.create_tempdir().full_path, cfg, max_steps=30)
    trainer.train()
    pixel = [losses["pixel"] for _, losses in trainer.history]
    self.assertLess(np.mean(pixel[-5:]), 0.8 * np.mean(pixel[:5]), pixel)

  def test_non_finite_weights_and_a_nan_loss_stop_training_without_saving(self):
    # One run (its step traced once) poisoned twice; each time it must stop and leave no checkpoint.
    model_dir = self.create_tempdir().full_path
    trainer = make_trainer(model_dir, max_steps=3, checkpoint_every=1)
    poison = lambda variable: variable.assign(np.full(variable.shape, np.nan, np.float32))
    # Training normalises with batch statistics, so a NaN running variance leaves the losses finite; the weights
    # themselves are checked before each save.
    poison(trainer.state.model.generator.first.norm.moving_variance)
    with self.assertRaisesRegex(errors.TrainingError, r"is not finite at step 1; no checkpoint written"):
      trainer.train()
    poison(trainer.state.model.kp_detector.kp.kernel)
    with self.assertRaisesRegex(errors.TrainingError, r"loss \w+ is nan at step 2; stopped without saving"):
      trainer.train()
    self.assertEqual(glob.glob(os.path.join(model_dir, "ckpt-*")), [])

  def test_learning_rate_milestones(self):
    trainer = make_trainer(self.create_tempdir().full_path, tiny_config(epoch_milestones=[1, 3]), max_steps=1)
    self.assertAllClose(trainer.state.learning_rates(0)["generator"], 2e-4)
    self.assertAllClose(trainer.state.learning_rates(1)["generator"], 2e-5)
    self.assertAllClose(trainer.state.learning_rates(3)["kp_detector"], 2e-6)

  def test_bfloat16_mixed_precision_step(self):
    trainer = make_trainer(self.create_tempdir().full_path, max_steps=1, mixed_precision="bfloat16")
    losses = trainer.train()
    self.assertTrue(all(np.isfinite(v) for v in losses.values()), losses)
    self.assertEqual(trainer.state.model.generator.compute_dtype, "bfloat16")
    # An argument, not a global policy left changed behind the caller.
    self.assertEqual(keras.mixed_precision.global_policy().name, "float32")

  def test_float16_step_shares_one_loss_scale_for_detector_and_generator(self):
    trainer = make_trainer(self.create_tempdir().full_path, max_steps=2, mixed_precision="float16")
    scale = trainer.state.loss_scales["generator"]
    self.assertEqual(float(scale.scale.numpy()), 2.0**15)
    before = {v.path: v.numpy().copy() for v in trainer.state.model.kp_detector.trainable_weights[:2]}
    losses = trainer.train()
    self.assertTrue(all(np.isfinite(v) for v in losses.values()), losses)
    self.assertEqual(keras.mixed_precision.global_policy().name, "float32")
    self.assertEqual(trainer.state.model.kp_detector.compute_dtype, "float16")
    # The detector and the generator are updated together or not at all, by one scale; plain Adam optimizers.
    self.assertFalse(any(isinstance(o, keras.optimizers.LossScaleOptimizer) for o in trainer.state.optimizers.values()))
    updated = [
        not np.array_equal(before[v.path], v.numpy()) for v in trainer.state.model.kp_detector.trainable_weights[:2]
    ]
    finite_steps = int(scale.finite_steps.numpy())
    self.assertEqual(any(updated), finite_steps > 0)
    # Each skipped (overflowing) step halves the scale, so two steps leave 2^15, 2^14 or 2^13.
    self.assertIn(float(scale.scale.numpy()), (2.0**13, 2.0**14, 2.0**15))

  def test_bad_counts_are_errors(self):
    for kwargs, pattern in ((dict(batch_size=0), "--batch_size must be >= 1, got 0"),
                            (dict(max_steps=0), "--max_steps must be >= 1, got 0"),
                            (dict(checkpoint_every=-1), "--checkpoint_every"), (dict(keep_checkpoints=-2),
                                                                                "--keep_checkpoints")):
      with self.assertRaisesRegex(errors.UsageError, pattern):
        make_trainer(self.create_tempdir().full_path, **kwargs)

  def test_init_config_takes_the_variables_whose_path_and_shape_match(self):
    start_cfg = tiny_config(loss_perceptual=[0.0] * 5)
    start = fomm_model.FommModel(start_cfg)
    weights = os.path.join(self.create_tempdir().full_path, "start.npz")
    npz_weights.save_npz_weights(start, weights, dtype=np.float32)
    # A wider generator: its encoder and decoder no longer fit, the keypoint detector and dense motion do.
    wider = tiny_config(loss_perceptual=[0.0] * 5, gen_block_expansion=16)
    state = state_lib.TrainState(wider, tf.distribute.get_strategy(), init_checkpoint=weights, init_config=start_cfg)
    source = start.inference_variables()
    copied = mismatched = 0
    for path, variable in state.model.inference_variables().items():
      if path in source and tuple(variable.shape) == tuple(source[path].shape):
        self.assertAllEqual(variable.numpy(), source[path].numpy(), msg=path)
        copied += 1
      else:
        mismatched += 1
    self.assertGreater(mismatched, 0)
    self.assertGreaterEqual(copied, len(start.kp_detector.weights))
    with self.assertRaisesRegex(errors.UsageError, "--init_config names the config of --init_checkpoint"):
      make_trainer(self.create_tempdir().full_path, init_config="vox-256")


def checkpoint_steps(model_dir):
  return sorted(int(p.rsplit("-", 1)[1].split(".")[0]) for p in glob.glob(os.path.join(model_dir, "ckpt-*.index")))


class FourStepRunTest(tf.test.TestCase):
  """One four-step run, saved every step (keeping three), read back by each test."""

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls.root = testing.make_class_dir("train_test_run_")
    cls.model_dir = os.path.join(cls.root, "run")
    cls.straight = make_trainer(cls.model_dir,
                                max_steps=4,
                                checkpoint_every=1,
                                keep_checkpoints=3,
                                summary_every=1,
                                image_every=2)
    cls.straight.train()

  @classmethod
  def tearDownClass(cls):
    shutil.rmtree(cls.root)
    super().tearDownClass()

  def test_keep_checkpoints_keeps_the_newest(self):
    self.assertEqual(checkpoint_steps(self.model_dir), [2, 3, 4])

  def test_keep_checkpoints_0_keeps_every_one(self):
    self.assertEqual(checkpoint_steps(testing.tiny_training_run()), [1, 2, 3, 4, 5, 6])

  def test_resume_matches_uninterrupted_run(self):
    # A run stopped after step 2 left the straight run's step-2 checkpoint: resume from a copy of it.
    model_dir = self.create_tempdir().full_path
    testing.copy_checkpoint(self.model_dir, 2, model_dir)
    # A run that writes image grids steps with a graph that also returns the grids' outputs, which rounds a little
    # differently: image grids on in both runs keeps the comparison exact.
    resumed = make_trainer(model_dir, max_steps=4, image_every=2)
    self.assertEqual(int(resumed.state.step.numpy()), 2)
    self.assertIsNotNone(resumed.restored_from)
    resumed.train()
    straight = self.straight
    self.assertEqual(int(resumed.state.step.numpy()), 4)
    self.assertEqual(int(resumed.state.epoch.numpy()), int(straight.state.epoch.numpy()))
    self.assertEqual([step for step, _ in resumed.history], [3, 4])
    for (step_a, a), (step_b, b) in zip(straight.history[2:], resumed.history):
      self.assertEqual(step_a, step_b)
      for k in a:
        self.assertAllClose(a[k], b[k], rtol=1e-4, atol=1e-6, msg=f"{k} at step {step_a}")
    for name in straight.state.optimizers:
      for va, vb in zip(straight.state.optimizers[name].variables, resumed.state.optimizers[name].variables):
        self.assertAllClose(va.numpy(), vb.numpy(), rtol=1e-4, atol=1e-6, msg=f"{name} {va.path}")

  def test_an_xla_compiled_step_gives_the_same_losses(self):
    compiled = make_trainer(self.create_tempdir().full_path, max_steps=1, jit_compile=True)
    compiled.train()
    (step, losses), = compiled.history
    self.assertEqual(step, self.straight.history[0][0])
    for k, value in self.straight.history[0][1].items():
      self.assertAllClose(losses[k], value, rtol=1e-4, atol=1e-6, msg=k)

  def test_checkpoint_loads_for_animation(self):
    model = fomm_tf.load_model(tiny_config(), checkpoint=self.model_dir)
    for name in ("kp_detector", "generator"):
      for trained, loaded in zip(getattr(self.straight.state.model, name).weights, getattr(model, name).weights):
        np.testing.assert_array_equal(trained.numpy(), loaded.numpy(), err_msg=trained.path)
    frames = [f.astype(np.float32) / 255 for f in testing.textured_square_frames(3, 64, 64)]
    self.assertLen(list(fomm_tf.animate(model, frames[0], frames)), 3)

  def test_tensorboard_has_scalars_and_a_readable_image_grid_from_step_1(self):
    written = testing.tensorboard_events(self.model_dir)
    tags = {tag for tag, _, _ in written}
    for tag in ("loss/perceptual", "loss/equivariance_value", "loss/equivariance_jacobian", "loss/total",
                "learning_rate/generator", "learning_rate/kp_detector", "steps_per_second"):
      self.assertIn(tag, tags)
    self.assertEqual(sorted(step for tag, step, _ in written if tag == "loss/total"), [1, 2, 3, 4])
    images = [(step, value) for tag, step, value in written if tag == "visualization"]
    # The first grid at step 1, then every image_every steps.
    self.assertEqual([step for step, _ in images], [1, 2, 4])
    # The stored image summary is [width, height, encoded PNG].
    width, height = int(images[0][1][0]), int(images[0][1][1])
    png = tf.io.decode_png(images[0][1][2]).numpy()
    self.assertEqual(png.shape, (height, width, 3))
    # Batch 2 -> 2 samples; 18 panels each (source, transformed, driving, deformed, prediction, occlusion,
    # 11 masked warps, summed masks) in rows of 6: 3 rows of 64 px panels under 12 px labels.
    label, gap, rows = 12, 4, 3
    self.assertEqual(width, 6 * 64 + 5 * gap)
    self.assertEqual(height, 2 * rows * (64 + label) + 2 * gap)
    self.assertLess(width / height, 1.0)
    # Labels are white text on black above each panel.
    self.assertGreater(png[:label, :64].max(), 200)


class TrainProcessTest(testing.TestCase):
  """The entry point in real processes: replicas, workers and signals."""

  def run_ok(self, cmd, env=None):
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=testing.REPO_ROOT, timeout=600, env=env)
    self.assertEqual(proc.returncode, 0, proc.stderr[-3000:])
    return proc.stdout

  def test_two_cpu_replicas_match_one(self):
    # One replica: step 2 of the shared run (same data, seed, batch and network; checkpoints change no weights).
    one = {
        tag.split("/", 1)[1]: float(value)
        for tag, step, value in testing.tensorboard_events(testing.tiny_training_run())
        if step == 2 and tag.startswith("loss/") and tag != "loss/total"
    }
    two = last_losses(
        self.run_ok(
            train_cmd(self.create_tempdir().full_path, "--max_steps=2", "--batch_size=2", "--num_cpu_replicas=2",
                      *testing.SMALL_NET)))
    self.assertEqual(set(one), {"pixel", "equivariance_value", "equivariance_jacobian"})
    self.assertEqual(set(one), set(two))
    for k in one:
      self.assertAlmostEqual(one[k], two[k], delta=1e-3 * max(1.0, abs(one[k])), msg=k)

  def test_sigterm_saves_a_checkpoint(self):
    model_dir = self.create_tempdir().full_path
    proc = subprocess.Popen(train_cmd(model_dir, "--max_steps=100000", "--summary_every=1", "--batch_size=2",
                                      *testing.SMALL_NET),
                            cwd=testing.REPO_ROOT,
                            stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE,
                            text=True)
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
      procs.append(
          subprocess.Popen(train_cmd(model_dir, "--max_steps=2", "--batch_size=2", *testing.SMALL_NET),
                           cwd=testing.REPO_ROOT,
                           stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE,
                           text=True,
                           env=env))
    outputs = [p.communicate(timeout=600) for p in procs]
    for p, (out, err) in zip(procs, outputs):
      self.assertEqual(p.returncode, 0, err[-3000:])
      self.assertIn("done at step 2", out)
    self.assertIsNotNone(tf.train.latest_checkpoint(model_dir))
    self.assertFalse(glob.glob(os.path.join(model_dir, ".worker-*")))


class TrainFaultsTest(testing.TestCase):
  """`kill -9` and a full disk, in real processes (a class of its own, so pytest-xdist runs it beside the others)."""

  run_ok = TrainProcessTest.run_ok

  def test_kill_9_at_random_moments_resumes_step_exact_from_the_newest_complete_checkpoint(self):
    # The shared run is the uninterrupted reference.
    args = testing.TINY_RUN_ARGS
    reference_dir = testing.tiny_training_run()
    rng = np.random.default_rng(7)
    model_dir = self.create_tempdir().full_path
    kills = 0
    while kills < 2:
      before = tf.train.latest_checkpoint(model_dir)
      proc = subprocess.Popen(train_cmd(model_dir, *args),
                              cwd=testing.REPO_ROOT,
                              stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE,
                              text=True)
      deadline = time.time() + 300
      # Kill at a random moment after this run has written a checkpoint of its own: during the steps after it
      # or while the next one is being written.
      while time.time() < deadline and proc.poll() is None and tf.train.latest_checkpoint(model_dir) == before:
        time.sleep(0.05)
      time.sleep(rng.uniform(0.0, 1.5))
      if proc.poll() is None:
        proc.send_signal(signal.SIGKILL)
        kills += 1
      _, stderr = proc.communicate(timeout=300)
      self.assertNotIn("Traceback", stderr)
      if proc.returncode == 0:
        break
    self.run_ok(train_cmd(model_dir, *args))
    got, want = tf.train.load_checkpoint(model_dir), tf.train.load_checkpoint(reference_dir)
    self.assertEqual(tf.train.latest_checkpoint(model_dir).rsplit("-", 1)[1], "6")
    names = sorted(want.get_variable_to_shape_map())
    self.assertEqual(sorted(got.get_variable_to_shape_map()), names)
    for name in names:
      if name.startswith("_CHECKPOINTABLE_OBJECT_GRAPH"):
        continue
      np.testing.assert_allclose(got.get_tensor(name), want.get_tensor(name), rtol=1e-4, atol=1e-6, err_msg=name)

  def test_a_full_disk_while_checkpointing_keeps_the_previous_checkpoint(self):
    from tests import data_safety_test  # pylint: disable=import-outside-toplevel
    args = ("--batch_size=2", "--checkpoint_every=1", "--keep_checkpoints=0", "--summary_every=1000",
            *testing.SMALL_NET)
    # What a one-step run writes, from the shared run of these arguments: its step-1 checkpoint, the checkpoint
    # index and the TensorBoard events (of six steps: a little more than one step's).
    reference = testing.tiny_training_run()
    used = sum(
        os.path.getsize(os.path.join(root, name))
        for root, _, names in os.walk(reference)
        for name in names
        if not name.startswith("ckpt-") or name.startswith("ckpt-1."))
    # Room for a one-step run's files and a little more, not for a second checkpoint. On the small disk, the run
    # stopped after step 1 is the shared run's step-1 checkpoint (copied there), and it is resumed for two steps.
    # The copy is staged here and copied onto the small disk by `cp` (a Python process that imported the test
    # helpers would pay for TensorFlow's import only to copy files).
    staged = os.path.join(self.create_tempdir().full_path, "run")
    os.makedirs(staged)
    testing.copy_checkpoint(reference, 1, staged)
    disk = self.create_tempdir().full_path
    script = [
        "sh", "-c", 'cp -R "$1" "$2" && shift 2 && exec "$@"', "sh", staged,
        os.path.join(disk, "run"), *train_cmd(os.path.join(disk, "run"), *args), "--max_steps=3"
    ]
    code, stderr, left = data_safety_test.run_on_a_small_disk(self, used * 13 // 10 // 1024 + 8, disk, script)
    self.assertEqual(code, 1, stderr[-3000:])
    last = stderr.strip().splitlines()[-1]
    self.assertRegex(last, r"^error: .*cannot write the checkpoint of step 2 .*last complete checkpoint: .*ckpt-1")
    self.assertNotIn("Traceback", stderr)
    self.assertIn("run/ckpt-1.index", left)
    self.assertIn("run/checkpoint", left)
    self.assertEqual([name for name in left if "ckpt-2" in name or "temp" in name], [])


if __name__ == "__main__":
  absltest.main()
