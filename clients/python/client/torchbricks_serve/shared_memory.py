"""System shared memory regions for TorchBricks Serve's `system_shared_memory` extension.

A region is a POSIX shared memory object (`/dev/shm/<key>`) that the client creates and fills,
then registers with the server under a name; requests then name the region instead of carrying
the tensor's bytes (see `InferenceClient.register_system_shared_memory` and the `shm_inputs` /
`shm_outputs` arguments of `InferenceClient.infer`). The server must run on the same machine,
with `--allow-client-shm true`.

    with create_shared_memory_region("in", "/my_input", images.nbytes) as region:
        set_shared_memory_region(region, [images])
        client.register_system_shared_memory("in", "/my_input", images.nbytes)
        result = client.infer("readme_dummy", {"raw_images": images},
                              shm_inputs={"raw_images": ("in", images.nbytes)})
        client.unregister_system_shared_memory("in")
    # leaving the block unmaps the region and unlinks /dev/shm/my_input

Needs only numpy. BYTES tensors are laid out as the protocol's raw contents are: each element
prefixed by its length as 4 bytes, little-endian.
"""
import mmap
import os
import re
import struct
from typing import Any, Iterable, Sequence, Union

import numpy as np

SHM_DIRECTORY = "/dev/shm"
# An optional leading '/', then a name without any other '/': what the server accepts too.
_KEY = re.compile(r"^/?([A-Za-z0-9._-]{1,255})$")

# protocol datatype -> numpy dtype (little-endian); BF16 is read as its uint16 bit pattern.
_DTYPES = {
    "BOOL": np.dtype(np.bool_), "UINT8": np.dtype("<u1"), "UINT16": np.dtype("<u2"), "UINT32": np.dtype("<u4"),
    "UINT64": np.dtype("<u8"), "INT8": np.dtype("<i1"), "INT16": np.dtype("<i2"), "INT32": np.dtype("<i4"),
    "INT64": np.dtype("<i8"), "FP16": np.dtype("<f2"), "FP32": np.dtype("<f4"), "FP64": np.dtype("<f8"),
    "BF16": np.dtype("<u2"),
}


class SharedMemoryError(RuntimeError):
    """A region could not be created, written or read."""


def shm_path(key: str) -> str:
    """The file of shared memory object `key` ("/name" or "name"): /dev/shm/name.

    ValueError for a key that is not a plain POSIX shm name (a path, '.', '..', ...)."""
    match = _KEY.match(key)
    if not match or match.group(1) in (".", ".."):
        raise ValueError(f"'{key}' is not a shared memory key: an optional '/', then 1..255 letters, "
                         "digits, '.', '_' or '-' (not '.' or '..')")
    return os.path.join(SHM_DIRECTORY, match.group(1))


class SharedMemoryRegion:
    """A created shared memory object, mapped read-write; a context manager that destroys it.

    `name` is the name to register it under, `key` its shm key (with a leading '/'),
    `byte_size` its size. Made by `create_shared_memory_region`."""

    def __init__(self, name: str, key: str, byte_size: int, mapping: mmap.mmap) -> None:
        self.name = name
        self.key = key
        self.byte_size = byte_size
        self.path = shm_path(key)
        self._mapping = mapping

    @property
    def closed(self) -> bool:
        return self._mapping is None

    def _mapped(self) -> mmap.mmap:
        if self._mapping is None:
            raise SharedMemoryError(f"shared memory region '{self.name}' ({self.key}) is destroyed")
        return self._mapping

    def write(self, data: Union[bytes, bytearray, memoryview], offset: int = 0) -> None:
        """Writes raw bytes at `offset`."""
        mapping = self._mapped()
        if offset < 0 or offset + len(data) > self.byte_size:
            raise SharedMemoryError(f"{len(data)} bytes at offset {offset} do not fit in region "
                                    f"'{self.name}' of {self.byte_size} bytes")
        mapping[offset:offset + len(data)] = bytes(data)

    def read(self, byte_size: int, offset: int = 0) -> bytes:
        """A copy of `byte_size` bytes at `offset`."""
        mapping = self._mapped()
        if offset < 0 or byte_size < 0 or offset + byte_size > self.byte_size:
            raise SharedMemoryError(f"{byte_size} bytes at offset {offset} lie outside region "
                                    f"'{self.name}' of {self.byte_size} bytes")
        return bytes(mapping[offset:offset + byte_size])

    def destroy(self) -> None:
        """Unmaps the region and unlinks its object; calling it again does nothing. A server that
        still has the object registered keeps its own mapping until it unregisters it."""
        if self._mapping is not None:
            self._mapping.close()
            self._mapping = None
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass

    def __enter__(self) -> "SharedMemoryRegion":
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.destroy()

    def __repr__(self) -> str:
        state = "destroyed" if self.closed else f"{self.byte_size} bytes"
        return f"SharedMemoryRegion(name={self.name!r}, key={self.key!r}, {state})"


def create_shared_memory_region(name: str, key: str, byte_size: int) -> SharedMemoryRegion:
    """Creates shared memory object `key` (ValueError unless a plain shm name; SharedMemoryError
    when it exists already) of `byte_size` bytes, zero-filled, and maps it. `name` is kept for
    registering. Destroy it with `destroy_shared_memory_region` or use it as a context manager."""
    if byte_size <= 0:
        raise ValueError(f"byte_size must be positive, not {byte_size}")
    path = shm_path(key)
    key = "/" + os.path.basename(path)
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o600)
    except FileExistsError:
        raise SharedMemoryError(f"shared memory object '{key}' exists already ({path})") from None
    except OSError as error:
        raise SharedMemoryError(f"cannot create shared memory object '{key}': {error}") from None
    try:
        os.ftruncate(fd, byte_size)
        mapping = mmap.mmap(fd, byte_size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
    except OSError as error:
        os.close(fd)
        os.unlink(path)
        raise SharedMemoryError(f"cannot size or map shared memory object '{key}': {error}") from None
    os.close(fd)  # the mapping keeps the memory; the object lives until unlinked
    return SharedMemoryRegion(name, key, byte_size, mapping)


def serialize_array(array: Any) -> bytes:
    """The bytes of `array` as it lies in a region: little-endian and contiguous, or for
    BYTES (object, bytes or str) arrays, each element prefixed by its 4-byte length."""
    array = np.asarray(array)
    if array.dtype == np.object_ or array.dtype.kind in ("S", "U"):
        parts = []
        for element in array.reshape(-1):
            data = element.encode() if isinstance(element, str) else bytes(element)
            parts.append(struct.pack("<I", len(data)) + data)
        return b"".join(parts)
    if array.dtype.byteorder == ">" or (array.dtype.byteorder == "=" and not np.little_endian):
        array = array.astype(array.dtype.newbyteorder("<"))
    return np.ascontiguousarray(array).tobytes()


def serialized_byte_size(array: Any) -> int:
    """How many bytes `set_shared_memory_region` writes for `array`."""
    array = np.asarray(array)
    if array.dtype == np.object_ or array.dtype.kind in ("S", "U"):
        return len(serialize_array(array))
    return array.nbytes


def set_shared_memory_region(handle: SharedMemoryRegion, arrays: Iterable[Any], offset: int = 0) -> int:
    """Writes `arrays` one after the other from `offset`; returns the offset past the last.
    SharedMemoryError (nothing written) if they do not fit."""
    if isinstance(arrays, np.ndarray):
        raise TypeError("set_shared_memory_region takes a list of arrays")
    data = b"".join(serialize_array(array) for array in arrays)
    handle.write(data, offset)
    return offset + len(data)


def _dtype_of(datatype: Any) -> Union[str, np.dtype]:
    if isinstance(datatype, str) and datatype.upper() in _DTYPES:
        return _DTYPES[datatype.upper()]
    if isinstance(datatype, str) and datatype.upper() == "BYTES":
        return "BYTES"
    dtype = np.dtype(datatype)
    return "BYTES" if dtype == np.object_ or dtype.kind == "S" else dtype.newbyteorder("<")


def get_contents_as_numpy(handle: SharedMemoryRegion, datatype: Any, shape: Sequence[int],
                          offset: int = 0) -> np.ndarray:
    """A copy of the tensor at `offset`: `datatype` is a protocol datatype ("FP32", "BYTES", ...)
    or a numpy dtype (np.object_ for BYTES); `shape` its shape."""
    dtype = _dtype_of(datatype)
    count = int(np.prod(shape, dtype=np.int64)) if len(shape) else 1
    if dtype != "BYTES":
        raw = handle.read(count * dtype.itemsize, offset)
        return np.frombuffer(raw, dtype=dtype).reshape(tuple(shape)).copy()
    elements, position = [], offset
    for _ in range(count):
        (length,) = struct.unpack("<I", handle.read(4, position))
        elements.append(handle.read(length, position + 4))
        position += 4 + length
    result = np.empty(count, dtype=np.object_)
    result[:] = elements
    return result.reshape(tuple(shape))


def destroy_shared_memory_region(handle: SharedMemoryRegion) -> None:
    """Unmaps `handle` and unlinks its shared memory object (idempotent)."""
    handle.destroy()
