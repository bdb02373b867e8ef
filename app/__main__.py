"""`latentserve` / `python -m app`: validate settings, configure logging, run uvicorn."""

from __future__ import annotations

import signal
import sys

import uvicorn
from pydantic import ValidationError

from app.logs import configure_logging
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
    configure_logging(settings.log_level, settings.log_json)
    # uvicorn drains in-flight requests on SIGTERM, then re-raises the signal for the
    # handler that was in place before it; a no-op one lets a graceful stop exit 0.
    signal.signal(signal.SIGTERM, lambda signum, frame: None)
    uvicorn.run(
        "app.main:app_from_env",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        log_level=settings.log_level,
        log_config=None,  # keep the logging configured above (text or JSON) for uvicorn too
        access_log=False,  # app.http.access writes one structured line per request instead
        timeout_graceful_shutdown=30,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
