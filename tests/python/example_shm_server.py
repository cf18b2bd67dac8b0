"""Fixtures that turn conftest's `server` (and `client`) into a server of the example repository
with client shared memory allowed, for the modules that measure load with it. A module uses them
by importing both names, which overrides conftest's defaults for that module only:

    from example_shm_server import server_flags, server_repository  # noqa: F401
"""
import pytest


@pytest.fixture(scope="module")
def server_repository(example_repository):
    return example_repository


@pytest.fixture(scope="module")
def server_flags():
    return ("--allow-client-shm", "true")
