"""float32 TFLite export of the official fixture model: parity with Keras, ops, backend, conversion errors."""

import os

import keras
import numpy as np
import tensorflow as tf
from absl.testing import absltest
from ai_edge_litert.interpreter import Interpreter
from ai_edge_litert.interpreter import OpResolverType

import fomm_tf
from fomm_tf import errors
from fomm_tf.inference import pipeline
from fomm_tf.inference import exported_backends as backends
from fomm_tf.export import exporter
from fomm_tf.io import files
from fomm_tf.inference import export_layout as layout
from fomm_tf.export import preflight
from fomm_tf.export import signatures as signatures_lib
from fomm_tf.export import tflite as tflite_lib
from tests import export_test_util as util
from tests import testing

EXPORT = util.ModuleExport("export_tflite_test", formats=["tflite"], quantizations=["float32"])


def _run(signature, **inputs):
  directory, _ = EXPORT.get()
  interpreter = Interpreter(model_path=os.path.join(directory, layout.tflite_relpath("float32", signature)))
  (key,) = interpreter.get_signature_list()
  return interpreter.get_signature_runner(key)(**inputs)


def _kp_inputs(prefix, kp):
  return {
      f"{prefix}_value": np.asarray(kp["value"], np.float32),
      f"{prefix}_jacobian": np.asarray(kp["jacobian"], np.float32)
  }


class Float32ParityTest(testing.TestCase):

  def assertClose(self, actual, expected, what):
    err = util.max_abs(actual, expected)
    self.assertLessEqual(err, util.TOL, f"{what}: max abs error {err:.3g}")

  def test_kp_detector(self):
    frames = util.fixture_frames()
    out = _run("detect_keypoints", image=frames)
    expected = util.fixture_model().detect_keypoints(frames)
    for key in ("value", "jacobian"):
      self.assertClose(out[key], expected[key].numpy(), f"kp_detector {key}")
      self.assertClose(out[key][1:], util.fixture_kp("kp_driving")[key], f"fixture kp_driving {key}")

  def test_source_encoder_and_generator(self):
    model = util.fixture_model()
    source = util.fixture_frames()[:1]
    state = _run("encode_source", source=source)
    expected_state = model.generator.encode_source(tf.constant(source))
    for key in ("features", "source_small"):
      self.assertClose(state[key], expected_state[key].numpy(), f"source_encoder {key}")
    for mode in ("rel", "abs"):
      kp_driving = util.fixture_kp(f"kp_norm_{mode}")
      out = _run("generate_from_state", **state, **_kp_inputs("kp_source", util.fixture_kp("kp_source")),
                 **_kp_inputs("kp_driving", kp_driving))
      expected = model.generate(source, util.fixture_kp("kp_source"), kp_driving)["prediction"].numpy()
      self.assertClose(out["prediction"], expected, f"generator ({mode})")

  def test_normalize_kp(self):
    kp_source, kp_driving = util.fixture_kp("kp_source"), util.fixture_kp("kp_driving")
    kp_initial = util.fixture_kp("kp_driving0")
    for adapt in (False, True):
      for relative in (False, True):
        out = _run("normalize_kp",
                   **_kp_inputs("kp_source", kp_source),
                   **_kp_inputs("kp_driving", kp_driving),
                   **_kp_inputs("kp_driving_initial", kp_initial),
                   adapt_movement_scale=np.array(adapt),
                   use_relative_movement=np.array(relative),
                   use_relative_jacobian=np.array(relative))
        expected = fomm_tf.normalize_kp(kp_source, kp_driving, kp_initial, adapt, relative, relative)
        for key in ("value", "jacobian"):
          self.assertClose(out[key], np.asarray(expected[key]), f"normalize_kp {key} adapt={adapt} rel={relative}")

  def test_manifest_errors_and_io(self):
    _, manifest = EXPORT.get()
    self.assertEqual(manifest["quantizations"], ["float32"])
    self.assertEqual(sorted(manifest["files"]),
                     sorted(layout.tflite_relpath("float32", s) for s in layout.TFLITE_FILES))
    self.assertIn("synthetic", manifest["evaluation_input"])
    generator = manifest["files"]["tflite/float32/generator.tflite"]
    self.assertEqual(generator["quantization"], "float32")
    self.assertEqual(generator["inputs"]["features"], {"shape": [1, 64, 64, 32], "dtype": "float32"})
    self.assertEqual(generator["inputs"]["kp_driving_value"], {"shape": [None, 10, 2], "dtype": "float32"})
    self.assertEqual(generator["outputs"], {"prediction": {"shape": [None, 256, 256, 3], "dtype": "float32"}})
    normalize = manifest["files"]["tflite/float32/normalize_kp.tflite"]
    self.assertEqual(normalize["inputs"]["use_relative_movement"], {"shape": [], "dtype": "bool"})
    for path, info in manifest["files"].items():
      self.assertGreater(info["size_bytes"], 0, path)
      for output, error in info["max_abs_error"].items():
        self.assertLessEqual(error, util.TOL, f"{path} {output}")
    self.assertGreater(manifest["tflite_animation"]["float32"]["psnr_db"], 60.0)


class OpsTest(testing.TestCase):

  def test_every_file_uses_builtin_ops_only(self):
    directory, manifest = EXPORT.get()
    for signature in layout.TFLITE_FILES:
      path = os.path.join(directory, layout.tflite_relpath("float32", signature))
      from_flatbuffer = tflite_lib.operator_names(path)
      # The interpreter's view of the same graph (before delegation).
      interpreter = Interpreter(model_path=path,
                                experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
      interpreter.allocate_tensors()
      from_interpreter = sorted({op["op_name"] for op in interpreter._get_ops_details()})
      self.assertEqual(from_flatbuffer, from_interpreter, path)
      self.assertEqual([op for op in from_flatbuffer if op.startswith(("Flex", "CUSTOM"))], [], path)
      described = manifest["files"][layout.tflite_relpath("float32", signature)]
      self.assertEqual(described["operators"], from_flatbuffer)
    self.assertIn(
        "GATHER",
        tflite_lib.operator_names(os.path.join(directory, layout.tflite_relpath("float32", "generate_from_state"))))

  def test_a_graph_needing_select_ops_is_refused(self):
    directory = self.create_tempdir().full_path
    archive = keras.export.ExportArchive()
    archive.add_endpoint("invert",
                         lambda m: {"inverse": tf.linalg.inv(m)},
                         input_signature=[tf.TensorSpec((None, 3, 3), tf.float32, name="m")])
    archive.write_out(directory, verbose=False)
    loaded = tf.saved_model.load(directory)
    with self.assertRaisesRegex(
        errors.ExportError, r"invert.tflite: float32 conversion failed: needs TensorFlow select ops "
        r"\(MatrixInverse\)"):
      tflite_lib.convert(loaded.signatures["invert"], "float32", "invert.tflite")


class TFLiteBackendTest(testing.TestCase):

  def test_animation_matches_keras_in_both_batch_modes(self):
    directory, _ = EXPORT.get()
    source, driving, expected = util.keras_fixture_animation()
    for batch_mode in backends.BATCH_MODES:
      backend = backends.TFLiteBackend(directory, batch_mode=batch_mode)
      self.assertEqual((backend.frame_shape, backend.num_kp), ((256, 256, 3), 10))
      for batch_size in (1, 3):
        out = np.stack(list(pipeline.animate(backend, source, driving, batch_size=batch_size)))
        self.assertLessEqual(util.max_abs(out, expected), util.TOL, f"{batch_mode}, batch {batch_size}")

  def test_bad_inputs_raise_clear_errors(self):
    directory, _ = EXPORT.get()
    with self.assertRaisesRegex(errors.ExportError, r"no 'int8' TFLite variant .*available: float32"):
      backends.TFLiteBackend(directory, quantize="int8")
    with self.assertRaisesRegex(ValueError, "batch_mode must be one of loop, resize, got 'both'"):
      backends.TFLiteBackend(directory, batch_mode="both")
    missing = os.path.join(self.create_tempdir().full_path, "missing")
    with self.assertRaisesRegex(errors.ExportError, "missing: no such export directory"):
      backends.TFLiteBackend(missing)
    backend = backends.TFLiteBackend(directory)
    with self.assertRaisesRegex(ValueError, r"detect_keypoints: expected frames of shape \(B, 256, 256, 3\)"):
      backend.detect_keypoints(np.zeros((1, 256, 256, 4), np.float32))
    with self.assertRaisesRegex(ValueError, "generate: state must come from this backend's prepare_source"):
      backend.generate({"source": np.zeros((1, 256, 256, 3))}, util.fixture_kp("kp_source"),
                       util.fixture_kp("kp_driving"))
    state = backend.prepare_source(util.fixture_frames()[:1])
    with self.assertRaisesRegex(ValueError, "kp_source must be of the one prepared source, batch 1, got batch 2"):
      backend.generate(state, util.fixture_kp("kp_driving"), util.fixture_kp("kp_driving"))
    with self.assertRaisesRegex(exporter.ExportError, "unknown quantisation 'int4'"):
      preflight.parse_quantizations(["float32", "int4"])


class StagingTest(testing.TestCase):

  def test_failed_export_leaves_nothing_and_keeps_the_old_directory(self):
    root = self.create_tempdir()
    target = root.mkdir("export")
    target.create_file("old.txt", "old")
    with self.assertRaisesRegex(RuntimeError, "conversion broke"):
      with files.staged_directory(target.full_path, replace_if=lambda _: True) as staging:
        with open(os.path.join(staging, "half.tflite"), "wb") as f:
          f.write(b"partial")
        raise RuntimeError("conversion broke")
    self.assertEqual(sorted(os.listdir(root.full_path)), ["export"])
    self.assertEqual(os.listdir(target.full_path), ["old.txt"])

  def test_successful_export_replaces_the_old_directory(self):
    root = self.create_tempdir()
    target = root.mkdir("export")
    target.create_file("old.txt", "old")
    with files.staged_directory(target.full_path, replace_if=lambda _: True) as staging:
      with open(os.path.join(staging, "new.txt"), "w") as f:
        f.write("new")
    self.assertEqual(sorted(os.listdir(root.full_path)), ["export"])
    self.assertEqual(os.listdir(target.full_path), ["new.txt"])


if __name__ == "__main__":
  absltest.main()
