"""Build the similarity graphs of every version in a model repository into the graph cache,
ahead of the first start (the Docker image does this at build time, so that a container with
a read-only root opens them memory-mapped instead of building them at every start).

    python -m app.models.graphs MODEL_REPOSITORY [CACHE_DIR]

No TensorFlow: a graph is built from the version's index part alone.
"""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path

from app.contract.repository import model_names, verified_manifest, version_dirs
from app.contract.similarity import GRAPH_CACHE_DIR, GraphCache, SimilarityIndex

logger = logging.getLogger(__name__)


def prepare(repository: Path, cache: GraphCache) -> int:
    """Open or build the graph of every version that has an index; how many there were."""
    count = 0
    for name in model_names(repository):
        for version_dir in version_dirs(repository / name):
            manifest = verified_manifest(version_dir)
            if manifest.index is None:
                continue
            started = time.perf_counter()
            index = SimilarityIndex.load(version_dir, manifest.index, cache)
            how = "opened" if index.from_cache else "built"
            seconds = time.perf_counter() - started
            logger.info("%s/%s: graph %s in %.1f s", name, version_dir.name, how, seconds)
            count += 1
    return count


def main(argv: list[str]) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if not 1 <= len(argv) <= 2:
        logger.error("usage: python -m app.models.graphs MODEL_REPOSITORY [CACHE_DIR]")
        return 2
    repository = Path(argv[0])
    cache = GraphCache(Path(argv[1]) if len(argv) == 2 else repository / GRAPH_CACHE_DIR)
    prepare(repository, cache)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
