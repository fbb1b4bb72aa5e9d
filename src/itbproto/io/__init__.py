"""The I/O layer over the core: the links, the client, and the files the library reads and writes.

- :mod:`~itbproto.io.transport`: ``Transport``, ``TcpTransport`` and ``open_target`` (``tcp://``, ``ble://``,
  ``inproc``);
- :mod:`~itbproto.io.client`: ``PumpClient``, a programmer over any transport;
- :mod:`~itbproto.io.ble`: the BLE transport on bleak and a bleak backend on bumble's virtual radio;
- :mod:`~itbproto.io.specfiles`: the device profiles, drugs and rule catalog of specs/;
- :mod:`~itbproto.io.keystore`: paired keys on disk.
"""
