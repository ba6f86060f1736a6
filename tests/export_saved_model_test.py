"""SavedModel export of the official fixture model: signatures, reloading, saved_model_cli, backend, bad inputs."""

import json
import os
import subprocess
import sys

import numpy as np
import tensorflow as tf
from absl.testing import absltest

import fomm_tf
from fomm_tf import errors
from fomm_tf.inference import keras_backend as backend_lib
from fomm_tf.inference import pipeline
from fomm_tf.inference import exported_backends as backends
from fomm_tf.export import exporter
from fomm_tf.inference import export_layout as layout
from fomm_tf.export import manifest as manifest_lib
from fomm_tf.export import signatures as signatures_lib
from tests import export_test_util as util
from tests import testing

EXPORT = util.ModuleExport("export_saved_model_test",
                           formats=["saved_model"],
                           representative_frames=util.fixture_frames())
_LOADED = []


def _loaded():
  if not _LOADED:
    _LOADED.append(tf.saved_model.load(os.path.join(EXPORT.get()[0], layout.SAVED_MODEL)))
  return _LOADED[0]


def _call(name, **inputs):
  out = _loaded().signatures[name](**{k: tf.constant(v) for k, v in inputs.items()})
  return {k: v.numpy() for k, v in out.items()}


def _kp_inputs(prefix, kp):
  return {f"{prefix}_value": np.asarray(kp["value"]), f"{prefix}_jacobian": np.asarray(kp["jacobian"])}


class SavedModelSignatureTest(absltest.TestCase):

  def assertClose(self, actual, expected, what):
    err = util.max_abs(actual, expected)
    self.assertLessEqual(err, util.TOL, f"{what}: max abs error {err:.3g}")

  def test_signatures_are_all_there(self):
    self.assertSameElements(layout.SAVED_MODEL_SIGNATURES, _loaded().signatures.keys())

  def test_detect_keypoints_matches_keras_and_fixture(self):
    frames = util.fixture_frames()
    out = _call("detect_keypoints", image=frames)
    expected = util.fixture_model().detect_keypoints(frames)
    for key in ("value", "jacobian"):
      self.assertClose(out[key], expected[key], f"detect_keypoints {key}")
      self.assertClose(out[key][1:], util.fixture_kp("kp_driving")[key], f"fixture kp_driving {key}")

  def test_generate_matches_keras_with_shared_and_batched_source(self):
    model = util.fixture_model()
    source = util.fixture_frames()[:1]
    kp_source = util.fixture_kp("kp_source")
    kp_driving = util.fixture_kp("kp_norm_rel")
    expected = model.generate(source, kp_source, kp_driving)["prediction"].numpy()
    shared = _call("generate",
                   source=source,
                   **_kp_inputs("kp_source", kp_source),
                   **_kp_inputs("kp_driving", kp_driving))
    self.assertClose(shared["prediction"], expected, "generate, batch-1 source")
    batched_source = np.repeat(source, 2, axis=0)
    batched_kp = {k: np.repeat(v, 2, axis=0) for k, v in kp_source.items()}
    batched = _call("generate",
                    source=batched_source,
                    **_kp_inputs("kp_source", batched_kp),
                    **_kp_inputs("kp_driving", kp_driving))
    self.assertClose(batched["prediction"], expected, "generate, batched source")
    # The official generator on the same input.
    self.assertClose(shared["prediction"], testing.nchw_to_nhwc(testing.arrays()["gen_rel_ac1_prediction"]),
                     "fixture prediction")

  def test_encode_source_and_generate_from_state_match_keras(self):
    model = util.fixture_model()
    source = util.fixture_frames()[:1]
    state = _call("encode_source", source=source)
    expected_state = model.generator.encode_source(tf.constant(source))
    for key in ("features", "source_small"):
      self.assertClose(state[key], expected_state[key].numpy(), f"encode_source {key}")
    kp_driving = util.fixture_kp("kp_norm_abs")
    out = _call("generate_from_state", **state, **_kp_inputs("kp_source", util.fixture_kp("kp_source")),
                **_kp_inputs("kp_driving", kp_driving))
    expected = model.generate(source, util.fixture_kp("kp_source"), kp_driving)["prediction"].numpy()
    self.assertClose(out["prediction"], expected, "generate_from_state")

  def test_normalize_kp_matches_eager_for_every_flag_combination(self):
    kp_source = util.fixture_kp("kp_source")
    kp_driving = util.fixture_kp("kp_driving")
    kp_initial = util.fixture_kp("kp_driving0")
    for adapt in (False, True):
      for relative in (False, True):
        for relative_jacobian in (False, True):
          out = _call("normalize_kp",
                      **_kp_inputs("kp_source", kp_source),
                      **_kp_inputs("kp_driving", kp_driving),
                      **_kp_inputs("kp_driving_initial", kp_initial),
                      adapt_movement_scale=np.array(adapt),
                      use_relative_movement=np.array(relative),
                      use_relative_jacobian=np.array(relative_jacobian))
          expected = fomm_tf.normalize_kp(kp_source, kp_driving, kp_initial, adapt, relative, relative_jacobian)
          for key in ("value", "jacobian"):
            self.assertClose(
                out[key], np.asarray(expected[key]), f"normalize_kp {key} adapt={adapt} "
                f"relative={relative} relative_jacobian={relative_jacobian}")
    # The official relative transfer of the fixture.
    out = _call("normalize_kp",
                **_kp_inputs("kp_source", kp_source),
                **_kp_inputs("kp_driving", kp_driving),
                **_kp_inputs("kp_driving_initial", kp_initial),
                adapt_movement_scale=np.array(bool(testing.arrays()["adapt_movement_scale"])),
                use_relative_movement=np.array(True),
                use_relative_jacobian=np.array(True))
    self.assertClose(out["value"], util.fixture_kp("kp_norm_rel")["value"], "fixture kp_norm_rel")

  def test_serving_default_animates_like_the_keras_pipeline(self):
    frames = util.fixture_frames()
    source, driving = frames[:1], frames[1:]
    model = util.fixture_model()
    kp_initial = {k: v.numpy() for k, v in model.detect_keypoints(driving[:1]).items()}
    for relative, adapt in ((True, False), (True, True), (False, False)):
      out = _call("serving_default",
                  source=source,
                  driving=driving,
                  **_kp_inputs("kp_driving_initial", kp_initial),
                  relative=np.array(relative),
                  adapt_scale=np.array(adapt))
      expected = np.stack(
          list(pipeline.animate(model, source[0], list(driving), relative=relative, adapt_scale=adapt, batch_size=2)))
      self.assertClose(out["prediction"], expected, f"serving_default relative={relative} adapt={adapt}")

  def test_dynamic_batch(self):
    for batch in (1, 4):
      frames = np.repeat(util.fixture_frames()[:1], batch, axis=0)
      self.assertEqual(_call("detect_keypoints", image=frames)["value"].shape, (batch, 10, 2))


class SavedModelFilesTest(absltest.TestCase):

  def test_manifest_describes_the_saved_model(self):
    directory, returned = EXPORT.get()
    manifest = manifest_lib.read_manifest(directory)
    self.assertEqual(manifest, returned)
    self.assertEqual(manifest["frame_shape"], [256, 256, 3])
    self.assertEqual(manifest["num_kp"], 10)
    self.assertTrue(manifest["align_corners"])
    self.assertEqual(manifest["config"]["gen_block_expansion"], 8)
    self.assertEqual(manifest["checkpoint"], os.path.abspath(testing.CHECKPOINT))
    self.assertEqual(manifest["formats"], ["saved_model"])
    self.assertEqual(sorted(manifest["files"]), ["saved_model"])
    described = manifest["files"]["saved_model"]["signatures"]
    self.assertSameElements(layout.SAVED_MODEL_SIGNATURES, described)
    serving = described["serving_default"]
    self.assertEqual(serving["inputs"]["driving"], {"shape": [None, 256, 256, 3], "dtype": "float32"})
    self.assertEqual(serving["inputs"]["relative"], {"shape": [], "dtype": "bool"})
    self.assertEqual(serving["outputs"]["prediction"]["shape"], [None, 256, 256, 3])
    self.assertEqual(described["normalize_kp"]["inputs"]["adapt_movement_scale"]["dtype"], "bool")
    for name, info in described.items():
      for output, error in info["max_abs_error"].items():
        self.assertLessEqual(error, util.TOL, f"{name} {output}")
    self.assertGreater(serving["psnr_db"], 60.0)
    self.assertEqual(sorted(os.listdir(directory)), [layout.MANIFEST, layout.SAVED_MODEL])

  def test_loads_in_a_fresh_process(self):
    directory, _ = EXPORT.get()
    script = ("import json, sys, numpy as np, tensorflow as tf\n"
              "m = tf.saved_model.load(sys.argv[1])\n"
              "out = m.signatures['detect_keypoints'](image=tf.zeros([3, 256, 256, 3]))\n"
              "print(json.dumps({k: list(v.shape) for k, v in out.items()}))\n")
    result = subprocess.run(
        [sys.executable, "-c", script, os.path.join(directory, layout.SAVED_MODEL)],
        capture_output=True,
        text=True,
        timeout=120,
        env={
            **os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"
        })
    self.assertEqual(result.returncode, 0, result.stderr[-2000:])
    self.assertEqual(json.loads(result.stdout.strip().splitlines()[-1]), {
        "value": [3, 10, 2],
        "jacobian": [3, 10, 2, 2]
    })

  def test_saved_model_cli_shows_named_inputs(self):
    directory, _ = EXPORT.get()
    cli = os.path.join(os.path.dirname(sys.executable), "saved_model_cli")
    result = subprocess.run(
        [cli, "show", "--dir", os.path.join(directory, layout.SAVED_MODEL), "--all"],
        capture_output=True,
        text=True,
        timeout=120,
        env={
            **os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"
        })
    self.assertEqual(result.returncode, 0, result.stderr[-2000:])
    functions = signatures_lib.ExportFunctions(util.fixture_model())
    for name, specs in functions.specs.items():
      self.assertIn(f"signature_def['{name}']", result.stdout)
      for spec in specs:
        self.assertIn(f"inputs['{spec.name}']", result.stdout)
    self.assertIn("outputs['prediction']", result.stdout)


class SavedModelBackendTest(absltest.TestCase):

  def test_animation_matches_the_keras_backend(self):
    directory, _ = EXPORT.get()
    backend = backends.SavedModelBackend(directory)
    self.assertEqual(backend.frame_shape, (256, 256, 3))
    self.assertEqual(backend.num_kp, 10)
    frames = util.fixture_frames()
    keras_backend = backend_lib.for_model(util.fixture_model())
    for batch_size in (1, 2):
      exported = np.stack(list(pipeline.animate(backend, frames[0], list(frames[1:]), batch_size=batch_size)))
      expected = np.stack(list(pipeline.animate(keras_backend, frames[0], list(frames[1:]), batch_size=batch_size)))
      self.assertLessEqual(util.max_abs(exported, expected), util.TOL)

  def test_bad_inputs_raise_clear_errors(self):
    directory, _ = EXPORT.get()
    backend = backends.SavedModelBackend(directory)
    with self.assertRaisesRegex(
        ValueError, r"detect_keypoints: expected frames of shape \(B, 256, 256, 3\), "
        r"got \(2, 128, 128, 3\)"):
      backend.detect_keypoints(np.zeros((2, 128, 128, 3), np.float32))
    with self.assertRaisesRegex(ValueError, "prepare_source: expected one source frame, got a batch of 2"):
      backend.prepare_source(np.zeros((2, 256, 256, 3), np.float32))
    kp = util.fixture_kp("kp_source")
    state = backend.prepare_source(util.fixture_frames()[:1])
    with self.assertRaisesRegex(ValueError, r"generate kp_driving: expected value \(B, 10, 2\)"):
      backend.generate(state, kp, {"value": np.zeros((1, 5, 2)), "jacobian": np.zeros((1, 5, 2, 2))})
    collinear = {
        "value": np.stack([np.linspace(-0.5, 0.5, 10)] * 2, axis=-1)[None].astype(np.float32),
        "jacobian": kp["jacobian"]
    }
    with self.assertRaisesRegex(errors.AnimationError, "initial driving keypoints span no area"):
      backend.normalize_kp(kp,
                           util.fixture_kp("kp_driving"),
                           collinear,
                           adapt_movement_scale=True,
                           use_relative_movement=True,
                           use_relative_jacobian=True)
    missing = os.path.join(self.create_tempdir().full_path, "nothing")
    with self.assertRaisesRegex(errors.ExportError, "nothing: no SavedModel here"):
      backends.SavedModelBackend(missing)


class ExportArgumentTest(absltest.TestCase):
  """Refusals that happen before anything is written."""

  def test_non_empty_output_dir_is_refused_and_kept(self):
    directory = self.create_tempdir()
    directory.create_file("keep.txt", "mine")
    with self.assertRaisesRegex(exporter.ExportError, "directory exists and is not empty .*--overwrite"):
      exporter.export_model(util.fixture_model(), directory.full_path, formats=["saved_model"])
    self.assertEqual(os.listdir(directory.full_path), ["keep.txt"])

  def test_bad_arguments(self):
    output = os.path.join(self.create_tempdir().full_path, "out")
    model = util.fixture_model()
    with self.assertRaisesRegex(exporter.ExportError, "unknown format 'torchscript'; choose from saved_model, "
                                "tflite, onnx"):
      exporter.export_model(model, output, formats=["torchscript"])
    with self.assertRaisesRegex(
        exporter.ExportError, r"representative frames: expected frames of shape "
        r"\(N, 256, 256, 3\), got \(3, 64, 64, 3\)"):
      exporter.export_model(model,
                            output,
                            formats=["saved_model"],
                            representative_frames=np.zeros((3, 64, 64, 3), np.float32))
    with self.assertRaisesRegex(exporter.ExportError, r"values must be finite and in \[0, 1\]"):
      exporter.export_model(model,
                            output,
                            formats=["saved_model"],
                            representative_frames=np.full((3, 256, 256, 3), 2.0, np.float32))
    file_path = self.create_tempfile("a_file").full_path
    with self.assertRaisesRegex(exporter.ExportError, "a_file: exists and is not a directory"):
      exporter.export_model(model, file_path, formats=["saved_model"])
    self.assertFalse(os.path.exists(output))

  def test_model_without_jacobians_is_refused(self):
    cfg = testing.fixture_config(True).replace(estimate_jacobian=False)
    model = fomm_tf.load_model(cfg, build_discriminator=False)
    with self.assertRaisesRegex(errors.ExportError, "export needs estimate_jacobian=true"):
      signatures_lib.ExportFunctions(model)


if __name__ == "__main__":
  absltest.main()
