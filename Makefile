# One-command workflows. Everything runs from the project venv (.venv).
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
MODEL_STORE ?= model_store
DATA ?=
SHARED := ../shared/data/cats_dogs
PORT ?= 8000

.PHONY: install test lint demo demo-model train evaluate serve bench soak clean bake hadolint

$(BIN)/activate: requirements.txt requirements-dev.txt
	@command -v $(PY) >/dev/null || { echo "need $(PY) (Python 3.11)"; exit 1; }
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip
	$(BIN)/pip install -r requirements-dev.txt
	touch $(BIN)/activate

install: $(BIN)/activate

lint: install
	$(BIN)/ruff check .

test: lint
	$(BIN)/python -m pytest

# A demo-quality model in ~10 minutes on 2 CPU cores: at most 1,000 photos per class, 6 epochs.
# DATA=dir uses a local folder-per-class dataset; otherwise the public archive is downloaded.
demo-model: install
	@if $(BIN)/python -c "import model_store,sys; sys.exit(0 if model_store.list_versions('$(MODEL_STORE)') else 1)"; then \
		echo "model store $(MODEL_STORE) already has a version; not training"; \
	else \
		data="$(DATA)"; \
		if [ -z "$$data" ]; then $(BIN)/python -m training download --dest data/cats_dogs && data=data/cats_dogs; fi; \
		$(BIN)/python -m training train --data-dir "$$data" --val-split 0.2 --model-store $(MODEL_STORE) \
			--epochs 6 --warmup-epochs 1 --bn-momentum 0.9 --max-per-class 1000 --verbose 2; \
	fi

demo: demo-model
	$(MAKE) serve

# The full recipe on the shared 2,000 photos, validated on the 500 shared validation photos.
train: install
	$(BIN)/python -m training train --data-dir $(or $(DATA),$(SHARED)/train) \
		--val-dir $(SHARED)/validation --model-store $(MODEL_STORE) --epochs 40 --learning-rate 5e-4 --bn-momentum 0.9

evaluate: install
	$(BIN)/python -m training evaluate --model-store $(MODEL_STORE) --data-dir $(SHARED)/validation

serve: install
	MODEL_STORE=$(MODEL_STORE) PORT=$(PORT) $(BIN)/gunicorn -c gunicorn.conf.py wsgi:app

bench: install
	$(BIN)/python -m bench --model-store $(MODEL_STORE)

soak: install
	$(BIN)/python -m bench.soak --model-store $(MODEL_STORE)

clean:
	rm -rf .pytest_cache .ruff_cache evaluation

# Copy the newest local version into bake/ so `docker build` puts it in the image as version 1.
bake: install
	rm -rf bake/alexnet
	v=$$($(BIN)/python -c "import model_store; print(model_store.latest_version('$(MODEL_STORE)'))") && \
		mkdir -p bake/alexnet && cp -r $(MODEL_STORE)/alexnet/$$v bake/alexnet/1 && rm -f bake/alexnet/1/*.png && \
		echo "baked $(MODEL_STORE)/alexnet/$$v as bake/alexnet/1"

hadolint: install
	$(BIN)/hadolint Dockerfile
