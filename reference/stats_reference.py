"""The references of tests/statistics.rs: reads {"kind": ..., "cases": [...]} as JSON on stdin and
prints one JSON list, one result per case, computed by scipy, statsmodels or numpy on exactly the
numbers given. Run by the set-up's Python (scripts/setup-python-reference.sh installs the pins)."""
# Named stats_reference.py, not statistics.py: a file of that name in reference/ would shadow the
# standard library module for the other reference scripts run from here (torch imports it via triton).

import json
import sys

import numpy as np


def main():
    request = json.load(sys.stdin)
    kind, cases = request["kind"], request["cases"]
    if kind in ("t_cdf", "t_ppf", "norm_cdf", "norm_ppf", "t_interval", "ttest_rel"):
        from scipy import stats
    if kind == "t_cdf":
        out = [float(stats.t.cdf(t, df)) for t, df in cases]
    elif kind == "t_ppf":
        out = [float(stats.t.ppf(p, df)) for p, df in cases]
    elif kind == "norm_cdf":
        out = [float(stats.norm.cdf(z)) for z in cases]
    elif kind == "norm_ppf":
        out = [float(stats.norm.ppf(p)) for p in cases]
    elif kind == "mean_std":
        out = [[float(np.mean(x)), float(np.std(x, ddof=1))] for x in map(np.array, cases)]
    elif kind == "t_interval":
        out = []
        for case in cases:
            x = np.array(case["x"])
            lo, hi = stats.t.interval(case["level"], len(x) - 1, loc=np.mean(x), scale=stats.sem(x))
            out.append([float(lo), float(hi)])
    elif kind == "ttest_rel":
        out = []
        for case in cases:
            r = stats.ttest_rel(np.array(case["x"]), np.array(case["y"]))
            out.append([float(np.mean(np.array(case["x"]) - np.array(case["y"]))), float(r.statistic), float(r.df), float(r.pvalue)])
    elif kind == "holm":
        from statsmodels.stats.multitest import multipletests

        out = [[float(v) for v in multipletests(np.array(p), method="holm")[1]] for p in cases]
    elif kind == "percentile":
        out = [[float(v) for v in np.percentile(np.array(c["x"]), c["percent"])] for c in cases]
    elif kind == "t_plus_normal":
        # W = b·T_ν + c·Z (independent t and standard normal): P(|W| ≥ h) by integrating the t's
        # two tails against the normal density (scipy.integrate.quad), and the h' with
        # P(|W| ≥ h') = alpha by scipy.optimize.brentq, bracketed by the union bound
        # b·t_{1−α/4} + c·z_{1−α/4}.
        from scipy import integrate, optimize, stats

        def tail(b, nu, c, h):
            def f(z):
                return stats.norm.pdf(z) * (stats.t.sf((h - c * z) / b, nu) + stats.t.cdf((-h - c * z) / b, nu))

            return integrate.quad(f, -np.inf, np.inf, epsabs=0, epsrel=1e-13, limit=500)[0]

        out = []
        for case in cases:
            b, nu, c, h, alpha = case["b"], case["nu"], case["c"], case["h"], case["alpha"]
            hi = b * stats.t.ppf(1 - alpha / 4, nu) + c * stats.norm.ppf(1 - alpha / 4)
            q = optimize.brentq(lambda x: tail(b, nu, c, x) - alpha, 0.0, hi, xtol=1e-15, rtol=1e-14)
            out.append([tail(b, nu, c, h), q])
    elif kind == "power":
        # The exact effect size (mean / sd of the differences) a two-sided one-sample (paired)
        # t-test detects with the given power: noncentral t.
        from statsmodels.stats.power import TTestPower

        out = [
            float(TTestPower().solve_power(effect_size=None, nobs=c["n"], alpha=1 - c["level"], power=c["power"], alternative="two-sided"))
            for c in cases
        ]
    else:
        raise SystemExit(f"unknown kind {kind!r}")
    json.dump(out, sys.stdout)


main()
