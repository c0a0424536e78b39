"""``make bench`` (``python -m bench``): ПОС ОГ's workloads on PostgreSQL + RabbitMQ, each measured beside
its raw limits in the same run, printed as one table and saved as JSON.

Workloads are discovered: every module of the ``bench`` package (not ``common``, not starting with
``_``) is imported, and its ``@workload`` functions register themselves (see ``bench/common.py``).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import os
import pkgutil
import platform
import signal
import sys
import time
import traceback
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table

from bench.common import (
    AMQP_URL,
    PG_ADMIN_DSN,
    REGISTRY,
    BenchContext,
    BenchError,
    Measurement,
    Ratio,
    Target,
    Workload,
    python_version,
    safe_url,
)

DEFAULT_JSON = Path("bench/results/latest.json")
NOT_WORKLOAD_MODULES = {"common", "http"}  # helpers, not workloads


def discover() -> None:
    import bench

    for module in pkgutil.iter_modules(bench.__path__):
        if not module.name.startswith("_") and module.name not in NOT_WORKLOAD_MODULES:
            importlib.import_module(f"bench.{module.name}")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="ПОС ОГ on PostgreSQL + RabbitMQ, each workload beside its raw limits (docs/performance.md).",
    )
    parser.add_argument("--facts", type=int, default=20_000, metavar="N", help="facts (messages, rows) per workload")
    parser.add_argument(
        "--only",
        action="append",
        metavar="NAME",
        help="run only this workload (and the raw limits it is compared with); repeatable or comma-separated",
    )
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON, metavar="PATH", help="where to save the results")
    parser.add_argument("--timeout", type=float, default=600.0, metavar="S", help="limit per workload, seconds")
    parser.add_argument(
        "--rounds", type=int, default=1, metavar="R", help="run everything R times; report each row's median"
    )
    parser.add_argument(
        "--profile", action="store_true", help="cProfile the timed part of workloads that support it (slows them)"
    )
    parser.add_argument(
        "--analytics-ratings",
        type=int,
        default=10_000_000,
        metavar="R",
        help="analytics: criterion ratings the rollups are rebuilt over (R/5 responses, 2R/5 cards)",
    )
    parser.add_argument(
        "--analytics-new",
        type=int,
        default=100_000,
        metavar="R",
        help="analytics: new ratings the incremental refresh reads through the feeds",
    )
    parser.add_argument(
        "--dashboard-requests", type=int, default=600, metavar="N", help="analytics: dashboard API requests"
    )
    parser.add_argument("--list", action="store_true", help="list the workloads and exit")
    args = parser.parse_args(argv)
    if args.facts < 1:
        parser.error("--facts must be at least 1")
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    if args.analytics_new < 5 or args.analytics_ratings < 10 * args.analytics_new:
        parser.error("--analytics-new must be at least 5 and at most a tenth of --analytics-ratings")
    args.only = [name.strip() for value in args.only or [] for name in value.split(",") if name.strip()]
    unknown = [name for name in args.only if name not in REGISTRY]
    if unknown:
        parser.error(f"unknown workload(s) {', '.join(unknown)}; known: {', '.join(REGISTRY)}")
    return args


def plan(only: list[str]) -> list[Workload]:
    """The workloads to run, each preceded by the raw limits it is compared with (once each)."""
    wanted = only or [w.name for w in REGISTRY.values() if w.kind == "workload"] + list(REGISTRY)
    ordered: list[str] = []

    def add(name: str) -> None:
        if name in ordered:
            return
        for limit in REGISTRY[name].limits:
            add(limit)
        ordered.append(name)

    for name in wanted:
        add(name)
    return [REGISTRY[name] for name in ordered]


def _target_value(target: Target, m: Measurement | None) -> float | None:
    """The figure a target is about: the rate, or a figure of ``extra`` (``Bound.field``, e.g. a p99)."""
    if m is None:
        return None
    figure = getattr(target, "field", "")
    if not figure:
        return m.rate
    value = m.extra.get(figure)
    return None if value is None else float(value)


def target_met(target: Target, value: float | None) -> bool | None:
    """At least ``minimum``, or at most ``maximum`` for a target that has one (``bench.http.Bound``)."""
    if value is None:
        return None
    maximum = getattr(target, "maximum", None)
    return value <= maximum if maximum is not None else value >= target.minimum


def _target_text(target: Target, unit: str) -> str:
    maximum = getattr(target, "maximum", None)
    if maximum is not None:
        return f"≤ {_rate(maximum, getattr(target, 'unit', '') or '').strip()}"
    return f"≥ {_rate(target.minimum, '').strip()}"


def _per_cpu_second(m: Measurement | None) -> float | None:
    cpu = (m.extra.get("cpu") or {}).get("python_s") if m else None
    return m.count / cpu if m and cpu else None


@dataclass
class Report:
    facts: int
    rounds: int
    workloads: list[Workload]
    measurements: dict[str, list[Measurement]] = field(default_factory=dict)
    failures: list[tuple[str, str]] = field(default_factory=list)
    started_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    finished_at: str = ""

    def add(self, measurement: Measurement) -> None:
        self.measurements.setdefault(measurement.key, []).append(measurement)

    def median(self, key: str) -> Measurement | None:
        runs = sorted(self.measurements.get(key, []), key=lambda m: m.rate)
        return runs[(len(runs) - 1) // 2] if runs else None

    def ratios(self) -> list[tuple[Ratio, float | None]]:
        seen: list[Ratio] = []
        for w in self.workloads:
            seen += [r for r in w.ratios if r not in seen]
        result = []
        for ratio in seen:
            top, bottom = self.median(ratio.numerator), self.median(ratio.denominator)
            result.append((ratio, top.rate / bottom.rate if top and bottom and bottom.rate else None))
        return result

    def cpu_ratio(self, ratio: Ratio) -> float | None:
        """The ratio of rates per CPU-second of this (Python) process: far less sensitive than the
        plain ratio to other load on the machine, when both sides are bound by this process's CPU."""
        if not ratio.cpu_bound:
            return None
        top, bottom = _per_cpu_second(self.median(ratio.numerator)), _per_cpu_second(self.median(ratio.denominator))
        return top / bottom if top and bottom else None

    def targets(self) -> list[tuple[Target, float | None]]:
        seen: list[Target] = []
        for w in self.workloads:
            seen += [t for t in w.targets if t not in seen]
        return [(t, _target_value(t, self.median(t.key))) for t in seen]

    def verdicts(self) -> list[bool | None]:
        """One per target and per ratio with a minimum: met, not met, or not measured (None)."""
        out: list[bool | None] = [target_met(t, v) for t, v in self.targets()]
        out += [None if v is None else v >= r.minimum for r, v in self.ratios() if r.minimum is not None]
        return out


async def run(args: argparse.Namespace, ctx: BenchContext, report: Report) -> None:
    ctx.fact_messages()  # generated once, before anything is timed
    for round_number in range(1, args.rounds + 1):
        if args.rounds > 1:
            ctx.log.print(f"[bold]round {round_number}/{args.rounds}[/bold]")
        for w in report.workloads:
            ctx.step(w.name, "starting")
            ctx.recorded = []
            deadline = asyncio.timeout(args.timeout)
            try:
                async with deadline:
                    measurements = await w.run(ctx)
            except asyncio.CancelledError:  # interrupted: keep what was measured, then stop
                for measurement in ctx.recorded:
                    report.add(measurement)
                raise
            except TimeoutError as exc:
                if deadline.expired():
                    message = (
                        f"timed out after {args.timeout:g} s during «{ctx.phase}» ({ctx.progress or 'no progress'})"
                    )
                else:
                    message = f"TimeoutError: {exc}"
                report.failures.append((w.name, message))
            except BenchError as exc:
                report.failures.append((w.name, str(exc)))
            except Exception as exc:
                traceback.print_exc()
                report.failures.append((w.name, f"{exc.__class__.__name__}: {exc}"))
            else:
                for measurement in [*ctx.recorded, *(m for m in measurements if m not in ctx.recorded)]:
                    report.add(measurement)
                continue
            for measurement in ctx.recorded:  # what was measured before the failure still counts
                report.add(measurement)
            ctx.log.print(f"[red]{w.name} failed: {report.failures[-1][1]}[/red]")


# --- Output --------------------------------------------------------------------------------------


def _rate(value: float, unit: str) -> str:
    return f"{value:,.0f} {unit}".replace(",", " ")


def _verdict(met: bool | None) -> str:
    return {True: "[green]met[/green]", False: "[bold red]NOT MET[/bold red]", None: "[yellow]not measured[/yellow]"}[
        met
    ]


def _cores(m: Measurement) -> str:
    """CPU seconds per wall second (busy cores) of the timed part: this Python process, the
    PostgreSQL backends of its database, the RabbitMQ broker, the whole machine."""
    cpu = m.extra.get("cpu") or {}
    wall = cpu.get("wall_s") or 0
    if not wall:
        return ""
    parts = [cpu.get(k) for k in ("python_s", "postgres_s", "rabbitmq_s", "machine_busy_s")]
    return "·".join("–" if v is None else f"{v / wall:.2f}" for v in parts)


def _row(
    out: Table,
    label: str,
    *,
    n: str = "",
    seconds: str = "",
    value: str = "",
    target: str = "",
    cores: str = "",
    cpu: str = "",
    how: str = "",
) -> None:
    out.add_row(label, n, seconds, value, target, cores, cpu, how)


def table(report: Report) -> Table:
    spread = report.rounds > 1
    out = Table(
        title=f"ПОС ОГ benchmarks — N = {report.facts:,}".replace(",", " ")
        + (f", median of {report.rounds} rounds" if spread else ""),
        box=box.SIMPLE_HEAVY,
        title_justify="left",
    )
    out.add_column("row", no_wrap=True)
    out.add_column("N", justify="right")
    out.add_column("time, s", justify="right")
    out.add_column("rate / value", justify="right", no_wrap=True)
    out.add_column("target → result", justify="right", no_wrap=True)
    out.add_column("cores busy\npy·pg·mq·all", justify="right", no_wrap=True)
    out.add_column("py CPU\nµs/item", justify="right")
    out.add_column("how", style="dim", overflow="fold")

    for kind, heading in (("workload", "workloads"), ("limit", "raw limits, same run")):
        keys = [k for k, runs in report.measurements.items() if runs[0].kind == kind]
        failed = [(n, msg) for n, msg in report.failures if REGISTRY[n].kind == kind]
        if not keys and not failed:
            continue
        _row(out, f"[bold]{heading}[/bold]")
        for key in keys:
            m = report.median(key)
            assert m is not None
            rate = _rate(m.rate, m.unit)
            if spread:
                rates = [r.rate for r in report.measurements[key]]
                rate += f"\n[dim]{min(rates):,.0f}–{max(rates):,.0f}[/dim]".replace(",", " ")
            per_cpu = _per_cpu_second(m)
            _row(
                out,
                f"  {m.label}",
                n=f"{m.count:,}".replace(",", " "),
                seconds=f"{m.seconds:.2f}",
                value=rate,
                cores=_cores(m),
                cpu=f"{1e6 / per_cpu:,.0f}".replace(",", " ") if per_cpu else "",
                how=m.method,
            )
        for name, message in failed:
            _row(out, f"  [red]{name}[/red]", target="[bold red]FAILED[/bold red]", how=f"[red]{message}[/red]")
        out.add_section()

    ratios, targets = report.ratios(), report.targets()
    if ratios or targets:
        _row(out, "[bold]ratios and targets[/bold]")
        for target, value in targets:
            unit = m.unit if (m := report.median(target.key)) else ""
            if getattr(target, "field", ""):
                unit = getattr(target, "unit", "")
            met = target_met(target, value)
            shown = "—" if value is None else _rate(value, unit) if value >= 100 else f"{value:.1f} {unit}"
            _row(out, f"  {target.label}", value=shown, target=f"{_target_text(target, unit)} {_verdict(met)}")
        for ratio, value in ratios:
            cpu_ratio = report.cpu_ratio(ratio)
            met = None if value is None else value >= (ratio.minimum or 0)
            _row(
                out,
                f"  {ratio.label}",
                value="—" if value is None else f"{value:.2f}",
                target="" if ratio.minimum is None else f"≥ {ratio.minimum:.2f} {_verdict(met)}",
                how="" if cpu_ratio is None else f"per Python CPU-second: {cpu_ratio:.2f}",
            )
        verdicts = report.verdicts()
        if verdicts:
            overall = None if None in verdicts else all(verdicts)
            wanted = [f"{t.label} {_target_text(t, '')}".strip() for t, _ in targets] + [
                f"{r.label} ≥ {r.minimum:.2f}" for r, _ in ratios if r.minimum is not None
            ]
            out.add_section()
            _row(
                out,
                "[bold]target[/bold]",
                value=f"{sum(v is True for v in verdicts)} of {len(verdicts)} met",
                target=_verdict(overall),
                how="; ".join(wanted),
            )
    return out


def _versions() -> dict[str, str]:
    versions = {"python": python_version()}
    for package in ("posog", "sqlalchemy", "asyncpg", "aio-pika", "aiormq", "pydantic", "cryptography"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = "?"
    return versions


def to_json(report: Report, ctx: BenchContext, args: argparse.Namespace) -> dict[str, Any]:
    settings = ctx.defaults()

    def measurement(key: str) -> dict[str, Any]:
        m = report.median(key)
        assert m is not None
        return {
            "key": m.key,
            "label": m.label,
            "kind": m.kind,
            "count": m.count,
            "seconds": round(m.seconds, 4),
            "rate": round(m.rate, 1),
            "unit": m.unit,
            "method": m.method,
            "extra": m.extra,
            "rounds": [{"seconds": round(r.seconds, 4), "rate": round(r.rate, 1)} for r in report.measurements[key]],
        }

    verdicts = report.verdicts()
    return {
        "schema": "posog.bench/1",
        "started_at": report.started_at,
        "finished_at": report.finished_at,
        "facts": report.facts,
        "rounds": report.rounds,
        "profiled": args.profile,
        "workloads": [w.name for w in report.workloads],
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        },
        "services": {"postgresql": safe_url(PG_ADMIN_DSN), "rabbitmq": safe_url(AMQP_URL)},
        "versions": _versions(),
        "settings": {
            name: getattr(settings, name)
            for name in (
                "consumer_prefetch",
                "intake_batch_size",
                "intake_batch_wait_ms",
                "relay_batch_size",
                "relay_idle_sleep_ms",
                "db_pool_size",
                "questionnaire_cache_s",
            )
        },
        "measurements": [measurement(key) for key in report.measurements],
        "targets": [
            {
                "label": t.label,
                "key": t.key,
                "minimum": None if getattr(t, "maximum", None) is not None else t.minimum,
                "maximum": getattr(t, "maximum", None),
                "field": getattr(t, "field", "") or "rate",
                "value": v,
                "met": target_met(t, v),
            }
            for t, v in report.targets()
        ],
        "ratios": [
            {
                "label": r.label,
                "numerator": r.numerator,
                "denominator": r.denominator,
                "value": None if v is None else round(v, 4),
                "per_python_cpu_second": None if (c := report.cpu_ratio(r)) is None else round(c, 4),
                "minimum": r.minimum,
                "met": None if v is None or r.minimum is None else v >= r.minimum,
            }
            for r, v in report.ratios()
        ],
        "target_met": None if not verdicts or None in verdicts else all(verdicts),
        "profiles": ctx.profiles,
        "failures": [{"workload": n, "error": e} for n, e in report.failures],
        "leftovers": ctx.leftovers,
    }


# --- Entry point ---------------------------------------------------------------------------------


async def _main(args: argparse.Namespace, ctx: BenchContext, report: Report) -> None:
    task = asyncio.current_task()
    assert task is not None
    loop = asyncio.get_running_loop()

    def interrupted(signum: signal.Signals) -> None:  # clean up as on Ctrl-C
        ctx.log.print(f"[yellow]{signum.name} received: stopping and cleaning up[/yellow]")
        task.cancel()

    for signum in (signal.SIGTERM, signal.SIGHUP):
        loop.add_signal_handler(signum, interrupted, signum)
    await run(args, ctx, report)


def main(argv: list[str] | None = None) -> int:
    from posog.core.logging import configure_logging

    configure_logging("WARNING")  # the application's own logs to stderr, warnings and errors only
    discover()
    args = parse_args(argv)
    console = Console() if sys.stdout.isatty() else Console(width=180)  # a file or pipe gets the whole table
    ctx = BenchContext(facts=args.facts, results_dir=args.json.parent, profile=args.profile)
    ctx.cache.update(
        {
            "analytics.ratings": args.analytics_ratings,
            "analytics.new": args.analytics_new,
            "analytics.dashboard": args.dashboard_requests,
        }
    )
    if args.list:
        for w in REGISTRY.values():
            limits = f" (beside {', '.join(w.limits)})" if w.limits else ""
            console.print(f"{w.name:<14} {w.kind:<8} {w.description}{limits}")
        return 0
    report = Report(facts=args.facts, rounds=args.rounds, workloads=plan(args.only))
    ctx.log.print(f"running {', '.join(w.name for w in report.workloads)} with N = {args.facts}")
    started = time.perf_counter()
    interrupted = False
    try:
        asyncio.run(_main(args, ctx, report))
    except (KeyboardInterrupt, asyncio.CancelledError) as exc:
        interrupted = True
        ctx.log.print(f"[yellow]interrupted ({exc.__class__.__name__}): partial results[/yellow]")
    report.finished_at = datetime.now(UTC).isoformat(timespec="seconds")
    console.print(table(report))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(to_json(report, ctx, args), ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    ctx.log.print(f"saved {args.json} ({time.perf_counter() - started:.0f} s in all)")
    if ctx.leftovers:
        ctx.log.print("[red]not cleaned up (remove by hand):[/red]\n  " + "\n  ".join(ctx.leftovers))
    if interrupted:
        return 130
    return 1 if report.failures or ctx.leftovers else 0


if __name__ == "__main__":
    sys.exit(main())
