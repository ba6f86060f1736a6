"""ONNX files from strangers: custom domains (also in subgraphs) and external data outside the export directory are
refused in one line before ONNX Runtime opens the file; nothing outside the test's folder is read or written."""

import os

import numpy as np
import onnx
from onnx import helper
from onnx import numpy_helper

from fomm_tf.errors import ExportError
from fomm_tf.inference import export_checks
from fomm_tf.inference import export_layout as layout
from fomm_tf.inference import exported_backends
from tests import testing


def _model(nodes, initializers=(), opsets=(("", 18),)):
  graph = helper.make_graph(nodes,
                            "g", [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 2])],
                            [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 2])],
                            initializer=list(initializers))
  return helper.make_model(graph, opset_imports=[helper.make_opsetid(d, v) for d, v in opsets])


def _external(name, location):
  """A weight tensor that says its bytes live in the file `location`."""
  tensor = numpy_helper.from_array(np.ones((1, 2), np.float32), name)
  tensor.ClearField("raw_data")
  tensor.data_location = onnx.TensorProto.EXTERNAL
  tensor.external_data.add(key="location", value=location)
  return tensor


def _add(weight="w"):
  return helper.make_node("Add", ["x", weight], ["y"])


class OnnxChecksTest(testing.TestCase):

  def write(self, directory, model, name="model.onnx"):
    path = os.path.join(directory, name)
    with open(path, "wb") as f:
      f.write(model.SerializeToString())
    return path

  def test_a_standard_model_with_external_data_inside_the_export_passes(self):
    directory = self.tmp_dir()
    with open(os.path.join(directory, "weights.bin"), "wb") as f:
      f.write(np.ones((1, 2), np.float32).tobytes())
    export_checks.check_onnx(self.write(directory, _model([_add()], [_external("w", "weights.bin")])), directory)

  def test_a_custom_domain_is_refused_also_inside_a_subgraph(self):
    directory = self.tmp_dir()
    custom = _model([helper.make_node("Steal", ["x"], ["y"], domain="com.example")],
                    opsets=(("", 18), ("com.example", 1)))
    with self.assertRaisesRegex(ExportError, r"model\.onnx: uses ops outside the standard ONNX domain "
                                r"\('com\.example'\)"):
      export_checks.check_onnx(self.write(directory, custom), directory)
    body = helper.make_graph([helper.make_node("Steal", ["x"], ["z"], domain="com.example")], "body", [],
                             [helper.make_tensor_value_info("z", onnx.TensorProto.FLOAT, [1, 2])])
    nested = _model([
        helper.make_node("Constant", [], ["c"], value=numpy_helper.from_array(np.array(True))),
        helper.make_node("If", ["c"], ["y"], then_branch=body, else_branch=body)
    ])
    with self.assertRaisesRegex(ExportError, r"outside the standard ONNX domain \('com\.example'\)"):
      export_checks.check_onnx(self.write(directory, nested, "nested.onnx"), directory)

  def test_external_data_outside_the_export_is_refused(self):
    work = self.tmp_dir()
    export_dir = os.path.join(work, "export")
    os.makedirs(export_dir)
    with open(os.path.join(work, "secret.bin"), "wb") as f:
      f.write(b"\0" * 8)
    os.symlink(os.path.join(work, "secret.bin"), os.path.join(export_dir, "link.bin"))
    for location in ("../secret.bin", "../../../../etc/passwd", "/etc/passwd", "link.bin", "sub/../../secret.bin"):
      with self.subTest(location), self.assertRaisesRegex(
          ExportError, r"^.*model\.onnx: tensor 'w' keeps its data in .*, outside the export directory"):
        export_checks.check_onnx(self.write(export_dir, _model([_add()], [_external("w", location)])), export_dir)
    self.assertEqual(sorted(os.listdir(work)), ["export", "secret.bin"])

  def test_a_truncated_or_foreign_file_is_one_line(self):
    directory = self.tmp_dir()
    path = self.write(directory, _model([_add()], [numpy_helper.from_array(np.ones((1, 2), np.float32), "w")]))
    with open(path, "r+b") as f:
      f.truncate(os.path.getsize(path) // 2)
    with self.assertRaisesRegex(ExportError, r"model\.onnx: not an ONNX model \("):
      export_checks.check_onnx(path, directory)

  def test_the_backend_checks_before_onnx_runtime_opens_anything(self):
    variant = os.path.join(self.tmp_dir(), layout.ONNX, "float32")
    os.makedirs(variant)
    for filename in layout.ONNX_FILES.values():
      self.write(variant, _model([_add()], [_external("w", "/etc/passwd")]), filename)
    with self.assertRaisesRegex(ExportError, r"no manifest\.json here or above"):
      exported_backends.OnnxBackend(variant)
    with self.assertRaisesRegex(ExportError, r"keeps its data in '/etc/passwd', outside the export directory"):
      exported_backends.OnnxBackend(variant, allow_modified=True)


if __name__ == "__main__":
  from absl.testing import absltest  # pylint: disable=g-import-not-at-top
  absltest.main()
