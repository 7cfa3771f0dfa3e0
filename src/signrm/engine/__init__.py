"""The fitting engine under every entry point (in memory, streaming, multi-process).

- :mod:`signrm.engine.linear`: deterministic full-batch solvers of linear heads (Bradley–Terry and
  the annealed sign estimator) over a source of chunks; an in-memory dataset is one chunk.
- :mod:`signrm.engine.group`: the process group (a group of one unless ``torch.distributed`` is
  initialised): every reduction over the data goes through it.
- :mod:`signrm.engine.scale`: the one running margin scale used by torch trainers.
"""
