# AlexNet prediction service for Google Cloud Run (or any container platform).
# Build:  docker build -t alexnet-service .
# Model:  bake one with `make bake` before building, or run with MODEL_STORE=gs://bucket/prefix.
# The image serves OpenVINO models without TensorFlow; for stores whose versions have only alexnet.h5,
# build with --build-arg WITH_TENSORFLOW=1.

# Any image with Python 3.11 (python, venv) and useradd; `make base-image` builds a Debian stand-in where
# Docker Hub cannot be reached.
ARG BASE_IMAGE=python:3.11-slim

FROM ${BASE_IMAGE} AS build
ARG WITH_TENSORFLOW=0
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
# Requirements first: this layer is rebuilt only when the lock files change. Every package is pinned with
# its hashes (make lock).
COPY requirements-serve.lock requirements-serve-tensorflow.lock /tmp/
RUN if [ "$WITH_TENSORFLOW" = "1" ]; then lock=/tmp/requirements-serve-tensorflow.lock; \
    else lock=/tmp/requirements-serve.lock; fi \
    && /opt/venv/bin/pip install --no-cache-dir --require-hashes -r "$lock"
# The service compiles IR for the CPU only: OpenVINO's GPU and NPU plugins, their kernel cache and the
# frontends of other model formats (ONNX, TensorFlow, PyTorch, ...) are ~80 MB it never loads; pip and
# setuptools (nothing is installed after this stage) and numpy's own test suites ~40 MB more. Only
# /opt/venv reaches the final image, so deleting here shrinks it; tests/test_container.py
# checks that the image still serves what the process serves.
RUN sp=/opt/venv/lib/python3.11/site-packages \
    && rm -rf "$sp/openvino/libs/libopenvino_intel_gpu_plugin.so" \
        "$sp/openvino/libs/libopenvino_intel_npu_plugin.so" "$sp/openvino/libs/cache.json" \
    && find "$sp/openvino/libs" -name 'libopenvino_*_frontend.so*' ! -name 'libopenvino_ir_frontend.so*' -delete \
    && find "$sp/numpy" -type d -name tests -prune -exec rm -rf {} + \
    && /opt/venv/bin/python -m pip uninstall -y -q pip setuptools

FROM ${BASE_IMAGE}
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PATH=/opt/venv/bin:$PATH \
    PORT=8080 \
    MODEL_STORE=/srv/models \
    MODEL_CACHE_DIR=/tmp/model-cache \
    HOME=/tmp \
    TF_CPP_MIN_LOG_LEVEL=2
# HOME=/tmp: with a read-only root (--read-only, Cloud Run's sandbox) the only writable place is the /tmp
# tmpfs; gunicorn's control socket and OpenVINO's telemetry id go there.
RUN useradd --create-home --uid 10001 --user-group --shell /usr/sbin/nologin app
WORKDIR /srv/app
COPY --from=build /opt/venv /opt/venv
COPY app/ app/
COPY model_store/ model_store/
COPY runtimes/ runtimes/
COPY settings/ settings/
COPY explain/ explain/
COPY prediction_log/ prediction_log/
COPY api_keys/ api_keys/
COPY wsgi.py gunicorn.conf.py ./
# Bytecode compiled once here: the root may be read-only and PYTHONDONTWRITEBYTECODE is set, so otherwise
# every worker start would compile the app's modules again.
RUN python -m compileall -q /srv/app
# bake/ holds only a README unless `make bake` put a model version there on purpose.
COPY bake/ /srv/models/
USER 10001:10001
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=3s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('PORT', '8080'), timeout=2)"]
CMD ["gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"]
