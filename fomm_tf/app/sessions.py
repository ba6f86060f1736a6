"""Where the web app keeps files: one private folder, a folder per browser session, one per job.

    <root>/gradio/              Gradio's uploads and served results (GRADIO_TEMP_DIR)
    <root>/sessions/<session>/  one folder per browser session: a job-* folder per running
                                animation, results/ for the finished ones

A job folder goes when its job ends, whatever the end (an error, a Stop, a
client that went away); a finished result is first moved to results/. A session
folder goes when its browser tab closes; results, and anything in Gradio's
folder, older than `max_age` seconds are swept (Gradio's own cache cleaning
misses results of streamed events, and API clients have no tab to close);
everything when the app stops.
"""

import contextlib
import os
import shutil
import tempfile
import threading
import time

from fomm_tf.errors import UsageError


class WorkFolders:
  """The app's private temp folders and their cleaning (see the module doc)."""

  def __init__(self, root=None, max_age=3600.0, sweep_every=60.0):
    self.root = root or tempfile.mkdtemp(prefix="fomm-tf-app-")
    self.gradio = os.path.join(self.root, "gradio")
    self.sessions = os.path.join(self.root, "sessions")
    os.makedirs(self.gradio, exist_ok=True)
    os.makedirs(self.sessions, exist_ok=True)
    self.max_age = max_age
    self._stop = threading.Event()
    self._sweeper = threading.Thread(target=self._sweep_loop, args=(sweep_every,), daemon=True,
                                     name="fomm-tf-app-sweeper")

  def start(self):
    self._sweeper.start()
    return self

  def session_dir(self, session):
    if not session or os.sep in session or session.startswith("."):
      session = "api"
    path = os.path.join(self.sessions, session)
    os.makedirs(path, exist_ok=True)
    return path

  @contextlib.contextmanager
  def job_dir(self, session):
    """A fresh folder for one job, removed when the block ends (whatever happens)."""
    path = tempfile.mkdtemp(prefix="job-", dir=self.session_dir(session))
    try:
      yield path
    finally:
      shutil.rmtree(path, ignore_errors=True)

  def keep(self, path, session):
    """Moves a finished job's file out of its job folder into the session's results; returns its new path
    (same file name, in a fresh folder)."""
    results = os.path.join(self.session_dir(session), "results")
    os.makedirs(results, exist_ok=True)
    target = os.path.join(tempfile.mkdtemp(prefix="result-", dir=results), os.path.basename(path))
    os.replace(path, target)
    return target

  def end_session(self, session):
    if session:
      shutil.rmtree(os.path.join(self.sessions, session), ignore_errors=True)

  def leftovers(self):
    """Every file in a job folder: what a job that has ended must not leave (tests check it is empty)."""
    return [os.path.join(d, n) for d, _, names in os.walk(self.sessions) for n in names
            if os.path.basename(os.path.dirname(os.path.join(d, n))).startswith("job-")]

  def results(self):
    """Every finished result still kept."""
    return [os.path.join(d, n) for d, _, names in os.walk(self.sessions) for n in names
            if os.path.basename(os.path.dirname(d)) == "results"]

  def sweep(self, max_age=None):
    """Deletes files older than `max_age` seconds (all of them with None) in Gradio's folder and in results."""
    self._sweep_tree(self.gradio, max_age)
    for session in os.listdir(self.sessions):
      self._sweep_tree(os.path.join(self.sessions, session, "results"), max_age)

  @staticmethod
  def _sweep_tree(top, max_age):
    now = time.time()
    for directory, subdirs, names in os.walk(top, topdown=False):
      for name in names:
        path = os.path.join(directory, name)
        with contextlib.suppress(FileNotFoundError):
          if max_age is None or now - os.stat(path).st_mtime > max_age:
            os.remove(path)
      for name in subdirs:
        with contextlib.suppress(FileNotFoundError, OSError):
          os.rmdir(os.path.join(directory, name))  # Only when empty; a folder still in use keeps its files.

  def _sweep_loop(self, every):
    while not self._stop.wait(every):
      self.sweep(self.max_age)

  def close(self):
    self._stop.set()
    shutil.rmtree(self.root, ignore_errors=True)


def check_upload(path, max_bytes, what):
  """An uploaded file exists and is at most `max_bytes` (Gradio enforces its limit in the browser only)."""
  if not path:
    raise UsageError(f"no {what}: upload one first")
  size = os.path.getsize(path)
  if size > max_bytes:
    raise UsageError(f"the {what} is {size / 1e6:.1f} MB, more than the {max_bytes / 1e6:.0f} MB this server "
                     "accepts")
  return path
