"""Pure-Python references: plain loops over rows and cells, no Rust, no vectorisation.

They exist to be obviously right, not fast. The property tests in ``tests/`` hold the fast
paths (:func:`didcore.aggregate`, :func:`didcore.standardise`, ...) equal to them.
"""
