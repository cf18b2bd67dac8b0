"""`ChannelClient`: what InferenceClient (on `grpc`) and AsyncInferenceClient (on `grpc.aio`)
share — one channel to the server, made plaintext or TLS from the same arguments, the call
timeout, the headers every call carries, and one cached stub per RPC method.

    class InferenceClient(ChannelClient):
        _channels = grpc          # the module whose secure_channel/insecure_channel make the channel

Thread safety: a blocking client may be called from many threads (two threads that make the
same stub at once each get a working one); an async client belongs to the event loop it was
made on.
"""
import os
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import grpc

# PEM contents (bytes) or the path of a PEM file (str or os.PathLike).
PemSource = Union[bytes, str, "os.PathLike[str]"]

_MAX_MESSAGE = 1 << 30


def _pem(source: Optional[PemSource]) -> Optional[bytes]:
    if source is None or isinstance(source, bytes):
        return source
    with open(source, "rb") as file:
        return file.read()


def channel_arguments(tls_server_name: Optional[str] = None) -> List[Tuple[str, Any]]:
    """The gRPC channel options of both clients: 1 GiB messages, and the name a TLS server's
    certificate must carry when it differs from the address."""
    options: List[Tuple[str, Any]] = [("grpc.max_send_message_length", _MAX_MESSAGE),
                                      ("grpc.max_receive_message_length", _MAX_MESSAGE)]
    if tls_server_name:
        options.append(("grpc.ssl_target_name_override", tls_server_name))
    return options


def channel_credentials(ssl: bool = False, root_certificates: Optional[PemSource] = None,
                        private_key: Optional[PemSource] = None,
                        certificate_chain: Optional[PemSource] = None) -> Optional[grpc.ChannelCredentials]:
    """TLS credentials, or None for plaintext (no TLS argument given). ValueError for half a
    client key pair; OSError for a PEM file that cannot be read."""
    if not (ssl or root_certificates or private_key or certificate_chain):
        return None
    if (private_key is None) != (certificate_chain is None):
        raise ValueError("mutual TLS needs both private_key and certificate_chain")
    return grpc.ssl_channel_credentials(root_certificates=_pem(root_certificates), private_key=_pem(private_key),
                                        certificate_chain=_pem(certificate_chain))


class ChannelClient:
    """One channel (plaintext unless a TLS argument is given); every call takes `timeout` seconds
    at most and carries `headers`. Raises ValueError for half a client key pair, OSError for a
    PEM file that cannot be read; no connection is attempted before the first call."""

    _channels: Any = grpc  # grpc or grpc.aio: the module that makes the channel

    def __init__(self, address: str, timeout: float = 30, *, ssl: bool = False,
                 root_certificates: Optional[PemSource] = None, private_key: Optional[PemSource] = None,
                 certificate_chain: Optional[PemSource] = None, tls_server_name: Optional[str] = None,
                 headers: Sequence[Tuple[str, str]] = ()) -> None:
        self.address = address
        self.timeout = timeout
        self.headers = tuple(headers)
        credentials = channel_credentials(ssl, root_certificates, private_key, certificate_chain)
        options = channel_arguments(tls_server_name)
        self.channel = (self._channels.secure_channel(address, credentials, options=options) if credentials
                        else self._channels.insecure_channel(address, options=options))
        self._stubs: Dict[str, Any] = {}

    def _stub(self, path: str, request: Any, response_type: Any) -> Any:
        """The unary-unary callable of method `path`, made on first use and kept."""
        if path not in self._stubs:
            self._stubs[path] = self.channel.unary_unary(path, request_serializer=type(request).SerializeToString,
                                                         response_deserializer=response_type.FromString)
        return self._stubs[path]

    def _metadata(self, metadata: Optional[Sequence]) -> Optional[Tuple]:
        """A call's own metadata followed by the client's headers; None when there is none."""
        return (tuple(metadata or ()) + self.headers) or None
