"""``python -m bench.shapes``: run the hot-path shapes study."""

from bench.shapes.study import main

main()
