"""What every HTTP request passes through: access log, metrics, limits, API keys, error
rendering, the OpenAPI document, the demo page and the FastAPI dependencies."""
