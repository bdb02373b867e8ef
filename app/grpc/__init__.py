"""The gRPC transport: a grpc.aio server in the service's process and event loop."""
