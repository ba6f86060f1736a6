"""Writes frames to a video file atomically, optionally with copied audio.

The container and codecs follow the file extension:

* ``.mp4`` / ``.mov`` / ``.mkv``: H.264 (libx264, yuv420p, CRF 18 by default)
  with AAC audio. yuv420p needs even sizes, so an odd height or width is
  padded by repeating the last row or column; the file is then one pixel
  taller or wider than the frames.
* ``.webm``: VP9 (libvpx-vp9, yuv420p, CRF 32 by default, same padding) with
  Opus audio.
* ``.gif``: each frame gets its own 256-colour palette (median cut, no
  dithering, so still areas do not flicker); frame delays are whole
  hundredths of a second, rounded so the average rate matches `fps`.

Frames go to a hidden temporary file in the output directory (named
``.<name>.partial-<random><ext>`` so FFmpeg still sees the extension), which
replaces `path` only when `close` succeeds. A failure, an exception inside the
``with`` block or `abort` removes the temporary file and leaves whatever was
at `path` before untouched.
"""

import dataclasses
import errno
import fractions
import math
import os
from typing import Optional, Union

import av
import numpy as np
from PIL import Image

from fomm_tf.errors import MediaError
from fomm_tf.errors import one_line as _one_line
from fomm_tf.io import files

__all__ = ["MIN_FPS", "MAX_FPS", "OUTPUT_EXTENSIONS", "VideoWriter"]

X264_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow",
                "placebo")
# GIF delays are counted in hundredths of a second.
MAX_GIF_FPS = 100
# The frame rates a result may have: one frame per 10 s up to 1000 frames per second.
MIN_FPS = 0.1
MAX_FPS = 1000


@dataclasses.dataclass(frozen=True)
class _OutputFormat:
  container: str
  video_codec: str
  pix_fmt: str
  audio_codec: Optional[str]
  default_crf: Optional[int]
  max_crf: Optional[int]
  container_options: Optional[dict] = None


_H264 = dict(video_codec="libx264", pix_fmt="yuv420p", audio_codec="aac", default_crf=18, max_crf=51)
# The index goes to the front so players can start before the download ends.
_FASTSTART = {"movflags": "+faststart"}
_OUTPUT_FORMATS = {
    ".mp4":
        _OutputFormat(container="mp4", container_options=_FASTSTART, **_H264),
    ".mov":
        _OutputFormat(container="mov", container_options=_FASTSTART, **_H264),
    ".mkv":
        _OutputFormat(container="matroska", **_H264),
    ".webm":
        _OutputFormat(container="webm",
                      video_codec="libvpx-vp9",
                      pix_fmt="yuv420p",
                      audio_codec="libopus",
                      default_crf=32,
                      max_crf=63),
    ".gif":
        _OutputFormat(container="gif",
                      video_codec="gif",
                      pix_fmt="pal8",
                      audio_codec=None,
                      default_crf=None,
                      max_crf=None),
}
OUTPUT_EXTENSIONS = frozenset(_OUTPUT_FORMATS)


def _fps_fraction(fps: Union[int, float, fractions.Fraction]) -> \
        fractions.Fraction:
  """Exact frame rate; 29.97002997 (=30000/1001 as a float) comes back."""
  if isinstance(fps, bool) or not isinstance(
          fps, (int, float, fractions.Fraction)) or not math.isfinite(fps) \
          or not MIN_FPS <= fps <= MAX_FPS:
    raise MediaError(f"fps must be a number from {MIN_FPS:g} to {MAX_FPS:g}, got {fps!r}")
  # NTSC rates have denominator 1001; anything finer is float noise.
  return fractions.Fraction(fps).limit_denominator(1001)


class _AudioCopier:
  """Re-encodes the first audio stream of a file into an output container.

  Audio is taken from the source's first sample on, re-encoded, and cut
  at a given duration; a source shorter than the video just ends early.
  """

  def __init__(self, source_path: str):
    self.source_path = source_path
    if not os.path.exists(source_path):
      raise MediaError(f"{source_path}: audio source: no such file")
    if not os.path.isfile(source_path):
      raise MediaError(f"{source_path}: audio source is not a file")
    try:
      self._input = av.open(source_path, mode="r")
    except av.error.FFmpegError as error:
      raise MediaError(f"{source_path}: audio source cannot be opened: "
                       f"{_one_line(error)}") from error
    if not self._input.streams.audio:
      self._input.close()
      raise MediaError(f"{source_path}: has no audio stream to copy")
    self._in_stream = self._input.streams.audio[0]
    self._stream = None
    self._samples_encoded = 0
    self._source_done = False

  def add_output_stream(self, output, codec_name: str, bit_rate: int):
    """Adds the audio stream to `output`; call after the video stream."""
    in_context = self._in_stream.codec_context
    rate = in_context.sample_rate
    supported_rates = av.Codec(codec_name, "w").audio_rates
    if supported_rates and rate not in supported_rates:
      rate = 48000
    layout = "mono" if in_context.channels == 1 else "stereo"
    self._rate = rate
    self._stream = output.add_stream(codec_name, rate=rate, layout=layout)
    self._stream.bit_rate = bit_rate
    context = self._stream.codec_context
    # Opened now (rather than by the muxer) to learn its frame size;
    # codecs that take any frame size report 0.
    context.open()
    self._frame_size = context.frame_size or 1024
    self._output = output
    self._resampler = av.AudioResampler(format=context.format, layout=layout, rate=rate)
    self._fifo = av.AudioFifo()
    self._decoded = self._input.decode(self._in_stream)

  def _fill(self, samples: int) -> bool:
    """Decodes until the FIFO holds `samples`; False if the source ends."""
    while self._fifo.samples < samples and not self._source_done:
      try:
        frame = next(self._decoded, None)
      except av.error.FFmpegError as error:
        raise MediaError(f"{self.source_path}: audio could not be "
                         f"decoded: {_one_line(error)}") from error
      if frame is None:
        self._source_done = True
      # Resampling None drains the resampler once the source ends.
      for resampled in self._resampler.resample(frame):
        resampled.pts = None  # The FIFO re-times frames itself.
        self._fifo.write(resampled)
    return self._fifo.samples >= samples

  def _encode(self, frame) -> None:
    if frame is not None:
      frame.pts = self._samples_encoded
      frame.time_base = fractions.Fraction(1, self._rate)
      self._samples_encoded += frame.samples
    for packet in self._stream.encode(frame):
      self._output.mux(packet)

  def copy_until(self, seconds: float) -> None:
    """Encodes whole codec frames of audio up to `seconds`."""
    target = int(round(seconds * self._rate))
    while self._samples_encoded + self._frame_size <= target:
      if not self._fill(self._frame_size):
        return
      self._encode(self._fifo.read(self._frame_size))

  def finish(self, seconds: float) -> None:
    """Encodes the audio up to exactly `seconds` and flushes the codec."""
    self.copy_until(seconds)
    remainder = int(round(seconds * self._rate)) - self._samples_encoded
    if remainder > 0:
      self._fill(remainder)
      # Only the last codec frame may be shorter than the frame size.
      last = self._fifo.read(min(remainder, self._fifo.samples), partial=True)
      if last is not None:
        self._encode(last)
    self._encode(None)

  def close(self) -> None:
    self._input.close()


class VideoWriter:
  """Writes frames to `path`, replacing it only when `close` succeeds.

  Usage::

      with VideoWriter("out.mp4", fps=source.fps,
                       audio_source="driving.mp4") as writer:
          for frame in frames:
              writer.write(frame)

  Args:
    path: output file; its extension picks the format (see module doc).
    fps: frames per second (int, float or Fraction; 29.97 works).
    audio_source: a video/audio file whose first audio stream is copied
      (re-encoded to AAC, Opus for WebM) and cut at the video's duration.
      Raises MediaError if it has no audio; check with `has_audio` first.
    crf: constant-rate-factor quality (lower is better); default 18 for
      H.264 (0-51), 32 for VP9 (0-63); not used for GIF.
    preset: x264 speed preset (H.264 only).
    audio_bit_rate: audio bit rate in bits per second.
    timestamps: frames are written with their own times (`write(frame,
      seconds)`, milliseconds resolution, a variable frame rate as a live
      recording has); `fps` is then only the nominal rate. Not for GIF or audio.

  Raises:
    MediaError: unknown extension, bad fps/crf/preset, missing or
      unwritable output directory, unusable audio source, or audio asked
      for a GIF; all raised here, before any frame is written.
  """

  def __init__(self,
               path: str,
               fps: Union[int, float, fractions.Fraction],
               audio_source: Optional[str] = None,
               *,
               crf: Optional[int] = None,
               preset: str = "medium",
               audio_bit_rate: int = 160_000,
               timestamps: bool = False):
    self.path = os.fspath(path)
    extension = os.path.splitext(self.path)[1].lower()
    if extension not in _OUTPUT_FORMATS:
      raise MediaError(f"{self.path}: unsupported output extension {extension!r} "
                       f"(use one of {', '.join(sorted(OUTPUT_EXTENSIONS))})")
    self._format = _OUTPUT_FORMATS[extension]
    self.fps = _fps_fraction(fps)
    if self._format.container == "gif" and self.fps > MAX_GIF_FPS:
      raise MediaError(f"{self.path}: GIF fps must be at most "
                       f"{MAX_GIF_FPS}, got {float(self.fps):g}")
    self._crf = self._check_crf(crf)
    if self._format.video_codec == "libx264" and preset not in X264_PRESETS:
      raise MediaError(f"preset must be one of {X264_PRESETS}, "
                       f"got {preset!r}")
    self._preset = preset
    self._audio_bit_rate = int(audio_bit_rate)
    self._timestamps = bool(timestamps)
    if self._timestamps and (audio_source is not None or self._format.container == "gif"):
      raise MediaError(f"{self.path}: timestamped frames are for H.264/VP9 videos without audio")
    if audio_source is not None and self._format.audio_codec is None:
      raise MediaError(f"{self.path}: GIF cannot hold audio "
                       f"(audio_source={audio_source})")

    self._audio = (_AudioCopier(os.fspath(audio_source)) if audio_source is not None else None)
    self._container = None
    self._temp_path = None
    try:
      self._temp_path = files.create_temp_beside(self.path, MediaError, extension)
      self._container = av.open(self._temp_path,
                                mode="w",
                                format=self._format.container,
                                container_options=self._format.container_options)
    except BaseException:
      self._discard()
      raise
    self._stream = None
    self._frame_shape = None
    self.frames_written = 0
    self._last_pts = None
    self._finished = False

  # -- setup ---------------------------------------------------------------

  def _check_crf(self, crf: Optional[int]) -> Optional[int]:
    if self._format.default_crf is None:
      return None
    if crf is None:
      return self._format.default_crf
    if isinstance(crf, bool) or int(crf) != crf or \
            not 0 <= crf <= self._format.max_crf:
      raise MediaError(f"crf for {self._format.video_codec} must be an "
                       f"integer in 0..{self._format.max_crf}, "
                       f"got {crf!r}")
    return int(crf)

  def _add_video_stream(self, height: int, width: int) -> None:
    stream = self._container.add_stream(self._format.video_codec, rate=self.fps)
    stream.width, stream.height = width, height
    stream.pix_fmt = self._format.pix_fmt
    stream.codec_context.time_base = (fractions.Fraction(1, 1000) if self._timestamps else 1 / self.fps)
    if self._format.video_codec == "libx264":
      stream.options = {"crf": str(self._crf), "preset": self._preset}
    elif self._format.video_codec == "libvpx-vp9":
      # Bit rate 0 makes CRF a pure constant-quality target.
      stream.options = {"crf": str(self._crf), "b": "0", "row-mt": "1"}
    self._stream = stream
    if self._audio is not None:
      self._audio.add_output_stream(self._container, self._format.audio_codec, self._audio_bit_rate)

  # -- frames --------------------------------------------------------------

  def _to_uint8(self, frame: np.ndarray) -> np.ndarray:
    frame = np.asarray(frame)
    index = self.frames_written
    if frame.ndim != 3 or frame.shape[2] != 3 or 0 in frame.shape:
      raise MediaError(f"{self.path}: frame {index} must have shape "
                       f"(H, W, 3), got {frame.shape}")
    if self._frame_shape is not None and frame.shape != self._frame_shape:
      raise MediaError(f"{self.path}: frame {index} has shape "
                       f"{frame.shape}, but frame 0 had "
                       f"{self._frame_shape}")
    if frame.dtype == np.uint8:
      return np.ascontiguousarray(frame)
    if not np.issubdtype(frame.dtype, np.floating):
      raise MediaError(f"{self.path}: frame {index} must be float in "
                       f"[0, 1] or uint8, got {frame.dtype}")
    if not np.all(np.isfinite(frame)):
      raise MediaError(f"{self.path}: frame {index} contains NaN or "
                       f"infinite values")
    # Clipping only absorbs float rounding just outside [0, 1].
    scaled = np.clip(frame, 0.0, 1.0) * 255.0 + 0.5
    return scaled.astype(np.uint8)

  def _to_video_frame(self, rgb: np.ndarray) -> "av.VideoFrame":
    if self._format.pix_fmt == "pal8":
      quantized = Image.fromarray(rgb).quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
      colours = np.asarray(quantized.getpalette(), np.uint8).reshape(-1, 3)
      palette = np.zeros((256, 4), np.uint8)  # ARGB rows.
      palette[:, 0] = 255
      palette[:len(colours), 1:] = colours[:256]
      return av.VideoFrame.from_ndarray((np.asarray(quantized), palette), format="pal8")
    height, width = rgb.shape[:2]
    pad_rows, pad_columns = height % 2, width % 2
    if pad_rows or pad_columns:
      rgb = np.pad(rgb, ((0, pad_rows), (0, pad_columns), (0, 0)), mode="edge")
    return av.VideoFrame.from_ndarray(rgb, format="rgb24")

  def write(self, frame: np.ndarray, seconds: Optional[float] = None) -> None:
    """Appends one float32 [0, 1] or uint8 (H, W, 3) RGB frame (at `seconds` with `timestamps=True`).

    Every frame must have the shape of the first. Float values are
    clipped to [0, 1]; NaN or infinity raises MediaError. A timestamp not
    after the previous frame's is placed one millisecond after it (the
    container needs increasing times).
    """
    if self._finished:
      raise MediaError(f"{self.path}: write() after the writer was "
                       f"closed or aborted")
    rgb = self._to_uint8(frame)
    video_frame = self._to_video_frame(rgb)
    try:
      if self._stream is None:
        self._frame_shape = rgb.shape
        self._add_video_stream(video_frame.height, video_frame.width)
      video_frame.pts = self._pts(seconds)
      video_frame.time_base = self._stream.codec_context.time_base
      for packet in self._stream.encode(video_frame):
        self._container.mux(packet)
      self.frames_written += 1
      if self._audio is not None:
        self._audio.copy_until(self.frames_written / self.fps)
    except av.error.FFmpegError as error:
      if error.errno == errno.ENOSPC:
        raise files.write_error(MediaError, self.path, error) from None
      raise MediaError(f"{self.path}: frame {self.frames_written} could "
                       f"not be encoded: {_one_line(error)}") from error

  def _pts(self, seconds):
    if not self._timestamps:
      return self.frames_written
    if seconds is None or not math.isfinite(seconds) or seconds < 0:
      raise MediaError(f"{self.path}: frame {self.frames_written} needs a time in seconds >= 0, got {seconds!r}")
    pts = int(round(seconds * 1000))
    if self._last_pts is not None and pts <= self._last_pts:
      pts = self._last_pts + 1
    self._last_pts = pts
    return pts

  # -- finishing -----------------------------------------------------------

  def close(self) -> None:
    """Finishes the file and moves it to `path`.

    Raises:
      MediaError: no frames were written, or encoding failed; the
        temporary file is then removed and `path` left untouched.
    """
    if self._finished:
      return
    try:
      if self.frames_written == 0:
        raise MediaError(f"{self.path}: no frames were written")
      for packet in self._stream.encode(None):
        self._container.mux(packet)
      if self._audio is not None:
        self._audio.finish(self.frames_written / self.fps)
      container, self._container = self._container, None
      container.close()
      files.replace_with_temp(self._temp_path, self.path, MediaError)
    except av.error.FFmpegError as error:
      self.abort()
      if error.errno == errno.ENOSPC:
        raise files.write_error(MediaError, self.path, error) from None
      raise MediaError(f"{self.path}: could not finish writing: "
                       f"{_one_line(error)}") from error
    except BaseException:
      self.abort()
      raise
    self._finished = True
    if self._audio is not None:
      self._audio.close()

  def abort(self) -> None:
    """Stops writing, deletes the temporary file, leaves `path` alone."""
    self._finished = True
    self._discard()

  def _discard(self) -> None:
    if self._container is not None:
      container, self._container = self._container, None
      try:
        container.close()
      except av.error.FFmpegError:
        # The file is being deleted; a failure to finish it is moot
        # and must not hide the error that caused the abort.
        pass
    if self._audio is not None:
      self._audio.close()
    if self._temp_path is not None:
      files.remove_quietly(self._temp_path)

  def __enter__(self) -> "VideoWriter":
    return self

  def __exit__(self, exc_type, exc_value, traceback) -> bool:
    if exc_type is None:
      self.close()
    else:
      self.abort()
    return False

  def __del__(self):
    # A writer dropped without close() or abort() must not leave its
    # temporary file behind.
    if not getattr(self, "_finished", True):
      self.abort()
