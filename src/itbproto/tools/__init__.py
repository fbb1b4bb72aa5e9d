"""The tools built on the library: the CLI's commands, the demo, and what writes specs/ and its vectors.

- :mod:`~itbproto.tools.remote`: ``itbproto status``, ``pair``, ``program``, ... against a target;
- :mod:`~itbproto.tools.demo`: ``itbproto demo``, a clinical session in memory;
- :mod:`~itbproto.tools.display`: exact integers as text for people (µL as mL, ng as µg);
- :mod:`~itbproto.tools.specgen`, :mod:`~itbproto.tools.vectors` and :mod:`~itbproto.tools.samples`: the
  generated parts of specs/ (field tables, state tables, test vectors);
- :mod:`~itbproto.tools.extras`: which optional extra a missing module comes with.
"""
