"""`python -m fomm_tf.export` end to end on a tiny config, and its refusals."""

import json
import os
import subprocess
import sys

from absl.testing import absltest

from fomm_tf.export import backends
from fomm_tf.export import layout
from fomm_tf.export import signatures as signatures_lib
from tests import fixture_util as fx
from tests import tiny_model_util


def _export(*args):
  env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": fx.REPO_ROOT}
  return subprocess.run([sys.executable, "-m", "fomm_tf.export", *args], capture_output=True, text=True,
                        cwd=fx.REPO_ROOT, env=env, timeout=300)


class ExportCliTest(absltest.TestCase):

  def assertFailsWith(self, result, message):
    self.assertNotEqual(result.returncode, 0, result.stdout[-1000:])
    error_lines = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    self.assertLen(error_lines, 1, result.stderr[-2000:])
    self.assertRegex(error_lines[0], message)

  def test_export_with_overwrite_calibration_video_and_random_weights(self):
    work = self.create_tempdir()
    flagfile = tiny_model_util.write_tiny_flagfile(work.full_path)
    video = os.path.join(work.full_path, "driving.mp4")
    tiny_model_util.write_video(video, tiny_model_util.moving_square_frames(6))
    output = work.mkdir("export")
    output.create_file("stale.txt", "from an older export")
    result = _export(f"--flagfile={flagfile}", f"--output_dir={output.full_path}", "--overwrite",
                     "--formats=saved_model,tflite", "--quantize=int8", f"--representative_data={video}")
    self.assertEqual(result.returncode, 0, result.stderr[-3000:])
    self.assertIn("no --checkpoint: the networks have random weights", result.stderr)
    self.assertIn(f"exported to {output.full_path}", result.stdout)
    self.assertIn("tflite/int8/generator.tflite", result.stdout)
    self.assertEqual(sorted(os.listdir(output.full_path)), [layout.MANIFEST, layout.SAVED_MODEL, layout.TFLITE])
    self.assertEqual(sorted(os.listdir(os.path.join(output.full_path, layout.TFLITE, "int8"))),
                     sorted(signatures_lib.TFLITE_FILES.values()))
    with open(os.path.join(output.full_path, layout.MANIFEST)) as f:
      manifest = json.load(f)
    self.assertEqual(manifest["frame_shape"], [64, 64, 3])
    self.assertEqual(manifest["quantizations"], ["int8"])
    self.assertEqual(manifest["config_source"], "<flags>")
    self.assertIn("representative frames", manifest["evaluation_input"])
    self.assertGreaterEqual(manifest["tflite_animation"]["int8"]["psnr_db"], 30.0)
    # Nothing but the export itself next to it (no staging or backup directories).
    self.assertEqual(sorted(os.listdir(work.full_path)), ["driving.mp4", "export", "tiny.flags"])
    backend = backends.TFLiteBackend(output.full_path, quantize="int8")
    self.assertEqual(backend.frame_shape, (64, 64, 3))

  def test_refusals(self):
    work = self.create_tempdir()
    flagfile = tiny_model_util.write_tiny_flagfile(work.full_path)
    taken = work.mkdir("taken")
    taken.create_file("keep.txt", "mine")
    self.assertFailsWith(_export(f"--flagfile={flagfile}", f"--output_dir={taken.full_path}"),
                         r"taken: directory exists and is not empty \(pass --overwrite to replace it\)$")
    self.assertEqual(os.listdir(taken.full_path), ["keep.txt"])

    fresh = os.path.join(work.full_path, "fresh")
    self.assertFailsWith(_export(f"--flagfile={flagfile}", f"--checkpoint={fx.CHECKPOINT}",
                                 f"--output_dir={fresh}"),
                         r"small-official\.pth\.tar: .* has no counterpart in the model for this config")
    self.assertFailsWith(_export(f"--flagfile={flagfile}", f"--output_dir={fresh}", "--quantize=float32,int4"),
                         r"--quantize: unknown quantisation 'int4'; "
                         r"choose from float32, float16, dynamic_int8, int8$")
    self.assertFailsWith(_export(f"--output_dir={fresh}", "--quantize=int8"),
                         r"--quantize=int8 needs --representative_data")
    self.assertFalse(os.path.exists(fresh))
    self.assertEqual(sorted(os.listdir(work.full_path)), ["taken", "tiny.flags"])


if __name__ == "__main__":
  absltest.main()
