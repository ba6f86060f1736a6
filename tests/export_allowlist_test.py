"""The op allowlist is exactly what exports of the official configs hold, for every quantisation.

fomm_tf/export/op_inventory.py exports each distinct structure of the official configs (shrunk: widths, frame
size and block repeats change shapes and op counts, not op types) with every TFLite quantisation; the allowlist
must contain every op those exports hold (else the backends would refuse fomm-tf's own exports) and nothing
else (so it stays as tight as it can be).
"""

import os

from absl.testing import absltest

from fomm_tf.inference import export_allowlist as allowlist
from tests import testing


class AllowlistTest(absltest.TestCase):

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    # op_inventory.inventory's exports, shared with lite_test (which runs the lite structure's files).
    cls.found, cls.configs, _ = testing.structure_exports()

  def test_an_export_written_through_keras_export_archive_still_passes_the_op_check(self):
    # How fomm-tf wrote SavedModels before it saved concrete functions: those exports must still load.
    import keras  # pylint: disable=import-outside-toplevel
    from fomm_tf.export import op_inventory  # pylint: disable=import-outside-toplevel
    from fomm_tf.export import signatures as signatures_lib  # pylint: disable=import-outside-toplevel
    from fomm_tf.inference import export_checks  # pylint: disable=import-outside-toplevel
    functions = signatures_lib.ExportFunctions(testing.fixture_model())
    archive = keras.export.ExportArchive()
    archive.track(functions.model.kp_detector)
    archive.add_endpoint("detect_keypoints",
                         functions.detect_keypoints,
                         input_signature=functions.specs["detect_keypoints"])
    path = os.path.join(self.create_tempdir().full_path, "saved_model")
    archive.write_out(path, verbose=False)
    ops = export_checks.saved_model_ops(export_checks.read_saved_model_proto(path))["ops"]
    self.assertTrue(op_inventory.EARLIER_SAVED_MODEL_OPS <= ops, sorted(ops))
    export_checks.check_saved_model(path)  # Raises ExportError on an op outside the allowlist.

  def test_every_official_config_is_covered(self):
    from fomm_tf.config import flagfiles  # pylint: disable=import-outside-toplevel
    self.assertCountEqual(self.configs, flagfiles.known_configs())

  def test_the_allowlist_is_exactly_what_the_exports_hold(self):
    for name, found, allowed in [("SAVED_MODEL_OPS", self.found["saved_model"], allowlist.SAVED_MODEL_OPS),
                                 ("SAVED_MODEL_SAVER_OPS", self.found["saved_model_saver"],
                                  allowlist.SAVED_MODEL_SAVER_OPS),
                                 ("TFLITE_OPS", self.found["tflite"], allowlist.TFLITE_OPS)]:
      self.assertEqual(sorted(found - allowed), [], f"{name} lacks ops that exports hold; run "
                       "tools/update_export_allowlist.py")
      self.assertEqual(sorted(allowed - found), [], f"{name} allows ops no export holds; run "
                       "tools/update_export_allowlist.py")

  def test_a_switch_that_only_adds_ops_is_exported_on_for_its_structure(self):
    from fomm_tf.export import op_inventory  # pylint: disable=import-outside-toplevel
    (names, config), = [(n, c) for n, c in op_inventory.official_structures() if "vox-256" in n]
    # synthetic-128 blends, vox-256 does not: one export with the blend stands for both (the fixture and the
    # full-size vox-256 exports, without it, pass the exporter's allowlist check).
    self.assertIn("synthetic-128", names)
    self.assertTrue(config.generator.blend_deformed)

  def test_no_file_or_python_op_is_allowed(self):
    dangerous = {
        "ReadFile", "WriteFile", "MatchingFiles", "DeleteFile", "PyFunc", "EagerPyFunc", "PrintV2", "SaveV2",
        "RestoreV2", "Save", "Restore", "TFRecordDataset", "FixedLengthRecordDataset"
    }
    self.assertEqual(sorted(dangerous & allowlist.SAVED_MODEL_OPS), [])
    self.assertEqual([op for op in allowlist.TFLITE_OPS if op.startswith(("CUSTOM", "Flex"))], [])


if __name__ == "__main__":
  absltest.main()
