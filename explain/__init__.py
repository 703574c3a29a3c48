"""Saliency maps for one image: which pixels made the model say what it said.

occlusion: model-agnostic, runs through any runtime's predict (the server sends its masked copies through the
batcher); gradcam: Grad-CAM on the last convolution block, needs the Keras model (TensorFlow runtime).
Every method returns a per-pixel map (227x227, values 0-1); `to_grid` and `overlay_png` turn it into what
the API answers. Importing this package imports neither TensorFlow nor OpenVINO.
"""

from explain.occlusion import occlusion_batch, occlusion_map
from explain.overlay import colorize, overlay_png, to_grid

METHODS = ("gradcam", "occlusion")
GRID = 16  # heatmap cells per side in API answers

__all__ = ["GRID", "METHODS", "colorize", "occlusion_batch", "occlusion_map", "overlay_png", "to_grid"]
