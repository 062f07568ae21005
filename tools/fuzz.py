#!/usr/bin/env python3
"""Fuzzes every public fastloss function (the table in tests/fuzz_specs.py) for a time budget.

    PYTHONPATH=python python3 tools/fuzz.py [--seconds S] [--seed N] [--only f1,f2]
    PYTHONPATH=python python3 tools/fuzz.py --replay 'CASE-JSON'     # one case, in this process

The parent runs the cases in a child process, which prints each case (its hypothesis seed,
index and JSON recipe) before running it, flushed. A child that dies (a signal, a sanitizer
abort) or stops answering (a hang) fails the run with that case printed and its replay
command; the parent then starts a new child at the next seed until the budget is spent.
Each case's oracle (see fuzz_specs.py) reports a failure as a FAIL line; a failure that
matches an open issue item in fuzz_specs.KNOWN is counted, not failed.

Budget: --seconds, else FASTLOSS_FUZZ_SECONDS, else 120. Exit status 1 on any failure.
"""
from __future__ import annotations

import argparse
import inspect
import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
import warnings

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests"))

import numpy as np  # noqa: E402

ALLOWED = (TypeError, ValueError, IndexError)
DIM_NAMES = ["N", "M", "C", "D", "T", "S", "L", "La", "Lb"]
BATCH = 100  # cases per hypothesis seed
HANG_SECONDS = 60.0  # no single case takes this long; one that does is a hang


# --- cases -----------------------------------------------------------------------------------

def _functions(only=None):
    import fastloss
    from fuzz_specs import SPECS
    names = [n for n in SPECS if hasattr(fastloss, n)]
    if only:
        names = [n for n in names if n in only]
    return names


def _arg_kinds(name, form_index):
    """(arg name, kind) pairs of one form plus the options the installed function takes."""
    import fastloss
    from fuzz_specs import SPECS
    spec = SPECS[name]
    params = inspect.signature(getattr(fastloss, name)).parameters
    takes_kwargs = any(p.kind == p.VAR_KEYWORD for p in params.values())
    form = spec.forms[form_index]
    pairs = list(form.items()) + [(k, v) for k, v in spec.options.items() if k not in form]
    return [(k, v) for k, v in pairs if k in params or takes_kwargs]


def case_strategy(names):
    from hypothesis import strategies as st
    from fuzz_specs import SPECS

    def dim(spec, d):
        if d in spec.dims:
            lo, hi = spec.dims[d]
            return st.integers(lo, hi)
        return st.one_of(st.integers(1, 4), st.integers(0, 7), st.sampled_from([17, 33]))

    @st.composite
    def case(draw):
        name = draw(st.sampled_from(names))
        spec = SPECS[name]
        form = draw(st.integers(0, len(spec.forms) - 1))
        dims = {d: draw(dim(spec, d)) for d in DIM_NAMES}
        if "C" not in spec.dims and draw(st.integers(0, 63)) == 0:
            # now and then one long row (2^20 classes): float32 row sums, chunked row paths
            dims = {d: 1 for d in DIM_NAMES}
            dims["C"] = 1 << 20
        args = {k: draw(kind.strategy(dims)) for k, kind in _arg_kinds(name, form)}
        return {"f": name, "form": form, "dims": dims, "args": args}

    return case()


def build(case):
    """The case's keyword arguments (omitted options left out)."""
    built = {}
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        for k, kind in _arg_kinds(case["f"], case["form"]):
            r = case["args"].get(k)
            if r is None or r.get("omit"):
                continue
            built[k] = kind.build(r, case["dims"], built)
    return built


# --- the oracle ------------------------------------------------------------------------------

def _snapshot(v):
    if isinstance(v, np.ndarray):
        return ("array", v.dtype, v.shape, np.array(v, copy=True))
    if isinstance(v, (list, tuple)):
        return (type(v).__name__, [_snapshot(x) for x in v])
    return ("value", v)


def _same(snap, v):
    kind = snap[0]
    if kind == "array":
        if not isinstance(v, np.ndarray) or v.dtype != snap[1] or v.shape != snap[2]:
            return False
        if v.dtype.kind == "O":  # the same objects (a copy holds the same references)
            return all(x is y for x, y in zip(snap[3].flat, v.flat))
        return snap[3].tobytes() == np.ascontiguousarray(v).tobytes()  # bit for bit, NaN and NaT included
    if kind == "value":
        return snap[1] is v or (type(snap[1]) is type(v) and (snap[1] == v or snap[1] != snap[1]))
    return type(v).__name__ == kind and len(v) == len(snap[1]) and all(_same(s, x) for s, x in zip(snap[1], v))


def _names_an_argument(message, params):
    return any(re.search(r"(?<![A-Za-z_])" + re.escape(p) + r"(?![A-Za-z_])", message) for p in params)


def _tolerance(dtype):
    return {2: 2e-3, 4: 2e-5}.get(np.dtype(dtype).itemsize, 1e-10)


def _compare(a, b, where="result"):
    """None if a and b (results) agree, else why not."""
    if isinstance(a, tuple) or isinstance(b, tuple):
        if not (isinstance(a, tuple) and isinstance(b, tuple) and len(a) == len(b)):
            return f"{where}: {type(a).__name__} vs {type(b).__name__}"
        for i, (x, y) in enumerate(zip(a, b)):
            why = _compare(x, y, f"{where}[{i}]")
            if why:
                return why
        return None
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        if not (isinstance(a, np.ndarray) and isinstance(b, np.ndarray)):
            return f"{where}: {type(a).__name__} vs {type(b).__name__}"
        if a.shape != b.shape or a.dtype != b.dtype:
            return f"{where}: {a.shape} {a.dtype} vs {b.shape} {b.dtype}"
        if a.dtype.kind == "f":
            tol = _tolerance(a.dtype)
            x, y = a.astype(np.float64), b.astype(np.float64)
            with np.errstate(all="ignore"):
                close = (x == y) | (np.abs(x - y) <= tol * (1 + np.abs(y)))
            same = (np.isnan(x) & np.isnan(y)) | (~np.isnan(x) & ~np.isnan(y) & close)
            if not same.all():
                i = np.argwhere(~same)[0]
                return f"{where}{list(i)}: {x[tuple(i)]!r} vs {y[tuple(i)]!r}"
            return None
        return None if np.array_equal(a, b) else f"{where}: {a!r} vs {b!r}"
    if isinstance(a, float) and isinstance(b, float) and a != a and b != b:
        return None
    return None if (type(a) is type(b) and a == b) or not isinstance(a, (int, float, str, type(None))) \
        else f"{where}: {a!r} vs {b!r}"


def _plain(v):
    """A contiguous, aligned, native-endian copy of an array argument."""
    if isinstance(v, np.ndarray) and v.dtype.kind not in "OUSM":
        return np.array(v, dtype=v.dtype.newbyteorder("="), order="C", copy=True)
    return v


def _needs_reference(args):
    for k, v in args.items():
        if k == "grad_out" or not isinstance(v, np.ndarray) or v.dtype.kind in "OUSM":
            continue
        if not (v.flags.c_contiguous and v.flags.aligned and v.dtype.isnative) or 0 in v.strides:
            return True
    return False


def _call(fn, args):
    try:
        return fn(**args), None
    except BaseException as e:  # noqa: BLE001 - the oracle judges every exception
        if isinstance(e, KeyboardInterrupt):
            raise
        return None, e


def run_case(case):
    """Runs one case; returns its failures, each a dict (check, detail, and known item if any)."""
    import fastloss
    from fuzz_references import REFERENCES, disagreement
    from fuzz_specs import KNOWN, SPECS

    spec = SPECS[case["f"]]
    fn = getattr(fastloss, case["f"])
    params = list(inspect.signature(fn).parameters)
    try:
        args = build(case)
    except Exception as e:  # a harness bug, not a fastloss one
        return [{"check": "harness", "detail": f"building the case: {type(e).__name__}: {e}"}]
    for k in KNOWN:
        skip = k.skip is True or (k.skip == "sanitizer" and os.environ.get("FASTLOSS_FUZZ_SANITIZER") == "1")
        if skip and k.match(case["f"], args, None):
            return [{"check": "skipped", "detail": "", "known": k.item}]
    gmode = case["args"].get("grad_out", {}).get("mode", "none")
    threads = fastloss.get_num_threads()
    snaps = {k: _snapshot(v) for k, v in args.items() if k != "grad_out"}
    # the arguments as they were before the call (an in-place gradient overwrites one), for the
    # float64 reference and the contiguous copies
    before = {k: (np.array(v, copy=True) if isinstance(v, np.ndarray) else v) for k, v in args.items()}
    out, exc = _call(fn, args)
    fastloss.set_num_threads(threads)
    failures = []

    def fail(check, detail):
        failures.append({"check": check, "detail": detail})

    if exc is not None:
        msg = str(exc)
        if not isinstance(exc, ALLOWED):
            fail("exception type", f"{type(exc).__name__}: {msg[:300]}")
        elif "incompatible function arguments" in msg or not _names_an_argument(msg, params):
            fail("message", f"{type(exc).__name__} names no argument of {params}: {msg[:300]}")
        if gmode == "inplace" and "grad_out" in args:
            snaps_inplace = True  # an error leaves even the in-place input unchanged
        else:
            snaps_inplace = False
    else:
        snaps_inplace = False
        g_bad = args.get("grad_out")
        # "overlap" is bad only where it really shares memory with an input (size-0 and
        # one-row inputs get a fresh array from the recipe)
        if gmode == "overlap" and isinstance(g_bad, np.ndarray):
            g_bad = g_bad if any(isinstance(a, np.ndarray) and a is not g_bad and np.shares_memory(a, g_bad)
                                 for a in args.values()) else None
        if gmode in ("wrong_dtype", "wrong_shape", "broadcast", "readonly", "overlap", "list", "f16_for_f32") \
                and g_bad is not None:
            fail("accepted a bad grad_out", f"grad_out mode {gmode} did not raise")
        try:
            spec.returns(out, args)
        except AssertionError as e:
            fail("result", str(e)[:300])
        except Exception as e:  # noqa: BLE001
            fail("result", f"checking the result raised {type(e).__name__}: {e}"[:300])
    g = args.get("grad_out")
    for k, snap in snaps.items():
        if isinstance(g, np.ndarray) and isinstance(args[k], np.ndarray) and exc is None and not snaps_inplace \
                and (args[k] is g or (gmode == "alias" and np.shares_memory(args[k], g))):
            continue  # the in-place gradient's input (and its views) are meant to change
        if not _same(snap, args[k]):
            fail("input modified", f"{k} changed")
    reference = REFERENCES.get(case["f"])
    if exc is None and reference is not None:
        try:
            with warnings.catch_warnings(), np.errstate(all="ignore"):
                warnings.simplefilter("ignore")
                want = reference(dict(before))
        except Exception as e:  # noqa: BLE001 - a reference that cannot take these arguments
            want = None
            fail("harness", f"the reference raised {type(e).__name__}: {str(e)[:200]}")
        if want is not None:
            why = disagreement(out, want)
            if why:
                fail("reference", "differs from the float64 reference: " + why)
    if (gmode in ("none", "fresh", "strided") and _needs_reference(args)) or (gmode == "alias" and exc is None):
        ref = {k: _plain(v) for k, v in before.items()}
        if ref.get("grad_out") is not None:
            ref["grad_out"] = np.empty(ref["grad_out"].shape, ref["grad_out"].dtype)
        out2, exc2 = _call(fn, ref)
        fastloss.set_num_threads(threads)
        if (exc is None) != (exc2 is None) or (exc is not None and type(exc) is not type(exc2)):
            fail("layout", f"views: {type(exc).__name__ if exc else 'ok'} ({str(exc)[:150] if exc else ''}); "
                           f"contiguous copies: {type(exc2).__name__ if exc2 else 'ok'} "
                           f"({str(exc2)[:150] if exc2 else ''})")
        elif exc is None:
            why = _compare(out, out2)
            if why:
                fail("alias" if gmode == "alias" else "layout",
                     ("aliased inputs" if gmode == "alias" else "views") + " and contiguous copies differ: " + why)
    for f in failures:
        f["known"] = next((k.item for k in KNOWN if not k.skip and k.match(case["f"], args, f)), None)
    return failures


def describe(case):
    """The case's arguments, short (for failure reports)."""
    try:
        args = build(case)
    except Exception as e:  # noqa: BLE001
        return f"<unbuildable: {e}>"
    parts = []
    for k, v in args.items():
        if isinstance(v, np.ndarray):
            parts.append(f"{k}=array(shape={v.shape}, dtype={v.dtype.str}, strides={v.strides}, "
                         f"aligned={v.flags.aligned})")
        else:
            r = repr(v)
            parts.append(f"{k}={r if len(r) < 80 else r[:77] + '...'}")
    return f"{case['f']}(" + ", ".join(parts) + ")"


# --- child: seeded batches, each case announced before it runs --------------------------------

def child(seed, deadline, only):
    from hypothesis import HealthCheck, Phase, Verbosity, given, settings
    from hypothesis import seed as hseed

    names = _functions(only)
    strategy = case_strategy(names)
    crash_at = int(os.environ.get("FASTLOSS_FUZZ_SELFTEST_CRASH", "-1"))  # tests the crash path
    count = [0]
    batch = 0
    while time.time() < deadline:
        s = seed + batch
        index = [0]

        @hseed(s)
        @settings(max_examples=BATCH, phases=[Phase.generate], database=None, deadline=None, derandomize=False,
                  suppress_health_check=list(HealthCheck), verbosity=Verbosity.quiet)
        @given(strategy)
        def run(case):
            if time.time() >= deadline:
                return
            case = json.loads(json.dumps(case))  # exactly what a replay of the printed line builds
            print("CASE " + json.dumps({"seed": s, "index": index[0], "case": case}), flush=True)
            index[0] += 1
            count[0] += 1
            if count[0] == crash_at:
                os.kill(os.getpid(), signal.SIGSEGV)
            for f in run_case(case):
                tag = "KNOWN" if f.get("known") else "FAIL"
                print(tag + " " + json.dumps(f), flush=True)

        run()
        batch += 1
    print(f"DONE {count[0]}", flush=True)


# --- parent: children until the budget is spent ------------------------------------------------

def _reader(stream, q):
    for line in stream:
        q.put(line)
    q.put(None)


def parent(seconds, seed, only, show_known=False):
    t_end = time.time() + seconds
    shown = {}  # known failures reported with --show-known
    cases, known, failures = 0, {}, {}  # failures: signature -> count
    cmd_base = [sys.executable, os.path.abspath(__file__), "--child"] + (["--only", ",".join(only)] if only else [])
    print(f"fuzz: {seconds:.0f} s from seed {seed}", flush=True)
    while time.time() < t_end - 1:
        cmd = cmd_base + ["--seed", str(seed), "--deadline", str(t_end)]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, bufsize=1)
        q: queue.Queue = queue.Queue()
        threading.Thread(target=_reader, args=(proc.stdout, q), daemon=True).start()
        last, last_t, done, hung = None, time.time(), False, False
        while True:
            try:
                line = q.get(timeout=1.0)
            except queue.Empty:
                if time.time() - last_t > HANG_SECONDS:
                    hung = True
                    proc.kill()
                continue
            if line is None:
                break
            tag, _, body = line.rstrip("\n").partition(" ")
            if tag == "CASE":
                last, last_t = json.loads(body), time.time()
                cases += 1
            elif tag in ("FAIL", "KNOWN"):
                f = json.loads(body)
                if tag == "KNOWN":
                    known[f["known"]] = known.get(f["known"], 0) + 1
                    if show_known:
                        _record(shown, last, dict(f, check=f"known: {f['known']}; {f['check']}"))
                else:
                    _record(failures, last, f)
            elif tag == "DONE":
                done = True
        rc = proc.wait()
        if done and rc == 0:
            break
        what = "hang" if hung else (f"crash ({signal.Signals(-rc).name})" if rc < 0 else f"exit status {rc}")
        f = {"check": what, "detail": f"the child died while running the last case (exit {rc})"}
        if last is None:
            _record(failures, None, f)
            print(f"fuzz: the child failed before its first case ({what})", flush=True)
            break
        from fuzz_specs import KNOWN
        try:
            args = build(last["case"])
            f["known"] = next((k.item for k in KNOWN if k.match(last["case"]["f"], args, f)), None)
        except Exception:  # noqa: BLE001
            f["known"] = None
        if f["known"]:
            known[f["known"]] = known.get(f["known"], 0) + 1
        else:
            _record(failures, last, f)
        seed = last["seed"] + 1  # the next batch: the crashing one would crash again
    total = sum(failures.values())
    print(f"fuzz: {cases} cases, {total} failures of {len(failures)} kinds" +
          "".join(f"\n  {n}x {sig}" for sig, n in failures.items()) +
          "".join(f"\n  known ({n}x): {item}" for item, n in sorted(known.items())), flush=True)
    return 1 if failures else 0


def _signature(case, f):
    """Failures with one cause share this (reported in full once, then counted)."""
    detail = re.sub(r"\d+", "#", f["detail"])[:70]
    return f"{case['case']['f'] if case else '?'}: [{f['check']}] {detail}"


def _record(failures, last, f):
    sig = _signature(last, f)
    failures[sig] = failures.get(sig, 0) + 1
    if failures[sig] == 1:
        _report(last, f)


def _report(last, f):
    print(f"\nFAIL [{f['check']}] {f['detail']}", flush=True)
    if last is not None:
        print(f"  case (seed {last['seed']}, index {last['index']}): {describe(last['case'])}", flush=True)
        print("  replay: PYTHONPATH=python python3 tools/fuzz.py --replay '" + json.dumps(last["case"]) + "'",
              flush=True)


def replay(case_json):
    case = json.loads(case_json)
    print(describe(case), flush=True)
    failures = run_case(case)
    for f in failures:
        print(("KNOWN " if f.get("known") else "FAIL ") + json.dumps(f))
    return 1 if any(not f.get("known") for f in failures) else 0


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=float(os.environ.get("FASTLOSS_FUZZ_SECONDS", "120")))
    ap.add_argument("--seed", type=int, default=int(os.environ.get("FASTLOSS_FUZZ_SEED", "0")))
    ap.add_argument("--only", default="", help="comma-separated function names")
    ap.add_argument("--replay", help="a case's JSON, as printed with a failure")
    ap.add_argument("--show-known", action="store_true", help="also report the first case of each known failure")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--deadline", type=float, help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    only = [s for s in a.only.split(",") if s]
    if a.replay:
        return replay(a.replay)
    if a.child:
        child(a.seed, a.deadline, only)
        return 0
    return parent(a.seconds, a.seed, only, a.show_known)


if __name__ == "__main__":
    sys.exit(main())
