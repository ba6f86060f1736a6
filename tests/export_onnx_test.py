"""ONNX export of the official fixture model: ONNX Runtime against Keras, standard domains, --backend=onnx."""

import json
import os

import numpy as np
import onnx
import onnxruntime
from absl.testing import absltest

from fomm_tf.animation import cli as animation_cli
from fomm_tf.app import models as app_models
from fomm_tf.evaluation import cli as evaluation_cli
from fomm_tf.export import evaluation
from fomm_tf.export import preflight
from fomm_tf.export import signatures as signatures_lib
from fomm_tf.inference import export_layout as layout
from fomm_tf.inference import exported_backends as backends
from fomm_tf.inference import pipeline
from fomm_tf.io import media
from tests import export_test_util as util
from tests import testing

EXPORT = util.ModuleExport("export_onnx_test",
                           formats=["onnx"],
                           quantizations=["float32", "int8"],
                           representative_frames=util.fixture_frames())
# Max abs error against Keras that the issue asks of ONNX Runtime: keypoints, and everything else.
KP_TOL = 1e-5
FRAME_TOL = 1e-4
# The floor the issue sets for int8 frames against float32 ones, on the fixtures' trained model.
INT8_PSNR_FLOOR_DB = 40.0


def _session(signature):
  directory, _ = EXPORT.get()
  return onnxruntime.InferenceSession(os.path.join(directory, layout.onnx_relpath("float32", signature)),
                                      providers=["CPUExecutionProvider"])


def _run(signature, inputs):
  session = _session(signature)
  names = [o.name for o in session.get_outputs()]
  return dict(zip(names, session.run(names, inputs)))


def _all_nodes(graph):
  """Every node of `graph` and of the graphs nested in its nodes' attributes (If/Loop/Scan bodies)."""
  for node in graph.node:
    yield node
    for attribute in node.attribute:
      subgraphs = list(attribute.graphs) + ([attribute.g] if attribute.type == onnx.AttributeProto.GRAPH else [])
      for sub in subgraphs:
        yield from _all_nodes(sub)


class OnnxExportTest(testing.TestMixin, absltest.TestCase):

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls.functions = signatures_lib.ExportFunctions(util.fixture_model())
    cls.inputs = evaluation.reference_inputs(cls.functions, util.fixture_frames())

  def assertClose(self, actual, expected, tolerance, what):
    error = util.max_abs(actual, expected)
    self.assertLessEqual(error, tolerance, f"{what}: max abs error {error:.3g}")

  def test_onnx_runtime_matches_keras_per_file(self):
    tolerances = {
        "detect_keypoints": KP_TOL,
        "normalize_kp": KP_TOL,
        "encode_source": FRAME_TOL,
        "generate_from_state": FRAME_TOL
    }
    for signature, tolerance in tolerances.items():
      expected = evaluation.run_keras(self.functions, signature, self.inputs[signature])
      actual = _run(signature, self.inputs[signature])
      self.assertEqual(sorted(actual), sorted(expected), signature)
      for name in expected:
        self.assertClose(actual[name], expected[name], tolerance, f"{signature} {name}")
    # The keypoints also match the official PyTorch fixtures (what Keras is tested against).
    kp = _run("detect_keypoints", {"image": util.fixture_frames()[1:]})
    for key in ("value", "jacobian"):
      self.assertClose(kp[key], util.fixture_kp("kp_driving")[key], 1e-4, f"fixture kp_driving {key}")

  def test_named_inputs_and_dynamic_batch(self):
    session = _session("detect_keypoints")
    (image,) = session.get_inputs()
    self.assertEqual(image.name, "image")
    self.assertIsInstance(image.shape[0], str)  # symbolic: any batch
    self.assertEqual(image.shape[1:], [256, 256, 3])
    self.assertEqual(sorted(o.name for o in session.get_outputs()), ["jacobian", "value"])
    frames = util.fixture_frames()
    for batch in (1, 3):
      out = _run("detect_keypoints", {"image": frames[:batch]})
      expected = util.fixture_model().detect_keypoints(frames[:batch])
      self.assertClose(out["value"], expected["value"].numpy(), KP_TOL, f"batch {batch}")
    generator = {i.name: i.shape for i in _session("generate_from_state").get_inputs()}
    self.assertEqual(sorted(generator), sorted(s.name for s in self.functions.specs["generate_from_state"]))
    self.assertIsInstance(generator["kp_driving_value"][0], str)

  def test_only_standard_onnx_domains_and_opset(self):
    directory, _ = EXPORT.get()
    for signature in layout.ONNX_FILES:
      model = onnx.load(os.path.join(directory, layout.onnx_relpath("float32", signature)))
      onnx.checker.check_model(model, full_check=True)
      self.assertEqual({o.domain for o in model.opset_import}, {""}, signature)
      self.assertGreaterEqual(model.opset_import[0].version, 17, signature)
      nodes = list(_all_nodes(model.graph)) + [n for f in model.functions for n in f.node]
      self.assertGreater(len(nodes), 10, signature)
      self.assertEqual({n.domain for n in nodes} - {"", "ai.onnx"}, set(), signature)
      for node in nodes:
        self.assertTrue(onnx.defs.has(node.op_type), f"{signature}: {node.op_type}")
        for attribute in node.attribute:
          # The deprecated TensorFlow-only resize mode is rewritten (other runtimes reject it).
          self.assertNotEqual(attribute.s, b"tf_half_pixel_for_nn", f"{signature}: {node.name}")

  def test_int8_files_run_the_convolutions_on_7_bit_int8_weights_in_standard_ops(self):
    directory, manifest = EXPORT.get()
    for signature in layout.ONNX_FILES:
      path = os.path.join(directory, layout.onnx_relpath("int8", signature))
      model = onnx.load(path)
      onnx.checker.check_model(model, full_check=True)
      self.assertEqual({o.domain for o in model.opset_import}, {""}, signature)
      self.assertEqual({n.domain for n in _all_nodes(model.graph)} - {"", "ai.onnx"}, set(), signature)
      if signature == "normalize_kp":  # Keypoint arithmetic only: the float32 file, as in TFLite's int8 variant.
        with open(os.path.join(directory, layout.onnx_relpath("float32", signature)), "rb") as f:
          self.assertEqual(f.read(), model.SerializeToString())
        continue
      producers = {output: node for node in model.graph.node for output in node.output}
      initializers = {i.name: onnx.numpy_helper.to_array(i) for i in model.graph.initializer}
      convs = [n for n in model.graph.node if n.op_type == "Conv"]
      self.assertGreater(len(convs), 0, signature)
      for conv in convs:
        # Activations and weights both arrive through DequantizeLinear (QDQ), which ONNX Runtime fuses into an
        # integer convolution; the weights are int8, per output channel, within 7 bits (reduce_range: no overflow
        # of the 16-bit pair sums of AVX2's uint8 x int8 multiply-adds).
        activation, weight = (producers[name] for name in conv.input[:2])
        self.assertEqual((activation.op_type, weight.op_type), ("DequantizeLinear", "DequantizeLinear"), conv.name)
        weights = initializers[weight.input[0]]
        self.assertEqual(weights.dtype, np.int8, conv.name)
        self.assertEqual(initializers[weight.input[1]].shape, (weights.shape[0],), conv.name)
        self.assertLessEqual(int(np.abs(weights.astype(np.int32)).max()), 64, conv.name)
      entry = manifest["files"][layout.onnx_relpath("int8", signature)]
      self.assertEqual(entry["quantization"], "int8")
      self.assertIn(", onnxruntime.quantization ", entry["converter"])
      self.assertIn("QuantizeLinear", entry["operators"])
    self.assertEqual(manifest["onnx_quantizations"], ["float32", "int8"])
    self.assertEqual(manifest["onnx_int8_ops"], ["Conv"])
    self.assertNotIn("int8_ops", manifest)  # TFLite's; this export has no TFLite files.

  def test_int8_animation_keeps_the_psnr_floor_against_keras(self):
    directory, manifest = EXPORT.get()
    source, driving, expected = util.keras_fixture_animation()
    out = np.stack(list(pipeline.animate(backends.OnnxBackend(directory, quantize="int8"), source, driving)))
    psnr = evaluation.psnr(out, expected)
    self.assertGreaterEqual(psnr, INT8_PSNR_FLOOR_DB)
    self.assertLess(psnr, 100.0)  # Quantised: not the float32 frames.
    self.assertGreaterEqual(manifest["onnx_animation"]["int8"]["psnr_db"], INT8_PSNR_FLOOR_DB)

  def test_onnx_variants_of_a_quantize_list(self):
    split = preflight.split_quantizations
    self.assertEqual(split(["onnx"], ["float32"]), ((), ("float32",)))
    self.assertEqual(split(["onnx"], ["int8"]), ((), ("float32", "int8")))
    self.assertEqual(split(["tflite", "onnx"], ["float16", "int8"]), (("float16", "int8"), ("float32", "int8")))
    self.assertEqual(split(["saved_model"], ["int8"]), ((), ()))
    with self.assertRaisesRegex(
        backends.ExportError, r"--quantize=dynamic_int8 is a TFLite variant \(ONNX files are float32 or int8\); "
        "add tflite to --formats"):
      split(["saved_model", "onnx"], ["int8", "dynamic_int8"])

  def test_manifest_records_the_files_and_their_errors(self):
    directory, manifest = EXPORT.get()
    with open(os.path.join(directory, layout.MANIFEST)) as f:
      self.assertEqual(json.load(f), manifest)
    self.assertEqual(manifest["formats"], ["onnx"])
    self.assertNotIn(layout.SAVED_MODEL, os.listdir(directory))
    for signature in layout.ONNX_FILES:
      relpath = layout.onnx_relpath("float32", signature)
      entry = manifest["files"][relpath]
      self.assertEqual((entry["kind"], entry["quantization"], entry["opset"]), ("onnx", "float32", 18))
      self.assertEqual(entry["domains"], [""])
      self.assertEqual(entry["size_bytes"], os.path.getsize(os.path.join(directory, relpath)))
      self.assertTrue(entry["converter"].startswith("tf2onnx "))
      self.assertLessEqual(max(entry["max_abs_error"].values()), FRAME_TOL, signature)
      self.assertEqual(sorted(entry["inputs"]), sorted(s.name for s in self.functions.specs[signature]))
    image = manifest["files"][layout.onnx_relpath("float32", "detect_keypoints")]["inputs"]["image"]
    self.assertEqual(image, {"shape": [None, 256, 256, 3], "dtype": "float32"})
    self.assertIn("Conv", manifest["files"][layout.onnx_relpath("float32", "generate_from_state")]["operators"])
    self.assertGreater(manifest["onnx_animation"]["float32"]["psnr_db"], 60.0)

  def test_backend_animates_like_keras(self):
    directory, _ = EXPORT.get()
    source, driving, expected = util.keras_fixture_animation()
    for batch_mode in backends.BATCH_MODES:
      backend = backends.OnnxBackend(directory, batch_mode=batch_mode)
      self.assertEqual((backend.frame_shape, backend.num_kp), ((256, 256, 3), 10))
      for batch_size in (1, 3):
        out = np.stack(list(pipeline.animate(backend, source, driving, batch_size=batch_size)))
        self.assertClose(out, expected, FRAME_TOL, f"{batch_mode} batch {batch_size}")

  def test_backend_refusals(self):
    directory, _ = EXPORT.get()
    with self.assertRaisesRegex(backends.ExportError, r"no 'float16' ONNX variant .*available: float32, int8"):
      backends.OnnxBackend(directory, quantize="float16")
    with self.assertRaisesRegex(ValueError, "batch_mode must be one of loop, resize"):
      backends.OnnxBackend(directory, batch_mode="both")
    broken = self.tmp_dir()
    for name in layout.ONNX_FILES.values():
      with open(os.path.join(broken, name), "wb") as f:
        f.write(b"not an onnx file")
    # Files that are not ONNX: refused by the export checks (no manifest; then not ONNX) before ONNX Runtime opens
    # them, and by ONNX Runtime itself when handed one directly.
    with self.assertRaisesRegex(backends.ExportError, r"no manifest\.json here or above"):
      backends.OnnxBackend(broken)
    with self.assertRaisesRegex(backends.ExportError, r"kp_detector.onnx: not an ONNX model \("):
      backends.OnnxBackend(broken, allow_modified=True)
    with self.assertRaisesRegex(backends.ExportError, r"kp_detector.onnx: not a usable ONNX model: "):
      backends.onnx_session(os.path.join(broken, layout.ONNX_FILES["detect_keypoints"]))
    backend = backends.OnnxBackend(directory)
    with self.assertRaisesRegex(ValueError, r"detect_keypoints: expected frames of shape \(B, 256, 256, 3\)"):
      backend.detect_keypoints(np.zeros((1, 256, 256, 4), np.float32))
    with self.assertRaisesRegex(ValueError, "generate: state must come from this backend's prepare_source"):
      backend.generate({"source": np.zeros((1, 256, 256, 3))}, util.fixture_kp("kp_source"),
                       util.fixture_kp("kp_driving"))

  def test_animate_command_with_onnx_gives_the_keras_frames(self):
    directory, _ = EXPORT.get()
    work = self.tmp_dir()
    source, video = util.write_fixture_media(work)
    flagfile = testing.write_fixture_flagfile(work)
    results = {}
    for backend, flags in (("onnx", [f"--export_dir={directory}"]),
                           ("keras", [f"--flagfile={flagfile}", f"--checkpoint={testing.CHECKPOINT}"])):
      results[backend] = os.path.join(work, f"{backend}.mp4")
      code, _, stderr = testing.run_cli(animation_cli, f"--backend={backend}", *flags, f"--source_image={source}",
                                        f"--driving_video={video}", f"--result_video={results[backend]}")
      self.assertEqual(code, 0, stderr[-2000:])
    onnx_frames = np.stack(media.read_video_frames(results["onnx"])).astype(np.float64)
    keras_frames = np.stack(media.read_video_frames(results["keras"])).astype(np.float64)
    self.assertEqual(onnx_frames.shape, (2, 256, 256, 3))
    # Frames that agree to 1e-4 round to the same 8-bit values but for a few pixels, which the encoder spreads a
    # little; the frames themselves are compared at 1e-4 in test_backend_animates_like_keras.
    self.assertLess(np.mean(np.abs(onnx_frames - keras_frames)), 0.05)
    self.assertLessEqual(np.max(np.abs(onnx_frames - keras_frames)), 8)

  def test_evaluate_reconstruction_with_onnx_scores_like_keras_without_loading_tensorflow(self):
    directory, _ = EXPORT.get()
    work = self.tmp_dir()
    os.makedirs(os.path.join(work, "data", "test"))
    frames = [(f * 255).round().astype(np.uint8) for f in util.fixture_frames()]
    testing.write_video(os.path.join(work, "data", "test", "clip.mp4"), frames)
    flagfile = testing.write_fixture_flagfile(work)
    common = [f"--flagfile={flagfile}", f"--dataset_root={os.path.join(work, 'data')}", "--batch_size=2"]
    # ONNX in a process of its own, which never loads TensorFlow (as animate's, above); Keras in this one.
    onnx = testing.run_module_listing_tf("fomm_tf.evaluate", *common, "--backend=onnx", f"--export_dir={directory}",
                                         f"--output_dir={os.path.join(work, 'onnx')}")
    self.assertEqual(onnx.returncode, 0, onnx.stderr[-2000:])
    self.assertEqual(onnx.stdout.strip().splitlines()[-1], "loaded: []")
    code, _, stderr = testing.run_cli(evaluation_cli, *common, "--backend=keras", f"--checkpoint={testing.CHECKPOINT}",
                                      f"--output_dir={os.path.join(work, 'keras')}")
    self.assertEqual(code, 0, stderr[-2000:])
    scores = {}
    for backend in ("onnx", "keras"):
      with open(os.path.join(work, backend, "reconstruction.json")) as f:
        scores[backend] = json.load(f)
    self.assertEqual(scores["onnx"]["backend"], "onnx")
    self.assertEqual(scores["onnx"]["num_frames"], 3)
    self.assertAlmostEqual(scores["onnx"]["l1"], scores["keras"]["l1"], delta=FRAME_TOL)
    refusals = ((["--backend=onnx"], r"--backend=onnx needs --export_dir"),
                (["--backend=onnx", f"--export_dir={directory}",
                  "--mode=visualize"], r"--backend=onnx runs FOMM for --mode=reconstruction or animation"),
                ([f"--export_dir={directory}"], r"--export_dir is for --backend=saved_model\|tflite\|onnx"))
    for flags, message in refusals:
      self.assertErrorLine(testing.run_cli(evaluation_cli, *common, *flags, f"--output_dir={work}/refused"), message)
    self.assertFalse(os.path.exists(os.path.join(work, "refused")))

  def test_animate_command_with_onnx_int8_on_either_engine_never_loads_tensorflow(self):
    # The exported backends need neither TensorFlow nor Keras: the command starts in seconds and stays small.
    directory, _ = EXPORT.get()
    work = self.tmp_dir()
    source, video = util.write_fixture_media(work)
    for engine in ("onnx", "openvino"):  # OpenVINO runs the same files (tests/openvino_backend_test.py).
      result_video = os.path.join(work, f"{engine}.mp4")
      result = testing.run_module_listing_tf("fomm_tf.animate", f"--backend={engine}", "--quantize=int8",
                                             f"--export_dir={directory}", f"--source_image={source}",
                                             f"--driving_video={video}", f"--result_video={result_video}")
      self.assertEqual(result.returncode, 0, result.stderr[-2000:])
      self.assertIn("wrote 2 frames", result.stdout)
      self.assertEqual(result.stdout.strip().splitlines()[-1], "loaded: []", engine)
      self.assertEqual(np.shape(media.read_video_frames(result_video)), (2, 256, 256, 3))

  def test_app_offers_the_onnx_variant(self):
    directory, _ = EXPORT.get()
    registry = app_models.ModelRegistry(os.path.dirname(directory))
    self.assertIn("onnx float32", registry.choice_labels("export"))
    self.assertIn("onnx int8", registry.choice_labels("export"))
    backend = registry.backend("export", "onnx int8")
    self.assertIsInstance(backend, backends.OnnxBackend)
    self.assertEqual(backend.quantize, "int8")

  def test_missing_onnxruntime_is_one_line_naming_the_extra(self):
    directory, _ = EXPORT.get()
    work = self.tmp_dir()
    source, video = util.write_fixture_media(work)
    animate = testing.run_module_without("onnxruntime", "fomm_tf.animate", "--backend=onnx",
                                         f"--export_dir={directory}", f"--source_image={source}",
                                         f"--driving_video={video}", f"--result_video={os.path.join(work, 'out.mp4')}")
    self.assertErrorLine((animate.returncode, animate.stdout, animate.stderr),
                         r"--backend=onnx needs ONNX Runtime: pip install fomm-tf\[onnx\]")
    self.assertFalse(os.path.exists(os.path.join(work, "out.mp4")))
    export = testing.run_module_without("tf2onnx", "fomm_tf.export", f"--flagfile={testing.write_tiny_flagfile(work)}",
                                        f"--output_dir={os.path.join(work, 'export')}", "--formats=onnx")
    self.assertErrorLine((export.returncode, export.stdout, export.stderr),
                         r"ONNX export needs tf2onnx and onnx: pip install fomm-tf\[onnx\]$")
    self.assertEqual(export.stdout.strip().splitlines()[-1], "loaded: []")  # Refused before TensorFlow loads.
    self.assertFalse(os.path.exists(os.path.join(work, "export")))


if __name__ == "__main__":
  absltest.main()
