"""--backend=openvino: the ONNX export of the fixture model run by OpenVINO against Keras, its refusals, threads,
the app's menu, the precision tool's rows, and a missing openvino named in one line (the command without
TensorFlow: export_onnx_test.py, for both engines)."""

import concurrent.futures
import gc
import os
import shutil
import signal

import numpy as np
import onnx
from absl.testing import absltest

from fomm_tf import cli
from fomm_tf import errors
from fomm_tf.app import models as app_models
from fomm_tf.export import evaluation
from fomm_tf.inference import export_layout as layout
from fomm_tf.inference import exported_backends as backends
from fomm_tf.inference import pipeline
from tests import export_onnx_test as onnx_test
from tests import export_test_util as util
from tests import testing
from tools import precision_psnr


class OpenVinoBackendTest(testing.TestMixin, absltest.TestCase):

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls.directory, cls.manifest = onnx_test.EXPORT.get()  # The ONNX export (float32, int8) export_onnx_test makes.
    cls.media = testing.make_class_dir("openvino_backend_test_")
    cls.source, cls.video = util.write_fixture_media(cls.media)

  @classmethod
  def tearDownClass(cls):
    shutil.rmtree(cls.media)
    super().tearDownClass()

  def test_float32_animates_like_keras_in_both_batch_modes(self):
    source, driving, expected = util.keras_fixture_animation()
    for batch_mode in backends.BATCH_MODES:
      backend = backends.OpenVinoBackend(self.directory, batch_mode=batch_mode)
      self.assertEqual((backend.frame_shape, backend.num_kp), ((256, 256, 3), 10))
      for batch_size in (1, 3):
        out = np.stack(list(pipeline.animate(backend, source, driving, batch_size=batch_size)))
        error = util.max_abs(out, expected)
        self.assertLessEqual(error, onnx_test.FRAME_TOL, f"{batch_mode} batch {batch_size}: max abs error {error:.3g}")
    # Keypoints of a batch, against Keras at the keypoint tolerance.
    frames = util.fixture_frames()
    kp = backends.OpenVinoBackend(self.directory, batch_mode="resize").detect_keypoints(frames)
    expected_kp = util.fixture_model().detect_keypoints(frames)
    for key in ("value", "jacobian"):
      self.assertLessEqual(util.max_abs(kp[key], expected_kp[key].numpy()), onnx_test.KP_TOL, key)

  def test_backends_dropped_in_the_order_made_leave_signals_to_python(self):
    # OpenVINO's CPU plugin swaps the compiling thread's alternate signal stack per Core (backends.openvino_core):
    # with a Core per backend, dropping two backends in the order they were made left the main thread's on unmapped
    # memory, and this signal killed the process with SIGSEGV (a test worker died so, after the test above).
    first = backends.OpenVinoBackend(self.directory)
    second = backends.OpenVinoBackend(self.directory)
    del first
    gc.collect()
    del second
    gc.collect()
    with self.assertRaises(errors.Interrupted) as caught, cli.signals_raise_interrupted():
      os.kill(os.getpid(), signal.SIGTERM)
      while True:
        errors.one_line("fomm-tf's own code")
    self.assertEqual(caught.exception.signum, signal.SIGTERM)

  def test_two_threads_share_one_backend(self):
    # The web app runs --concurrency jobs at once on one backend.
    source, driving, expected = util.keras_fixture_animation()
    backend = backends.OpenVinoBackend(self.directory)
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
      jobs = [pool.submit(lambda: np.stack(list(pipeline.animate(backend, source, driving)))) for _ in range(4)]
      for job in jobs:
        self.assertLessEqual(util.max_abs(job.result(), expected), onnx_test.FRAME_TOL)

  def test_int8_keeps_the_psnr_floor_against_keras(self):
    source, driving, expected = util.keras_fixture_animation()
    out = np.stack(list(pipeline.animate(backends.OpenVinoBackend(self.directory, quantize="int8"), source, driving)))
    psnr = evaluation.psnr(out, expected)
    self.assertGreaterEqual(psnr, onnx_test.INT8_PSNR_FLOOR_DB)
    self.assertLess(psnr, 100.0)  # Quantised: not the float32 frames.

  def test_refusals(self):
    with self.assertRaisesRegex(backends.ExportError, r"no 'float16' ONNX variant .*available: float32, int8"):
      backends.OpenVinoBackend(self.directory, quantize="float16")
    with self.assertRaisesRegex(ValueError, "num_threads must be >= 1, got 0"):
      backends.OpenVinoBackend(self.directory, num_threads=0)
    # Files that are not ONNX are refused by the export checks before OpenVINO reads them.
    broken = self.tmp_dir()
    for name in layout.ONNX_FILES.values():
      with open(os.path.join(broken, name), "wb") as f:
        f.write(b"not an onnx file")
    with self.assertRaisesRegex(backends.ExportError, r"kp_detector.onnx: not an ONNX model \("):
      backends.OpenVinoBackend(broken, allow_modified=True)
    # Real ONNX files, but not the four networks of an export: every file is normalize_kp.
    mixed = self.tmp_dir()
    for name in layout.ONNX_FILES.values():
      shutil.copy(os.path.join(self.directory, layout.onnx_relpath("float32", "normalize_kp")),
                  os.path.join(mixed, name))
    with self.assertRaisesRegex(backends.ExportError, r"the ONNX files lack the inputs of python -m fomm_tf.export"):
      backends.OpenVinoBackend(mixed, allow_modified=True)
    # The four networks' inputs, but a keypoint input of rank 1: one line on either engine.
    odd = self.tmp_dir()
    inputs = {
        "detect_keypoints": {
            "image": ["B", 256, 256, 3]
        },
        "encode_source": {
            "source": [1, 256, 256, 3]
        },
        "generate_from_state": {
            "kp_source_value": [10]
        },
        "normalize_kp": {
            "kp_source_value": ["B", 10, 2]
        },
    }
    for signature, shapes in inputs.items():
      graph = onnx.helper.make_graph(
          [onnx.helper.make_node("Identity", [name], [name + "_out"]) for name in shapes], signature,
          [onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, shape) for name, shape in shapes.items()],
          [onnx.helper.make_tensor_value_info(name + "_out", onnx.TensorProto.FLOAT, None) for name in shapes])
      onnx.save(onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 18)]),
                os.path.join(odd, layout.ONNX_FILES[signature]))
    for engine in (backends.OnnxBackend, backends.OpenVinoBackend):
      with self.assertRaisesRegex(backends.ExportError, r"generator.onnx lacks the input kp_source_value \(B, K, 2\)"):
        engine(odd, allow_modified=True)
    backend = backends.OpenVinoBackend(self.directory)
    with self.assertRaisesRegex(ValueError, r"detect_keypoints: expected frames of shape \(B, 256, 256, 3\)"):
      backend.detect_keypoints(np.zeros((1, 128, 128, 3), np.float32))

  def test_app_offers_each_onnx_variant_on_openvino(self):
    registry = app_models.ModelRegistry(os.path.dirname(self.directory))
    self.assertIn("openvino float32", registry.choice_labels("export"))
    backend = registry.backend("export", "openvino int8")
    self.assertIsInstance(backend, backends.OpenVinoBackend)
    self.assertEqual(backend.quantize, "int8")

  def test_precision_tool_has_a_row_per_onnx_variant_on_each_engine(self):
    names = [name for name, _ in precision_psnr.variants(self.directory, self.manifest)]
    self.assertEqual(names, ["onnx float32", "onnx int8", "openvino float32", "openvino int8"])

  def test_missing_openvino_or_onnx_is_one_line_naming_what_to_install(self):
    result_video = os.path.join(self.tmp_dir(), "out.mp4")
    args = ("fomm_tf.animate", "--backend=openvino", f"--export_dir={self.directory}", f"--source_image={self.source}",
            f"--driving_video={self.video}", f"--result_video={result_video}")
    for hidden, message in (("openvino", r"--backend=openvino needs OpenVINO, a dependency of fomm-tf: pip install "
                             r"openvino"), ("onnx", r"--backend=openvino --export_dir needs the onnx package to check "
                                            r"the ONNX files: pip install fomm-tf\[openvino\]")):
      animate = testing.run_module_without(hidden, *args)
      self.assertErrorLine((animate.returncode, animate.stdout, animate.stderr), message)
      self.assertFalse(os.path.exists(result_video))


if __name__ == "__main__":
  absltest.main()
