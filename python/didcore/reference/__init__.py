"""Pure-Python references: plain loops over rows and cells, no Rust, no vectorisation.

They exist to be obviously right, not fast. The property tests in ``tests/`` hold the fast
paths (:func:`didcore.aggregate`, :func:`didcore.standardise`, ...) equal to them.

One module is vectorised: :mod:`didcore.reference.recount`, the derivation rules applied to a
whole table with pyarrow and numpy (still no Rust), for counting extracts too large for a row
loop: the synthetic generator's tally and the tests' recount of a written extract use it.
"""
