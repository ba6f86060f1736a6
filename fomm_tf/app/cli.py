"""`python -m fomm_tf.app` (also `fomm-app`): the web app on this machine, offline.

  python -m fomm_tf.app [--port=7860] [--models=DIR]

Serves on 127.0.0.1 by default (--host=0.0.0.0 to let other machines in: there
is no authentication, so only do that on a network you trust); no analytics, no
share link, nothing fetched from the internet. Stop it with Ctrl-C: its
temporary files go with it.
"""

import os
import sys

from absl import flags

from fomm_tf import cli
from fomm_tf.errors import UsageError

MISSING_MESSAGE = "the web app needs Gradio: pip install fomm-tf[app] (or pip install gradio)"


def define_flags(flag_values):
  kw = {"flag_values": flag_values}
  flags.DEFINE_string("host", "127.0.0.1", "Address to serve on (127.0.0.1: this machine only).", **kw)
  flags.DEFINE_integer("port", 7860, "Port to serve on (0: any free port).", **kw)
  flags.DEFINE_string(
      "models", None, "A folder of models to offer besides the built-in one (see "
      "fomm_tf/app/models.py for what counts as a model).", **kw)
  flags.DEFINE_boolean(
      "allow_modified_export", False, "Offer export folders of --models whose files differ from "
      "the SHA-256 their manifest recorded, with a warning (docs/security.md).", **kw)
  flags.DEFINE_integer("concurrency", 1, "Animations run at once; more wait in the queue.", **kw)
  flags.DEFINE_integer(
      "max_queue", 8, "Animations that may wait for their turn; one more is refused at once (the "
      "page says the app is busy, try again).", **kw)
  flags.DEFINE_float(
      "keep_files_minutes", 60.0, "Results and uploads are deleted this long after they were "
      "written (download a result before that).", **kw)
  flags.DEFINE_float("sweep_seconds", 60.0, "How often old results, uploads and empty session folders are "
                     "deleted.", **kw)
  flags.DEFINE_float("max_upload_mb", 50.0, "Largest upload accepted.", **kw)
  flags.DEFINE_float("max_video_seconds", 120.0, "Longest driving video accepted.", **kw)
  flags.DEFINE_float("max_image_megapixels", 25.0, "Largest source photo accepted.", **kw)


def build(flag_values):
  """(App, WorkFolders) for the flags; the server is not started."""
  cli.require_positive(flag_values, "concurrency")
  cli.require_positive(flag_values, "max_queue")
  for name in ("max_upload_mb", "max_video_seconds", "max_image_megapixels", "keep_files_minutes", "sweep_seconds"):
    if flag_values[name].value <= 0:
      raise UsageError(f"--{name} must be > 0, got {flag_values[name].value}")
  if not 0 <= flag_values.port <= 65535:
    raise UsageError(f"--port must be from 0 to 65535, got {flag_values.port}")
  try:
    import gradio  # pylint: disable=import-outside-toplevel,unused-import
  except ImportError:
    raise UsageError(MISSING_MESSAGE) from None
  from fomm_tf.app import models  # pylint: disable=import-outside-toplevel
  from fomm_tf.app import sessions  # pylint: disable=import-outside-toplevel
  registry = models.ModelRegistry(flag_values.models, allow_modified_export=flag_values.allow_modified_export)
  folders = sessions.WorkFolders(max_age=60 * flag_values.keep_files_minutes, sweep_every=flag_values.sweep_seconds)
  # Gradio reads its temp folder when components are made, so it is set before the app is built.
  os.environ["GRADIO_TEMP_DIR"] = folders.gradio
  from fomm_tf.app import server  # pylint: disable=import-outside-toplevel
  limits = server.Limits(flag_values.max_upload_mb, flag_values.max_video_seconds, flag_values.max_image_megapixels,
                         flag_values.concurrency, flag_values.max_queue)
  return server.App(registry, folders, limits), folders


def run(flag_values):
  app, folders = build(flag_values)
  folders.start()
  try:
    app.launch(flag_values.host, flag_values.port or None)
    url = f"http://{flag_values.host}:{app.blocks.server_port}"
    print(f"fomm-tf web app on {url} (Ctrl-C to stop)", flush=True)
    app.blocks.block_thread()
  finally:
    app.close()
    folders.close()
  print("stopped", file=sys.stderr)


main = cli.main_function(define_flags, run)
