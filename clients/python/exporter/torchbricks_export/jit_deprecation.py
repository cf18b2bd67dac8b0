"""TorchScript calls made on purpose, without torch's deprecation warning for them.

torch 2.11 deprecates torch.jit.script/trace/save/load in favour of torch.export and warns
(DeprecationWarning) on every call. TorchScript is still what packages hold and what the
server loads (docs/PACKAGE_FORMAT.md), so the exporter makes these calls by design: the
warning tells its users nothing they can act on, and where warnings are errors
(`warnings.simplefilter("error")`) it would turn a working export into a failure. Every other
warning, the user's and the exporter's own, passes as before.
"""
import contextlib
import functools
import warnings
from typing import Callable, Iterator, TypeVar

_MESSAGE = r"`torch\.jit\.\w+` is deprecated"

F = TypeVar("F", bound=Callable)


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """While open, torch's `torch.jit.* is deprecated` warnings are not shown."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=_MESSAGE, category=DeprecationWarning)
        yield


def quietly(function: F) -> F:
    """Decorates `function` to run inside quiet()."""
    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        with quiet():
            return function(*args, **kwargs)
    return wrapper  # type: ignore[return-value]
