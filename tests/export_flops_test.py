"""GFLOPs of the animation graphs, counted from the graphs (fomm_tf/export/flops.py, tools/gflops.py), and where
Keras spends the time running them (tools/profile_ops.py)."""

import re

import fomm_tf
from absl.testing import absltest

from fomm_tf.export import flops
from tests import testing
from tools import gflops as gflops_tool
from tools import profile_ops


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


class ProfileOpsTest(testing.TestMixin, absltest.TestCase):

  def test_tool_sums_the_executed_ops_by_type(self):
    flagfile = testing.write_tiny_flagfile(self.tmp_dir())
    code, out, err = testing.run_cli(profile_ops, f"--flagfile={flagfile}", "--num_frames=3", "--batch_size=2",
                                     "--top=4")
    self.assertEqual(code, 0, err[-2000:])
    rows = re.findall(r"^  (\S+(?: other op types)?) +(\d+\.\d) +(\d+\.\d) +(\d+)$", out, re.M)
    self.assertEqual(len(rows), 5, out)  # --top=4 types, then the rest in one line.
    self.assertRegex(rows[-1][0], r"^\d+ other op types$")
    # The shares add up to the whole op time, the largest first; convolutions are among the tiny model's largest.
    self.assertAlmostEqual(sum(float(row[2]) for row in rows), 100.0, delta=0.3)
    self.assertEqual([float(row[1]) for row in rows[:4]], sorted((float(row[1]) for row in rows[:4]), reverse=True))
    self.assertTrue(any("Conv" in row[0] for row in rows[:4]), out)
    self.assertRegex(out, r"convolutions \(op types with Conv\): \d+\.\d% of the op time")
    self.assertErrorLine(testing.run_cli(profile_ops), r"no model config: pass --config=NAME")


if __name__ == "__main__":
  absltest.main()
