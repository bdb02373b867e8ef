# Two entry points for a fresh machine: `make run` (serve the shipped models on :8000) and
# `make test` (everything CI checks). Both create .venv and install the project first.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install run test lint datasets browser wrk docker-test train-all bench soak clean grpc-stubs

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

install: $(STAMP)

run: install
	$(BIN)/latentserve

datasets: install
	PATH="$(CURDIR)/$(BIN):$$PATH" scripts/install-datasets.sh

# The demo page tests drive Debian's chromium (Playwright's own browser download is not used).
browser:
	command -v chromium >/dev/null || apt-get install -y -qq chromium >/dev/null

# tests/bench runs the load generator the benchmarks use.
wrk:
	command -v wrk >/dev/null || apt-get install -y -qq wrk >/dev/null

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy app training latentserve

test: lint datasets browser wrk
	$(BIN)/pytest

# Build the image and run it and both compose profiles on a real Docker engine, which this
# starts and stops itself (needs root; about 6 minutes; see docs/deployment.md).
docker-test: install datasets
	PYTEST=$(BIN)/pytest scripts/docker-test.sh

# Retrain the shipped models with the default configuration (about 30 minutes on 2 cores).
train-all: datasets
	$(BIN)/python -m training train --dataset fashion-mnist --out models
	$(BIN)/python -m training train --dataset mnist --out models --index-images
	# The few-label model: a head on 10 labels per class, on the new Fashion-MNIST encoder.
	$(BIN)/python -m training train --dataset fashion-mnist --labels-per-class 10 \
	    --encoder-from "$$(ls -d models/fashion-mnist/[0-9]* | sort -t/ -k3 -n | tail -n 1)" \
	    --name fashion-mnist-10 --out models

# Throughput benchmark against same-run baselines and the peers (BentoML, KServe, MLServer, a
# plain FastAPI route; each in its own virtualenv under bench/out/peers, made from PyPI on the
# first run), then what embedding consumers get (bulk embedding, similarity search, memory per
# version), start-up time against `import tensorflow` and memory per start-up step, gRPC beside
# REST (h2load) with each transport's own ceiling, and what each embedding encoding keeps.
# Needs wrk and h2load; loopback only; ~50 minutes (plus ~5 for the first run's virtualenvs).
bench: install
	command -v wrk >/dev/null || apt-get install -y -qq wrk
	command -v h2load >/dev/null || apt-get install -y -qq nghttp2-client
	$(BIN)/python bench/run.py
	$(BIN)/python bench/consumers.py
	$(BIN)/python bench/transports.py
	$(BIN)/python bench/grpc_bare.py
	$(BIN)/python bench/encodings.py
	$(BIN)/python bench/startup.py
	$(BIN)/python bench/memory.py

# Bounded soak test: >= 100,000 mixed requests at 64 connections, loopback only (~6 minutes).
soak: install
	command -v wrk >/dev/null || apt-get install -y -qq wrk
	$(BIN)/python bench/soak.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache

# Regenerate the gRPC modules from app/protocols/oip/proto/inference.proto (committed; a test
# checks they match the .proto). The messages go into a descriptor pool of their own: the
# protocol's names (inference.ModelInferRequest, ...) are also registered in protobuf's default
# pool by tritonclient's and KServe's modules, and one pool refuses a second definition.
grpc-stubs: install
	$(BIN)/python -m grpc_tools.protoc -I. --python_out=. --pyi_out=. --grpc_python_out=. \
	    app/protocols/oip/proto/inference.proto
	sed -i 's/_descriptor_pool.Default().AddSerializedFile/_descriptor_pool.DescriptorPool().AddSerializedFile/' \
	    app/protocols/oip/proto/inference_pb2.py
