"""The `latentserve` command.

    latentserve                  serve (the service; needs `latentserve[server]`)
    latentserve serve            the same
    latentserve embed SRC --out OUT [--model NAME] [--version V] [--url URL]
    latentserve embed SRC --out OUT --engine ray [--address ADDR] [--repository DIR]

`embed` is the bulk embedding client (latentserve.bulk): only the base install is needed.
With `--engine ray` a Ray cluster runs the encoder itself (latentserve.ray_engine; needs
`latentserve[ray]`), with the same output.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from pathlib import Path

from latentserve.bulk import embed_folder
from latentserve.client import DEFAULT_URL, AsyncClient
from latentserve.errors import LatentServeError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="latentserve", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command")
    commands.add_parser("serve", help="run the service (LATENTSERVE_* settings)")
    embed = commands.add_parser("embed", help="embed a folder or array of images into a file")
    embed.add_argument("src", type=Path, help="folder of images, .npy/.npz, IDX file or image")
    embed.add_argument("--out", type=Path, required=True, help="OUT.parquet or OUT.npy")
    embed.add_argument("--model", help="model name (default: the service's default model)")
    embed.add_argument("--version", type=int, help="model version (default: highest served)")
    embed.add_argument("--url", default=os.environ.get("LATENTSERVE_URL", DEFAULT_URL))
    embed.add_argument(
        "--api-key", default=os.environ.get("LATENTSERVE_API_KEY"), help="or LATENTSERVE_API_KEY"
    )
    embed.add_argument(
        "--concurrency",
        type=int,
        default=8,
        help="requests in flight (8: as many as the benchmark's wrk keeps in flight)",
    )
    embed.add_argument(
        "--engine",
        choices=("service", "ray"),
        default="service",
        help="service: a running service embeds (--url); ray: a Ray cluster runs the encoder",
    )
    embed.add_argument("--address", help="ray: the cluster (default: start a local one)")
    embed.add_argument(
        "--repository",
        type=Path,
        default=Path(os.environ.get("LATENTSERVE_MODEL_REPOSITORY", "models")),
        help="ray: the model repository, at the same path on every node",
    )
    embed.add_argument("--actors", type=int, help="ray: encoder actors (default: one per node)")
    return parser


def serve() -> int:
    try:
        from app.__main__ import main as run_service
    except ImportError as err:
        print(
            f"latentserve: the service is not installed ({err}); pip install 'latentserve[server]'",
            file=sys.stderr,
        )
        return 2
    return run_service()


async def embed(args: argparse.Namespace) -> tuple[int, int]:
    async with AsyncClient(args.url, api_key=args.api_key) as client:
        model = args.model or (await client.model()).name
        return await embed_folder(args.src, args.out, client, model, args.version, args.concurrency)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command in (None, "serve"):
        return serve()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        if args.engine == "ray":
            from latentserve.ray_engine import embed_with_ray

            done, skipped = embed_with_ray(
                args.src, args.out, args.repository, args.model, args.version, args.address,
                args.actors,
            )  # fmt: skip
        else:
            done, skipped = asyncio.run(embed(args))
    except (LatentServeError, OSError, ValueError) as err:
        print(f"latentserve embed: {err}", file=sys.stderr)
        return 1
    print(f"{done} embeddings in {args.out}" + (f"; {skipped} skipped" if skipped else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
