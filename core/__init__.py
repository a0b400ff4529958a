"""The bottom layer: what every other layer needs and nothing else.

Errors (:mod:`core.errors`), the typed settings and their loader (:mod:`core.config`, defaults in
``core/resources/riskstream.yaml``), the pinned-jar manifest (:mod:`core.jars`) and a free-port
helper (:mod:`core.net`). Imports only the standard library and PyYAML; never a layer above.
"""
