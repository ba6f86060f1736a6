"""GFLOPs of the animation graphs, counted from the graphs (fomm_tf/export/flops.py, tools/gflops.py)."""

import fomm_tf
from absl.testing import absltest

from fomm_tf.export import flops
from tests import testing
from tools import gflops as gflops_tool


class FlopsTest(testing.TestMixin, absltest.TestCase):

  def test_frames_add_up_and_scale_with_the_frame_area(self):
    small = flops.animation_gflops(testing.tiny_model())
    signatures = small["signatures"]
    self.assertEqual(sorted(signatures), sorted(flops.SIGNATURES))
    for name in ("encode_source", "detect_keypoints", "generate_from_state"):
      self.assertGreater(signatures[name], 0.0, name)
    self.assertAlmostEqual(
        small["further_frame"],
        signatures["detect_keypoints"] + signatures["normalize_kp"] + signatures["generate_from_state"])
    self.assertAlmostEqual(small["first_frame"],
                           small["further_frame"] + signatures["encode_source"] + signatures["detect_keypoints"])
    # Convolutions dominate, and their cost is proportional to the frame area: twice the side, ~4x the work.
    large = flops.animation_gflops(fomm_tf.load_model(testing.tiny_config().replace(frame_shape=(128, 128, 3))))
    ratio = large["further_frame"] / small["further_frame"]
    self.assertGreater(ratio, 3.8)
    self.assertLess(ratio, 4.2)

  def test_tool_prints_the_table_for_a_flagfile(self):
    flagfile = testing.write_tiny_flagfile(self.tmp_dir())
    code, out, err = testing.run_cli(gflops_tool, f"--flagfile={flagfile}")
    self.assertEqual(code, 0, err[-2000:])
    self.assertRegex(out, r"further frame +\d+\.\d{3}")
    self.assertRegex(out, r"first frame +\d+\.\d{3}")
    self.assertErrorLine(testing.run_cli(gflops_tool), r"no model config: pass --config=NAME")


if __name__ == "__main__":
  absltest.main()
