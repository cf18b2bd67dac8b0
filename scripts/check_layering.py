#!/usr/bin/env python3
"""Fails (exit 1, one line per violation) when an #include crosses a layer the design forbids.

    scripts/check_layering.py [ROOT]        # check the tree at ROOT (default: this checkout)
    scripts/check_layering.py --self-test   # prove that each rule catches a planted violation

Rules (docs/ARCHITECTURE.md, "Libraries and what they may use"):
1. proto/, base/, server/ and clients/ never include libtorch (torch/, ATen/, c10/, caffe2/),
   neither directly nor through a core/ header that does; nor do core/graph/ and the seam's
   headers (servable_model.h, host_tensor.h, torch_log_sink.h).
2. core/ never includes gRPC (grpc/, grpcpp/, *.grpc.pb.h) nor the wire protocol's messages.
3. Each top-level folder includes only the project folders it may use (MAY_USE): base/ nothing
   but itself, clients/ never core/, server/ or tools/, server/ only core/'s torch-free
   serving seam (graph/, servable/ and the log sink's header), nobody includes tools/.
4. Inside core/ and server/, dependencies point inward (CORE_ORDER, SERVER_ORDER): a folder
   never includes one further out. Test helpers (testing/) may use anything of their layer.
The build runs it on every build (target check_layering), so a violation fails the build.
"""
import re
import sys
import tempfile
from pathlib import Path
from typing import Dict, List, Optional, Set

INCLUDE = re.compile(r'^\s*#\s*include\s*[<"]([^>"]+)[>"]', re.MULTILINE)
TORCH = re.compile(r"^(torch|ATen|c10|caffe2)/")
GRPC = re.compile(r"^(grpc|grpcpp)/|\.grpc\.pb\.h$|^proto/(grpc_service|brick_service)\.pb\.h$")
SOURCES = (".h", ".cc", ".cpp", ".hpp")
TORCH_FREE_LAYERS = ("proto/", "base/", "server/", "clients/", "core/graph/",
                     "core/servable/servable_model.h", "core/servable/host_tensor.h",
                     "core/libtorch/torch_log_sink.h")
OURS = ("base", "bench", "clients", "core", "examples", "proto", "server", "tests", "tools")
# The project folders each top-level folder may include (its own always); absent: anything.
MAY_USE = {
    "base": (),
    "proto": (),
    "core": ("base", "proto"),
    "server": ("base", "proto", "core/graph", "core/servable", "core/libtorch/torch_log_sink.h"),
    "clients": ("base", "proto"),
    "tools": ("base", "proto", "core"),
}
# Folders from the inside out; a folder may include only itself and those before it.
CORE_ORDER = ("graph", "libtorch", "render", "execution", "servable")
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


def layer(relative: str, top: str, order: tuple) -> Optional[int]:
    """Index in `order` of a top/ file's folder; len(order) for files directly in top/ (the
    process files of server/); None for testing/ and folders outside the order."""
    parts = relative.split("/")
    if len(parts) == 2:
        return len(order)
    return order.index(parts[1]) if parts[1] in order else None


def folder_violation(relative: str, included: str) -> Optional[str]:
    mine, theirs = relative.split("/")[0], included.split("/")[0]
    if theirs not in OURS or len(included.split("/")) < 2:
        return None
    if theirs == "tools" and mine != "tools":
        return f"{relative}: includes {included}; nothing outside tools/ may"
    allowed = MAY_USE.get(mine)
    if allowed is None or theirs == mine:
        return None
    if not any(included == prefix or included.startswith(prefix + "/") for prefix in allowed):
        return f"{relative}: includes {included}; {mine}/ may use only {', '.join(allowed) or 'itself'}"
    return None


def order_violation(relative: str, included: str) -> Optional[str]:
    for top, order in (("core", CORE_ORDER), ("server", SERVER_ORDER)):
        if relative.startswith(top + "/") and included.startswith(top + "/"):
            mine, theirs = layer(relative, top, order), layer(included, top, order)
            if mine is not None and theirs is not None and theirs > mine:
                return f"{relative}: includes {included}, a layer further out"
    return None


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
            for found in (folder_violation(relative, included), order_violation(relative, included)):
                if found:
                    violations.append(found)
    return violations


def self_test() -> int:
    """Plants one violation of each rule in a scratch tree and expects each to be reported."""
    planted = {
        "server/grpc/bad_torch.cc": '#include "torch/script.h"\n',
        "server/scheduling/bad_core.cc": '#include "core/execution/loaded_collection.h"\n',
        "core/bad_grpc.cc": '#include "grpcpp/server.h"\n',
        "server/observability/bad_direction.h": '#include "server/repository/model_repository.h"\n',
        "clients/cpp/bad_aten.cc": "#include <ATen/ATen.h>\n",
        "clients/cpp/bad_core.cc": '#include "core/graph/stage.h"\n',
        "base/bad_up.h": '#include "core/graph/stage.h"\n',
        "server/bad_tools.cc": '#include "tools/verify_command.h"\n',
        "core/graph/bad_out.h": '#include "core/servable/servable_model.h"\n',
        "core/graph/bad_torch.h": '#include "c10/util/Exception.h"\n',
        "core/render/bad_out.cc": '#include "core/execution/image_io.h"\n',
        "core/graph/bad_server.h": '#include "server/grpc/x.h"\n',
        "core/graph/bad_protocol.h": '#include "proto/grpc_service.pb.h"\n',
        "core/servable/servable_model.h": '#include "core/execution/scalar_types.h"\n',
        "server/bad_libtorch.cc": '#include "core/libtorch/torch_errors.h"\n',
        "server/grpc/bad_indirect.cc": '#include "core/servable/torchy.h"\n',
        "tools/bad_server.cc": '#include "server/torchbricks_server.h"\n',
        "proto/bad_core.h": '#include "core/graph/stage.h"\n',
    }
    clean = {
        "core/execution/loaded_collection.h": '#include "core/execution/scalar_types.h"\n',
        "core/execution/scalar_types.h": '#include "torch/types.h"\n#include "core/graph/stage.h"\n',
        "core/graph/stage.h": '#include "base/status_macros.h"\n',
        "core/servable/torchy.h": '#include "core/execution/scalar_types.h"\n',
        "server/main.cc": '#include "core/libtorch/torch_log_sink.h"\n',
        "core/servable/servable_model.cc": '#include "core/execution/loaded_collection.h"\n',
        "core/testing/fixtures.h": '#include "core/servable/servable_model.h"\n',
        "server/repository/model_repository.h": '#include "core/servable/host_tensor.h"\n#include "server/scheduling/x.h"\n',
        "clients/cpp/client.cc": '#include "base/command_line.h"\n#include "proto/grpc_service.pb.h"\n',
        "tools/main.cc": '#include "core/execution/loaded_collection.h"\n#include "tools/verify_command.h"\n',
        "bench/any.cc": '#include "server/grpc/x.h"\n#include "core/execution/image_io.h"\n',
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
