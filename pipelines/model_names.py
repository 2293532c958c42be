"""How a model is named on the command line, importable without torch: the checks made before
a run starts read it, and only a run that embeds loads `pipelines.embedders`."""

TIMM_PREFIX = "timm:"  # timm:NAME is a timm image model; any other name is open_clip's
