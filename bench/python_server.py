#!/usr/bin/python3
"""python_server: the alternative a PyTorch team would write first, for bench/floor_benchmark.

A grpcio server of `inference.GRPCInferenceService/ModelInfer` (plus ServerLive/ServerReady)
that serves the benchmark's two models, built in Python with the real torchbricks library
exactly as examples/build_example_repository.py builds them for export (the README's
classifier and resnet18 example; plain dicts where torchbricks cannot be imported), and runs
them eagerly through `BrickCollection` in the INFERENCE stage's tags. Requests of one model
are batched the simple way: a thread per model takes the first waiting request and every
other one already queued (up to the model's max_batch_size: 8 and 32, as in the example
repository's configs), concatenates them, runs one forward under `torch.inference_mode()`
and answers each request with its rows of the terminal outputs as raw FP32 contents.

    .venv/bin/python bench/python_server.py --grpc-port 0 [--threads N]

Prints "serving gRPC on 127.0.0.1:PORT" once listening; exits 0 on SIGTERM or SIGINT.
"""
import argparse
import queue
import signal
import sys
import threading
from concurrent import futures
from pathlib import Path
from typing import Dict, List, Set

import grpc
import numpy as np
import torch

CHECKOUT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(CHECKOUT / "clients" / "python" / "client"), str(CHECKOUT / "examples")]

import build_example_repository as examples  # noqa: E402
from torchbricks_serve.generated import grpc_service_pb2 as pb  # noqa: E402

MAX_BATCH = {"classifier": 8, "resnet18_classifier": 32}


class Model:
    """One collection, its input name, terminal outputs and batching thread."""

    def __init__(self, name: str, collection, input_name: str, tags) -> None:
        self.name = name
        self.collection = collection.eval()
        self.input_name = input_name
        self.tags = tags
        self.pending: "queue.Queue" = queue.Queue()
        with torch.inference_mode():
            example = torch.rand(1, *((3, 100, 200) if name == "classifier" else (3, 32, 32)))
            outputs = self.run({input_name: example})
        self.outputs: List[str] = sorted(outputs)
        threading.Thread(target=self._batches, daemon=True).start()

    def run(self, inputs: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
        if self.tags is None:  # plain dicts (torchbricks not importable): run the modules in order
            values = dict(inputs)
            produced: Set[str] = set()
            consumed: Set[str] = set()
            for brick in self.collection.values():
                if brick.get("kind") == "LOSS":
                    continue
                result = brick["module"](*[values[name] for name in brick["input_names"]])
                result = result if isinstance(result, tuple) else (result,)
                values.update(zip(brick["output_names"], result))
                produced.update(brick["output_names"])
                consumed.update(brick["input_names"])
            return {name: values[name] for name in produced - consumed}
        named = self.collection(inputs, tags=self.tags, return_inputs=False)
        consumed = {name for brick in self.collection.sub_collection(tags=self.tags).values()
                    for name in brick.input_names}
        return {name: value for name, value in named.items() if name not in consumed and torch.is_tensor(value)}

    def infer(self, tensor: torch.Tensor) -> Dict[str, np.ndarray]:
        done: "futures.Future" = futures.Future()
        self.pending.put((tensor, done))
        return done.result()

    def _batches(self) -> None:
        while True:
            batch = [self.pending.get()]
            while len(batch) < MAX_BATCH[self.name]:
                try:
                    batch.append(self.pending.get_nowait())
                except queue.Empty:
                    break
            try:
                with torch.inference_mode():
                    outputs = self.run({self.input_name: torch.cat([tensor for tensor, _ in batch])})
                start = 0
                for tensor, done in batch:
                    rows = tensor.shape[0]
                    done.set_result({name: outputs[name][start:start + rows].numpy() for name in self.outputs})
                    start += rows
            except Exception as error:  # noqa: BLE001 - handed to every waiting request
                for _, done in batch:
                    if not done.done():
                        done.set_exception(error)


def build_models() -> Dict[str, Model]:
    torch.manual_seed(0)
    if examples.import_torchbricks():
        from torchbricks.brick_tags import DEFAULT_MODEL_STAGE_TAGS
        tags = DEFAULT_MODEL_STAGE_TAGS["INFERENCE"]
        return {"classifier": Model("classifier", examples.torchbricks_classifier(), "raw_images", tags),
                "resnet18_classifier": Model("resnet18_classifier", examples.torchbricks_resnet18_classifier(),
                                             "raw", tags)}

    class Plain(dict):
        def eval(self):
            for brick in self.values():
                brick["module"].eval()
            return self

    return {"classifier": Model("classifier", Plain(examples.classifier()), "raw_images", None),
            "resnet18_classifier": Model("resnet18_classifier", Plain(examples.resnet18_classifier()), "raw", None)}


_DTYPES = {np.dtype(np.float32): "FP32", np.dtype(np.int64): "INT64", np.dtype(np.int32): "INT32",
           np.dtype(np.bool_): "BOOL"}


def model_infer(models: Dict[str, Model]):
    def handler(request: pb.ModelInferRequest, context: grpc.ServicerContext) -> pb.ModelInferResponse:
        model = models.get(request.model_name)
        if model is None:
            context.abort(grpc.StatusCode.NOT_FOUND, f"unknown model '{request.model_name}'")
        if len(request.inputs) != 1 or request.inputs[0].name != model.input_name or \
                request.inputs[0].datatype != "FP32" or len(request.raw_input_contents) != 1:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"expected one raw FP32 input '{model.input_name}'")
        shape = list(request.inputs[0].shape)
        array = np.frombuffer(request.raw_input_contents[0], dtype="<f4")
        if array.size != int(np.prod(shape)):
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "raw contents do not match the shape")
        outputs = model.infer(torch.from_numpy(array.reshape(shape).copy()))
        response = pb.ModelInferResponse(model_name=model.name, id=request.id)
        for name, value in outputs.items():
            tensor = response.outputs.add(name=name, datatype=_DTYPES.get(value.dtype, "FP32"), shape=list(value.shape))
            del tensor
            response.raw_output_contents.append(np.ascontiguousarray(value).tobytes())
        return response

    return handler


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--grpc-port", type=int, default=0)
    parser.add_argument("--threads", type=int, default=0, help="torch intra-op threads (default: torch's)")
    args = parser.parse_args()
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    models = build_models()
    handlers = {
        "ModelInfer": grpc.unary_unary_rpc_method_handler(
            model_infer(models), request_deserializer=pb.ModelInferRequest.FromString,
            response_serializer=pb.ModelInferResponse.SerializeToString),
        "ServerLive": grpc.unary_unary_rpc_method_handler(
            lambda request, context: pb.ServerLiveResponse(live=True),
            request_deserializer=pb.ServerLiveRequest.FromString,
            response_serializer=pb.ServerLiveResponse.SerializeToString),
        "ServerReady": grpc.unary_unary_rpc_method_handler(
            lambda request, context: pb.ServerReadyResponse(ready=True),
            request_deserializer=pb.ServerReadyRequest.FromString,
            response_serializer=pb.ServerReadyResponse.SerializeToString),
    }
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=128),
                         options=[("grpc.max_receive_message_length", 256 << 20),
                                  ("grpc.max_send_message_length", 256 << 20)])
    server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler("inference.GRPCInferenceService",
                                                                          handlers)])
    port = server.add_insecure_port(f"127.0.0.1:{args.grpc_port}")
    stop = threading.Event()
    for number in (signal.SIGTERM, signal.SIGINT):  # before the line that says it is up
        signal.signal(number, lambda *_: stop.set())
    server.start()
    print(f"serving gRPC on 127.0.0.1:{port}", flush=True)
    stop.wait()
    server.stop(grace=5).wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
