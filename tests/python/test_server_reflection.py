"""Server reflection is on: a client with no .proto files lists the services and gets the
descriptor of inference.GRPCInferenceService, as grpcurl does."""
import grpc
from google.protobuf import descriptor_pb2

from torchbricks_serve.generated.grpc.reflection.v1alpha import reflection_pb2

METHOD = "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"


def _ask(address, requests):
    with grpc.insecure_channel(address) as channel:
        call = channel.stream_stream(METHOD, request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
                                     response_deserializer=reflection_pb2.ServerReflectionResponse.FromString)
        return list(call(iter(requests), timeout=30))


def test_reflection_lists_every_service(server):
    [answer] = _ask(server.address, [reflection_pb2.ServerReflectionRequest(list_services="")])
    names = [service.name for service in answer.list_services_response.service]
    services = set(names)
    assert {"inference.GRPCInferenceService", "torchbricks.BrickService", "grpc.health.v1.Health"} <= services
    # Each once: ModelInfer's raw-bytes handler belongs to the inference service itself.
    assert len(names) == len(services), names


def test_reflection_describes_the_inference_service(server):
    [answer] = _ask(server.address, [reflection_pb2.ServerReflectionRequest(
        file_containing_symbol="inference.GRPCInferenceService")])
    files = [descriptor_pb2.FileDescriptorProto.FromString(raw)
             for raw in answer.file_descriptor_response.file_descriptor_proto]
    methods = {method.name for f in files for service in f.service if service.name == "GRPCInferenceService"
               for method in service.method}
    assert {"ModelInfer", "ModelMetadata", "ModelStreamInfer", "RepositoryIndex"} <= methods
