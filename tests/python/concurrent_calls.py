"""`infer_together`: requests that arrive at a server at the same moment, for batching tests.

    results = infer_together(server, "model", [{"x": a}, {"x": b}], outputs=[["y"], None])

Each request goes from its own thread over its own connection, made before a barrier so that
the requests leave together; the result per request is the InferResult or the grpc.RpcError.
"""
import threading
from typing import Any, List, Mapping, Optional, Sequence

import grpc


def infer_together(server, model: str, requests: Sequence[Mapping[str, Any]],
                   outputs: Optional[Sequence[Optional[Sequence[str]]]] = None) -> List[Any]:
    results: List[Any] = [None] * len(requests)
    barrier = threading.Barrier(len(requests))

    def call(index):
        with server.client(timeout=30) as client:
            client.server_live()  # connect before the barrier so that the requests arrive together
            barrier.wait(timeout=30)
            try:
                results[index] = client.infer(model, requests[index],
                                              outputs=outputs[index] if outputs else None)
            except grpc.RpcError as error:
                results[index] = error

    threads = [threading.Thread(target=call, args=(i,), daemon=True) for i in range(len(requests))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads), "a request did not come back within 60 s"
    return results
