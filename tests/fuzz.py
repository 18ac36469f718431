"""What the fuzz tests (tests/test_fuzz_*.py) share: example budgets and the tally they report.

Each fuzz test runs once in ``make test`` with a bounded number of examples and once more,
marked slow (``make test-all``), with 10x as many. Examples are derandomized (the same on
every run and machine), never stored in a database and never timed out by hypothesis.
"""
import collections
import json
import os

import pytest
from hypothesis import HealthCheck, configuration, settings, strategies as st

# hypothesis' caches (unicode tables) in pytest's cache folder, not a .hypothesis/ in the cwd
if not os.environ.get("HYPOTHESIS_STORAGE_DIRECTORY"):
    configuration.set_hypothesis_home_dir(os.path.join(
        os.path.dirname(os.path.dirname(os.path.abspath(__file__))), ".pytest_cache",
        "hypothesis"))

try:  # hypothesis mixes in literals of the project modules imported so far: the examples
    # would depend on which tests ran before. Not for these tests (hypothesis is pinned).
    from hypothesis.internal.conjecture import providers as _providers
    _providers._get_local_constants = lambda: _providers.Constants()
except (ImportError, AttributeError):  # pragma: no cover
    pass

SCALES = [pytest.param(1, id="x1"), pytest.param(10, id="x10", marks=pytest.mark.slow)]


def fuzz_settings(examples: int, scale: int):
    return settings(max_examples=examples * scale, deadline=None, derandomize=True,
                    database=None, print_blob=True,
                    suppress_health_check=list(HealthCheck))


class Tally(collections.Counter):
    """Counts of what the fuzzing tried and saw; printed (``pytest -s``) and appended to
    ``$FUZZ_TALLY`` (a JSON-lines file) when that is set."""

    def report(self, name: str) -> None:
        line = json.dumps({"test": name, **dict(sorted(self.items()))})
        print(line)
        if os.environ.get("FUZZ_TALLY"):
            with open(os.environ["FUZZ_TALLY"], "a") as f:
                f.write(line + "\n")


WORDS = [0, 1, 2, 0xFF, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF]


@st.composite
def mutated(draw, original: bytes, structure=None):
    """A truncated copy, or one with 1-8 bits flipped / 32-bit words overwritten (7 in 8 of
    them at the ``structure`` offsets when given)."""
    kind = draw(st.sampled_from(["truncate", "flip", "word"]))
    data = bytearray(original)
    if kind == "truncate":
        return bytes(data[:draw(st.integers(0, len(data) - 1))])
    for _ in range(draw(st.sampled_from([1, 1, 2, 4, 8]))):
        if structure is not None and draw(st.integers(0, 7)):
            pos = int(structure[draw(st.integers(0, len(structure) - 1))])
        else:
            pos = draw(st.integers(0, len(data) - 1))
        if kind == "flip":
            data[pos] ^= 1 << draw(st.integers(0, 7))
        else:
            pos -= pos % 4
            word = draw(st.sampled_from(WORDS) | st.integers(0, 2**32 - 1))
            data[pos:pos + 4] = word.to_bytes(4, "little")[:len(data) - pos]
    return bytes(data)
