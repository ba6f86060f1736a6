"""Full-size vox-256 (random weights): one SavedModel + float32 TFLite export matches the Keras model.

The slowest export test (about a minute on 2 cores): a 256x256 model with the
official widths, whose graphs are far larger than the fixture model's.
"""

import os
import shutil
import tempfile

import keras
import numpy as np
from absl.testing import absltest
from ai_edge_litert.interpreter import Interpreter

import fomm_tf
from fomm_tf.export import evaluation
from fomm_tf.export import exporter
from fomm_tf.inference import export_layout as layout
from fomm_tf.export import signatures as signatures_lib
from tests import export_test_util as util
from tests import testing

_STATE = {}


def setUpModule():
  keras.utils.set_random_seed(0)
  _STATE["model"] = fomm_tf.load_model("vox-256", build_discriminator=False)
  _STATE["root"] = tempfile.mkdtemp(prefix="export_full_size_test_")
  _STATE["dir"] = os.path.join(_STATE["root"], "export")
  _STATE["manifest"] = exporter.export_model(_STATE["model"],
                                             _STATE["dir"],
                                             formats=["saved_model", "tflite"],
                                             quantizations=["float32"])


def tearDownModule():
  shutil.rmtree(_STATE["root"])


class FullSizeExportTest(testing.TestCase):

  def test_every_exported_file_matches_keras(self):
    # The exporter ran every signature of the SavedModel it wrote, loaded back, and every TFLite file (from its
    # bytes) against Keras on a fixed input, and recorded the errors; the tiny exports' tests read those records
    # and also run their files against Keras themselves. Here, where only the size differs, the records are read
    # and one file is rerun.
    manifest = _STATE["manifest"]
    signatures = manifest["files"][layout.SAVED_MODEL]["signatures"]
    self.assertEqual(sorted(signatures), sorted(layout.SAVED_MODEL_SIGNATURES))
    recorded = {f"saved_model {name}": info["max_abs_error"] for name, info in signatures.items()}
    recorded.update({
        f"tflite {name}": manifest["files"][layout.tflite_relpath("float32", name)]["max_abs_error"]
        for name in layout.TFLITE_FILES
    })
    for what, errors in recorded.items():
      self.assertTrue(errors, what)
      for output, error in errors.items():
        self.assertLessEqual(error, util.TOL, f"{what} {output}")
    # The keypoint detector's file, run here on the exporter's synthetic frames.
    model = _STATE["model"]
    functions = signatures_lib.ExportFunctions(model)
    inputs = evaluation.reference_inputs(functions, evaluation.synthetic_frames(model.frame_shape))
    expected = evaluation.run_keras(functions, "detect_keypoints", inputs["detect_keypoints"])
    interpreter = Interpreter(
        model_path=os.path.join(_STATE["dir"], layout.tflite_relpath("float32", "detect_keypoints")))
    (key,) = interpreter.get_signature_list()
    lite = interpreter.get_signature_runner(key)(**inputs["detect_keypoints"])
    self.assertEqual(sorted(lite), sorted(expected))
    for output, value in expected.items():
      self.assertLessEqual(util.max_abs(lite[output], value), util.TOL, f"tflite detect_keypoints {output}")

  def test_manifest(self):
    manifest = _STATE["manifest"]
    self.assertEqual(manifest["frame_shape"], [256, 256, 3])
    self.assertIsNone(manifest["checkpoint"])
    self.assertEqual(manifest["config"]["gen_block_expansion"], 64)
    generator = manifest["files"]["tflite/float32/generator.tflite"]
    self.assertEqual(generator["inputs"]["features"]["shape"], [1, 64, 64, 256])
    self.assertGreater(generator["size_bytes"], 100_000_000)
    self.assertLessEqual(manifest["tflite_animation"]["float32"]["max_abs_error"]["prediction"], util.TOL)
    self.assertTrue(np.isfinite(manifest["tflite_animation"]["float32"]["psnr_db"]))


if __name__ == "__main__":
  absltest.main()
