"""Calls a running torchbricks-server with the Python client (grpcio + numpy, no torch).

    PYTHONPATH=clients/python /usr/bin/python3 examples/client_example.py --server 127.0.0.1:8001

Asks for each model's metadata, sends a random batch to its INFERENCE stage, prints the
outputs, then asks only for an intermediate tensor to show graph pruning.
"""
import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "clients" / "python"))
from torchbricks_serve import InferenceClient  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", default="127.0.0.1:8001")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    with InferenceClient(args.server) as client:
        print("server ready:", client.server_ready())
        for model in sorted({m.name for m in client.repository_index(ready=True).models}):
            metadata = client.model_metadata(model)
            inputs = {}
            for spec in metadata.inputs:
                shape = [2 if dim < 0 else dim for dim in spec.shape]
                inputs[spec.name] = rng.random(shape, dtype=np.float32)
            result = client.infer(model, inputs)
            print(f"\n{model} (version {result.model_version}):")
            for name, array in result.outputs.items():
                print(f"  {name}: shape {list(array.shape)}, first row {np.round(array.reshape(len(array), -1)[0][:5], 4)}")
            graph = client.model_graph(model)
            first_output = graph.bricks[0].output_names[0]
            pruned = client.infer(model, inputs, outputs=[first_output])
            print(f"  only '{first_output}' (runs just brick '{graph.bricks[0].name}'):",
                  list(pruned.outputs[first_output].shape))


if __name__ == "__main__":
    main()
