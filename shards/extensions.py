"""Member extensions with a meaning for every reader of shards."""

# The image member of a sample (the first found, in member order): every common format Pillow
# decodes, as webdataset's decoders accept them. Anything else is "no image member", naming
# the extensions the sample has.
IMAGE_EXTENSIONS = (
    "jpg", "jpeg", "jpe", "jfif", "png", "apng", "webp", "gif", "bmp", "dib", "tif", "tiff",
    "ppm", "pgm", "pbm", "pnm", "tga", "ico", "jp2",
)  # fmt: skip
