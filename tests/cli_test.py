"""The entry points' error contract around signals: an interruption is one line and exit 128 + signal."""

import os
import signal
import time

from fomm_tf import cli
from fomm_tf import errors
from tests import testing


class RunCommandTest(testing.TestCase):

  def run_and_exit_code(self, run):
    with testing.captured_output() as (_, err), self.assertRaises(SystemExit) as exit_:
      cli.run_command(run)
    return exit_.exception.code, err.getvalue()

  def test_a_signal_is_one_line_and_128_plus_its_number(self):

    def run():
      os.kill(os.getpid(), signal.SIGTERM)
      time.sleep(5)

    code, err = self.run_and_exit_code(run)
    self.assertEqual(code, 143)
    self.assertEqual(err.strip().splitlines()[-1], "interrupted: stopped by signal 15 (SIGTERM)")

  def test_a_signal_waits_for_fomm_tf_code_to_raise(self):
    # This test's own code stands for another library's (TensorFlow's callbacks from native code).
    reached = []
    with self.assertRaises(errors.Interrupted) as caught, cli.signals_raise_interrupted():
      os.kill(os.getpid(), signal.SIGTERM)
      deadline = time.monotonic() + 0.5
      while time.monotonic() < deadline:
        pass
      reached.append(True)
      while True:
        errors.one_line("fomm-tf's own code")
    self.assertEqual(reached, [True])  # Not raised during the half second in foreign code.
    self.assertEqual(caught.exception.signum, signal.SIGTERM)

  def test_a_signal_that_stays_in_foreign_code_is_raised_there_after_a_second(self):
    start = time.monotonic()
    with self.assertRaises(errors.Interrupted), cli.signals_raise_interrupted():
      os.kill(os.getpid(), signal.SIGINT)
      while time.monotonic() < start + 30:
        pass
    self.assertLess(time.monotonic() - start, 5)
    self.assertGreaterEqual(time.monotonic() - start, 0.9)

  def test_a_signal_that_native_code_turned_into_another_exception_is_still_the_interruption(self):
    # As TensorFlow's tracing does when the handler raises inside it: CPython reports a SystemError.
    def run():
      try:
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)
      except errors.Interrupted:
        raise SystemError("Objects/listobject.c:338: bad argument to internal function") from None

    code, err = self.run_and_exit_code(run)
    self.assertEqual(code, 143)
    self.assertEqual(err.strip().splitlines()[-1], "interrupted: stopped by signal 15 (SIGTERM)")

  def test_other_exceptions_are_bugs_and_keep_their_traceback(self):

    def run():
      raise SystemError("a bug")

    with self.assertRaisesRegex(SystemError, "a bug"):
      cli.run_command(run)


if __name__ == "__main__":
  from absl.testing import absltest  # pylint: disable=g-import-not-at-top
  absltest.main()
