"""Images: types, item and batch transforms, ImageBlock, ImageDataLoaders and vision_learner."""
# Importing any part of blocklearn.vision registers what an export may name (its transforms, model factories and
# torchvision's builders), so `load_learner` reads a vision export whatever module the caller imported.
from blocklearn.vision import (augment, core, efficientnet, item_augment, mask, models, normalize,  # noqa: F401
                               points, resize, timm_models, unet)
