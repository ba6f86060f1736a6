"""--backend=openvino without an export (live's default): Keras models converted in memory, against Keras; the
commands that use it and their refusals."""

import itertools
import json
import os
import shutil

import fomm_tf
import numpy as np
from absl.testing import absltest

from fomm_tf import builtin
from fomm_tf import errors
from fomm_tf.animation import cli as animate_cli
from fomm_tf.app import models as app_models
from fomm_tf.checkpoint import npz_weights
from fomm_tf.evaluation import cli as evaluation_cli
from fomm_tf.inference import keras_backend
from fomm_tf.inference import openvino_model
from fomm_tf.inference import pipeline
from fomm_tf.io import media
from fomm_tf.live import cli as live_cli
from fomm_tf.ops import normalize_kp as normalize_lib
from tests import export_test_util as util
from tests import testing

KP_TOL = 1e-5  # The ONNX files' tolerances (issue 20), here for the same networks converted by another route.
FRAME_TOL = 1e-4


class OpenVinoModelBackendTest(testing.TestCase):

  def test_the_fixture_model_animates_like_keras(self):
    backend = openvino_model.OpenVinoModelBackend(util.fixture_model())
    self.assertEqual((backend.frame_shape, backend.num_kp, backend.name), ((256, 256, 3), 10, "openvino"))
    source, driving, expected = util.keras_fixture_animation()
    out = np.stack(list(pipeline.animate(backend, source, driving, batch_size=3)))  # A batch of 3 runs as 3 calls.
    self.assertLessEqual(util.max_abs(out, expected), FRAME_TOL)
    frames = util.fixture_frames()
    kp = backend.detect_keypoints(frames)
    expected_kp = util.fixture_model().detect_keypoints(frames)
    self.assertEqual(set(kp), {"value", "jacobian"})
    for key in kp:
      self.assertLessEqual(util.max_abs(kp[key], expected_kp[key].numpy()), KP_TOL, key)
    state, one = backend.prepare_source(frames[:1]), {k: v[:1] for k, v in kp.items()}
    with self.assertRaisesRegex(ValueError, "generate kp_driving: its arrays differ in batch size"):
      backend.generate(state, one, {"value": kp["value"], "jacobian": one["jacobian"]})
    with self.assertRaisesRegex(ValueError, "generate: kp_source must be of the one prepared source, batch 1, got "
                                "batch 1, 3"):
      backend.generate(state, {"value": one["value"], "jacobian": kp["jacobian"]}, one)

  def test_the_builtin_model_animates_the_sample_like_keras(self):
    # The trained built-in model on its own sample (on random frames its relative Jacobians magnify rounding).
    model = builtin.load_builtin_model()
    source = media.read_image(builtin.SAMPLE_SOURCE)
    driving = media.read_video_frames(builtin.SAMPLE_DRIVING)[:6]
    expected = np.stack(list(pipeline.animate(keras_backend.KerasBackend(model), source, driving)))
    out = np.stack(list(pipeline.animate(openvino_model.OpenVinoModelBackend(model), source, driving)))
    # 7.9e-5 on the 2-core AVX2 machine; the built-in model's passed-through source (its source_small is the
    # source itself) comes back under the input's name.
    self.assertLessEqual(util.max_abs(out, expected), 1e-3)


class TinyModelTest(testing.TestCase):
  """A model without Jacobians (the detector's and generator's keypoints are values only), and the refusals."""

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls.model = fomm_tf.load_model(testing.tiny_config().replace(estimate_jacobian=False))
    cls.backend = openvino_model.OpenVinoModelBackend(cls.model, num_threads=1)

  def test_animates_like_keras(self):
    frames = testing.as_float(testing.textured_square_frames(4, height=64, width=64))
    kp = self.backend.detect_keypoints(frames)
    self.assertEqual(set(kp), {"value"})
    self.assertLessEqual(util.max_abs(kp["value"], self.model.detect_keypoints(frames)["value"].numpy()), KP_TOL)
    expected = np.stack(list(pipeline.animate(keras_backend.KerasBackend(self.model), frames[0], frames)))
    out = np.stack(list(pipeline.animate(self.backend, frames[0], frames, batch_size=3)))
    self.assertLessEqual(util.max_abs(out, expected), FRAME_TOL)

  def test_refusals(self):
    with self.assertRaisesRegex(ValueError, "num_threads must be >= 1, got 0"):
      openvino_model.OpenVinoModelBackend(self.model, num_threads=0)
    with self.assertRaisesRegex(ValueError, r"detect_keypoints: expected frames of shape \(B, 64, 64, 3\)"):
      self.backend.detect_keypoints(np.zeros((1, 32, 32, 3), np.float32))
    frame = np.zeros((1, 64, 64, 3), np.float32)
    state, kp = self.backend.prepare_source(frame), self.backend.detect_keypoints(frame)
    with self.assertRaisesRegex(ValueError, "generate: state must come from this backend's prepare_source"):
      self.backend.generate({"features": 0}, kp, kp)
    with self.assertRaisesRegex(ValueError, r"generate kp_driving: expected 'value' of shape \(B, 10, 2\)"):
      self.backend.generate(state, kp, {"value": kp["value"][..., :1]})
    with self.assertRaisesRegex(ValueError, "generate: kp_source must be of the one prepared source"):
      self.backend.generate(state, {"value": np.concatenate([kp["value"]] * 2)}, kp)

  def test_relative_motion_is_ops_normalize_kp_run_eagerly(self):
    # Backend.normalize_kp runs it as a graph (one per combination of the flags).
    rng = np.random.default_rng(0)
    kp = lambda batch: {
        "value": rng.uniform(-1, 1, (batch, 10, 2)).astype(np.float32),
        "jacobian": (np.eye(2) + 0.2 * rng.normal(size=(batch, 10, 2, 2))).astype(np.float32)
    }
    source, driving, initial = kp(1), kp(3), kp(1)
    for flags in itertools.product((False, True), repeat=3):
      got = self.backend.normalize_kp(source, driving, initial, *flags)
      want = normalize_lib.normalize_kp(source, driving, initial, *flags)
      for key in ("value", "jacobian"):
        np.testing.assert_allclose(got[key], want[key], rtol=1e-6, atol=1e-6, err_msg=f"{flags} {key}")
    collinear = {"value": np.stack([np.linspace(-0.5, 0.5, 10)] * 2, axis=-1)[None].astype(np.float32)}
    with self.assertRaisesRegex(errors.AnimationError, "initial driving keypoints span no area"):
      self.backend.normalize_kp({"value": source["value"]}, {"value": driving["value"]}, collinear, True, True, True)

  def test_a_mixed_precision_model_is_refused(self):
    model = fomm_tf.load_model(testing.tiny_config(), dtype="bfloat16")
    with self.assertRaisesRegex(ValueError, "OpenVinoModelBackend runs float32 models, this one computes in "
                                "mixed_bfloat16"):
      openvino_model.OpenVinoModelBackend(model)


class OpenVinoCommandsTest(testing.AnimateFixtures, testing.TestCase):

  def test_animate_with_openvino_and_no_export_sends_and_keeps_nothing_about_it(self):
    # The tiny model (random weights; OpenVinoModelBackendTest compares trained models' frames with Keras'), by the
    # command in a process of its own: OpenVINO's converter, left to itself, reports each conversion to Google
    # Analytics and keeps a client id in ~/intel (exported_backends.import_openvino turns that off).
    result, home = os.path.join(self.dir, "openvino.mp4"), self.tmp_dir()
    run = testing.run_module("fomm_tf.animate",
                             f"--flagfile={self.flagfile}",
                             "--backend=openvino",
                             f"--source_image={self.source_png}",
                             f"--driving_video={self.driving_mp4}",
                             f"--result_video={result}",
                             env=dict(os.environ, HOME=home))
    self.assertEqual(run.returncode, 0, run.stderr[-2000:])
    self.assertIn("converting the networks to OpenVINO", run.stdout)
    frames = media.read_video_frames(result)
    self.assertEqual((len(frames), frames[0].shape), (self.DRIVING_FRAMES, (64, 64, 3)))
    self.assertNotIn("intel", os.listdir(home))  # Other libraries' caches (Keras', Matplotlib's) may be there.

  def test_evaluate_with_openvino_and_no_export_scores_like_keras(self):
    data = os.path.join(self.tmp_dir(), "data", "test")
    os.makedirs(data)
    shutil.copy(self.driving_mp4, os.path.join(data, "clip.mp4"))
    weights = npz_weights.save_npz_weights(testing.tiny_model(), self.tmp_path("tiny.weights.npz"))
    scores, printed = {}, {}
    for backend in ("openvino", "keras"):
      output = os.path.join(self.tmp_dir(), backend)
      code, stdout, stderr = testing.run_cli(evaluation_cli, f"--flagfile={self.flagfile}", f"--checkpoint={weights}",
                                             f"--backend={backend}", f"--dataset_root={os.path.dirname(data)}",
                                             f"--output_dir={output}")
      self.assertEqual(code, 0, stderr[-2000:])
      printed[backend] = stdout
      with open(os.path.join(output, "reconstruction.json")) as f:
        scores[backend] = json.load(f)
    self.assertIn("converting the networks to OpenVINO", printed["openvino"])
    self.assertEqual((scores["openvino"]["backend"], scores["openvino"]["num_frames"]),
                     ("openvino", self.DRIVING_FRAMES))
    self.assertNotIn("export_dir", scores["openvino"])
    self.assertEqual(scores["openvino"]["checkpoint"], weights)
    self.assertAlmostEqual(scores["openvino"]["l1"], scores["keras"]["l1"], delta=FRAME_TOL)
    outcome = testing.run_cli(evaluation_cli, f"--flagfile={self.flagfile}", "--backend=openvino", "--quantize=int8",
                              f"--dataset_root={os.path.dirname(data)}", f"--output_dir={self.tmp_dir()}/refused")
    self.assertErrorLine(outcome, r"--backend=openvino converts the Keras model in float32; --quantize=int8 runs")

  def test_the_app_offers_the_builtin_models_on_openvino(self):
    registry = app_models.ModelRegistry()
    self.assertEqual(registry.choice_labels(app_models.BUILTIN_LITE),
                     ["keras float32", "keras bfloat16", "openvino float32"])
    backend = registry.backend(app_models.BUILTIN_LITE, "openvino float32")
    self.assertIsInstance(backend, openvino_model.OpenVinoModelBackend)
    self.assertEqual(backend.frame_shape, (128, 128, 3))

  def test_int8_needs_an_export_and_mixed_precision_is_for_keras(self):
    outcome = testing.run_cli(animate_cli, "--backend=openvino", "--quantize=int8")
    self.assertErrorLine(
        outcome, r"--backend=openvino converts the Keras model in float32; --quantize=int8 runs an "
        r"export's ONNX files: pass --export_dir")
    outcome = testing.run_cli(live_cli,
                              "--mixed_precision=bfloat16",
                              f"--camera={self.driving_mp4}",
                              handle_signals=False)
    self.assertErrorLine(
        outcome, r"--mixed_precision is for --backend=keras; --backend=openvino runs the Keras "
        r"model converted in float32")

  def test_live_without_openvino_is_one_line_naming_it_and_the_keras_backend_before_tensorflow_loads(self):
    live = testing.run_module_without("openvino", "fomm_tf.live", f"--camera={self.driving_mp4}")
    self.assertErrorLine((live.returncode, live.stdout, live.stderr),
                         r"--backend=openvino needs OpenVINO, a dependency of fomm-tf: pip install openvino \(or pass "
                         r"--backend=keras\)")
    self.assertNotIn("Traceback", live.stderr)
    self.assertEqual(live.stdout.strip().splitlines()[-1], "loaded: []")


if __name__ == "__main__":
  absltest.main()
