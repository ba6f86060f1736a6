"""The web app: animate a photo with a driving video in the browser, and live from the webcam.

Built with Gradio and served on the user's machine only: no analytics, no share
link, system fonts (nothing is fetched from the internet). Animation runs the
same job as the command line (fomm_tf/animation/job.py) in a worker thread; the
event is a generator that reports progress, so a Stop (or a client's cancel)
ends the job at the next frame. The queue runs `concurrency` jobs at once
(others wait their turn); past `max_queue` waiting events a new one is refused
when it is submitted (Gradio's queue answers 503 "Queue is full": the page says
"This application is currently busy. Please try again.", gradio_client raises
QueueError), so a crowd cannot pile up work without limit; nothing accepted is
dropped.
Every error of the user's making is shown as its one
line; the server keeps serving.
"""

import dataclasses
import logging
import os
import threading
import time

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import gradio as gr  # pylint: disable=g-import-not-at-top,wrong-import-position
import numpy as np  # pylint: disable=g-import-not-at-top,wrong-import-position
import PIL.Image  # pylint: disable=g-import-not-at-top,wrong-import-position

from fomm_tf import builtin  # pylint: disable=g-import-not-at-top,wrong-import-position
from fomm_tf.animation import framing as framing_lib  # pylint: disable=g-import-not-at-top,wrong-import-position
from fomm_tf.animation import job as job_lib  # pylint: disable=g-import-not-at-top,wrong-import-position
from fomm_tf.animation import options as options_lib  # pylint: disable=g-import-not-at-top,wrong-import-position
from fomm_tf.app import models as models_lib  # pylint: disable=g-import-not-at-top,wrong-import-position
from fomm_tf.app import sessions as sessions_lib  # pylint: disable=g-import-not-at-top,wrong-import-position
from fomm_tf import errors  # pylint: disable=g-import-not-at-top,wrong-import-position
from fomm_tf.errors import FommError  # pylint: disable=g-import-not-at-top,wrong-import-position
from fomm_tf.errors import UsageError  # pylint: disable=g-import-not-at-top,wrong-import-position
from fomm_tf.io import media  # pylint: disable=g-import-not-at-top,wrong-import-position
from fomm_tf.live import animator as animator_lib  # pylint: disable=g-import-not-at-top,wrong-import-position
from fomm_tf.live import options as live_options  # pylint: disable=g-import-not-at-top,wrong-import-position

# Gradio polls its own server through httpx at start-up; those request lines are noise on the console.
logging.getLogger("httpx").setLevel(logging.WARNING)

# System fonts only: the page requests nothing from outside the machine.
THEME = gr.themes.Default(font=["ui-sans-serif", "system-ui", "sans-serif"], font_mono=["ui-monospace", "monospace"])

FACES_PLACEHOLDER = "Preview crop numbers the faces: 'all', or some of them such as '0, 2'"


@dataclasses.dataclass(frozen=True)
class Limits:
  """What the server accepts (uploads beyond these are refused with a one-line message)."""
  max_upload_mb: float = 50.0
  max_video_seconds: float = 120.0
  max_image_megapixels: float = 25.0
  concurrency: int = 1
  max_queue: int = 8


class App:
  """The Gradio Blocks of fomm-tf and the state behind them (models, folders, limits)."""

  def __init__(self, registry, folders, limits=Limits()):
    self.registry = registry
    self.folders = folders
    self.limits = limits
    self.blocks = self._build()
    folders.set_busy_check(self.busy)

  def busy(self):
    """Whether any event is waiting in the queue or running. Gradio has no public way to ask, so this reads its
    queue (gradio 6: Queue.__len__ counts the waiting events, get_active_worker_count the running ones);
    tests/app_load_test.py fails if that changes (uploads of waiting jobs would be swept)."""
    queue = self.blocks._queue  # pylint: disable=protected-access
    return len(queue) > 0 or queue.get_active_worker_count() > 0

  # -- checks ----------------------------------------------------------------

  def _check_source(self, path):
    sessions_lib.check_upload(path, self.limits.max_upload_mb * 1e6, "source image")
    image = media.read_image(path)
    pixels = image.shape[0] * image.shape[1]
    if pixels > self.limits.max_image_megapixels * 1e6:
      raise UsageError(f"the source image has {pixels / 1e6:.1f} megapixels, more than the "
                       f"{self.limits.max_image_megapixels:g} this server accepts")
    return image

  def _check_driving(self, path):
    sessions_lib.check_upload(path, self.limits.max_upload_mb * 1e6, "driving video")
    video = media.open_video(path)
    frames = video.num_frames
    if frames is not None and frames / video.fps > self.limits.max_video_seconds:
      raise UsageError(f"the driving video lasts {frames / video.fps:.0f} s, more than the "
                       f"{self.limits.max_video_seconds:g} s this server accepts")
    return video

  # -- events ----------------------------------------------------------------

  def animate(self,
              source_image,
              driving_video,
              model,
              backend,
              relative,
              adapt_scale,
              find_best_frame,
              crop,
              paste_back,
              smooth,
              audio,
              visualize,
              faces=None,
              request: gr.Request = None,
              progress=gr.Progress()):
    """Animates the upload; a generator, so that a Stop ends the job at its next frame.

    `faces`: "Faces to animate" (--faces: "all" or indices such as "0, 2", numbered on the crop preview);
    empty animates the one largest face as before, else each face named, pasted back into the photo.
    """
    # Nothing before this first yield: Gradio can only cancel (close) a generator that has yielded once.
    yield gr.skip(), gr.skip()
    session = request.session_hash if request is not None else None
    try:
      self._check_source(source_image)
      video = self._check_driving(driving_video)
      options = options_lib.AnimationOptions(source_image=source_image,
                                             driving_video=driving_video,
                                             result_video="animation.mp4",
                                             relative=bool(relative),
                                             adapt_scale=bool(adapt_scale),
                                             find_best_frame=bool(find_best_frame),
                                             audio=bool(audio),
                                             visualize=bool(visualize),
                                             crop=crop,
                                             paste_back=bool(paste_back),
                                             smooth=int(smooth),
                                             faces=faces or "")
      options.check()
      engine = self.registry.backend(model, backend)
      worker = _JobThread(engine,
                          options,
                          self.folders,
                          session,
                          max_frames=int(self.limits.max_video_seconds * video.fps))
      worker.start()
      try:
        while worker.is_alive():
          worker.heartbeat()
          worker.join(timeout=0.25)
          done, total = worker.progress_state
          if total:
            progress((done, total), desc="Animating", unit="frames")
          yield gr.skip(), gr.skip()
      finally:
        worker.cancel()  # Where the generator is closed, or fails, the job ends at its next frame.
      if worker.error is not None:
        raise worker.error  # A FommError is shown below; anything else is a bug and keeps its traceback.
      yield worker.result, (f"{worker.frames} frames, {worker.seconds:.1f} s "
                            f"({worker.frames / max(worker.seconds, 1e-9):.1f} fps)")
    except FommError as error:
      raise gr.Error(_user_message(error, source_image, driving_video)) from None

  def preview_crop(self, source_image, driving_video, crop, request: gr.Request):
    """The photo and a few driving frames with their crop boxes drawn (nothing is animated), and the choice of
    faces to animate: with the face crop, every face big enough to animate, its box numbered on the photo."""
    session = request.session_hash if request is not None else None
    try:
      image = self._check_source(source_image)
      video = self._check_driving(driving_video)
      selection = None
      if crop == "face":
        from fomm_tf import faces  # pylint: disable=import-outside-toplevel
        # Number every face big enough to animate (the choices for "Faces to animate"); a photo whose faces are
        # all smaller shows the box of its largest, which Animate (no faces named) animates as it always did.
        if any(max(f.width, f.height) >= faces.MIN_FACE_SIDE for f in faces.detect_faces(image)):
          selection = "all"
      with self.folders.job_dir(session) as folder:
        framing = framing_lib.make_framing(crop, image, video, log=lambda line: None, faces=selection)
        path = framing_lib.preview(framing, image, video, os.path.join(folder, "crop.png"))
        found = getattr(framing, "face_indices", []) if selection else []
        hint = (f"faces {', '.join(map(str, found))} (numbered on the preview): 'all', or some of them such as "
                f"'{found[-1]}'" if found else FACES_PLACEHOLDER)
        return media.read_image(path), gr.update(placeholder=hint)
    except FommError as error:
      raise gr.Error(_user_message(error, source_image, driving_video)) from None

  def model_changed(self, model):
    labels = self.registry.choice_labels(model)
    return gr.update(choices=labels, value=labels[0]), gr.update(value=self.registry.entries[model].crop)

  def live_frame(self, frame, source_image, model, backend, crop, state):
    """One webcam frame: (animated frame, stats line, state). The browser sends a frame only when the last is
    answered, so frames the server has no time for are never sent (dropped at the source)."""
    if frame is None:
      return gr.skip(), gr.skip(), state
    state = dict(state or {})
    key = (source_image, model, backend, crop)
    try:
      if state.get("key") != key:
        if not source_image:
          raise UsageError("choose a source image in the Animate tab first")
        image = self._check_source(source_image)
        state = {
            "key":
                key,
            "animator":
                animator_lib.LiveAnimator(self.registry.backend(model, backend),
                                          image,
                                          crop=crop,
                                          smooth=live_options.DEFAULTS["smooth"]),
            "times": [],
            "latencies": []
        }
      start = time.monotonic()
      picture = state["animator"](frame)
    except FommError as error:
      raise gr.Error(_user_message(error, source_image)) from None
    now = time.monotonic()
    times, latencies = state["times"], state["latencies"]
    times.append(now)
    latencies.append(now - start)
    del times[:-30], latencies[:-30]
    fps = (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 else 0.0
    stats = (f"{fps:.1f} fps | processing {1000 * np.median(latencies):.0f} ms (median of the last "
             f"{len(latencies)}) | {state['animator'].frames_animated} frames animated")
    return (np.clip(picture, 0, 1) * 255 + 0.5).astype(np.uint8), stats, state

  # -- layout ----------------------------------------------------------------

  def _build(self):
    names = self.registry.names()
    with gr.Blocks(title="fomm-tf") as blocks:
      gr.Markdown("# fomm-tf\nAnimate a photo with the motion of a driving video (First Order Motion Model), "
                  "on this machine only.")
      with gr.Tab("Animate"):
        with gr.Row():
          # image_mode=None: Gradio passes the file on unconverted; fomm-tf's reader decodes it, with its limits.
          source = gr.Image(label="Source photo",
                            sources=["upload", "webcam"],
                            type="filepath",
                            image_mode=None,
                            elem_id="source")
          source.preprocess = _named_image_errors(source.preprocess)
          driving = gr.Video(label="Driving video", sources=["upload"], elem_id="driving")
        with gr.Row():
          model = gr.Dropdown(names, value=names[0], label="Model", elem_id="model")
          backend = gr.Dropdown(self.registry.choice_labels(names[0]),
                                value=self.registry.choice_labels(names[0])[0],
                                label="Backend and precision",
                                elem_id="backend")
          crop = gr.Radio(list(framing_lib.CROPS),
                          value=self.registry.entries[names[0]].crop,
                          label="Crop",
                          elem_id="crop")
        with gr.Row():
          # The command line's defaults, from the same declarations.
          default = options_lib.AnimationOptions.default
          relative = gr.Checkbox(default("relative"), label="Relative motion", elem_id="relative")
          adapt_scale = gr.Checkbox(default("adapt_scale"), label="Adapt scale", elem_id="adapt_scale")
          find_best_frame = gr.Checkbox(default("find_best_frame"), label="Find best frame", elem_id="find_best_frame")
          paste_back = gr.Checkbox(default("paste_back"), label="Paste back (face crop)", elem_id="paste_back")
          audio = gr.Checkbox(default("audio"), label="Keep audio", elem_id="audio")
          visualize = gr.Checkbox(default("visualize"), label="Side by side", elem_id="visualize")
          smooth = gr.Slider(1,
                             9,
                             value=default("smooth"),
                             step=1,
                             label="Keypoint smoothing (frames)",
                             elem_id="smooth")
        with gr.Row():
          preview_button = gr.Button("Preview crop", elem_id="preview-btn")
          run_button = gr.Button("Animate", variant="primary", elem_id="run-btn")
          stop_button = gr.Button("Stop", variant="stop", elem_id="stop-btn")
        faces = gr.Textbox("",
                           label="Faces to animate (face crop of a group photo: each is pasted back into the "
                           "photo; empty: the largest face only)",
                           placeholder=FACES_PLACEHOLDER,
                           elem_id="faces")
        with gr.Row():
          preview = gr.Image(label="Crop preview", interactive=False, elem_id="preview")
          result = gr.Video(label="Result", interactive=False, elem_id="result")
        status = gr.Markdown("", elem_id="status")
        gr.Examples([[builtin.SAMPLE_SOURCE, builtin.SAMPLE_DRIVING]], [source, driving],
                    label="Built-in sample (for the built-in model)")

        model.change(self.model_changed, model, [backend, crop])
        preview_button.click(self.preview_crop, [source, driving, crop], [preview, faces], api_name="preview_crop")
        event = run_button.click(self.animate, [
            source, driving, model, backend, relative, adapt_scale, find_best_frame, crop, paste_back, smooth, audio,
            visualize, faces
        ], [result, status],
                                 api_name="animate")
        stop_button.click(None, None, None, cancels=[event])

      with gr.Tab("Live"):
        gr.Markdown("The webcam drives the source photo of the Animate tab, frame by frame.")
        with gr.Row():
          camera = gr.Image(label="Webcam",
                            sources=["webcam"],
                            streaming=True,
                            type="numpy",
                            elem_id="cam",
                            webcam_options=gr.WebcamOptions(mirror=False))
          live_out = gr.Image(label="Animated", streaming=True, format="jpeg", elem_id="live-out")
        live_stats = gr.Markdown("", elem_id="live-stats")
        live_state = gr.State({})
        camera.stream(self.live_frame, [camera, source, model, backend, crop, live_state],
                      [live_out, live_stats, live_state],
                      stream_every=0.04,
                      time_limit=600,
                      concurrency_limit=1,
                      show_progress="hidden",
                      api_name="live")
      blocks.unload(self._end_session)
    blocks.queue(default_concurrency_limit=self.limits.concurrency, max_size=self.limits.max_queue)
    return blocks

  def _end_session(self, request: gr.Request):
    self.folders.end_session(request.session_hash)

  def launch(self, host="127.0.0.1", port=None):
    """Serves the app (returns at once; `close()` stops it)."""
    return self.blocks.launch(server_name=host,
                              server_port=port,
                              share=False,
                              prevent_thread_lock=True,
                              inbrowser=False,
                              quiet=True,
                              ssr_mode=False,
                              theme=THEME,
                              max_file_size=f"{self.limits.max_upload_mb:g}mb",
                              allowed_paths=[self.folders.root, builtin.ASSETS_DIR])

  def close(self):
    self.blocks.close()


def _named_image_errors(preprocess):
  """Gradio's Image upload step, with a file its reader (PIL) cannot identify refused in one line that names
  the file (instead of Gradio's generic "the upstream app has raised an exception")."""

  def wrapped(payload):
    try:
      return preprocess(payload)
    # PIL's errors for a file that is not an image it can read (a broken PNG raises SyntaxError).
    except (OSError, SyntaxError, ValueError, PIL.Image.DecompressionBombError) as error:
      name = getattr(payload, "orig_name", None) or "the source image"
      path = getattr(payload, "path", None)
      raise gr.Error(_user_message(f"{name}: cannot read image: {error}", path)) from None

  return wrapped


def _user_message(error, *uploads):
  """The error's line with each upload's server path replaced by its file name (the path means nothing to the
  user and tells a stranger how this machine is laid out)."""
  message = errors.one_line(str(error))
  for path in sorted((p for p in uploads if p), key=len, reverse=True):
    message = message.replace(path, os.path.basename(path))
  return message


class _JobThread(threading.Thread):
  """Runs one animation job in its own job folder, which goes when the job ends; a finished result is kept
  (WorkFolders.keep) as `result`.

  The job stops, and cleans up, at its next frame after `cancel()`, and also once nobody has asked how it is
  going (`heartbeat()`) for ABANDONED_AFTER seconds: a cancel (Stop, a client's cancel or disconnect) makes
  Gradio stop asking for the event's next step, but its generator wrapper (gradio 6) does not pass the close
  on to our generator, and a job nobody waits for must not run on.
  """

  ABANDONED_AFTER = 5.0

  def __init__(self, backend, options, folders, session, max_frames):
    super().__init__(daemon=True, name="fomm-tf-app-job")
    self.backend, self.options, self.max_frames = backend, options, max_frames
    self.folders, self.session = folders, session
    self.progress_state = (0, None)
    self.error = None
    self.result = None
    self.frames = 0
    self.seconds = 0.0
    self._cancelled = threading.Event()
    self._last_heartbeat = time.monotonic()
    outer = self

    class _Progress(job_lib.Progress):

      def update(self, done, total):
        outer.progress_state = (done, total)
        if done > outer.max_frames:
          outer.error = UsageError(f"the driving video is longer than the {outer.max_frames} frames this server "
                                   "accepts")
          outer.cancel()

      def stop(self):
        return outer.stopped()

    self._progress = _Progress()

  def heartbeat(self):
    self._last_heartbeat = time.monotonic()

  def cancel(self):
    self._cancelled.set()

  def stopped(self):
    return self._cancelled.is_set() or time.monotonic() - self._last_heartbeat > self.ABANDONED_AFTER

  def run(self):
    start = time.monotonic()
    try:
      with self.folders.job_dir(self.session) as folder:
        options = dataclasses.replace(self.options, result_video=os.path.join(folder, self.options.result_video))
        self.frames = job_lib.run(self.backend, options, log=lambda line: None, progress=self._progress)
        self.result = self.folders.keep(options.result_video, self.session)
    except BaseException as error:  # Raised again by the event that waits for this thread.
      self.error = self.error or error
    self.seconds = time.monotonic() - start
