"""The committed gRPC modules are what `make grpc-stubs` makes of the committed .proto."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from google.protobuf import descriptor_pb2

from app.protocols.oip.proto import inference_pb2, inference_pb2_grpc

ROOT = Path(__file__).resolve().parents[2]
PROTO = "app/protocols/oip/proto/inference.proto"


def test_the_messages_match_the_proto(tmp_path: Path) -> None:
    out = tmp_path / "set.pb"
    # In a process of its own: protoc inside pytest's (TensorFlow's protobuf loaded) crashes.
    command = ["-m", "grpc_tools.protoc", f"-I{ROOT}", f"--descriptor_set_out={out}", PROTO]
    subprocess.run([sys.executable, *command], cwd=ROOT, check=True)
    compiled = descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes()).file[0]
    _without_json_names(compiled)  # the generated module leaves them out
    committed = descriptor_pb2.FileDescriptorProto.FromString(
        inference_pb2.DESCRIPTOR.serialized_pb
    )
    assert committed == compiled


def _without_json_names(file: descriptor_pb2.FileDescriptorProto) -> None:
    messages = list(file.message_type)
    while messages:
        message = messages.pop()
        messages.extend(message.nested_type)
        for field in message.field:
            field.ClearField("json_name")


def test_the_service_has_every_call_of_the_proto() -> None:
    service = inference_pb2.DESCRIPTOR.services_by_name["GRPCInferenceService"]
    assert service.full_name == "inference.GRPCInferenceService"  # what Triton's clients call
    calls = {m.name for m in service.methods}
    assert calls == {
        "ServerLive",
        "ServerReady",
        "ModelReady",
        "ServerMetadata",
        "ModelMetadata",
        "ModelInfer",
    }
    servicer = inference_pb2_grpc.GRPCInferenceServiceServicer
    assert calls <= set(vars(servicer))


def test_the_messages_live_in_a_pool_of_their_own() -> None:
    """So that tritonclient's or KServe's modules, which define the same names in protobuf's
    default pool, can be imported in the same process (make grpc-stubs sees to it)."""
    from google.protobuf import descriptor_pool

    assert inference_pb2.DESCRIPTOR.pool is not descriptor_pool.Default()
    import tritonclient.grpc  # noqa: F401  (would raise on a duplicate symbol)
