"""pytest configuration shared by all tests."""

import os
import shutil
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# XLA's CPU backend hands its kernels to LLVM at -O0 here: train_test's XLA-compiled training step (the suite's one
# big XLA compilation, checked against the same step without XLA) compiles in half the CPU time (about 16 against
# 33 CPU-seconds on the 2-core CI machine). LLVM's optimisation level changes how fast the machine code runs, not
# what it computes: the losses agree to the test's 1e-4 either way. Set before TensorFlow starts (XLA reads the
# variable once per process); a value set by whoever runs the tests is kept.
os.environ.setdefault("XLA_FLAGS", "--xla_backend_optimization_level=0")

from absl import flags  # pylint: disable=g-import-not-at-top

# absltest helpers (create_tempdir, get_default_test_tmpdir) read absl flags,
# which only absltest.main() parses; under pytest the defaults are used.
if not flags.FLAGS.is_parsed():
  flags.FLAGS.mark_as_parsed()

# The test classes that take longest (seconds of one worker, `pytest -n 2` on the 2-core AVX2 CI machine, 2026-12-05;
# TrainProcessTest's after the synchronised batch norm's faster tracing, 73 before), longest first. pytest-xdist
# hands out whole classes (--dist loadscope); given these first and the short ones after (--no-loadscope-reorder
# keeps this order), the two workers finish within seconds of each other. xdist's own order (most tests first)
# started the one-test script test last and left the other worker idle for minutes.
# A class missing here only runs later; the list is a schedule, not a selection.
LONGEST_FIRST = (
    "package_builtin_model_test.py::TrainBuiltinModelScriptTest",  # 127
    "train_test.py::TrainProcessTest",  # 61
    "export_security_test.py::ExportSecurityTest",  # 60
    "train_test.py::TrainTest",  # 60
    "export_full_size_test.py::FullSizeExportTest",  # 57
    "export_onnx_test.py::OnnxExportTest",  # 52
    "export_cli_test.py::ExportCliTest",  # 50
    "train_test.py::FourStepRunTest",  # 49
    "train_test.py::TrainFaultsTest",  # 49
    "animate_test.py::AnimateTest",  # 48
    "app_load_test.py::AppLoadTest",  # 41
    "export_tflite_quantized_test.py::QuantizedExportTest",  # 34
    "app_test.py::BrowserTest",  # 28
    "data_safety_test.py::DiskFullTest",  # 28
    "distill_test.py::DistillTest",  # 28
    "openvino_model_test.py::OpenVinoCommandsTest",  # 26
    "data_safety_test.py::SignalsTest",  # 26
    "evaluate_test.py::EvaluateTest",  # 25
    "builtin_test.py::BuiltinModelTest",  # 24
    "export_saved_model_test.py::SavedModelSignatureTest",  # 22
    "checkpoint_loading_test.py::CheckpointLoadingTest",  # 22
    "parity_test.py::ParityTest",  # 21
    "export_tflite_test.py::Float32ParityTest",  # 21
    "models_test.py::ModelsTest",  # 20
    "export_saved_model_test.py::SavedModelFilesTest",  # 19
    "face_animation_test.py::FaceAnimationTest",  # 18
    "openvino_backend_test.py::OpenVinoBackendTest",  # 17
    "app_test.py::ApiTest",  # 17
    "builtin_test.py::BuiltinLiteModelTest",  # 16
    "live_test.py::LiveTest",  # 15
    "layers_test.py::LayersTest",  # 15
    "packaging_test.py::PackagingTest",  # 14
    "openvino_model_test.py::OpenVinoModelBackendTest",  # 12
    "hostile_checkpoint_test.py::FuzzTest",  # 10
    "grid_sample_test.py::GridSampleTest",  # 10
)


def _scope(item):
  """The unit pytest-xdist's loadscope hands out: the class, or the module of a module-level test."""
  parts = item.nodeid.split("::")
  return "::".join(parts[:2]) if len(parts) > 2 else parts[0]


def pytest_collection_modifyitems(config, items):
  # tf.test.TestCase inherits a deprecated `test_session` helper that pytest
  # collects as a (skipped) test; it is not one of ours.
  items[:] = [item for item in items if item.name != "test_session"]
  rank = {"tests/" + name: index for index, name in enumerate(LONGEST_FIRST)}
  items.sort(key=lambda item: rank.get(_scope(item), len(rank)))  # Stable: the rest keep collection order.


def pytest_configure(config):
  # One folder per test run for the artifacts every pytest-xdist worker shares (testing.shared_artifact):
  # made by the controlling process before it starts the workers, which inherit the variable.
  if not hasattr(config, "workerinput") and "FOMM_TEST_SHARED_DIR" not in os.environ:
    config.fomm_shared_dir = tempfile.mkdtemp(prefix="fomm_test_shared_")
    os.environ["FOMM_TEST_SHARED_DIR"] = config.fomm_shared_dir


def pytest_unconfigure(config):
  shared = getattr(config, "fomm_shared_dir", None)
  if shared is not None:
    shutil.rmtree(shared, ignore_errors=True)
    os.environ.pop("FOMM_TEST_SHARED_DIR", None)
