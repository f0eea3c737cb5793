# syntax=docker/dockerfile:1
# wfsearch on a CUDA PyTorch base: `docker build -t wfsearch .`, then see "Docker" in README.md.
# The base image already holds a CUDA build of torch and torchvision; pip keeps them when they meet
# pyproject's floors (torch>=2.14) and otherwise installs newer ones; it adds timm, Optuna, Ray Tune
# and the rest. Override the base with
# --build-arg BASE_IMAGE=... (any pytorch/pytorch *-runtime tag with Python >= 3.11).
ARG BASE_IMAGE=pytorch/pytorch:2.7.1-cuda12.8-cudnn9-runtime
FROM ${BASE_IMAGE}

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore

WORKDIR /opt/wfsearch
COPY pyproject.toml README.md ./
COPY wfsearch ./wfsearch
# DL3013 (pin versions) does not apply: this installs the package in this folder.
# hadolint ignore=DL3013
RUN pip install --no-cache-dir ".[dashboard]" && wfsearch --version

# Mount the design spaces, studies/ and the data here (see README.md); studies persist on the host.
WORKDIR /work
ENTRYPOINT ["wfsearch"]
CMD ["--help"]
