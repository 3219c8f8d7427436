"""Images: types, item and batch transforms, ImageBlock, ImageDataLoaders and vision_learner."""
