"""The HTML run report (``riskstream report``): one self-contained page of plots over a run's
topics and the model registry.

:mod:`riskstream.report.data` reads the topics into pandas frames, :mod:`riskstream.report.figures`
turns frames into plotly figures (or says why a plot has no data), :mod:`riskstream.report.page`
writes the page with plotly.js inlined. docs/report.md.
"""
