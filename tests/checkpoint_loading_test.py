"""Loading official and converted checkpoints; every mismatch is a clear error that changes nothing."""

import os
import subprocess
import sys

import numpy as np
import tensorflow as tf
from absl.testing import absltest

import fomm_tf
from fomm_tf import errors
from fomm_tf.checkpoint import loading
from fomm_tf.checkpoint import torch_pickle
from tests import torch_writer
from tools import convert_checkpoint
from tests import testing


def _other_config():
  """vox-256's keypoint-detector input widths (the fixtures' are smaller) with everything else shrunk, so the model
  builds in a moment: the first variable that does not fit is the keypoint encoder's first conv."""
  return fomm_tf.load_config("vox-256").replace(kp_max_features=64,
                                                gen_block_expansion=8,
                                                gen_max_features=32,
                                                dm_block_expansion=8,
                                                dm_max_features=32)


def _snapshot(model):
  return [v.numpy().copy() for v in model.kp_detector.weights + model.generator.weights]


class CheckpointLoadingTest(tf.test.TestCase):

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls.state = torch_pickle.read_torch_checkpoint(testing.CHECKPOINT)

  def tmp(self, name):
    return os.path.join(self.create_tempdir().full_path, name)

  def write_variant(self, mutate):
    state = {k: dict(v) if isinstance(v, dict) else v for k, v in self.state.items()}
    mutate(state)
    path = self.tmp("variant.pth.tar")
    torch_writer.write_torch_checkpoint(path, state)
    return path

  def assertLoadFails(self, path, pattern, cfg=None):
    model = fomm_tf.load_model(cfg or testing.fixture_config())
    before = _snapshot(model)
    with self.assertRaisesRegex(errors.CheckpointError, pattern):
      loading.load_weights(model, path)
    for a, b in zip(before, _snapshot(model)):
      np.testing.assert_array_equal(a, b, err_msg="a failed load changed the model")

  def test_config_mismatch_names_key_and_shapes(self):
    self.assertLoadFails(testing.CHECKPOINT, r"kp_detector\.predictor\.encoder\.down_blocks\.0\.conv\.weight has shape "
                         r"\[16, 3, 3, 3\] in the checkpoint but the model for this config expects \[64, 3, 3, 3\]",
                         cfg=_other_config())

  def test_unmapped_key(self):
    path = self.write_variant(lambda s: s["generator"].update({"extra.weight": np.zeros((2, 2), np.float32)}))
    self.assertLoadFails(path, r"generator\.extra\.weight \[2, 2\] has no counterpart")

  def test_missing_key(self):
    path = self.write_variant(lambda s: s["generator"].pop("final.bias"))
    self.assertLoadFails(path, r"generator\.final\.bias is missing from the checkpoint \(model expects \[3\]")

  def test_not_a_fomm_checkpoint(self):
    path = self.tmp("other.pth.tar")
    torch_writer.write_torch_checkpoint(path, {"model": {"w": np.zeros(3, np.float32)}})
    self.assertLoadFails(path, r"not a FOMM checkpoint: no 'kp_detector' entry")

  def test_inconsistent_blur_buffer(self):

    def mutate(s):
      w = np.array(s["kp_detector"]["down.weight"])
      w[1] *= 2
      s["kp_detector"]["down.weight"] = w

    self.assertLoadFails(self.write_variant(mutate), r"down\.weight: anti-alias blur buffer")

  def test_missing_and_garbage_files(self):
    self.assertLoadFails("/nonexistent/ckpt", r"checkpoint not found: /nonexistent/ckpt")
    garbage = self.tmp("garbage.bin")
    with open(garbage, "wb") as f:
      f.write(b"hello world, not a checkpoint")
    self.assertLoadFails(garbage, r"garbage\.bin: neither a PyTorch \.pth\.tar nor a TensorFlow checkpoint")

  def test_converted_checkpoint_round_trip(self):
    flagfile = testing.write_fixture_flagfile(self.create_tempdir().full_path)
    output = self.tmp("ckpt")
    proc = subprocess.run([
        sys.executable, "tools/convert_checkpoint.py", f"--flagfile={flagfile}",
        f"--checkpoint={testing.LEGACY_CHECKPOINT}", f"--output={output}"
    ],
                          capture_output=True,
                          text=True,
                          cwd=testing.REPO_ROOT,
                          timeout=300)
    self.assertEqual(proc.returncode, 0, proc.stderr[-2000:])
    self.assertIn("kp_detector      75 keys", proc.stdout)
    self.assertRegex(proc.stdout, r"generator\s+\d+ keys\s+[\d,]+ parameters")
    official = fomm_tf.load_model(testing.fixture_config(), checkpoint=testing.CHECKPOINT)
    converted = fomm_tf.load_model(testing.fixture_config(), checkpoint=output)
    # The same networks with the same weights, buffers included, compute the same keypoints and frames.
    want, got = official.inference_variables(), converted.inference_variables()
    self.assertEqual(sorted(got), sorted(want))
    for path, variable in want.items():
      self.assertAllEqual(got[path].numpy(), variable.numpy(), msg=path)
    # The same command again (in this process: the script's entry point was run above) refuses to overwrite.
    again = testing.run_cli(convert_checkpoint, f"--flagfile={flagfile}", f"--checkpoint={testing.CHECKPOINT}",
                            f"--output={output}")
    code, _, stderr = again
    self.assertEqual(code, 1, stderr[-2000:])
    self.assertRegex(stderr.strip().splitlines()[-1], r"^error: .*already exists there \(pass --overwrite")
    # A converted checkpoint loaded into another config fails clearly and changes nothing, though some of its
    # variables fit (tf.train.Checkpoint.read alone would assign those before failing).
    self.assertLoadFails(output, r"does not fit this config", cfg=_other_config())


if __name__ == "__main__":
  absltest.main()
