"""Hot-path shapes study (issue 16 item 1): floors and real figures of candidate graph shapes,
plus the PyFlink mechanics probes the hot-path builder needs.

``python -m bench.shapes`` runs the study (:mod:`bench.shapes.study`); the graphs live in
:mod:`bench.shapes.job` and their benchmark-only prototype operators in :mod:`bench.shapes.ops`
and :mod:`bench.shapes.tiles`; ``python -m bench.shapes.probes NAME`` runs one probe.

This is a package rather than ``bench/shapes.py`` because a package and a module of the same name
cannot live side by side (the package shadows the module); ``python -m bench.shapes`` still works.
"""
