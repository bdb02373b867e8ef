"""`latentserve` / `python -m app`: validate settings, configure logging, run uvicorn."""

from __future__ import annotations

import logging
import sys

import uvicorn
from pydantic import ValidationError

from app.settings import Settings


def main() -> int:
    try:
        settings = Settings()
    except ValidationError as err:
        problems = "; ".join(
            f"LATENTSERVE_{'_'.join(map(str, e['loc'])).upper() or '(settings)'}: {e['msg']}"
            for e in err.errors()
        )
        print(f"latentserve: bad configuration: {problems}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    uvicorn.run(
        "app.main:app_from_env",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        log_level=settings.log_level,
        timeout_graceful_shutdown=30,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
