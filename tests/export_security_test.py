"""Export directories from strangers: hostile graphs, custom ops, modified, truncated and mixed files.

Each hostile directory is a copy of a real tiny export with one thing changed, and (where the point is the op
check, not the hash check) a manifest whose hashes were recomputed to match, as an attacker would ship it. Every
one is refused in one line before TensorFlow or LiteRT load it, and nothing is written outside the test's folder.
"""

import json
import logging as std_logging
import os
import shutil

import flatbuffers
import numpy as np
import tensorflow as tf
from absl.testing import absltest

from fomm_tf.animation import cli as animation_cli
from fomm_tf.errors import ExportError
from fomm_tf.export import saved_model as saved_model_lib
from fomm_tf.export import signatures as signatures_lib
from fomm_tf.inference import export_checks
from fomm_tf.inference import export_layout as layout
from fomm_tf.inference import exported_backends as backends
from tests import testing

K = 10  # The tiny model's keypoints.


def _write_manifest(directory, manifest):
  with open(os.path.join(directory, layout.MANIFEST), "w") as f:
    json.dump(manifest, f)


def _rehash(directory):
  """Recomputes the manifest's file hashes, as someone shipping a hostile export would."""
  manifest = layout.read_manifest(directory)
  manifest["file_hashes"] = export_checks.describe_files(directory)
  del manifest["file_hashes"][layout.MANIFEST]
  _write_manifest(directory, manifest)


def _hostile_saved_model(path, detect):
  """A SavedModel with the signature names of a fomm-tf export, whose detect_keypoints runs `detect`."""
  image = tf.TensorSpec((None, 64, 64, 3), tf.float32, name="image")
  module = tf.Module()
  module.detect_keypoints = tf.function(detect, input_signature=[image])
  module.encode_source = tf.function(lambda source: {"features": source}, input_signature=[image])
  tf.saved_model.save(module,
                      path,
                      signatures={
                          "detect_keypoints": module.detect_keypoints,
                          "encode_source": module.encode_source
                      })


class ExportSecurityTest(testing.TestMixin, absltest.TestCase):

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    # A real export, read only (tests change copies): the allowlist inventory's vox-256 structure at 64x64
    # (SavedModel and every TFLite quantisation), shared with export_allowlist_test.
    _, _, exports = testing.structure_exports()
    cls.export = exports["vox-256"]

  def copy_export(self):
    directory = os.path.join(self.tmp_dir(), "export")
    shutil.copytree(self.export, directory)
    return directory

  def assertRefused(self, make_backend, pattern):
    with self.assertRaises(ExportError) as caught:
      make_backend()
    message = str(caught.exception)
    self.assertRegex(message, pattern)
    self.assertNotIn("\n", message)
    return message

  def replace_saved_model(self, detect):
    directory = self.copy_export()
    shutil.rmtree(os.path.join(directory, layout.SAVED_MODEL))
    _hostile_saved_model(os.path.join(directory, layout.SAVED_MODEL), detect)
    _rehash(directory)
    return directory

  # -- the real export passes ------------------------------------------------------------------------------

  def test_a_real_export_passes_every_check(self):
    manifest = layout.read_manifest(self.export)
    self.assertEqual(manifest["format_version"], 2)
    self.assertIn("saved_model/saved_model.pb", manifest["file_hashes"])
    self.assertIn("tflite/float32/generator.tflite", manifest["file_hashes"])
    self.assertEqual(backends.SavedModelBackend(self.export).num_kp, K)
    self.assertEqual(backends.TFLiteBackend(self.export).frame_shape, (64, 64, 3))

  # -- hostile graphs --------------------------------------------------------------------------------------

  def test_a_saved_model_that_writes_a_file_is_refused_before_it_runs(self):
    target = os.path.join(self.tmp_dir(), "written-by-the-model")

    def detect(image):
      tf.io.write_file(target, "pwned")
      return {"value": tf.zeros([tf.shape(image)[0], K, 2]), "jacobian": tf.zeros([tf.shape(image)[0], K, 2, 2])}

    directory = self.replace_saved_model(detect)
    # The model really is hostile: TensorFlow runs it as it is.
    loaded = tf.saved_model.load(os.path.join(directory, layout.SAVED_MODEL))
    loaded.signatures["detect_keypoints"](image=tf.zeros((1, 64, 64, 3)))
    self.assertTrue(os.path.exists(target))
    os.remove(target)
    message = self.assertRefused(lambda: backends.SavedModelBackend(directory), r"saved_model\.pb: .*ops? WriteFile")
    self.assertIn("nothing was run", message)
    self.assertFalse(os.path.exists(target))

  def test_a_saved_model_that_reads_etc_passwd_is_refused(self):

    def detect(image):
      leak = tf.strings.length(tf.io.read_file("/etc/passwd"))
      value = tf.fill([tf.shape(image)[0], K, 2], tf.cast(leak, tf.float32))
      return {"value": value, "jacobian": tf.zeros([tf.shape(image)[0], K, 2, 2])}

    directory = self.replace_saved_model(detect)
    self.assertRefused(lambda: backends.SavedModelBackend(directory), r"ops? ReadFile")

  def test_a_saved_model_with_a_py_function_is_refused(self):

    def detect(image):
      value = tf.py_function(lambda x: np.zeros((1, K, 2), np.float32), [image], tf.float32)
      return {"value": value, "jacobian": tf.zeros([1, K, 2, 2])}

    directory = self.replace_saved_model(detect)
    self.assertRefused(lambda: backends.SavedModelBackend(directory), r"ops? EagerPyFunc")

  def test_a_tflite_file_with_a_custom_op_is_refused(self):
    from ai_edge_litert import schema_py_generated as schema  # pylint: disable=import-outside-toplevel
    directory = self.copy_export()
    path = os.path.join(directory, layout.tflite_relpath("float32", "detect_keypoints"))
    with open(path, "rb") as f:
      model = schema.ModelT.InitFromPackedBuf(f.read(), 0)
    model.operatorCodes[0].builtinCode = schema.BuiltinOperator.CUSTOM
    model.operatorCodes[0].deprecatedBuiltinCode = schema.BuiltinOperator.CUSTOM
    model.operatorCodes[0].customCode = "EvilOp"
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    with open(path, "wb") as f:
      f.write(builder.Output())
    _rehash(directory)
    self.assertRefused(lambda: backends.TFLiteBackend(directory), r"kp_detector\.tflite: .*ops? CUSTOM:EvilOp")

  def test_a_huge_or_truncated_graph_is_refused_in_one_line(self):
    directory = self.copy_export()
    pb = os.path.join(directory, layout.SAVED_MODEL, "saved_model.pb")
    with open(pb, "rb") as f:
      data = f.read()
    with open(pb, "wb") as f:
      f.write(data[:len(data) // 2])
    # As shipped: the hash no longer matches.
    self.assertRefused(lambda: backends.SavedModelBackend(directory), r"saved_model\.pb: \d+ bytes, but the manifest")
    # With a manifest that matches the truncated file, the parser says so.
    _rehash(directory)
    self.assertRefused(lambda: backends.SavedModelBackend(directory), r"saved_model\.pb: not a readable SavedModel")
    # A sparse file past the size bound is refused before a byte of it is read.
    with open(pb, "r+b") as f:
      f.truncate(export_checks.MAX_SAVED_MODEL_PB_BYTES + 1)
    self.assertRefused(lambda: backends.SavedModelBackend(directory, allow_modified=True),
                       r"a graph of \d+ bytes is not one fomm-tf exports")

  def test_a_truncated_tflite_file_is_refused_in_one_line(self):
    directory = self.copy_export()
    path = os.path.join(directory, layout.tflite_relpath("float32", "generate_from_state"))
    with open(path, "r+b") as f:
      f.truncate(os.path.getsize(path) // 3)
    _rehash(directory)
    self.assertRefused(lambda: backends.TFLiteBackend(directory), r"generator\.tflite: not a readable TFLite model")

  # -- modified, old and mixed exports ---------------------------------------------------------------------

  def test_a_modified_file_is_refused_unless_allowed(self):
    directory = self.copy_export()
    weights = [
        os.path.join(r, n)
        for r, _, names in os.walk(os.path.join(directory, layout.SAVED_MODEL))
        for n in names
        if n.startswith("variables.data")
    ][0]
    with open(weights, "r+b") as f:
      byte = f.read(1)
      f.seek(0)
      f.write(bytes([byte[0] ^ 1]))
    self.assertRefused(lambda: backends.SavedModelBackend(directory),
                       r"variables\.data-\S+: its SHA-256 differs .*--allow_modified_export")
    # A TFLite file with bytes appended still runs; allowed, it is a warning.
    path = os.path.join(directory, layout.tflite_relpath("float32", "detect_keypoints"))
    with open(path, "ab") as f:
      f.write(b"\0" * 16)
    self.assertRefused(lambda: backends.TFLiteBackend(directory), r"kp_detector\.tflite: \d+ bytes, but the manifest")
    with self.assertLogs(level=std_logging.WARNING) as logs:
      backend = backends.TFLiteBackend(directory, allow_modified=True)
    self.assertEqual(backend.num_kp, K)
    self.assertTrue(any("kp_detector.tflite" in line and "running it anyway" in line for line in logs.output))

  def test_an_extra_file_in_the_saved_model_is_refused(self):
    directory = self.copy_export()
    with open(os.path.join(directory, layout.SAVED_MODEL, "assets.txt"), "w") as f:
      f.write("not from the export")
    self.assertRefused(lambda: backends.SavedModelBackend(directory), r"assets\.txt: not a file of this export")

  def test_an_export_without_hashes_is_refused_unless_allowed(self):
    directory = self.copy_export()
    manifest = layout.read_manifest(directory)
    manifest["format_version"] = 1
    del manifest["file_hashes"]
    _write_manifest(directory, manifest)
    self.assertRefused(lambda: backends.TFLiteBackend(directory), r"format_version 1\); re-export it")
    self.assertEqual(backends.TFLiteBackend(directory, allow_modified=True).num_kp, K)

  def test_a_hand_made_manifest_is_one_line(self):
    directory = self.copy_export()
    manifest = layout.read_manifest(directory)
    manifest["files"] = ["not", "a", "dict"]
    _write_manifest(directory, manifest)
    self.assertRefused(lambda: backends.SavedModelBackend(directory), r"no record of signature detect_keypoints")
    self.assertRefused(lambda: backends.TFLiteBackend(directory), r"no record of signature detect_keypoints")
    manifest["file_hashes"] = {"saved_model/saved_model.pb": "abc"}
    _write_manifest(directory, manifest)
    self.assertRefused(lambda: backends.SavedModelBackend(directory), r"not a file of this export")

  def test_files_of_two_exports_are_refused_even_when_allowed(self):
    directory = self.copy_export()
    other = testing.tiny_config().replace(num_kp=5)
    import fomm_tf  # pylint: disable=import-outside-toplevel
    functions = signatures_lib.ExportFunctions(fomm_tf.load_model(other))
    shutil.rmtree(os.path.join(directory, layout.SAVED_MODEL))
    saved_model_lib.write_saved_model(functions, os.path.join(directory, layout.SAVED_MODEL))
    self.assertRefused(lambda: backends.SavedModelBackend(directory), r"SHA-256 differs|bytes, but the manifest")
    self.assertRefused(lambda: backends.SavedModelBackend(directory, allow_modified=True),
                       r"detect_keypoints outputs .* differ from the manifest's .*another export")

  # -- the command line ------------------------------------------------------------------------------------

  def test_animate_prints_one_line_and_writes_nothing(self):
    target = os.path.join(self.tmp_dir(), "written-by-the-model")

    def detect(image):
      tf.io.write_file(target, "pwned")
      return {"value": tf.zeros([1, K, 2]), "jacobian": tf.zeros([1, K, 2, 2])}

    directory = self.replace_saved_model(detect)
    out_dir = self.tmp_dir()
    source = os.path.join(out_dir, "source.png")
    testing.write_image(source, testing.textured_square_frames(1, 64, 64)[0])
    video = os.path.join(out_dir, "driving.mp4")
    testing.write_video(video, testing.textured_square_frames(3, 64, 64))
    result = testing.run_cli(animation_cli, "--backend=saved_model", f"--export_dir={directory}",
                             f"--source_image={source}", f"--driving_video={video}",
                             f"--result_video={os.path.join(out_dir, 'out.mp4')}")
    self.assertErrorLine(result, r".*saved_model\.pb: refusing to run ops? WriteFile")
    self.assertFalse(os.path.exists(target))
    self.assertEqual(sorted(os.listdir(out_dir)), ["driving.mp4", "source.png"])


if __name__ == "__main__":
  absltest.main()
