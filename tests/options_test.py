"""The command options declared once: flags, help, defaults and range checks from the same `param()`."""

from absl import flags
from absl.testing import absltest

from fomm_tf.animation import cli as animation_cli
from fomm_tf.animation import options
from fomm_tf.config import flagfiles
from fomm_tf.errors import UsageError
from fomm_tf.live import cli as live_cli
from fomm_tf.live import options as live_options
from tests import testing


def _parsed(define, *args):
  flag_values = flags.FlagValues()
  define(flag_values)
  flag_values(["prog", *args])
  return flag_values


class OptionsTest(testing.TestCase):

  def test_range_checks_live_in_the_declarations(self):
    for kwargs, pattern in ((dict(batch_size=0),
                             r"^--batch_size must be >= 1, got 0$"), (dict(smooth=26),
                                                                      r"^--smooth must be from 1 to 25, got 26$"),
                            (dict(max_output_size=8), r"^--max_output_size must be from 16 to 4096, got 8$"),
                            (dict(crop="square"), r"^--crop must be one of center, pad, face, got 'square'$"),
                            (dict(fps=0.01), r"^--fps is 0.01 fps, outside 0.1 to 1000$"),
                            (dict(fps=float("inf")),
                             r"^--fps is inf fps, outside"), (dict(output_size="9000"),
                                                              r"^--output_size=9000: each side must be at most 4096$"),
                            (dict(crop_preview="p.jpg"),
                             r"^--crop_preview must name a .png file"), (dict(best_frame=-1),
                                                                         r"^--best_frame must be >= 0, got -1$")):
      with self.subTest(**kwargs), self.assertRaisesRegex(UsageError, pattern):
        options.AnimationOptions(source_image="a.png", driving_video="b.mp4", **kwargs)
    with self.assertRaisesRegex(UsageError, r"^--duration must be > 0, got 0.0$"):
      live_options.LiveOptions(duration=0)
    with self.assertRaisesRegex(UsageError, r"^--reference must be one of first, auto, got 'best'$"):
      live_options.LiveOptions(reference="best")

  def test_animate_and_live_share_the_motion_flags_with_lives_own_smoothing_default(self):
    animate = _parsed(animation_cli.define_flags)
    live = _parsed(live_cli.define_flags)
    for field in ("relative", "adapt_scale", "smooth", "paste_back", "max_output_size"):
      self.assertIn(field, animate)
      self.assertIn(field, live)
    self.assertEqual(animate.smooth, options.MotionOptions.default("smooth"))
    self.assertEqual(live.smooth, live_options.DEFAULTS["smooth"])
    self.assertIn("default here 2; elsewhere 1", live["smooth"].help)
    self.assertEqual(animate["relative"].help, live["relative"].help)

  def test_flags_become_the_options_with_their_types(self):
    flag_values = _parsed(animation_cli.define_flags, "--source_image=a.png", "--driving_video=b.mp4", "--norelative",
                          "--batch_size=3", "--fps=12.5", "--output_size=96x80")
    made = flagfiles.section_from_flags(options.AnimationOptions, flag_values, crop="pad", checkpoint=None)
    self.assertEqual((made.relative, made.batch_size, made.fps, made.crop), (False, 3, 12.5, "pad"))
    self.assertEqual(made.output_shape, (96, 80))
    self.assertNotIn("animation_crop", flag_values)  # --crop is the config's flag, not a second one.
    with self.assertRaisesRegex(UsageError, r"^--smooth must be from 1 to 25, got 0$"):
      flagfiles.section_from_flags(live_options.LiveOptions, _parsed(live_cli.define_flags, "--smooth=0"))


if __name__ == "__main__":
  absltest.main()
