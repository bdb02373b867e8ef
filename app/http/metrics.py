"""Prometheus metrics (prometheus-client); app.http.access records every request into them.

Each app has its own CollectorRegistry, so several apps (tests) never share counters. With
several uvicorn workers, each worker reports its own numbers.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from app.pipeline.batcher import BatchStats

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "latentserve_requests",
            "HTTP requests by endpoint, model, version and status",
            ["endpoint", "model", "version", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "latentserve_request_seconds",
            "HTTP request latency",
            ["endpoint"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.queue_time = Histogram(
            "latentserve_queue_seconds",
            "time from joining the batch queue to the model call (decoding included)",
            ["model", "version", "operation"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.inference_time = Histogram(
            "latentserve_inference_seconds",
            "duration of one batched model call",
            ["model", "version", "operation"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.batch_images = Histogram(
            "latentserve_batch_images",
            "images per model call",
            ["model", "version", "operation"],
            buckets=BATCH_BUCKETS,
            registry=self.registry,
        )
        self.queue_depth = Gauge(
            "latentserve_queue_images",
            "images waiting in a batch queue",
            ["model", "version", "operation"],
            registry=self.registry,
        )

    def batch_stats(self, model: str, version: int, operation: str) -> BatchStats:
        labels = (model, str(version), operation)
        batch_images = self.batch_images.labels(*labels)
        inference = self.inference_time.labels(*labels)
        depth = self.queue_depth.labels(*labels)
        queued = self.queue_time.labels(*labels)

        def on_batch(images: int, seconds: float) -> None:
            batch_images.observe(images)
            inference.observe(seconds)

        return BatchStats(on_batch=on_batch, on_depth=depth.set, on_queued=queued.observe)
