"""The lite networks end to end: GFLOPs from the graph, and a lite model's SavedModel and builtin-only TFLite files.

The lite structure's export of the allowlist inventory (vox-256-lite shrunk:
depthwise-separable blocks, 3x3 heads, seeded weights, calibrated on synthetic
frames; shared with export_allowlist_test) is read back by each file's own
runtime and animates a real photo like the Keras model.
"""

import json
import os

import keras
import numpy as np
import skimage.data
from absl.testing import absltest

from fomm_tf.checkpoint import loading
from fomm_tf.export import evaluation
from fomm_tf.export import op_inventory
from fomm_tf.export import tflite as tflite_lib
from fomm_tf.inference import export_layout as layout
from fomm_tf.inference import exported_backends as backends
from fomm_tf.inference import keras_backend as backend_lib
from fomm_tf.inference import pipeline
from fomm_tf.io import media
from fomm_tf.export import flops
from tests import testing

QUANTIZATIONS = ("float32", "float16", "dynamic_int8", "int8")
MIN_PSNR_DB = {"float16": 40.0, "dynamic_int8": 25.0, "int8": 25.0}


def _lite_model():
  import fomm_tf  # pylint: disable=import-outside-toplevel
  keras.utils.set_random_seed(3)
  return fomm_tf.load_model(testing.tiny_lite_config())


class LiteExportTest(absltest.TestCase):

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    _, _, exports = testing.structure_exports()
    cls.directory = exports["vox-256-lite"]
    with open(os.path.join(cls.directory, layout.MANIFEST)) as f:
      cls.manifest = json.load(f)
    # The exported model again: the inventory's shrunk config, with the weights it seeds.
    (config,) = [config for names, config in op_inventory.official_structures() if "vox-256-lite" in names]
    keras.utils.set_random_seed(0)
    cls.model = loading.load_model(config)
    # A real photo as the source, a moving textured square as the driving video.
    frames = np.asarray(testing.as_float(testing.textured_square_frames(6, 64, 64)), np.float32)
    frames[0] = media.fit_frame(skimage.data.astronaut().astype(np.float32) / 255.0, 64)
    cls.source, cls.driving = frames[0], list(frames[1:])
    cls.expected = np.stack(
        list(pipeline.animate(backend_lib.KerasBackend(cls.model), cls.source, cls.driving, batch_size=2)))

  def _animate(self, backend):
    return np.stack(list(pipeline.animate(backend, self.source, self.driving, batch_size=2)))

  def test_tflite_files_use_builtin_ops_only_with_depthwise_convolutions(self):
    for quantization in QUANTIZATIONS:
      for signature in layout.TFLITE_FILES:
        ops = tflite_lib.operator_names(os.path.join(self.directory, layout.tflite_relpath(quantization, signature)))
        self.assertEqual([op for op in ops if op.startswith(("Flex", "CUSTOM"))], [], f"{quantization} {signature}")
        if signature in ("detect_keypoints", "generate_from_state"):
          self.assertIn("DEPTHWISE_CONV_2D", ops, f"{quantization} {signature}")

  def test_saved_model_and_float32_tflite_animate_like_keras(self):
    for backend in (backends.SavedModelBackend(self.directory), backends.TFLiteBackend(self.directory)):
      out = self._animate(backend)
      self.assertLessEqual(float(np.max(np.abs(out - self.expected))), 1e-4, backend.name)

  def test_quantized_tflite_psnr_against_keras_float32(self):
    for quantization, minimum in MIN_PSNR_DB.items():
      out = self._animate(backends.TFLiteBackend(self.directory, quantize=quantization))
      self.assertGreaterEqual(evaluation.psnr(out, self.expected), minimum, quantization)

  def test_manifest_records_the_lite_fields(self):
    config = self.manifest["config"]
    self.assertTrue(config["gen_separable"] and config["kp_separable"] and config["dm_separable"])
    self.assertEqual(config["gen_head_kernel_size"], 3)


class GflopsTest(absltest.TestCase):

  def test_lite_costs_a_fraction_and_further_frames_skip_the_source_work(self):
    full = flops.animation_gflops(testing.tiny_model())
    lite = flops.animation_gflops(_lite_model())
    for count in (full, lite):
      self.assertGreater(count["signatures"]["detect_keypoints"], 0)
      self.assertAlmostEqual(count["first_frame"] - count["further_frame"],
                             count["signatures"]["detect_keypoints"] + count["signatures"]["encode_source"])
    self.assertLess(lite["further_frame"], full["further_frame"] / 3)
    self.assertLess(lite["first_frame"], full["first_frame"] / 3)


if __name__ == "__main__":
  absltest.main()
