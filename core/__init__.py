"""The bottom layer: what every other layer needs and nothing else.

Errors (:mod:`core.errors`), the typed settings model (:mod:`core.settings_model`, every default)
and its loader (:mod:`core.config`; import settings from there), the generated documented YAML
(:mod:`core.config_doc` -> ``core/resources/riskstream.yaml``), progress bars
(:mod:`core.progress`), the pinned-jar manifest (:mod:`core.jars`) and a free-port helper
(:mod:`core.net`). Imports the standard library, PyYAML, pydantic(-settings) and tqdm; never a
layer above.
"""
