"""The ModelConfig RPC (Triton's model configuration extension, issue 13): for every model
of the example repository and the test fixtures, the answer is checked field by field
against the model's metadata and its config.pbtxt, and read once more by a wire-format
reader written from the field numbers Triton publishes, independent of our .proto.
Real server processes on loopback."""
from pathlib import Path

import grpc
import pytest

from server_process import ServerProcess
from torchbricks_serve.generated import grpc_service_pb2 as pb
from torchbricks_serve.generated import model_config_pb2 as config_pb
from google.protobuf import text_format

SERVICE = "/inference.GRPCInferenceService/"


def rpc(channel, method, request, response_type, **kwargs):
    call = channel.unary_unary(SERVICE + method, request_serializer=type(request).SerializeToString,
                               response_deserializer=response_type.FromString)
    return call(request, timeout=30, **kwargs)


def raw_config(channel, name: str) -> bytes:
    call = channel.unary_unary(SERVICE + "ModelConfig", request_serializer=pb.ModelConfigRequest.SerializeToString,
                               response_deserializer=None)
    return call(pb.ModelConfigRequest(name=name), timeout=30)


def wire_fields(data: bytes) -> list:
    """(field number, value) pairs of one protobuf message: varints as ints, length-delimited
    fields as bytes. Enough of the wire format for the fields ModelConfig uses."""
    fields, i = [], 0

    def varint():
        nonlocal i
        value = shift = 0
        while True:
            byte = data[i]
            i += 1
            value |= (byte & 0x7F) << shift
            shift += 7
            if byte < 0x80:
                return value

    while i < len(data):
        key = varint()
        number, wire_type = key >> 3, key & 7
        if wire_type == 0:
            fields.append((number, varint()))
        elif wire_type == 2:
            length = varint()
            fields.append((number, data[i:i + length]))
            i += length
        else:
            raise AssertionError(f"unexpected wire type {wire_type} for field {number}")
    return fields


def expected_config(folder: Path) -> config_pb.ModelConfig:
    path = folder / "config.pbtxt"
    return text_format.Parse(path.read_text(), config_pb.ModelConfig()) if path.is_file() else config_pb.ModelConfig()


def check_model(channel, name: str, folder: Path) -> None:
    metadata = rpc(channel, "ModelMetadata", pb.ModelMetadataRequest(name=name), pb.ModelMetadataResponse)
    config = rpc(channel, "ModelConfig", pb.ModelConfigRequest(name=name), pb.ModelConfigResponse).config
    declared = expected_config(folder)

    assert config.name == name and config.platform == "torchbricks" == metadata.platform
    max_batch = declared.max_batch_size if declared.HasField("max_batch_size") else 32
    assert config.max_batch_size == max_batch
    batching = max_batch > 0

    def same_tensors(ours, theirs):
        assert [t.name for t in ours] == [t.name for t in theirs]
        for tensor, meta in zip(ours, theirs):
            # An undeclared type (a package exported without specs) is Triton's TYPE_INVALID.
            expected = {"BYTES": "TYPE_STRING", "": "TYPE_INVALID"}.get(meta.datatype, f"TYPE_{meta.datatype}")
            assert pb.DataType.Name(tensor.data_type) == expected, (name, tensor.name)
            assert list(tensor.dims) == (list(meta.shape[1:]) if batching else list(meta.shape)), (name, tensor.name)

    same_tensors(config.input, metadata.inputs)
    same_tensors(config.output, metadata.outputs)

    if batching:
        dynamic = config.dynamic_batching
        assert list(dynamic.preferred_batch_size) == list(declared.dynamic_batching.preferred_batch_size)
        assert dynamic.max_queue_delay_microseconds == declared.dynamic_batching.max_queue_delay_microseconds
        assert dynamic.default_queue_policy.max_queue_size == (declared.dynamic_batching.max_queue_size or 4096)
    else:
        assert not config.HasField("dynamic_batching")
    groups = declared.instance_group or [config_pb.InstanceGroup(kind=config_pb.InstanceGroup.KIND_CPU, count=1)]
    assert [(g.kind, g.count) for g in config.instance_group] == \
        [(pb.ModelInstanceGroup.KIND_CPU, sum(max(g.count, 1) for g in groups))]
    if declared.HasField("version_policy"):
        assert config.version_policy.SerializeToString() == declared.version_policy.SerializeToString()
    else:
        assert config.version_policy.latest.num_versions == 1
    assert {k: v.string_value for k, v in config.parameters.items()} == dict(declared.parameters)

    # Read again from the raw bytes with Triton's published numbers: ModelConfigResponse.config
    # = 1; ModelConfig name = 1, platform = 2, max_batch_size = 4, input = 5, output = 6;
    # ModelInput/ModelOutput name = 1, data_type = 2 (TYPE_FP32 = 11, TYPE_STRING = 13).
    ((number, body),) = wire_fields(raw_config(channel, name))
    assert number == 1
    fields = wire_fields(body)
    assert (1, name.encode()) in fields and (2, b"torchbricks") in fields
    assert dict((n, v) for n, v in fields if n == 4).get(4, 0) == max_batch
    for tag, tensors in ((5, metadata.inputs), (6, metadata.outputs)):
        read = [dict(wire_fields(v)) for n, v in fields if n == tag]
        assert [r[1].decode() for r in read] == [t.name for t in tensors]
        codes = {"FP32": 11, "BYTES": 13, "INT64": 9, "UINT8": 2, "FP64": 12, "BOOL": 1, "INT32": 8}
        for r, t in zip(read, tensors):
            if t.datatype in codes:
                assert r[2] == codes[t.datatype], (name, t.name)


def ready_models(channel) -> list:
    index = rpc(channel, "RepositoryIndex", pb.RepositoryIndexRequest(ready=True), pb.RepositoryIndexResponse)
    return sorted({model.name for model in index.models})


@pytest.mark.parametrize("which", ["examples", "fixtures"])
def test_model_config_matches_metadata_and_config_for_every_model(which, request):
    repository = request.getfixturevalue("example_repository" if which == "examples" else "fixture_repository")
    with ServerProcess(repository) as server, grpc.insecure_channel(server.address) as channel:
        names = ready_models(channel)
        assert len(names) >= (2 if which == "examples" else 10)
        for name in names:
            check_model(channel, name, repository / name)
        extensions = rpc(channel, "ServerMetadata", pb.ServerMetadataRequest(), pb.ServerMetadataResponse).extensions
        assert "model_configuration" in extensions


def test_model_config_of_a_configured_model_and_errors(fixture_repository, tmp_path):
    repository = tmp_path / "repo"
    repository.mkdir()
    import shutil
    shutil.copytree(fixture_repository / "readme_dummy", repository / "tuned")
    (repository / "tuned" / "config.pbtxt").write_text(
        "max_batch_size: 16\n"
        "version_policy { all {} }\n"
        "dynamic_batching { preferred_batch_size: [4, 8] max_queue_delay_microseconds: 1500 "
        "max_queue_size: 100 default_timeout_microseconds: 250000 }\n"
        "instance_group { kind: KIND_CPU count: 2 intra_op_threads: 1 }\n"
        'parameters { key: "parallel_branches" value: "true" }\n')
    shutil.copytree(fixture_repository / "readme_dummy", repository / "unbatched")
    (repository / "unbatched" / "config.pbtxt").write_text("max_batch_size: 0\n")
    with ServerProcess(repository) as server, grpc.insecure_channel(server.address) as channel:
        check_model(channel, "tuned", repository / "tuned")
        check_model(channel, "unbatched", repository / "unbatched")
        config = rpc(channel, "ModelConfig", pb.ModelConfigRequest(name="tuned"), pb.ModelConfigResponse).config
        assert config.dynamic_batching.default_queue_policy.default_timeout_microseconds == 250000
        assert config.version_policy.HasField("all")
        assert config.instance_group[0].count == 2
        assert config.parameters["parallel_branches"].string_value == "true"
        for request, code in ((pb.ModelConfigRequest(name="nope"), grpc.StatusCode.NOT_FOUND),
                              (pb.ModelConfigRequest(name="tuned", version="7"), grpc.StatusCode.NOT_FOUND),
                              (pb.ModelConfigRequest(name="../tuned"), grpc.StatusCode.NOT_FOUND)):
            with pytest.raises(grpc.RpcError) as error:
                rpc(channel, "ModelConfig", request, pb.ModelConfigResponse)
            assert error.value.code() == code, (request, error.value.details())


def test_model_config_group_can_be_restricted(fixture_repository):
    flags = ("--grpc-restricted-protocol", "model-config:cfg=k")
    with ServerProcess(fixture_repository, *flags) as server, grpc.insecure_channel(server.address) as channel:
        with pytest.raises(grpc.RpcError) as error:
            rpc(channel, "ModelConfig", pb.ModelConfigRequest(name="readme_dummy"), pb.ModelConfigResponse)
        assert error.value.code() == grpc.StatusCode.PERMISSION_DENIED
        answer = rpc(channel, "ModelConfig", pb.ModelConfigRequest(name="readme_dummy"), pb.ModelConfigResponse,
                     metadata=(("triton-grpc-protocol-cfg", "k"),))
        assert answer.config.name == "readme_dummy"
