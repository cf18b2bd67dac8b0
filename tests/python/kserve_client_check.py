"""KServe's Python SDK against a running server: `kserve_client_check.py ADDRESS PLAN.json OUT_DIR`.

Runs under .venv-kserve (scripts/setup.sh; kserve needs protobuf 6, the project's .venv has 4),
so it imports nothing of the project. tests/python/test_kserve_client.py starts the server,
writes the plan and compares what this writes with the project's own client.

The plan: {"models": [names], "missing_model": name, "unready_model": name, "requests": [{"model", "inputs": [{"name",
"datatype", "file"}], "outputs": [names] or null, "encoding": "raw" | "contents"}]}; each input is
a .npy file beside the plan (BYTES: an object array of bytes). KServe's own calls:
`kserve.InferenceGRPCClient` (is_server_live/ready, is_model_ready, infer with `kserve.InferRequest`
/ `InferInput` / `RequestedOutput`, answers read with `InferResponse.outputs[i].as_numpy()`), and the
SDK's generated v2 stub (`kserve.protocol.grpc.grpc_predict_v2_pb2_grpc`) for ServerMetadata and
ModelMetadata, which the client class does not wrap. "raw" sends the tensors in raw_input_contents
(`set_data_from_numpy`), "contents" as typed lists in InferTensorContents.

OUT_DIR/result.json: health, readiness, metadata (as dicts), each request's output names,
datatypes and shapes, or its gRPC error; OUT_DIR/response_<i>.npz: each request's outputs.
"""
import asyncio
import importlib.metadata
import json
import sys
from pathlib import Path

import grpc
import numpy as np
from google.protobuf.json_format import MessageToDict
from kserve import InferenceGRPCClient, InferInput, InferRequest
from kserve.protocol.infer_type import RequestedOutput
from kserve.protocol.grpc import grpc_predict_v2_pb2 as v2
from kserve.protocol.grpc.grpc_predict_v2_pb2_grpc import GRPCInferenceServiceStub


def infer_input(spec: dict, directory: Path, encoding: str) -> InferInput:
    array = np.load(directory / spec["file"], allow_pickle=spec["datatype"] == "BYTES")
    tensor = InferInput(name=spec["name"], shape=list(array.shape), datatype=spec["datatype"])
    if encoding == "raw":
        tensor.set_data_from_numpy(array, binary_data=True)
    else:
        tensor.set_data_from_numpy(array, binary_data=False)  # a flat list: InferTensorContents
    return tensor


def rpc_error(error: grpc.RpcError) -> dict:
    return {"code": error.code().name, "details": error.details()}


async def check(address: str, plan: dict, directory: Path, out: Path) -> dict:
    result: dict = {"sdk": importlib.metadata.version("kserve")}
    async with InferenceGRPCClient(address, timeout=30, retries=0) as client:
        result["live"] = await client.is_server_live()
        result["ready"] = await client.is_server_ready()
        result["model_ready"] = {name: await client.is_model_ready(name) for name in plan["models"]}
        result["unready_model_ready"] = await client.is_model_ready(plan["unready_model"])
        try:
            result["missing_model_ready"] = await client.is_model_ready(plan["missing_model"])
        except grpc.RpcError as error:
            result["missing_model_ready"] = rpc_error(error)
        responses = []
        for index, request in enumerate(plan["requests"]):
            inputs = [infer_input(spec, directory, request["encoding"]) for spec in request["inputs"]]
            # With raw tensors, the outputs are asked for as KServe's examples do (binary_data).
            parameters = {"binary_data": True} if request["encoding"] == "raw" else None
            outputs = [RequestedOutput(name, parameters) for name in request["outputs"]] if request["outputs"] else None
            infer_request = InferRequest(model_name=request["model"], infer_inputs=inputs, request_id=f"kserve-{index}",
                                         request_outputs=outputs)
            try:
                response = await client.infer(infer_request)
            except grpc.RpcError as error:
                responses.append({"error": rpc_error(error)})
                continue
            arrays = {tensor.name: tensor.as_numpy() for tensor in response.outputs}
            np.savez(out / f"response_{index}.npz", **arrays)
            responses.append({"model_name": response.model_name, "id": response.id,
                              "outputs": [{"name": tensor.name, "datatype": tensor.datatype,
                                           "shape": list(tensor.shape)} for tensor in response.outputs]})
        result["responses"] = responses

    async with grpc.aio.insecure_channel(address) as channel:
        stub = GRPCInferenceServiceStub(channel)
        metadata = await stub.ServerMetadata(v2.ServerMetadataRequest(), timeout=30)
        result["server_metadata"] = MessageToDict(metadata, preserving_proto_field_name=True)
        result["model_metadata"] = {}
        for name in plan["models"]:
            metadata = await stub.ModelMetadata(v2.ModelMetadataRequest(name=name), timeout=30)
            result["model_metadata"][name] = MessageToDict(metadata, preserving_proto_field_name=True)
    return result


def main(argv) -> int:
    if len(argv) != 4:
        print(f"usage: {argv[0]} ADDRESS PLAN.json OUT_DIR", file=sys.stderr)
        return 2
    address, plan_path, out = argv[1], Path(argv[2]), Path(argv[3])
    plan = json.loads(plan_path.read_text(encoding="utf-8"))
    result = asyncio.run(check(address, plan, plan_path.parent, out))
    (out / "result.json").write_text(json.dumps(result, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
