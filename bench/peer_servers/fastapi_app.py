"""Peer: the plain FastAPI route anyone would write first. One model call per request, in
FastAPI's thread pool (a `def` endpoint), Pillow decoding, uvicorn's access log as shipped.

    uvicorn fastapi_app:app --port N
"""

from __future__ import annotations

from typing import Any

from composed import Classifier, answer, decode_png
from fastapi import FastAPI, File

app = FastAPI()
model = Classifier()


@app.post("/classify")
def classify(file: bytes = File()) -> dict[str, Any]:
    return answer(model.classify(decode_png(file)[None]))[0]
