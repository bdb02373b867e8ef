"""The ceiling: the smallest FastAPI endpoint, served the same way as the service."""

from fastapi import FastAPI

app = FastAPI()


@app.get("/")
async def hello() -> dict[str, str]:
    return {"hello": "world"}
