"""Serving a version through LiteRT: its operations' flatbuffers, without TensorFlow.

A version exported with LiteRT graphs (manifest `litert`, written by training/litert.py from
the same SavedModels) is served here by the TensorFlow Lite interpreter of PyPI's
`ai-edge-litert`: no TensorFlow import, so a worker holds about a fifth of the memory, starts
in well under a second, and a call costs about a quarter of TensorFlow's fixed cost per call
(docs/benchmarks.md, "Serving without TensorFlow"; `bench/runtimes.py`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from ai_edge_litert.interpreter import Interpreter

from app.contract.embedding import EmbeddingSpace
from app.contract.ood import OodScorer
from app.contract.repository import OPERATION_HEADS, LiteRTSpec, Manifest, RepositoryError
from app.contract.similarity import GraphCache, SimilarityIndex
from app.core.jobs import NamedByManifest, Operation, Outputs
from app.models.loaded import Extras, handed_on, warm_up


CHUNK = 32
"""Most images per interpreter call. An interpreter keeps the activations' arena of the largest
batch it has seen; 32 images run as many images/s as 128 or 512 do (`bench/runtimes.py`) and
keep each of a version's four arenas a quarter of a 128-image one (`bench/memory.py --runtime
litert`)."""


@dataclass(eq=False)
class Graph:
    """One operation's interpreter. An interpreter is not thread-safe and holds its tensors'
    shapes, so calls take turns (the batcher makes them one at a time anyway) and the input
    is resized only when the batch size changes."""

    interpreter: Interpreter
    names: list[str]
    _input: int  # tensor indices, looked up once: the interpreter builds its details per call
    _outputs: list[int]
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _shape: tuple[int, ...] = ()

    @classmethod
    def open(cls, path: Path, names: list[str], threads: int) -> Graph:
        interpreter = Interpreter(model_path=str(path), num_threads=threads or None)
        (given,) = interpreter.get_input_details()
        outputs = [output["index"] for output in interpreter.get_output_details()]
        if len(outputs) != len(names):
            raise RepositoryError(f"{path}: {len(outputs)} outputs, the manifest names {names}")
        return cls(interpreter, names, given["index"], outputs)

    def __call__(self, pixels: np.ndarray) -> dict[str, np.ndarray]:
        """The outputs for `pixels`, in calls of at most CHUNK images."""
        chunks = [self._call(pixels[i : i + CHUNK]) for i in range(0, len(pixels), CHUNK)]
        if len(chunks) == 1:
            return chunks[0]
        return {name: np.concatenate([c[name] for c in chunks]) for name in self.names}

    def _call(self, pixels: np.ndarray) -> dict[str, np.ndarray]:
        with self._lock:
            interpreter = self.interpreter
            if pixels.shape != self._shape:
                interpreter.resize_tensor_input(self._input, pixels.shape)
                interpreter.allocate_tensors()
                self._shape = pixels.shape
            interpreter.set_tensor(self._input, pixels)
            interpreter.invoke()
            made = [interpreter.get_tensor(index) for index in self._outputs]
        return dict(zip(self.names, made, strict=True))


@dataclass(eq=False)  # compared and hashed by identity, as Model asks
class LiteRTVersion(NamedByManifest):
    """A loaded, warmed-up version served by LiteRT (app.core.jobs.Model); thread-safe."""

    manifest: Manifest
    path: Path
    graphs: dict[str, Graph]
    index: SimilarityIndex | None = None
    ood: OodScorer | None = None
    space: EmbeddingSpace | None = None

    def run(self, operation: Operation, pixels: np.ndarray) -> Outputs:
        """uint8 (n, 28, 28) -> the operation's outputs, in one interpreter call."""
        return handed_on(operation, self.graphs[operation](pixels), self.ood)


def load_litert_encoder(
    path: Path, manifest: Manifest, threads: int = 1
) -> Callable[[np.ndarray], np.ndarray]:
    """A version's encoder alone (its `embed` graph), for bulk embedding on other machines
    (latentserve/ray_engine.py): uint8 (n, 28, 28) -> float32 (n, latent_dim), as /embed."""
    spec = _spec(path, manifest)
    graph = Graph.open(path / spec.files["embed"], spec.outputs["embed"], threads)
    return lambda pixels: graph(pixels)["latent"]


def _spec(path: Path, manifest: Manifest) -> LiteRTSpec:
    if manifest.litert is None:
        raise RepositoryError(
            f"{path}: no LiteRT graphs; add them with `python -m training litert --model-dir "
            f"{path}`, or serve it with LATENTSERVE_RUNTIME=tensorflow"
        )
    if missing := set(OPERATION_HEADS) - set(manifest.litert.files):
        raise RepositoryError(f"{path}: no LiteRT graph for {sorted(missing)}")
    return manifest.litert


def load_litert_version(
    path: Path, manifest: Manifest, graph_cache: GraphCache | None = None, threads: int = 1
) -> LiteRTVersion:
    """Open the version's flatbuffers (checksum-verified with the rest of it) and its optional
    parts, and answer one warm-up call per graph; `threads`: the interpreter's (0: its own
    choice)."""
    spec = _spec(path, manifest)
    graphs = {
        operation: Graph.open(path / spec.files[operation], spec.outputs[operation], threads)
        for operation in OPERATION_HEADS
    }
    extras = Extras.load(path, manifest, graph_cache)
    model = LiteRTVersion(manifest, path, graphs, extras.index, extras.ood, extras.space)
    warm_up(model, path, "LiteRT")
    return model
