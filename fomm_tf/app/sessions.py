"""Where the web app keeps files: one private folder, a folder per browser session, one per job.

    <root>/gradio/              Gradio's uploads and served results (GRADIO_TEMP_DIR)
    <root>/sessions/<session>/  one folder per browser session: a job-* folder per running
                                animation, results/ for the finished ones

A job folder goes when its job ends, whatever the end (an error, a Stop, a
client that went away); a finished result is first moved to results/, and a
session folder left empty goes with it. A session folder goes when its browser
tab closes; every `sweep_every` seconds, results older than `max_age` seconds
are deleted, and so is anything that old in Gradio's folder (uploads, also
half-finished ones of clients that went away) whenever no event is queued or
running (a job waiting in the queue still needs its upload, however long it has
waited), and so are folders left empty (Gradio's own cache
cleaning misses results of streamed events, and API clients have no tab to
close). So once every client has left, the work folder holds no file after
`max_age` plus `sweep_every` seconds; everything goes when the app stops.
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
    self._busy = lambda: False
    # Creating a session's folders and removing empty ones (a job ending, the sweep) never interleave.
    self._lock = threading.Lock()
    self._stop = threading.Event()
    self._sweeper = threading.Thread(target=self._sweep_loop,
                                     args=(sweep_every,),
                                     daemon=True,
                                     name="fomm-tf-app-sweeper")

  def set_busy_check(self, busy):
    """`busy()` says whether an event is queued or running; Gradio's folder is only swept when it is not."""
    self._busy = busy

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
    """A fresh folder for one job, removed when the block ends (whatever happens), with its session folder when
    that is left empty."""
    with self._lock:
      session_path = self.session_dir(session)
      path = tempfile.mkdtemp(prefix="job-", dir=session_path)
    try:
      yield path
    finally:
      shutil.rmtree(path, ignore_errors=True)
      with self._lock:
        with contextlib.suppress(OSError):
          os.rmdir(session_path)  # Only when empty: other jobs or kept results of the session stay.

  def keep(self, path, session):
    """Moves a finished job's file out of its job folder into the session's results; returns its new path
    (same file name, in a fresh folder)."""
    with self._lock:
      results = os.path.join(self.session_dir(session), "results")
      os.makedirs(results, exist_ok=True)
      target = os.path.join(tempfile.mkdtemp(prefix="result-", dir=results), os.path.basename(path))
    os.replace(path, target)
    return target

  def files(self):
    """Every file under the work folder (nothing once all clients have left and the sweep has run)."""
    return [os.path.join(d, n) for d, _, names in os.walk(self.root) for n in names]

  def end_session(self, session):
    if session:
      shutil.rmtree(os.path.join(self.sessions, session), ignore_errors=True)

  def leftovers(self):
    """Every file in a job folder: what a job that has ended must not leave (tests check it is empty)."""
    return [
        os.path.join(d, n)
        for d, _, names in os.walk(self.sessions)
        for n in names
        if os.path.basename(os.path.dirname(os.path.join(d, n))).startswith("job-")
    ]

  def results(self):
    """Every finished result still kept."""
    return [
        os.path.join(d, n)
        for d, _, names in os.walk(self.sessions)
        for n in names
        if os.path.basename(os.path.dirname(d)) == "results"
    ]

  def sweep(self, max_age=None):
    """Deletes files older than `max_age` seconds (all of them with None) in results and, when nothing is queued
    or running, in Gradio's folder; then the session folders left empty."""
    if not self._busy():
      self._sweep_tree(self.gradio, max_age)
    for session in os.listdir(self.sessions):
      self._sweep_tree(os.path.join(self.sessions, session, "results"), max_age)
      with self._lock:
        with contextlib.suppress(OSError):
          os.rmdir(os.path.join(self.sessions, session, "results"))  # Only when empty, as below.
        with contextlib.suppress(OSError):
          os.rmdir(os.path.join(self.sessions, session))

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
