"""A fast subset of the loader fuzz (the full run: benchmarks/fuzz_loader.py, >= 1,000 cases).

60 seeded cases from tests/fuzz/mutations.py, each in a forked child under a 2 GiB address-space
limit and a time limit: none may end in a foreign exception, a crash, a hang, a message without
a file, a silent drop, the memory limit, or an `info` exit status that contradicts the load.
MEDVIEWER_FUZZ_SEED picks another seed (the default is fixed, so that a failure reproduces).
"""

import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "fuzz"))

import fuzz_runner  # noqa: E402  (tests/fuzz)
import mutations  # noqa: E402

SEED = int(os.environ.get("MEDVIEWER_FUZZ_SEED", "23"))
CASES = 60

pytestmark = pytest.mark.data


@pytest.fixture(scope="module")
def sources(tmp_path_factory, shared_data):
    if not mutations.data_available():
        pytest.skip(f"the fuzz's source series are not under {mutations.DATA}")
    workdir = str(tmp_path_factory.mktemp("fuzz"))
    return workdir, mutations.prepare_sources(workdir)


def test_fuzz_subset_has_no_failure_outcome(sources):
    workdir, prepared = sources
    failures, outcomes = [], {}
    for n in range(CASES):
        case = mutations.make_case(prepared, SEED, n, workdir)
        result = fuzz_runner.run_case(case, time_limit_s=60)
        outcomes[result.outcome] = outcomes.get(result.outcome, 0) + 1
        if result.outcome in fuzz_runner.FAILURES:
            failures.append(f"{case.name} [{result.outcome}] {case.description}: {result.detail[-600:]}")
        mutations._remove(case.target if case.kind == "dicom" else os.path.dirname(case.target))
    assert not failures, "\n".join(failures)
    # the subset exercises both sides: clean loads and clean refusals
    assert outcomes.get("load", 0) > 0 and outcomes.get("refusal", 0) > 0, outcomes


def test_cases_are_reproducible(sources, tmp_path):
    _, prepared = sources
    a = mutations.make_case(prepared, SEED, 7, str(tmp_path / "a"))
    b = mutations.make_case(prepared, SEED, 7, str(tmp_path / "b"))
    assert a.description == b.description and a.kind == b.kind

    def contents(case):
        root = case.target if case.kind == "dicom" else os.path.dirname(case.target)
        out = {}
        for dirpath, _, files in os.walk(root):
            for f in files:
                p = os.path.join(dirpath, f)
                if os.path.isfile(p) and not os.path.islink(p):
                    out[os.path.relpath(p, root)] = open(p, "rb").read()
        return out
    assert contents(a) == contents(b)
