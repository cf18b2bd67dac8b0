#!/usr/bin/env python3
"""Fails (exit 1, one line per violation) when an #include crosses a layer the design forbids.

    tools/check_layering.py [ROOT]        # check the tree at ROOT (default: this checkout)
    tools/check_layering.py --self-test   # prove that each rule catches a planted violation

Rules (docs/ARCHITECTURE.md):
1. proto/, server/ and clients/ never include libtorch (torch/, ATen/, c10/, caffe2/), neither
   directly nor through a core/ header that does.
2. core/ never includes gRPC (grpc/, grpcpp/, *.grpc.pb.h) nor the wire protocol's messages.
3. Inside server/, dependencies point inward: grpc/ -> repository/ -> scheduling/ ->
   observability/; a folder never includes one further out, nor the process files in server/.
The build runs it on every build (target check_layering), so a violation fails the build.
"""
import re
import sys
import tempfile
from pathlib import Path
from typing import Dict, List, Set

INCLUDE = re.compile(r'^\s*#\s*include\s*[<"]([^>"]+)[>"]', re.MULTILINE)
TORCH = re.compile(r"^(torch|ATen|c10|caffe2)/")
GRPC = re.compile(r"^(grpc|grpcpp)/|\.grpc\.pb\.h$|^proto/(grpc_service|brick_service)\.pb\.h$")
SOURCES = (".h", ".cc", ".cpp", ".hpp")
TORCH_FREE_LAYERS = ("proto/", "server/", "clients/")
# server/ folders from the inside out; a folder may include only those before it.
SERVER_ORDER = ("observability", "scheduling", "repository", "grpc")


def includes_of(path: Path) -> List[str]:
    return INCLUDE.findall(path.read_text(encoding="utf-8", errors="replace"))


def torch_bearing_core_headers(root: Path) -> Set[str]:
    """core/ headers that include libtorch, directly or through another core/ header."""
    headers: Dict[str, List[str]] = {}
    for path in (root / "core").rglob("*.h"):
        headers[path.relative_to(root).as_posix()] = includes_of(path)
    bearing = {name for name, incs in headers.items() if any(TORCH.match(i) for i in incs)}
    changed = True
    while changed:
        changed = False
        for name, incs in headers.items():
            if name not in bearing and any(i in bearing for i in incs):
                bearing.add(name)
                changed = True
    return bearing


def server_layer(relative: str) -> int:
    """Index in SERVER_ORDER of a server/ file's folder; len(SERVER_ORDER) for the process
    files directly in server/; -1 for server/testing/ (test helpers may use anything)."""
    parts = relative.split("/")
    if len(parts) == 2:
        return len(SERVER_ORDER)
    if parts[1] in SERVER_ORDER:
        return SERVER_ORDER.index(parts[1])
    return -1


def check(root: Path) -> List[str]:
    violations = []
    bearing = torch_bearing_core_headers(root)
    for path in sorted(p for p in root.rglob("*") if p.suffix in SOURCES and p.is_file()):
        relative = path.relative_to(root).as_posix()
        if relative.startswith(("build/", "tests/node/node_modules/")) or "/build/" in relative:
            continue
        for included in includes_of(path):
            if relative.startswith(TORCH_FREE_LAYERS):
                if TORCH.match(included):
                    violations.append(f"{relative}: includes libtorch header <{included}>")
                elif included in bearing:
                    violations.append(f"{relative}: includes {included}, which includes libtorch")
            if relative.startswith("core/") and GRPC.match(included):
                violations.append(f"{relative}: core/ includes gRPC header {included}")
            if relative.startswith("server/") and included.startswith("server/"):
                mine, theirs = server_layer(relative), server_layer(included)
                if mine >= 0 and theirs > mine:
                    violations.append(f"{relative}: includes {included}, a layer further out")
    return violations


def self_test() -> int:
    """Plants one violation of each rule in a scratch tree and expects each to be reported."""
    planted = {
        "server/grpc/bad_torch.cc": '#include "torch/script.h"\n',
        "server/scheduling/bad_core.cc": '#include "core/loaded_collection.h"\n',
        "core/bad_grpc.cc": '#include "grpcpp/server.h"\n',
        "server/observability/bad_direction.h": '#include "server/repository/model_repository.h"\n',
        "clients/cpp/bad_aten.cc": "#include <ATen/ATen.h>\n",
    }
    clean = {
        "core/loaded_collection.h": '#include "core/dtypes.h"\n',
        "core/dtypes.h": '#include "torch/types.h"\n',
        "core/servable_model.h": '#include "core/stage.h"\n',
        "server/repository/model_repository.h": '#include "core/servable_model.h"\n#include "server/scheduling/x.h"\n',
    }
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        for name, text in {**clean, **planted}.items():
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            (root / name).write_text(text, encoding="utf-8")
        found = check(root)
    missed = [name for name in planted if not any(line.startswith(name + ":") for line in found)]
    false_alarms = [line for line in found if not any(line.startswith(name + ":") for name in planted)]
    for line in found:
        print("caught:", line)
    if missed or false_alarms:
        print(f"self-test FAILED: missed {missed}, false alarms {false_alarms}", file=sys.stderr)
        return 1
    print(f"self-test passed: {len(planted)} planted violations caught, no false alarms")
    return 0


def main(argv: List[str]) -> int:
    if argv[1:] == ["--self-test"]:
        return self_test()
    root = Path(argv[1]) if len(argv) > 1 else Path(__file__).resolve().parents[1]
    violations = check(root)
    for line in violations:
        print(f"layering violation: {line}", file=sys.stderr)
    return 1 if violations else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
