# One-command workflows. Everything runs from the project venv (.venv).
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
MODEL_STORE ?= model_store
DATA ?=
SHARED := ../shared/data/cats_dogs
EXTRA := ../shared/data/cats_dogs_extra
# Photos of other things (cars, flowers) for the "neither" answer; 30% of each kind is held out of training.
NEGATIVES ?= ../shared/data/not_cats_dogs
NEG_FLAG = $(if $(wildcard $(NEGATIVES)),--negatives $(NEGATIVES))
# The full recipe gives the negatives this share of every epoch (outlier exposure wants a large share),
# trains them as an extra "other" output, and adds generated images of no class (noise, flat colours,
# gradients, filled shapes) to them.
NEG_SHARE ?= 0.3
# Negative kinds held out whole (never trained on) so the report and the bench judge "neither" on kinds the
# model never saw; UNSEEN=0 trains on every kind. UNSEEN_SEED picks another fold of kinds.
UNSEEN ?= 10
UNSEEN_SEED ?= 1337
SYNTHETIC ?= 1200
TRAIN_FLAGS := --epochs 15 --warmup-epochs 1 --learning-rate 5e-4 --bn-momentum 0.9 --verbose 2
PORT ?= 8000

.PHONY: lock install test test-fast lint demo demo-model train evaluate serve bench soak clean bake hadolint base-image image image-train test-image

# Installs come from the lock files (every package pinned, with hashes); `make lock` remakes them from the
# requirements*.txt files, which name the direct dependencies.
$(BIN)/activate: requirements-dev.lock
	@command -v $(PY) >/dev/null || { echo "need $(PY) (Python 3.11)"; exit 1; }
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip
	$(BIN)/pip install --require-hashes -r requirements-dev.lock
	touch $(BIN)/activate

UV := .venv-lock/bin/uv
LOCK_FLAGS := --generate-hashes --python-version 3.11 --python-platform x86_64-manylinux_2_28 -q
lock:
	@test -x $(UV) || { $(PY) -m venv .venv-lock && .venv-lock/bin/pip install -q uv==0.9.9; }
	$(UV) pip compile requirements-serve.txt $(LOCK_FLAGS) -o requirements-serve.lock
	$(UV) pip compile requirements-serve.txt requirements-tensorflow.txt $(LOCK_FLAGS) -o requirements-serve-tensorflow.lock
	$(UV) pip compile requirements.txt $(LOCK_FLAGS) -o requirements-train.lock
	$(UV) pip compile requirements-beam.txt $(LOCK_FLAGS) -o requirements-beam.lock
	$(UV) pip compile requirements-dev.txt $(LOCK_FLAGS) -o requirements-dev.lock

install: $(BIN)/activate

lint: install
	$(BIN)/ruff check .

test: lint
	$(BIN)/python -m pytest

# Every test that trains nothing (no trained_store, no train/export runs): about a minute on 2 cores.
test-fast: lint
	$(BIN)/python -m pytest -m "not trains"

# A demo-quality model in <= 10 minutes of training: 2 epochs, each a fresh random subset of the photos cut to
# fit --time-budget at the speed measured at start-up (hosts differ up to 2x).
# DATA=dir uses a local folder-per-class dataset; else ../shared's photos (with the extra 16,000 when
# present); else the public archive is downloaded.
# DEMO_BUDGET: minutes of demo training (a slow host says at start-up how many would reach ~0.80).
DEMO_BUDGET ?= 11
# The demo is short of images: batch 64 (a fifth more images per minute than 32 on 2-core CPUs), the paper's
# two-group conv2/4/5 (1.2x the bf16 step) and, for 2 epochs, lighter regularization (crops of 75-100% of the
# photo, dropout 0.3): 0.758 -> 0.766 -> 0.810 in 10 minutes on one host; 11 minutes keep another seed above
# 0.80 too (0.788 -> 0.812; docs/results.md).
DEMO_FLAGS := --epochs 2 --warmup-epochs 0.3 --learning-rate 5e-4 --bn-momentum 0.9 --batch-size 64 --groups 2 \
	--crop-scale 0.75 --dropout 0.3 --time-budget $(DEMO_BUDGET) --verbose 2
demo-model: install
	@if $(BIN)/python -c "import model_store,sys; sys.exit(0 if model_store.list_versions('$(MODEL_STORE)') else 1)"; then \
		echo "model store $(MODEL_STORE) already has a version; not training"; \
	elif [ -n "$(DATA)" ]; then \
		$(BIN)/python -m training train --data-dir "$(DATA)" --val-split 0.2 --model-store $(MODEL_STORE) $(DEMO_FLAGS); \
	elif [ -d $(SHARED)/train ]; then \
		extra=""; [ -d $(EXTRA) ] && extra="--data-dir $(EXTRA)"; \
		$(BIN)/python -m training train --data-dir $(SHARED)/train $$extra --val-dir $(SHARED)/validation \
			$(NEG_FLAG) $(if $(NEG_FLAG),--synthetic-negatives $(SYNTHETIC)) --model-store $(MODEL_STORE) $(DEMO_FLAGS); \
	else \
		$(BIN)/python -m training download --dest data/cats_dogs && \
		$(BIN)/python -m training train --data-dir data/cats_dogs --val-split 0.2 --model-store $(MODEL_STORE) $(DEMO_FLAGS); \
	fi

demo: demo-model
	$(MAKE) serve

# The full recipe: 18,000 photos (2,000 full-size + 16,000 extra 200x200), validated on the 500 full-size
# validation photos. Interrupted? Run `make train RESUME=1` to continue from the last finished epoch.
# BUDGET=MINUTES fits the 15 epochs (each a random subset) into that much training on a slow host.
train: install
	$(BIN)/python -m training train --data-dir $(or $(DATA),$(SHARED)/train) --data-dir $(EXTRA) \
		--val-dir $(SHARED)/validation $(NEG_FLAG) $(if $(NEG_FLAG),--negatives-share $(NEG_SHARE)) \
		$(if $(NEG_FLAG),--unseen-kinds $(UNSEEN) --unseen-seed $(UNSEEN_SEED)) \
		--synthetic-negatives $(SYNTHETIC) --model-store $(MODEL_STORE) $(TRAIN_FLAGS) \
		$(if $(BUDGET),--time-budget $(BUDGET)) $(if $(RESUME),--resume)

evaluate: install
	$(BIN)/python -m training evaluate --model-store $(MODEL_STORE) --data-dir $(SHARED)/validation $(if $(TTA),--tta $(TTA))

serve: install
	MODEL_STORE=$(MODEL_STORE) PORT=$(PORT) $(BIN)/gunicorn -c gunicorn.conf.py wsgi:app

# The bench's peers get their own tools: wrk (Debian) as the load generator, BentoML in a venv of its own.
BENTO := .bench/bentoml-venv
bench: install $(BENTO)/bin/bentoml
	@command -v wrk >/dev/null || { [ "$$(id -u)" = 0 ] && apt-get install -y -q wrk >/dev/null; } || \
		echo "wrk not installed (apt-get install wrk): using the Python load generator"
	$(BIN)/python -m bench --model-store $(MODEL_STORE) --bentoml-python $(BENTO)/bin/python

$(BENTO)/bin/bentoml: bench/requirements-bentoml.txt
	$(PY) -m venv $(BENTO)
	$(BENTO)/bin/pip install -q -r bench/requirements-bentoml.txt
	touch $@

soak: install
	$(BIN)/python -m bench.drive.soak --model-store $(MODEL_STORE)

clean:
	rm -rf .pytest_cache .ruff_cache evaluation

# Copy the newest local version into bake/ (only the files its serving runtime reads) so the image build
# puts it in the image as version 1.
bake: install
	$(BIN)/python deploy/bake.py $(MODEL_STORE)

# Container images: Docker when an engine runs, else podman with deploy/podman/containers.conf.
IMAGE ?= localhost/alexnet-service
base-image:
	deploy/podman/base-image.sh

image:
	deploy/podman/build.sh $(IMAGE)

# python -m training as a container (Vertex AI custom training, Kubernetes); see deploy/README.md.
image-train:
	DOCKERFILE=Dockerfile.train deploy/podman/build.sh $(IMAGE)-train

# Build and run the image for real: a tiny model trained here (or TEST_STORE=...), mounted read-only, then
# baked in; prediction equal to in-process, 400 for junk, clean SIGTERM, exit 4 without a model.
TEST_STORE ?= .image-test/store
test-image: install
	@if [ "$(TEST_STORE)" = ".image-test/store" ] && [ ! -d $(TEST_STORE)/alexnet ]; then \
		$(BIN)/python -m training train --data-dir $(SHARED)/train --val-dir $(SHARED)/validation --max-per-class 20 \
			--epochs 1 --batch-size 8 --model-store $(TEST_STORE) --verbose 0; fi
	deploy/podman/build.sh $(IMAGE)
	$(BIN)/python deploy/bake.py $(TEST_STORE)
	deploy/podman/build.sh $(IMAGE)-baked
	rm -rf bake/alexnet
	$(BIN)/python deploy/podman/check_image.py --image $(IMAGE) --baked-image $(IMAGE)-baked --store $(TEST_STORE) \
		--photo $$(ls $(SHARED)/validation/dogs/*.jpg | head -1)

hadolint: install
	$(BIN)/hadolint Dockerfile
