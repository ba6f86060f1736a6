"""The TensorBoard image grid of training: a few samples of the batch, each a labelled block of panels.

Per sample, panels of the frame size wrapped into rows of `columns`: source,
transformed (equivariance), driving, deformed source and prediction with their
keypoints, the occlusion map, then each of the K+1 sparse warps of the source
weighted by its mask (warp 0 is the background) and the colour-coded masks.
Every panel has its name written above it, so the grid reads in TensorBoard's
Images tab without a legend. A distillation's grid is one row per sample:
source | teacher | student | real.
"""

import numpy as np
from PIL import Image
from PIL import ImageDraw
from PIL import ImageFont

from fomm_tf import visualization

LABEL_HEIGHT = 12
GAP = 4


def _to_size(image, size):
  """Nearest-neighbour resize of (h, w, c) to (size, size, c) (sizes here are integer multiples)."""
  h, w = image.shape[:2]
  rows = (np.arange(size) * h // size).astype(int)
  cols = (np.arange(size) * w // size).astype(int)
  image = image[rows][:, cols]
  if image.shape[-1] == 1:
    image = np.repeat(image, 3, axis=-1)
  return image


def sample_panels(batch, generated, index, kp_size=5, colormap="gist_rainbow"):
  """[(label, (S, S, 3) panel)] for sample `index`."""
  size = batch["source"].shape[1]
  g = generated
  draw = lambda image, kp: visualization.draw_keypoints(image, kp, kp_size, colormap)
  panels = [("source", draw(batch["source"][index], g["kp_source"]["value"][index]))]
  if "transformed_frame" in g:
    panels.append(("transformed", draw(g["transformed_frame"][index], g["kp_transformed"]["value"][index])))
  panels.append(("driving", draw(batch["driving"][index], g["kp_driving"]["value"][index])))
  if "deformed" in g:
    panels.append(("deformed", np.asarray(g["deformed"][index])))
  panels.append(("prediction", draw(g["prediction"][index], g["kp_driving"]["value"][index])))
  if "occlusion_map" in g:
    panels.append(("occlusion", _to_size(np.asarray(g["occlusion_map"][index]), size)))
  if "mask" in g:
    mask = np.asarray(g["mask"][index])  # (h, w, K+1)
    sparse = np.asarray(g["sparse_deformed"][index])  # (K+1, h, w, 3)
    k1 = mask.shape[-1]
    colors = np.concatenate([np.zeros((1, 3), np.float32), visualization.keypoint_colors(k1 - 1, colormap)])
    full = np.zeros((size, size, 3), np.float32)
    for k in range(k1):
      m = _to_size(mask[..., k:k + 1], size)
      panels.append(("warp 0 (bg)" if k == 0 else f"warp {k}", _to_size(sparse[k], size) * m))
      full += m * colors[k]
    panels.append(("masks", full))
  return [(label, np.clip(np.asarray(p, np.float32), 0, 1)) for label, p in panels]


def _label(text, width):
  image = Image.new("RGB", (width, LABEL_HEIGHT), (0, 0, 0))
  ImageDraw.Draw(image).text((2, 0), text, fill=(255, 255, 255), font=ImageFont.load_default())
  return np.asarray(image, np.float32) / 255.0


def _block(panels, columns):
  size = panels[0][1].shape[0]
  cell_h, cell_w = size + LABEL_HEIGHT, size + GAP
  rows = -(-len(panels) // columns)
  block = np.zeros((rows * cell_h, columns * cell_w - GAP, 3), np.float32)
  for i, (label, panel) in enumerate(panels):
    r, c = divmod(i, columns)
    y, x = r * cell_h, c * cell_w
    block[y:y + LABEL_HEIGHT, x:x + size] = _label(label, size)
    block[y + LABEL_HEIGHT:y + cell_h, x:x + size] = panel
  return block


def training_grid(batch, generated, max_samples=3, columns=6, kp_size=5, colormap="gist_rainbow"):
  """The grid image (H, W, 3) in [0, 1]: up to `max_samples` samples, one block of labelled panels each."""
  count = min(max_samples, batch["source"].shape[0])
  return _stack([_block(sample_panels(batch, generated, i, kp_size, colormap), columns) for i in range(count)])


def _stack(blocks):
  """The samples' blocks one under the other, a white band between them."""
  separator = np.ones((2 * GAP, blocks[0].shape[1], 3), np.float32)
  parts = []
  for block in blocks:
    parts += [block, separator]
  return np.concatenate(parts[:-1], axis=0)


def distillation_grid(batch, generated, max_samples=3, kp_size=5, colormap="gist_rainbow"):
  """The grid of a distillation: per sample one row source | teacher | student | real, with their keypoints."""
  count = min(max_samples, batch["source"].shape[0])
  draw = lambda image, kp: np.clip(np.asarray(visualization.draw_keypoints(image, kp, kp_size, colormap), np.float32),
                                   0, 1)
  g = generated
  blocks = []
  for i in range(count):
    panels = [("source", draw(batch["source"][i], g["kp_source"]["value"][i])),
              ("teacher", draw(g["teacher_prediction"][i], g["teacher_kp_driving"]["value"][i])),
              ("student", draw(g["prediction"][i], g["kp_driving"]["value"][i])),
              ("real", np.clip(np.asarray(batch["driving"][i], np.float32), 0, 1))]
    blocks.append(_block(panels, len(panels)))
  return _stack(blocks)
