"""Member extensions with a meaning for every reader of shards."""

IMAGE_EXTENSIONS = ("jpg", "jpeg", "png", "webp")  # the image member of a sample, first found
