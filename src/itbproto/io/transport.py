"""Transports: the one small async interface every link offers the client, and the TCP one.

A transport moves bytes only. Framing, fragmentation and sealing stay in the
:class:`~itbproto.core.connection.Connection`; the transport says how to frame for it: frames back to back on
a byte stream (``stream``, TCP), fragments for an ATT MTU (``mtu``, BLE), or whole frames per chunk
(in-process). The emulator offers an in-process transport (``itbemu.inprocess.InProcessHub``); BLE joins
through the same interface.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from typing import Protocol

from itbproto.errors import LinkClosedError

__all__ = ["READ_SIZE", "TcpTransport", "Transport", "open_target"]

READ_SIZE = 4096


class Transport(Protocol):
    """One link to a pump."""

    stream: bool  # frames back to back on a byte stream
    mtu: int | None  # fragments of this ATT MTU; None: whole frames (or a stream)

    async def send(self, data: bytes) -> None:
        """Write ``data`` (a frame, or a fragment) to the link."""
        ...

    async def receive(self) -> bytes:
        """The next bytes from the pump; :class:`~itbproto.errors.LinkClosedError` once the link is gone."""
        ...

    async def close(self) -> None: ...


class TcpTransport:
    """A TCP connection (``itbemu serve --tcp``)."""

    stream: bool = True
    mtu: int | None = None

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader, self._writer = reader, writer

    @classmethod
    async def connect(cls, host: str, port: int, timeout_s: float = 10.0) -> TcpTransport:
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout_s)
        except (OSError, TimeoutError) as exc:
            raise LinkClosedError(f"cannot reach tcp://{host}:{port}: {why(exc)}") from None
        return cls(reader, writer)

    async def send(self, data: bytes) -> None:
        try:
            self._writer.write(data)
            await self._writer.drain()
        except ConnectionError as exc:
            raise LinkClosedError(f"the pump closed the connection: {exc}") from None

    async def receive(self) -> bytes:
        try:
            data = await self._reader.read(READ_SIZE)
        except ConnectionError as exc:
            raise LinkClosedError(f"the pump closed the connection: {exc}") from None
        if not data:
            raise LinkClosedError("the pump closed the connection")
        return data

    async def close(self) -> None:
        self._writer.close()
        with contextlib.suppress(ConnectionError):
            await self._writer.wait_closed()


def why(exc: BaseException) -> str:
    """What went wrong, in words (an OSError's text without its errno; a time-out said so)."""
    if isinstance(exc, TimeoutError):
        return "no answer in time"
    if isinstance(exc, OSError) and exc.errno:
        return os.strerror(exc.errno).lower()
    return str(exc) or type(exc).__name__


async def open_target(target: str, timeout_s: float = 10.0) -> Transport:
    """A transport to ``tcp://HOST:PORT`` (``itbemu serve --tcp``) or ``ble://[NAME]`` (the first pump
    advertising the ITB service, with that name if given; bleak's radio, or the virtual one that
    ``ITBPROTO_BLE_HCI`` names); ValueError for anything else."""
    scheme, _, rest = target.partition("://")
    if scheme == "ble":
        from itbproto.io.ble import BleTransport

        return await BleTransport.connect(rest or None, timeout_s=timeout_s)
    host, _, port = rest.rpartition(":")
    if scheme != "tcp" or not host or not port.isdigit():
        raise ValueError(f"expected tcp://HOST:PORT or ble://NAME, got {target!r}")
    return await TcpTransport.connect(host, int(port), timeout_s)
