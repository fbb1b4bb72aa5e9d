"""The sans-IO core: bytes, messages, dose math, rules, machines and keys; no socket, clock, file or radio.

- :mod:`~itbproto.core.wire`: the messages, enums, frames, fragments and the GATT layout;
- :mod:`~itbproto.core.connection`: one side of a link, bytes in -> events out;
- :mod:`~itbproto.core.firmware` and :mod:`~itbproto.core.link`: the pump behind its links; two sides joined
  in memory;
- :mod:`~itbproto.core.machines`: the pump (``PumpMachine``) and the programmer's session
  (``ProgrammingSession``);
- :mod:`~itbproto.core.safety` and :mod:`~itbproto.core.therapy`: the rules and the dose math they check;
- :mod:`~itbproto.core.security`: pairing and the sealed channel;
- :mod:`~itbproto.core.capture`: a btsnoop capture read back as the frames each side sent.

Time comes in as an argument and entropy as a function. The import contracts in pyproject.toml
(``[tool.importlinter]``, checked by tests/test_layout.py) keep asyncio, socket, time, files, bleak and bumble
out of every module here, and the layers above (io, tools, qa) out of its imports.
"""
