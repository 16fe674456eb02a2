"""PNG figures of the benchmark results (matplotlib, imported only when a plot is asked for).

Each function takes the JSON summary that its benchmark writes, so a figure can also be made
again later from a saved file:

    .venv/bin/python benchmarks/plots.py api.json api.png
    .venv/bin/python benchmarks/plots.py transfer.json transfer.png
    .venv/bin/python benchmarks/plots.py download.json download.png
    .venv/bin/python benchmarks/plots.py aiida.json aiida.png
    .venv/bin/python benchmarks/plots.py users.json users.png
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

COLORS = {"api": "#1f77b4", "raw_exec": "#ff7f0e", "raw_sftp": "#2ca02c"}
TRANSFER_COLORS = {"api": COLORS["api"], "api_curl": "#9ecae1", "raw_sftp": COLORS["raw_sftp"]}
LABELS = {
    "api": "API (wrk over HTTP)",
    "raw_exec": "raw exec (process per request, one SSH connection)",
    "raw_sftp": "raw SFTP (one SSH connection)",
}


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # no display: write files only
    import matplotlib.pyplot as plt

    return plt


def api_figure(summary: dict, path: Path) -> None:
    """Requests/s and P50/P99 latency against concurrent clients, one column per endpoint."""
    plt = _pyplot()
    rows = summary["rows"]
    endpoints = list(dict.fromkeys(r["endpoint"] for r in rows))
    fig, axes = plt.subplots(
        2, len(endpoints), figsize=(4.6 * len(endpoints), 7.2), squeeze=False, sharex=True
    )
    for column, endpoint in enumerate(endpoints):
        mine = [r for r in rows if r["endpoint"] == endpoint]
        clients = [r["clients"] for r in mine]
        top, bottom = axes[0][column], axes[1][column]
        for way in ("api", "raw_exec", "raw_sftp"):
            if way not in mine[0]:
                continue
            color = COLORS[way]
            top.plot(clients, [r[way]["rps"] for r in mine], "o-", color=color, label=LABELS[way])
            bottom.plot(clients, [r[way]["p99_ms"] for r in mine], "o-", color=color)
            bottom.plot(clients, [r[way]["p50_ms"] for r in mine], "x--", color=color)
        failed = {
            way: sum(r[way]["errors"] for r in mine)
            for way in ("api", "raw_exec")
            if way in mine[0]
        }
        top.set_title(
            f"{endpoint}: "
            + ", ".join(f"{way.replace('_', ' ')} errors {n}" for way, n in failed.items()),
            fontsize=10,
        )
        top.set_ylabel("requests/s")
        top.set_ylim(bottom=0)
        bottom.set_ylabel("latency, ms (log): P99 solid, P50 dashed")
        bottom.set_yscale("log")
        bottom.set_xlabel("concurrent clients")
        for ax in (top, bottom):
            ax.set_xscale("log")
            ax.set_xticks(clients, [str(c) for c in clients])
            ax.minorticks_off()
            ax.grid(True, which="major", alpha=0.3)
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=3, fontsize=9, frameon=False)
    fig.suptitle(
        f"API vs. raw SSH, {summary.get('seconds', 0):.0f} s per point"
        + (f" ({summary['label']})" if summary.get("label") else ""),
        fontsize=11,
    )
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    fig.savefig(path, dpi=100)
    plt.close(fig)


def transfer_figure(result: dict, path: Path) -> None:
    """Big-file MiB/s and CPU per GiB, api vs. raw SFTP; tree times of the three ways."""
    plt = _pyplot()
    big = result["big_file"]
    fig, (speed, cpu, trees) = plt.subplots(1, 3, figsize=(14, 4.4))
    directions = ("up", "down")
    ways = [
        (way, label)
        for way, label in (
            ("api", "API, httpx"),
            ("api_curl", "API, curl"),
            ("raw_sftp", "raw SFTP"),
        )
        if way in big["up"]
    ]
    width = 0.8 / len(ways)
    for i, (way, label) in enumerate(ways):
        offset = (i - (len(ways) - 1) / 2) * width
        color = TRANSFER_COLORS[way]
        xs = [j + offset for j in range(len(directions))]
        values = [big[d][way]["mib_s"] for d in directions]
        speed.bar(xs, values, width, label=label, color=color)
        for x, v in zip(xs, values, strict=True):
            speed.annotate(f"{v:.0f}", (x, v), ha="center", va="bottom", fontsize=8)
        bottoms = [0.0, 0.0]
        for party, shade in (("client", 1.0), ("server", 0.7), ("sshd", 0.4)):
            if way == "raw_sftp" and party == "server":
                continue  # raw SFTP has no server in the middle
            part = [big[d][way]["cpu_s_per_gib"][party] for d in directions]
            cpu.bar(
                xs,
                part,
                width,
                bottom=bottoms,
                color=color,
                alpha=shade,
                edgecolor="black",
                linewidth=0.4,
                label=f"{label}: {party}",
            )
            bottoms = [b + p for b, p in zip(bottoms, part, strict=True)]
    size_mib = big["size_bytes"] / 2**20
    speed.set_title(f"big file, {size_mib:.0f} MiB, median of {big['repeat']}")
    speed.set_ylabel("MiB/s")
    cpu.set_title("CPU seconds per GiB (client + server + sshd)")
    cpu.set_ylabel("CPU s/GiB")
    for ax in (speed, cpu):
        ax.set_xticks(range(len(directions)), ["upload", "download"])
        ax.set_ylim(top=ax.get_ylim()[1] * 1.4)  # room for the legend above the bars
        ax.legend(fontsize=7, loc="upper center", ncol=2)
    tree = result["trees"]
    ways = (("api", "API tree"), ("raw", "raw SSH tar"), ("files", "API per file"))
    tree_colors = {"api": COLORS["api"], "raw": COLORS["raw_sftp"], "files": "#9467bd"}
    width = 0.26
    for i, (key, label) in enumerate(ways):
        xs = [j + (i - 1) * width for j in range(len(directions))]
        values = [tree["rows"][f"{key}_{d}"]["median_s"] for d in directions]
        trees.bar(xs, values, width, label=label, color=tree_colors[key])
    trees.set_yscale("log")
    trees.set_xticks(range(len(directions)), ["up", "down"])
    trees.set_ylabel("seconds (log)")
    trees.set_title(f"tree of {tree['files']} files, median of {tree['repeat']}")
    trees.set_ylim(top=trees.get_ylim()[1] * 4)
    trees.legend(fontsize=7, loc="upper center", ncol=3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


AIIDA_COLORS = {"firecrest": COLORS["api"], "asyncssh": COLORS["raw_sftp"], "openssh": "#9467bd"}


def aiida_figure(summary: dict, path: Path) -> None:
    """aiida_calcjobs: wall time per configuration and round, CPU per calculation (daemon +
    API server) per configuration and round, and the median seconds per phase."""
    plt = _pyplot()
    results = summary["results"]
    names = list(dict.fromkeys(row["config"] for row in results))
    rounds = sorted({row["round"] for row in results})
    by_round = {(row["round"], row["config"]): row for row in results}
    colors = {name: AIIDA_COLORS.get(name, "#7f7f7f") for name in names}
    fig, (wall, cpu, phases) = plt.subplots(1, 3, figsize=(15, 4.6))
    width = 0.8 / len(names)
    for i, name in enumerate(names):
        rows = [by_round.get((r, name)) for r in rounds]
        xs = [j + (i - (len(names) - 1) / 2) * width for j in range(len(rounds))]
        values = [row["wall_seconds"] if row else 0 for row in rows]
        wall.bar(xs, values, width, color=colors[name], label=name)
        for x, v in zip(xs, values, strict=True):
            wall.annotate(f"{v:.0f}", (x, v), ha="center", va="bottom", fontsize=8)
        daemon = [row["cpu_ms_per_calc"]["daemon"] if row else 0 for row in rows]
        server = [row["cpu_ms_per_calc"]["api_server"] if row else 0 for row in rows]
        for part, bottom, shade, label in (
            (daemon, None, 1.0, "daemon"),
            (server, daemon, 0.5, "API server"),
        ):
            cpu.bar(
                xs,
                part,
                width,
                bottom=bottom,
                color=colors[name],
                alpha=shade,
                edgecolor="black",
                linewidth=0.4,
                label=f"{name}: {label}",
            )
        for x, d, s in zip(xs, daemon, server, strict=True):
            cpu.annotate(f"{d + s:.0f}", (x, d + s), ha="center", va="bottom", fontsize=8)
    ticks = []
    for r in rounds:
        first = next(row["config"] for row in results if row["round"] == r and row["position"] == 0)
        ticks.append(f"round {r}\n({first} first)")
    ratios = summary.get("wall_ratios", {})
    # The time after the last submission (wall minus this script's submitting), per round.
    after = {
        label: [
            (
                by_round[(r, "firecrest")]["wall_seconds"]
                - by_round[(r, "firecrest")]["submit_seconds"]
            )
            / max(
                0.01, by_round[(r, other)]["wall_seconds"] - by_round[(r, other)]["submit_seconds"]
            )
            for r in rounds
            if (r, "firecrest") in by_round and (r, other) in by_round
        ]
        for label in ratios
        for other in [label.split("/", 1)[1]]
    }
    wall.set_title(
        "wall time, s"
        + "".join(
            f"\n{label}: "
            + ", ".join(f"{v:.2f}x" for v in values)
            + "; after the last submission: "
            + ", ".join(f"{v:.2f}x" for v in after[label])
            for label, values in ratios.items()
        ),
        fontsize=10,
    )
    wall.set_ylabel("seconds, first submission to last end")
    cpu.set_title("CPU ms per calculation: daemon + API server", fontsize=10)
    cpu.set_ylabel("CPU ms per calculation")
    for ax in (wall, cpu):
        ax.set_xticks(range(len(rounds)), ticks)
        ax.set_ylim(top=ax.get_ylim()[1] * 1.3)  # room for the legend above the bars
        ax.legend(fontsize=7, loc="upper center", ncol=len(names))
        ax.grid(True, axis="y", alpha=0.3)
    phase_names = list(
        dict.fromkeys(p for c in summary["configs"].values() for p in c["phases_median_s"])
    )
    for i, name in enumerate(names):
        medians = summary["configs"][name]["phases_median_s"]
        xs = [j + (i - (len(names) - 1) / 2) * width for j in range(len(phase_names))]
        phases.bar(
            xs, [medians.get(p, 0) for p in phase_names], width, color=colors[name], label=name
        )
    phases.set_xticks(range(len(phase_names)), phase_names)
    phases.set_ylabel("seconds")
    phases.set_title("seconds per calculation in each phase (median)", fontsize=10)
    phases.legend(fontsize=7)
    phases.grid(True, axis="y", alpha=0.3)
    fig.suptitle(
        f"AiiDA: {summary['count']} core.arithmetic.add per batch, {summary['workers']} daemon "
        f"workers, poll interval {summary['poll_interval']:g} s; load average "
        f"{summary['load_average']['start']} -> {summary['load_average']['end']} "
        f"({summary['cpus']} CPUs)",
        fontsize=11,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def users_figure(summary: dict, path: Path) -> None:
    """users: latency of the cold and warm waves, memory per user (worker RSS, sshd PSS), and
    the worker's SSH connections while idle until the reaper closes them."""
    plt = _pyplot()
    steps = summary["steps"]
    users = [row["users"] for row in steps]
    fig, (latency, memory, reaping) = plt.subplots(1, 3, figsize=(15, 4.6))
    for wave, color in (("cold", "#ff7f0e"), ("warm", COLORS["api"])):
        latency.plot(users, [r[wave]["p99_ms"] for r in steps], "o-", color=color)
        latency.plot(users, [r[wave]["p50_ms"] for r in steps], "x--", color=color)
        latency.plot(
            [],
            [],
            "-",
            color=color,
            label=f"{wave} ({'new' if wave == 'cold' else 'reused'} SSH connections)",
        )
    errors = sum(r[w]["errors"] for r in steps for w in ("cold", "warm"))
    latency.set_title(f"one ops/ls per user, all in flight; errors {errors}", fontsize=10)
    latency.set_ylabel("latency, ms (log): P99 solid, P50 dashed")
    latency.set_yscale("log")
    latency.legend(fontsize=8)
    width = 0.38
    xs = range(len(users))
    worker = [r["rss_per_user_kib"] for r in steps]
    sshd = [r["sshd_pss_per_connection_mib"] * 1024 for r in steps]
    memory.bar(
        [x - width / 2 for x in xs],
        worker,
        width,
        color=COLORS["api"],
        label="API worker: RSS growth per user",
    )
    memory.bar(
        [x + width / 2 for x in xs],
        sshd,
        width,
        color=COLORS["raw_sftp"],
        label="login node: sshd PSS per connection",
    )
    for x, w, d in zip(xs, worker, sshd, strict=True):
        memory.annotate(f"{w:.0f}", (x - width / 2, w), ha="center", va="bottom", fontsize=8)
        memory.annotate(f"{d:.0f}", (x + width / 2, d), ha="center", va="bottom", fontsize=8)
    memory.set_xticks(list(xs), [str(u) for u in users])
    memory.set_ylabel("KiB")
    memory.set_ylim(top=memory.get_ylim()[1] * 1.3)
    memory.set_title("memory per active user", fontsize=10)
    memory.legend(fontsize=8, loc="upper center")
    for row in steps:
        t, n = zip(*row["reaping"]["samples"], strict=True)
        reaping.step(
            t, n, where="post", label=f"{row['users']} users: {row['reaping']['seconds']:.1f} s"
        )
    reaping.axvline(summary["idle_timeout"], color="grey", linestyle=":", label="ssh.idle_timeout")
    reaping.set_yscale("symlog")
    reaping.set_ylim(bottom=0)
    reaping.set_xlabel("seconds since the last request ended")
    reaping.set_ylabel("worker's SSH connections (symlog)")
    reaping.set_title("idle connections reaped", fontsize=10)
    reaping.legend(fontsize=8)
    for ax in (latency,):
        ax.set_xscale("log")
        ax.set_xticks(users, [str(u) for u in users])
        ax.minorticks_off()
        ax.set_xlabel("distinct users")
    for ax in (latency, memory, reaping):
        ax.grid(True, alpha=0.3)
    memory.set_xlabel("distinct users")
    title = (
        f"Many users, one worker: load average {summary['load_average']['start']} -> "
        f"{summary['load_average']['end']} ({summary['cpus']} CPUs)"
    )
    if "capped" in summary:
        c = summary["capped"]
        title += (
            f"; {c['users']} users, {c.get('batch', c['users'])} at a time, through "
            f"max_connections={c['max_connections']}: "
            f"errors {c['wave']['errors']}, peak {c['peak_connections']} connections"
        )
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def qe_eos_figure(summary: dict, path: Path) -> None:
    """qe_eos: per configuration and round, wall seconds, KiB moved and HTTP requests or TCP
    connections per calculation; and E(V) of the first round with the firecrest fit."""
    import numpy as np

    plt = _pyplot()
    results = summary["results"]
    names = list(dict.fromkeys(row["config"] for row in results))
    rounds = sorted({row["round"] for row in results})
    by_round = {(row["round"], row["config"]): row for row in results}
    colors = {name: AIIDA_COLORS.get(name, "#7f7f7f") for name in names}
    fig, axes = plt.subplots(1, 4, figsize=(17, 4.2))
    width = 0.8 / len(names)
    panels = (
        ("wall_s", "wall seconds per EOS"),
        ("kib_per_calc", "KiB moved per calculation"),
        ("connections_per_calc", "TCP connections per calculation"),
    )
    for ax, (key, title) in zip(axes, panels, strict=False):
        for i, name in enumerate(names):
            xs = [j + (i - (len(names) - 1) / 2) * width for j in range(len(rounds))]
            values = [by_round[(r, name)][key] for r in rounds]
            ax.bar(xs, values, width, color=colors[name], label=name)
            for x, v in zip(xs, values, strict=True):
                ax.annotate(f"{v:.3g}", (x, v), ha="center", va="bottom", fontsize=8)
        ax.set_xticks(range(len(rounds)), [f"round {r}" for r in rounds])
        ax.set_title(title, fontsize=10)
    axes[0].legend(fontsize=8)
    first = by_round[(rounds[0], names[0])]
    volumes, energies = first["volumes"], first["energies_ev"]
    x = np.asarray(volumes) ** (-2 / 3)
    coefficients = np.polyfit(x, energies, 3 if len(x) >= 5 else 2)
    grid = np.linspace(min(volumes), max(volumes), 200)
    eos = axes[3]
    eos.plot(grid, np.polyval(coefficients, grid ** (-2 / 3)), "-", color="#555555", label="fit")
    for name in names:
        row = by_round[(rounds[0], name)]
        eos.plot(row["volumes"], row["energies_ev"], "o", color=colors[name], label=name,
                 markersize=7 if name == names[0] else 4)  # fmt: skip
    eos.set_xlabel("volume per cell (Å³)")
    eos.set_ylabel("E (eV)")
    fit = f"a0 = {first.get('a', 0):.3f} Å, B0 = {first.get('bulk_modulus', 0):.0f} GPa"
    eos.set_title(f"E(V), {fit}", fontsize=10)
    eos.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


DOWNLOAD_COLORS = {
    "direct": COLORS["api"],
    "staged": "#9ecae1",
    "baseline": "#7f7f7f",
    "raw": COLORS["raw_sftp"],
}
DOWNLOAD_LABELS = {
    "direct": "plugin, direct",
    "staged": "plugin, staged",
    "baseline": "plugin, baseline",
    "raw": "raw SFTP",
}


def download_figure(result: dict, path: Path) -> None:
    """MiB/s of each way (median bar, each round a dot) with its ratio to raw SFTP; CPU
    seconds per GiB of client, server and sshd; the client's RSS before and at its peak."""
    plt = _pyplot()
    ways = list(result["ways"])
    fig, (speed, cpu, memory) = plt.subplots(1, 3, figsize=(14, 4.4))
    size = result["size_bytes"]
    xs = range(len(ways))
    for x, way in zip(xs, ways, strict=True):
        row = result["ways"][way]
        color = DOWNLOAD_COLORS[way]
        speed.bar(x, row["mib_s"], 0.6, color=color)
        rounds = [size / 2**20 / r["seconds"] for r in row["runs"]]
        speed.plot([x] * len(rounds), rounds, "k.", markersize=4)
        label = f"{row['mib_s']:.0f}"
        if "over_raw_mib_s" in row:
            label += f"\n{row['over_raw_mib_s']:.2f}x raw"
        speed.annotate(
            label, (x, max([row["mib_s"], *rounds])), ha="center", va="bottom", fontsize=8
        )
        bottom = 0.0
        for party, shade in (("client", 1.0), ("server", 0.65), ("sshd", 0.35)):
            value = row["cpu_s_per_gib"][party]
            cpu.bar(x, value, 0.6, bottom=bottom, color=color, alpha=shade, edgecolor="black",
                    linewidth=0.4)  # fmt: skip
            if value > 0.3:
                cpu.annotate(f"{party} {value:.1f}", (x, bottom + value / 2), ha="center",
                             va="center", fontsize=7)  # fmt: skip
            bottom += value
        memory.bar(x - 0.15, row["client_rss_before_mib"], 0.3, color=color, alpha=0.5)
        memory.bar(x + 0.15, row["client_rss_peak_mib"], 0.3, color=color)
        growth = f"+{row['client_rss_growth_mib']:.1f}"
        peak = (x + 0.15, row["client_rss_peak_mib"])
        memory.annotate(growth, peak, ha="center", va="bottom", fontsize=8)
    labels = [DOWNLOAD_LABELS[w] for w in ways]
    speed.set_title(f"{size / 2**20:.0f} MiB down, median of {result['rounds']} (dots: rounds)")
    speed.set_ylabel("MiB/s")
    cpu.set_title("CPU seconds per GiB: client, server, sshd")
    cpu.set_ylabel("CPU s/GiB")
    memory.set_title("client RSS: before the transfer, peak (growth)")
    memory.set_ylabel("MiB")
    for ax in (speed, cpu, memory):
        ax.set_xticks(list(xs), labels, fontsize=8)
    speed.set_ylim(top=speed.get_ylim()[1] * 1.2)
    memory.set_ylim(top=memory.get_ylim()[1] * 1.15)
    fig.suptitle(f"load average {result['load_before']} -> {result['load_after']}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def cold_burst_figure(summary: dict, path: Path) -> None:
    """cold_burst: each run's P99 against the 1 s goal, the latency distribution of every
    run, and where the slowest 5 % of requests spent their time. ``summary`` is one result,
    or ``{"variants": [result, ...]}`` with a ``label`` each (before/after, side by side)."""
    plt = _pyplot()
    variants = summary.get("variants") or [summary]
    colors = ["#d62728", COLORS["api"], "#2ca02c", "#9467bd"]
    fig, (p99s, spread, phases) = plt.subplots(1, 3, figsize=(15, 4.6))
    for i, result in enumerate(variants):
        label = result.get("label") or result.get("server_src") or "this server"
        color = colors[i % len(colors)]
        runs = result["runs"]
        failed = sum(not r.get("started", True) for r in runs)
        p99s.plot(
            range(1, len(runs) + 1),
            [r["p99_ms"] if r.get("started", True) else float("nan") for r in runs],
            "o-",
            color=color,
            label=f"{label}: {result['runs_met']}/{len(runs)} met"
            + (f", {failed} never served" if failed else ""),
        )
        served = [r for r in runs if r.get("started", True)]
        for j, run in enumerate(served):
            ordered = run["latencies_ms"]
            share = [100 * (k + 1) / len(ordered) for k in range(len(ordered))]
            spread.plot(
                ordered, share, "-", color=color, alpha=0.5, label=label if j == 0 else None
            )
    goal = variants[0]["goal_p99_ms"]
    p99s.axhline(goal, color="grey", linestyle=":", label=f"goal {goal:.0f} ms")
    p99s.set_xlabel("run (a fresh server each)")
    p99s.set_ylabel("P99 latency, ms (log)")
    p99s.set_yscale("log")
    p99s.set_title("P99 of each cold burst", fontsize=10)
    p99s.legend(fontsize=8)
    spread.axvline(goal, color="grey", linestyle=":")
    spread.set_xscale("log")
    spread.set_xlabel("latency, ms (log)")
    spread.set_ylabel("% of requests answered")
    spread.set_title("every request of every run", fontsize=10)
    spread.legend(fontsize=8)
    names = ("queue", "conn", "auth", "ssh", "handler")
    bottoms = [0.0] * len(variants)
    palette = ["#7f7f7f", "#bcbd22", "#e377c2", COLORS["raw_sftp"], COLORS["api"]]
    labels = [v.get("label") or "this server" for v in variants]
    for name, color in zip(names, palette, strict=True):
        heights = []
        for result in variants:
            tails = [r["phases_tail_ms"][name] for r in result["runs"] if "phases_tail_ms" in r]
            heights.append(sum(tails) / len(tails) if tails else 0.0)
        phases.bar(labels, heights, 0.5, bottom=bottoms, color=color, label=name)
        bottoms = [b + h for b, h in zip(bottoms, heights, strict=True)]
    phases.set_ylabel("ms, mean over runs")
    phases.set_title("slowest 5 % of requests: where the time went", fontsize=10)
    phases.legend(fontsize=8)
    for ax in (p99s, spread, phases):
        ax.grid(True, alpha=0.3)
    first = variants[0]
    fig.suptitle(
        f"Cold burst: {first['clients']} new clients at once on a fresh server "
        f"({first['workers']} workers, {first['users']} user(s), {first['endpoint']}); "
        f"load average {first['load_average']['start']} -> "
        f"{variants[-1]['load_average']['end']} ({first['cpus']} CPUs)",
        fontsize=11,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main() -> int:
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    data = json.loads(Path(sys.argv[1]).read_text())
    figure = {
        "api": api_figure,
        "transfer": transfer_figure,
        "download": download_figure,
        "aiida_calcjobs": aiida_figure,
        "users": users_figure,
        "qe_eos": qe_eos_figure,
        "cold_burst": cold_burst_figure,
    }[data["benchmark"]]
    figure(data, Path(sys.argv[2]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
