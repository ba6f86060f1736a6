"""Quantised TFLite variants of the fixture model: builtin ops only, int8 really int8, PSNR against float32."""

import json
import os
import re

import numpy as np
from absl.testing import absltest
from ai_edge_litert.interpreter import Interpreter
from ai_edge_litert.interpreter import OpResolverType

from fomm_tf.inference import pipeline
from fomm_tf.inference import exported_backends as backends
from fomm_tf.export import evaluation
from fomm_tf.export import exporter
from fomm_tf.inference import export_layout as layout
from fomm_tf.export import signatures as signatures_lib
from fomm_tf.export import tflite as tflite_lib
from PIL import Image
from tests import export_test_util as util
from tests import testing
from tools import precision_psnr

QUANTIZED = ("float16", "dynamic_int8", "int8")
MIN_PSNR_DB = {"float16": 40.0, "dynamic_int8": 40.0, "int8": 40.0}
EXPORT = util.ModuleExport("export_tflite_quantized_test",
                           formats=["tflite"],
                           quantizations=QUANTIZED,
                           representative_frames=util.fixture_frames())


def _path(quantization, signature):
  return os.path.join(EXPORT.get()[0], layout.tflite_relpath(quantization, signature))


def _op_types(path):
  """{(op name, 'int8' or 'float')} of the model's nodes, as the interpreter sees them before delegation."""
  interpreter = Interpreter(model_path=path,
                            experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
  interpreter.allocate_tensors()
  kinds = set()
  for op in interpreter._get_ops_details():
    dtypes = {np.dtype(t).name for t in op["operand_types"] + op["result_types"]}
    kinds.add((op["op_name"], "int8" if "int8" in dtypes else "float"))
  return kinds


class QuantizedExportTest(absltest.TestCase):

  def test_every_file_uses_builtin_ops_only(self):
    for quantization in QUANTIZED:
      for signature in layout.TFLITE_FILES:
        ops = tflite_lib.operator_names(_path(quantization, signature))
        select = [op for op in ops if op.startswith(("Flex", "CUSTOM"))]
        self.assertEqual(select, [], f"{quantization} {signature}")

  def test_int8_runs_its_convolutions_in_int8_and_the_keypoint_math_in_float(self):
    for signature in ("detect_keypoints", "encode_source", "generate_from_state"):
      kinds = _op_types(_path("int8", signature))
      self.assertIn(("CONV_2D", "int8"), kinds, signature)
      self.assertNotIn(("CONV_2D", "float"), kinds, signature)
    generator = _op_types(_path("int8", "generate_from_state"))
    for op in ("DIV", "SOFTMAX", "GATHER", "EXP"):
      self.assertIn((op, "float"), generator)
      self.assertNotIn((op, "int8"), generator)

  def test_files_shrink_and_normalize_kp_stays_float32(self):
    _, manifest = EXPORT.get()
    files = manifest["files"]
    for quantization in QUANTIZED:
      generator = files[layout.tflite_relpath(quantization, "generate_from_state")]
      self.assertEqual(generator["quantization"], quantization)
      normalize = files[layout.tflite_relpath(quantization, "normalize_kp")]
      self.assertEqual(normalize["quantization"], "float32")
    size = lambda q: files[layout.tflite_relpath(q, "generate_from_state")]["size_bytes"]
    self.assertLess(size("dynamic_int8"), size("float16"))
    self.assertLess(size("int8"), size("float16"))
    self.assertEqual(manifest["int8_ops"], list(tflite_lib.INT8_OPS))

  def test_animation_psnr_against_keras_float32(self):
    directory, manifest = EXPORT.get()
    source, driving, expected = util.keras_fixture_animation()
    for quantization in QUANTIZED:
      backend = backends.TFLiteBackend(directory, quantize=quantization)
      out = np.stack(list(pipeline.animate(backend, source, driving, batch_size=3)))
      psnr = evaluation.psnr(out, expected)
      self.assertGreaterEqual(psnr, MIN_PSNR_DB[quantization], quantization)
      self.assertGreaterEqual(manifest["tflite_animation"][quantization]["psnr_db"], MIN_PSNR_DB[quantization])
    self.assertIn("representative frames", manifest["evaluation_input"])

  def test_int8_without_representative_frames_is_refused(self):
    output = os.path.join(self.create_tempdir().full_path, "out")
    with self.assertRaisesRegex(exporter.ExportError, "int8 quantisation needs representative frames"):
      exporter.export_model(util.fixture_model(), output, formats=["tflite"], quantizations=["int8"])
    with self.assertRaisesRegex(exporter.ExportError, "need at least 3"):
      exporter.export_model(util.fixture_model(),
                            output,
                            formats=["tflite"],
                            quantizations=["int8"],
                            representative_frames=util.fixture_frames()[:2])
    self.assertFalse(os.path.exists(output))


class PrecisionPsnrToolTest(testing.TestCase):
  """tools/precision_psnr.py on the same export: one row per variant, the values the test above asserts."""

  def test_a_row_per_variant_and_an_export_of_other_networks_is_refused(self):
    directory, _ = EXPORT.get()
    work = self.tmp_dir()
    frames = util.fixture_frames()
    clip = os.path.join(work, "clip")
    os.makedirs(clip)
    for i, frame in enumerate(list(frames[1:]) + [frames[0]]):
      Image.fromarray(np.round(frame * 255).astype(np.uint8)).save(os.path.join(clip, f"{i:02d}.png"))
    flagfile = testing.write_fixture_flagfile(work)
    code, stdout, stderr = testing.run_cli(precision_psnr, f"--flagfile={flagfile}",
                                           f"--checkpoint={testing.CHECKPOINT}", f"--export_dir={directory}",
                                           f"--clip={clip}")
    self.assertEqual(code, 0, stderr[-2000:])
    rows = dict(re.findall(r"^\| tflite (\w+) \| ([\d.]+) \|", stdout, re.M))
    self.assertEqual(sorted(rows), sorted(QUANTIZED))
    for quantization, psnr in rows.items():
      self.assertGreaterEqual(float(psnr), MIN_PSNR_DB[quantization], quantization)
    self.assertErrorLine(
        testing.run_cli(precision_psnr, "--config=synthetic-128-lite", f"--export_dir={directory}", f"--clip={clip}"),
        r".* was exported from other networks than the model given \(--\w+")
    hand_made = os.path.join(work, "hand_made")
    os.makedirs(hand_made)
    with open(os.path.join(directory, layout.MANIFEST)) as f:
      manifest = json.load(f)
    del manifest["quantizations"]
    with open(os.path.join(hand_made, layout.MANIFEST), "w") as f:
      json.dump(manifest, f)
    self.assertErrorLine(
        testing.run_cli(precision_psnr, "--config=synthetic-128-lite", f"--export_dir={hand_made}", f"--clip={clip}"),
        r".*hand_made: its manifest lacks the config, formats or quantizations that python -m fomm_tf.export records$")


if __name__ == "__main__":
  absltest.main()
