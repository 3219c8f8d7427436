"""Data: items, splits, labels, type transforms, datasets, loaders and the DataBlock; knows nothing of images."""
