"""The training image grid, like the official visualiser, for TensorBoard."""

import numpy as np

from fomm_tf import visualization


def _to_size(image, size):
  """Nearest-neighbour resize of (h, w, c) to (size, size, c) (sizes here are integer multiples)."""
  h, w = image.shape[:2]
  rows = (np.arange(size) * h // size).astype(int)
  cols = (np.arange(size) * w // size).astype(int)
  image = image[rows][:, cols]
  if image.shape[-1] == 1:
    image = np.repeat(image, 3, axis=-1)
  return image


def training_grid(batch, generated, index=0, kp_size=5, colormap="gist_rainbow"):
  """One row of panels for sample `index`: source+kp, transformed+kp, driving+kp, deformed, prediction+kp,
  occlusion, each sparse-deformed image weighted by its mask, and the colour-coded sum of the masks."""
  size = batch["source"].shape[1]
  g = {k: v for k, v in generated.items()}
  panels = [
      visualization.draw_keypoints(batch["source"][index], g["kp_source"]["value"][index], kp_size, colormap)]
  if "transformed_frame" in g:
    panels.append(visualization.draw_keypoints(g["transformed_frame"][index], g["kp_transformed"]["value"][index],
                                               kp_size, colormap))
  panels.append(visualization.draw_keypoints(batch["driving"][index], g["kp_driving"]["value"][index], kp_size,
                                             colormap))
  if "deformed" in g:
    panels.append(np.asarray(g["deformed"][index]))
  panels.append(visualization.draw_keypoints(g["prediction"][index], g["kp_driving"]["value"][index], kp_size,
                                             colormap))
  if "occlusion_map" in g:
    panels.append(_to_size(np.asarray(g["occlusion_map"][index]), size))
  if "mask" in g:
    mask = np.asarray(g["mask"][index])  # (h, w, K+1)
    sparse = np.asarray(g["sparse_deformed"][index])  # (K+1, h, w, 3)
    k1 = mask.shape[-1]
    colors = np.concatenate([np.zeros((1, 3), np.float32), visualization.keypoint_colors(k1 - 1, colormap)])
    full = np.zeros((size, size, 3), np.float32)
    for k in range(k1):
      m = _to_size(mask[..., k:k + 1], size)
      panels.append(_to_size(sparse[k], size) * m)
      full += m * colors[k]
    panels.append(full)
  panels = [np.clip(np.asarray(p, np.float32), 0, 1) for p in panels]
  return visualization.side_by_side(panels)
