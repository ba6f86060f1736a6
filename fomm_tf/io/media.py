"""Reads still images and videos as float32 RGB frames in [0, 1].

Every frame this module returns is a float32 array of shape (H, W, 3) with
values in [0, 1]. Conventions, chosen once here so callers need not care:

* Alpha is dropped (the RGB values are kept as stored, not composited), the
  same as the original FOMM demo's ``image[..., :3]``.
* Greyscale is replicated to three channels; 16-bit PNGs keep their 16-bit
  precision; JPEG EXIF orientation is applied.
* Video rotation metadata (the display matrix phones write) is applied in
  steps of 90 degrees; mirror flags in that matrix are ignored.

Videos are streamed frame by frame (`open_video`); supported inputs are any
container FFmpeg reads (mp4, mov, avi, webm, mkv, ...), GIF, a folder of frame
images and a horizontal frame strip (one image made of square frames placed
left to right). Every failure raises `MediaError` with a one-line message that
names the file and, for videos, the index of the frame that failed.
"""

import os
import re
from typing import Iterator, List, Optional, Sequence, Tuple

import av
import numpy as np
from PIL import Image
from PIL import ImageOps

from fomm_tf import checks
from fomm_tf.errors import MediaError
from fomm_tf.errors import one_line as _one_line

# Frame rate of sources that carry no timing: frame folders and strips.
DEFAULT_FPS = 25.0

IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".bmp"})
VIDEO_EXTENSIONS = frozenset({".mp4", ".m4v", ".mov", ".avi", ".webm", ".mkv", ".gif"})
FIT_MODES = ("crop", "pad")

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# Pictures (images and video frames) above this many pixels are refused before
# they are decoded: a 50-megapixel frame already takes 600 MB as float32 RGB,
# and a small file can claim a huge one (a "decompression bomb").
MAX_PIXELS = 50_000_000
# 16-bit PNGs are decoded from memory; a larger file is refused unread.
_MAX_PNG16_FILE_BYTES = 512 << 20


def _extension(path: str) -> str:
  return os.path.splitext(os.fspath(path))[1].lower()


def is_image_path(path: str) -> bool:
  """Whether `path` names a still image file by its extension.

  A horizontal frame strip is an image file too; `open_video` accepts it.
  """
  return (_extension(path) in IMAGE_EXTENSIONS and not os.path.isdir(path))


def is_video_path(path: str) -> bool:
  """Whether `path` is a folder of frames or has a video/GIF extension."""
  return os.path.isdir(path) or _extension(path) in VIDEO_EXTENSIONS


def _require_file(path: str) -> None:
  if not os.path.exists(path):
    raise MediaError(f"{path}: no such file or directory")
  if not os.path.isfile(path):
    raise MediaError(f"{path}: not a regular file")


def check_pixels(path: str, height: int, width: int, what: str = "image") -> None:
  """Refuses a picture larger than MAX_PIXELS (before it is decoded)."""
  if height * width > MAX_PIXELS:
    raise MediaError(f"{path}: the {what} is {width}x{height} pixels, more than the "
                     f"{MAX_PIXELS // 1_000_000} megapixels fomm-tf accepts (resize it first)")


# ----------------------------------------------------------------------------
# Still images.
# ----------------------------------------------------------------------------


def read_image(path: str) -> np.ndarray:
  """Reads an image file as float32 (H, W, 3) RGB in [0, 1].

  Reads anything Pillow reads (PNG, JPEG, BMP, ...) at any size. Alpha is
  dropped, greyscale replicated, 16-bit PNG read at full precision (through
  FFmpeg's PNG decoder, since Pillow reduces 16-bit colour to 8 bits) and the
  EXIF orientation of photos applied.

  Raises:
    MediaError: the file is missing, not an image, truncated or corrupt.
  """
  path = os.fspath(path)
  _require_file(path)
  try:
    with open(path, "rb") as stream:
      header = stream.read(26)
  except OSError as error:
    raise MediaError(f"{path}: cannot read: {_one_line(error)}") from error
  # IHDR's bit depth is byte 24 of every PNG.
  if (header.startswith(_PNG_SIGNATURE) and len(header) == 26 and header[24] == 16):
    return _read_png16(path, header)
  try:
    with Image.open(path) as image:
      check_pixels(path, image.height, image.width)
      image.load()
      image = ImageOps.exif_transpose(image)
      return _pil_to_rgb_float(image, path)
  except MediaError:
    raise
  except Image.DecompressionBombError as error:
    # Pillow refuses the largest claims itself, before our own (lower) limit is reached.
    raise MediaError(f"{path}: the image is larger than the {MAX_PIXELS // 1_000_000} megapixels "
                     f"fomm-tf accepts (resize it first; {_one_line(error)})") from error
  except (OSError, SyntaxError, ValueError) as error:
    # Pillow signals malformed files with any of these.
    raise MediaError(f"{path}: cannot read image: {_one_line(error)}") from error


def _pil_to_rgb_float(image: Image.Image, path: str) -> np.ndarray:
  """Converts a decoded Pillow image to float32 RGB in [0, 1]."""
  if image.mode in ("I;16", "I;16L", "I;16B", "I;16N"):
    grey = np.asarray(image, dtype=np.float32) / np.float32(65535.0)
    return np.repeat(grey[:, :, None], 3, axis=2)
  if image.mode == "I":
    values = np.asarray(image)
    if values.min() < 0 or values.max() > 65535:
      raise MediaError(f"{path}: 32-bit integer image values outside "
                       f"0..65535 are not supported")
    grey = values.astype(np.float32) / np.float32(65535.0)
    return np.repeat(grey[:, :, None], 3, axis=2)
  if image.mode == "F":
    raise MediaError(f"{path}: floating-point images are not supported")
  if image.mode in ("L", "LA", "1"):
    grey = np.asarray(image.convert("L"), dtype=np.float32)
    rgb = np.repeat(grey[:, :, None], 3, axis=2)
  else:
    # Palette transparency goes through RGBA (Pillow warns otherwise);
    # its alpha is then dropped as for any RGBA image.
    if image.mode == "P":
      image = image.convert("RGBA")
    rgb = np.asarray(image.convert("RGB"), dtype=np.float32)
  return rgb / np.float32(255.0)


def _read_png16(path: str, header: bytes) -> np.ndarray:
  """Reads a 16-bit-per-sample PNG at full precision with FFmpeg."""
  # IHDR holds the width and height as big-endian 32-bit integers.
  check_pixels(path, int.from_bytes(header[20:24], "big"), int.from_bytes(header[16:20], "big"))
  if os.path.getsize(path) > _MAX_PNG16_FILE_BYTES:
    raise MediaError(f"{path}: a 16-bit PNG of more than {_MAX_PNG16_FILE_BYTES >> 20} MB "
                     "is not supported")
  with open(path, "rb") as stream:
    data = stream.read()
  try:
    decoder = av.CodecContext.create("png", "r")
    frames = decoder.decode(av.Packet(data)) + decoder.decode(None)
  except av.error.FFmpegError as error:
    raise MediaError(f"{path}: cannot read image: {_one_line(error)}") from error
  if not frames:
    raise MediaError(f"{path}: cannot read image: PNG decoder produced "
                     f"no picture")
  rgb = frames[0].to_ndarray(format="rgb48le")
  return rgb.astype(np.float32) / np.float32(65535.0)


# ----------------------------------------------------------------------------
# Resizing.
# ----------------------------------------------------------------------------


def _check_frame(frame: np.ndarray, name: str = "frame") -> np.ndarray:
  frame = np.asarray(frame)
  if frame.ndim != 3 or frame.shape[2] != 3 or 0 in frame.shape:
    raise MediaError(f"{name} must have shape (H, W, 3) with H, W > 0, "
                     f"got {frame.shape}")
  if not np.issubdtype(frame.dtype, np.floating):
    raise MediaError(f"{name} must be a float array, got {frame.dtype}")
  return frame.astype(np.float32, copy=False)


def _resize_channel_axis(channel: Image.Image, width: int, height: int) -> Image.Image:
  """Resizes one 'F' channel; area average to shrink, bilinear to enlarge.

  Pillow's BOX filter is exact area averaging when shrinking, and its
  BILINEAR filter is plain bilinear interpolation when enlarging. Each axis
  is done separately because one may shrink while the other enlarges.
  """
  in_width, in_height = channel.size
  if width != in_width:
    resample = (Image.Resampling.BOX if width < in_width else Image.Resampling.BILINEAR)
    channel = channel.resize((width, in_height), resample=resample)
  if height != in_height:
    resample = (Image.Resampling.BOX if height < in_height else Image.Resampling.BILINEAR)
    channel = channel.resize((width, height), resample=resample)
  return channel


def resize_frame(frame: np.ndarray, size: Sequence[int]) -> np.ndarray:
  """Resizes a float (H, W, 3) frame to `size` = (height, width).

  Shrinking averages areas, enlarging interpolates bilinearly (per axis);
  work is done in 32-bit float, so no 8-bit rounding happens. An input that
  already has the requested size is returned as an unchanged float32 copy.
  """
  frame = _check_frame(frame)
  if len(size) != 2 or not all(checks.is_positive_int(s) for s in size):
    raise MediaError(f"size must be (height, width) of positive integers, got {size}")
  height, width = int(size[0]), int(size[1])
  if frame.shape[:2] == (height, width):
    return frame.copy()
  channels = []
  for c in range(3):
    # A 2-D float32 array becomes a 32-bit float ("F") Pillow image.
    channel = Image.fromarray(np.ascontiguousarray(frame[:, :, c]))
    channel = _resize_channel_axis(channel, width, height)
    channels.append(np.asarray(channel, dtype=np.float32))
  return np.stack(channels, axis=2)


def fit_frame(frame: np.ndarray, size: int, mode: str = "crop") -> np.ndarray:
  """Makes a frame square, size x size, without changing its aspect ratio.

  Args:
    frame: float (H, W, 3) array.
    size: edge length of the result.
    mode: "crop" takes the centred square of the short side; "pad" adds
      black (zero) borders on both sides of the short side (one more row or
      column at the bottom/right when the difference is odd).

  Returns:
    float32 (size, size, 3) array.
  """
  frame = _check_frame(frame)
  if mode not in FIT_MODES:
    raise MediaError(f"fit mode must be one of {FIT_MODES}, got {mode!r}")
  if not checks.is_positive_int(size):
    raise MediaError(f"size must be a positive integer, got {size!r}")
  height, width = frame.shape[:2]
  if mode == "crop":
    side = min(height, width)
    top, left = (height - side) // 2, (width - side) // 2
    square = frame[top:top + side, left:left + side]
  else:
    side = max(height, width)
    top, left = (side - height) // 2, (side - width) // 2
    square = np.pad(frame, ((top, side - height - top), (left, side - width - left), (0, 0)))
  return resize_frame(square, (int(size), int(size)))


# ----------------------------------------------------------------------------
# Videos.
# ----------------------------------------------------------------------------


class VideoSource:
  """A video opened for streaming; iterate it to get its frames.

  Attributes:
    path: the path given to `open_video`.
    fps: frames per second (float).
    num_frames: number of frames, or None when the container does not say.
    frame_size: (height, width) of every frame, after rotation.
    has_audio: whether the source has an audio stream.

  Each iteration starts again from the first frame and yields float32
  (H, W, 3) frames in [0, 1] one at a time.
  """

  def __init__(self, path: str, fps: float, num_frames: Optional[int], frame_size: Tuple[int, int], has_audio: bool):
    self.path = path
    self.fps = float(fps)
    self.num_frames = num_frames
    self.frame_size = frame_size
    self.has_audio = has_audio

  def __iter__(self) -> Iterator[np.ndarray]:
    raise NotImplementedError

  def _check_size(self, frame: np.ndarray, what: str) -> np.ndarray:
    if frame.shape[:2] != self.frame_size:
      raise MediaError(f"{self.path}: {what} is {frame.shape[0]}x{frame.shape[1]}, "
                       f"but frame 0 is {self.frame_size[0]}x{self.frame_size[1]}")
    return frame

  def __repr__(self) -> str:
    return (f"{type(self).__name__}(path={self.path!r}, fps={self.fps:g}, "
            f"num_frames={self.num_frames}, frame_size={self.frame_size}, "
            f"has_audio={self.has_audio})")


class ContainerVideoSource(VideoSource):
  """A video file decoded by FFmpeg (through PyAV), including GIF."""

  def __init__(self, path: str):
    container = _open_container(path)
    with container:
      if not container.streams.video:
        raise MediaError(f"{path}: has no video stream")
      stream = container.streams.video[0]
      check_pixels(path, stream.codec_context.height, stream.codec_context.width, "video frame")
      if container.format.name == "gif":
        fps, num_frames = _gif_timing(path)
      else:
        rate = stream.average_rate or stream.guessed_rate
        fps = float(rate) if rate else DEFAULT_FPS
        num_frames = stream.frames or None
      has_audio_stream = bool(container.streams.audio)
      first = next(_decode_frames(path, container, stream), None)
    if first is None:
      raise MediaError(f"{path}: no decodable frames")
    super().__init__(path, fps, num_frames, first.shape[:2], has_audio_stream)

  def __iter__(self) -> Iterator[np.ndarray]:
    container = _open_container(self.path)
    with container:
      frames = _decode_frames(self.path, container, container.streams.video[0])
      for index, frame in enumerate(frames):
        # FFmpeg passes mid-stream resolution changes straight on.
        yield self._check_size(frame, f"frame {index}")


class FrameFolderSource(VideoSource):
  """A folder of frame images, in natural order of their names.

  Files without an image extension and hidden files (names starting with
  '.', such as macOS '._x.png' metadata) are not frames and are ignored.
  """

  def __init__(self, path: str):
    try:
      listing = os.listdir(path)
    except OSError as error:
      raise MediaError(f"{path}: cannot list the frame folder: {_one_line(error)}") from error
    names = sorted((name for name in listing if not name.startswith(".") and _extension(name) in IMAGE_EXTENSIONS and
                    os.path.isfile(os.path.join(path, name))),
                   key=_natural_key)
    if not names:
      raise MediaError(f"{path}: no decodable frames (the folder has no "
                       f"{'/'.join(sorted(IMAGE_EXTENSIONS))} files)")
    self.frame_paths = [os.path.join(path, name) for name in names]
    first = self._read(0)
    super().__init__(path, DEFAULT_FPS, len(names), first.shape[:2], False)

  def _read(self, index: int) -> np.ndarray:
    try:
      return read_image(self.frame_paths[index])
    except MediaError as error:
      raise MediaError(f"{self.path}: frame {index} could not be "
                       f"decoded: {error}") from error

  def __iter__(self) -> Iterator[np.ndarray]:
    for index, frame_path in enumerate(self.frame_paths):
      yield self._check_size(self._read(index), f"frame {index} ({frame_path})")


class FrameStripSource(VideoSource):
  """One image holding square frames side by side, left to right."""

  def __init__(self, path: str):
    strip = read_image(path)
    height, width = strip.shape[:2]
    if width % height:
      raise MediaError(f"{path}: not a frame strip: width {width} is not a multiple "
                       f"of height {height}")
    # The strip is a single image, so it is decoded once and kept.
    self._strip = strip
    super().__init__(path, DEFAULT_FPS, width // height, (height, height), False)

  def __iter__(self) -> Iterator[np.ndarray]:
    side = self.frame_size[0]
    for index in range(self.num_frames):
      yield self._strip[:, index * side:(index + 1) * side].copy()


def _natural_key(name: str) -> tuple:
  """Sort key putting 'frame2' before 'frame10'."""
  parts = re.split(r"(\d+)", name.lower())
  return tuple(int(part) if part.isdigit() else part for part in parts)


def _open_container(path: str) -> "av.container.InputContainer":
  _require_file(path)
  try:
    return av.open(path, mode="r")
  except av.error.FFmpegError as error:
    raise MediaError(f"{path}: cannot open as a video: {_one_line(error)}") from error


def _gif_timing(path: str) -> Tuple[float, int]:
  """Frame rate and frame count of a GIF from its own frame delays.

  FFmpeg's stream-level rate and duration for GIF leave out or round
  delays, so the packets' durations are summed instead (demuxing only,
  no decoding). FFmpeg reads delays under 2/100 s as 1/10 s, as browsers do.
  """
  with _open_container(path) as container:
    stream = container.streams.video[0]
    count, ticks = 0, 0
    try:
      for packet in container.demux(stream):
        if packet.size:
          count += 1
          ticks += packet.duration or 0
    except av.error.FFmpegError as error:
      raise MediaError(f"{path}: frame {count} could not be decoded: "
                       f"{_one_line(error)}") from error
    seconds = ticks * stream.time_base
  if not count:
    raise MediaError(f"{path}: no decodable frames")
  return (float(count / seconds) if seconds else DEFAULT_FPS), count


def _decode_frames(path: str, container, stream) -> Iterator[np.ndarray]:
  """Yields float frames; any decoder or demuxer error names its frame."""
  index = 0
  packets_read = 0
  packets = container.demux(stream)
  while True:
    try:
      packet = next(packets, None)
      if packet is None:
        _check_not_truncated(path, container, stream, index, packets_read)
        return
      packets_read += 1 if packet.size else 0
      frames = packet.decode()
    except av.error.FFmpegError as error:
      raise MediaError(f"{path}: frame {index} could not be decoded: "
                       f"{_one_line(error)}") from error
    for frame in frames:
      if frame.is_corrupt:
        raise MediaError(f"{path}: frame {index} could not be "
                         f"decoded: the decoder marked it corrupt")
      check_pixels(path, frame.height, frame.width, f"video frame {index}")
      yield _video_frame_to_float(frame)
      index += 1


def _check_not_truncated(path: str, container, stream, index: int, packets_read: int) -> None:
  """Raises if an MP4/MOV ended before the packets its index lists.

  FFmpeg treats missing data at the end of an MP4 as a normal end of file,
  so a truncated download would otherwise just look like a shorter video.
  The MP4 index lists every packet, which makes the check exact there.
  """
  if not container.format.name.startswith("mov,"):
    return
  expected = len(stream.index_entries)
  if packets_read < expected:
    raise MediaError(f"{path}: frame {index} could not be decoded: the file ends "
                     f"early (truncated?) after {packets_read} of {expected} packets")


def _video_frame_to_float(frame: "av.VideoFrame") -> np.ndarray:
  rgb = frame.to_ndarray(format="rgb24")
  quarter_turns = int(round(frame.rotation / 90.0)) % 4
  if quarter_turns:
    # VideoFrame.rotation is counter-clockwise, as is np.rot90.
    rgb = np.ascontiguousarray(np.rot90(rgb, quarter_turns))
  return rgb.astype(np.float32) / np.float32(255.0)


def open_video(path: str) -> VideoSource:
  """Opens a video for streaming; see the module docstring for formats.

  A path to a folder opens its frame images; a path with an image extension
  opens a frame strip; anything else is handed to FFmpeg. The first frame
  is decoded here, so an empty or undecodable source fails at once.
  Frame folders and strips play at `DEFAULT_FPS`; GIFs at the rate their
  frame delays give; other files at their stream's average frame rate
  (`DEFAULT_FPS` if they declare none).

  Raises:
    MediaError: missing path, unreadable file, no decodable frames, or a
      frame strip whose width is not a multiple of its height.
  """
  path = os.fspath(path)
  if not os.path.exists(path):
    raise MediaError(f"{path}: no such file or directory")
  if os.path.isdir(path):
    return FrameFolderSource(path)
  if _extension(path) in IMAGE_EXTENSIONS:
    return FrameStripSource(path)
  return ContainerVideoSource(path)


def read_video_frames(path: str, max_frames: Optional[int] = None) -> List[np.ndarray]:
  """Reads the first `max_frames` frames (all if None) into a list."""
  if max_frames is not None and not checks.is_positive_int(max_frames):
    raise MediaError(f"max_frames must be a positive integer or None, got {max_frames}")
  frames = []
  for frame in open_video(path):
    frames.append(frame)
    if max_frames is not None and len(frames) >= max_frames:
      break
  return frames


def has_audio(path: str) -> bool:
  """Whether `path` has an audio stream (frame folders and images: False).

  Raises:
    MediaError: the path is missing or not a readable media file.
  """
  path = os.fspath(path)
  if not os.path.exists(path):
    raise MediaError(f"{path}: no such file or directory")
  if os.path.isdir(path) or _extension(path) in IMAGE_EXTENSIONS:
    return False
  with _open_container(path) as container:
    return bool(container.streams.audio)
