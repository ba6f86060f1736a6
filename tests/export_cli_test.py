"""`python -m fomm_tf.export` end to end on a tiny config, and its refusals."""

import json
import os
import subprocess
import sys
import textwrap

from absl.testing import absltest

from fomm_tf.export import cli
from fomm_tf.inference import export_layout as layout
from fomm_tf.inference import exported_backends as backends
from tests import testing


def _export(*args, env=None):
  env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": testing.REPO_ROOT, **(env or {})}
  return subprocess.run([sys.executable, "-m", "fomm_tf.export", *args],
                        capture_output=True,
                        text=True,
                        cwd=testing.REPO_ROOT,
                        env=env,
                        timeout=300)


class ExportCliTest(testing.TestCase):

  def assertFailsWith(self, result, message):
    """`result` is an in-process run (code, stdout, stderr): one error line, matching `message`."""
    self.assertErrorLine(result, ".*" + message)
    self.assertLen([line for line in result[2].splitlines() if line.startswith("error: ")], 1, result[2][-2000:])

  def test_export_with_overwrite_calibration_video_and_random_weights(self):
    work = self.create_tempdir()
    flagfile = testing.write_tiny_flagfile(work.full_path)
    video = os.path.join(work.full_path, "driving.mp4")
    testing.write_video(video, testing.textured_square_frames(6))
    output = work.mkdir("export")
    # A previous export (it has a manifest), which --overwrite may replace.
    output.create_file("manifest.json", "{}")
    output.create_file("stale.txt", "from an older export")
    # Every format in one process (ONNX beside the others; its own tests use an export made in-process). On
    # protobuf's upb, the caller's choice: the command would pick pure Python for ONNX (next test), which costs a
    # model this small 2.7x the time.
    result = _export(f"--flagfile={flagfile}",
                     f"--output_dir={output.full_path}",
                     "--overwrite",
                     "--formats=saved_model,tflite,onnx",
                     "--quantize=int8",
                     f"--representative_data={video}",
                     env={"PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION": "upb"})
    self.assertEqual(result.returncode, 0, result.stderr[-3000:])
    self.assertIn("no --checkpoint: the networks have random weights", result.stderr)
    self.assertIn(f"exported to {output.full_path}", result.stdout)
    self.assertIn("tflite/int8/generator.tflite", result.stdout)
    self.assertIn("onnx/float32/generator.onnx", result.stdout)
    self.assertRegex(result.stdout, r"animation with onnx/float32 +max abs error")
    # --quantize=int8 asks for int8 from every format: ONNX writes it beside the float32 files it always writes.
    self.assertRegex(result.stdout, r"animation with onnx/int8 +max abs error")
    self.assertEqual(sorted(os.listdir(output.full_path)),
                     [layout.MANIFEST, layout.ONNX, layout.SAVED_MODEL, layout.TFLITE])
    self.assertEqual(sorted(os.listdir(os.path.join(output.full_path, layout.TFLITE, "int8"))),
                     sorted(layout.TFLITE_FILES.values()))
    for quantization in ("float32", "int8"):
      self.assertEqual(sorted(os.listdir(os.path.join(output.full_path, layout.ONNX, quantization))),
                       sorted(layout.ONNX_FILES.values()))
    self.assertEqual(backends.OnnxBackend(output.full_path).frame_shape, (64, 64, 3))
    with open(os.path.join(output.full_path, layout.MANIFEST)) as f:
      manifest = json.load(f)
    self.assertEqual(manifest["frame_shape"], [64, 64, 3])
    self.assertEqual(manifest["quantizations"], ["int8"])
    self.assertEqual(manifest["onnx_quantizations"], ["float32", "int8"])
    self.assertEqual(manifest["config_source"], "<flags>")
    # The manifest names the protobuf implementation the conversion ran on: the caller's.
    for relpath in ("onnx/float32/generator.onnx", "onnx/int8/generator.onnx"):
      self.assertRegex(manifest["files"][relpath]["converter"], r"^tf2onnx \S+ \(protobuf upb\)", relpath)
    self.assertIn("representative frames", manifest["evaluation_input"])
    self.assertGreaterEqual(manifest["tflite_animation"]["int8"]["psnr_db"], 30.0)
    # Nothing but the export itself next to it (no staging or backup directories).
    self.assertEqual(sorted(os.listdir(work.full_path)), ["driving.mp4", "export", "tiny.flags"])
    backend = backends.TFLiteBackend(output.full_path, quantize="int8")
    self.assertEqual(backend.frame_shape, (64, 64, 3))

  def test_an_onnx_export_picks_pure_python_protobuf_before_anything_loads_it(self):
    # cli.prefer_pure_python_protobuf: tf2onnx keeps a copy of the weights per optimiser pass on upb. The command
    # is run in a fresh process up to a later refusal; then the process says which implementation protobuf loaded.
    code = textwrap.dedent("""
        import sys
        from fomm_tf.export import cli
        from tests import testing
        _, _, err = testing.run_cli(cli, *sys.argv[1:])
        from google.protobuf.internal import api_implementation
        print(err.strip().splitlines()[-1])
        print(api_implementation.Type())
        """)
    env = {k: v for k, v in os.environ.items() if k != "PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION"}
    output_dir = os.path.join(self.create_tempdir().full_path, "export")
    for formats, implementation in (("onnx", "python"), ("saved_model,tflite", "upb")):
      result = testing.run_python(code,
                                  f"--output_dir={output_dir}",
                                  f"--formats={formats}",
                                  "--quantize=int8",
                                  env=env)
      self.assertEqual(result.returncode, 0, result.stderr[-2000:])
      refusal, loaded = result.stdout.splitlines()[-2:]
      self.assertEqual(refusal, "error: --quantize=int8 needs --representative_data (frames to calibrate on)")
      self.assertEqual(loaded, implementation, formats)

  def test_refusals(self):
    work = self.create_tempdir()
    flagfile = testing.write_tiny_flagfile(work.full_path)
    taken = work.mkdir("taken")
    taken.create_file("keep.txt", "mine")
    export = lambda *args: testing.run_cli(cli, *args)
    self.assertFailsWith(export(f"--flagfile={flagfile}", f"--output_dir={taken.full_path}"),
                         r"taken: directory exists and is not empty \(pass --overwrite to replace it\)$")
    # --overwrite replaces only a previous export: a directory without a manifest is not deleted.
    self.assertFailsWith(export(f"--flagfile={flagfile}", f"--output_dir={taken.full_path}", "--overwrite"),
                         r"taken: --overwrite only replaces a previous export, .* refusing to delete it$")
    self.assertEqual(os.listdir(taken.full_path), ["keep.txt"])
    # Nor one that holds a file the export reads, even with a manifest.
    holds_input = work.mkdir("holds_input")
    holds_input.create_file("manifest.json", "{}")
    checkpoint = holds_input.create_file("ckpt.pth.tar", "not really").full_path
    self.assertFailsWith(
        export(f"--flagfile={flagfile}", f"--output_dir={holds_input.full_path}", "--overwrite",
               f"--checkpoint={checkpoint}"),
        r"--output_dir=.*holds_input holds --checkpoint=.*ckpt\.pth\.tar: refusing")
    self.assertEqual(sorted(os.listdir(holds_input.full_path)), ["ckpt.pth.tar", "manifest.json"])

    fresh = os.path.join(work.full_path, "fresh")
    self.assertFailsWith(
        export(f"--flagfile={flagfile}", f"--checkpoint={testing.CHECKPOINT}", f"--output_dir={fresh}"),
        r"small-official\.pth\.tar: .* has no counterpart in the model for this config")
    self.assertFailsWith(
        export(f"--flagfile={flagfile}", f"--output_dir={fresh}", "--quantize=float32,int4"),
        r"--quantize: unknown quantisation 'int4'; "
        r"choose from float32, float16, dynamic_int8, int8$")
    self.assertFailsWith(export(f"--output_dir={fresh}", "--quantize=int8"),
                         r"--quantize=int8 needs --representative_data")
    self.assertFailsWith(export(f"--output_dir={fresh}", "--formats=onnx", "--quantize=int8"),
                         r"--quantize=int8 needs --representative_data")
    self.assertFailsWith(
        export(f"--output_dir={fresh}", "--formats=onnx", "--quantize=float32,float16"),
        r"--quantize=float16 is a TFLite variant \(ONNX files are float32 or int8\); "
        r"add tflite to --formats$")
    self.assertFailsWith(export(f"--flagfile={flagfile}", f"--output_dir={fresh}", "--checkpoint="),
                         r"--checkpoint is empty")
    self.assertFalse(os.path.exists(fresh))
    self.assertEqual(sorted(os.listdir(work.full_path)), ["holds_input", "taken", "tiny.flags"])


if __name__ == "__main__":
  absltest.main()
